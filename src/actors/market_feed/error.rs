//! Why the feed's frame consumer (or a live resume) could not go on: [`FeedError`].
//!
//! Each variant's text is exactly what the feed logged and passed on before (the failures
//! end the run as `FeedEnded::Failed`, reported with this text, or stop the connection).

use crate::core::error::{Classified, Disposition};
use crate::core::kraken::rest::RestError;
use crate::pipeline::PipelineError;
use crate::sources::recording::RecordError;
use crate::sources::replay::ReplayError;
use crate::sources::rest_startup::RestStartupError;

/// Why frames (or the lines of a recording re-executed on resume) could not be driven
/// through the pipeline. No variant has a `source()`: the text already holds the inner one.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A pass could not complete.
    #[error("{0}")]
    Pipeline(PipelineError),
    /// A `fees` / `ohlc` line could not be applied.
    #[error("{0}")]
    RestLine(RestStartupError),
    /// The recording of the run being resumed cannot be read.
    #[error("{0}")]
    Recording(ReplayError),
    /// A line of the recording of the run being resumed is not a record line.
    #[error("{path} line {line}: {reason}")]
    RecordLine {
        /// The recording, as displayed.
        path: String,
        /// Line number in it.
        line: u64,
        /// What is wrong with the line.
        reason: RecordError,
    },
    /// A `reconnect` / `gap_end` line of the recording is not its JSON (or one could not be
    /// encoded).
    #[error("{0}")]
    Json(serde_json::Error),
    /// A REST `Trades` call for the gap failed.
    #[error("{0}")]
    Rest(RestError),
    /// The gap after a downtime is longer than the pages fetched to catch up.
    #[error("more than {0} pages of trades missed; the gap is too long to catch up")]
    GapTooLong(usize),
}

impl Classified for FeedError {
    /// A gap that cannot be fetched is logged and the pair's orders reviewed (the feed goes
    /// on); anything else ends the run: the stream can no longer be driven as recorded.
    fn disposition(&self) -> Disposition {
        match self {
            FeedError::Rest(_) | FeedError::GapTooLong(_) => Disposition::Recoverable,
            FeedError::Pipeline(_)
            | FeedError::RestLine(_)
            | FeedError::Recording(_)
            | FeedError::RecordLine { .. }
            | FeedError::Json(_) => Disposition::Halt,
        }
    }
}
