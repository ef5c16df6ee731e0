//! What survives restarts of the [`super::MarketFeed`] actor: the decoder, the run's clock,
//! counters and the resume / live-run plumbing (the supervisor reuses the struct).

use std::rc::Rc;
use std::time::Duration;

use actix::Recipient;
use tokio::sync::mpsc;

use super::ReplayedStop;
use super::settings::{FeedSettings, GapFetch, LiveResume};
use crate::actors::journal::RecordFrames;
use crate::core::feed::FeedBook;
use crate::core::kraken::decode::{FeedCounters, FeedDecoder};
use crate::sources::rest_startup::RestLine;
use crate::telemetry::Progress;

/// What survives restarts of the actor (the supervisor reuses the struct).
pub(super) struct FeedState {
    pub(super) decoder: FeedDecoder,
    /// Book trust, the run's clock, sequence numbers, last trades.
    pub(super) book: FeedBook,
    /// The decoder's counters after the last frame passed through the pipeline (frames
    /// decoded past a stop are not counted).
    pub(super) passed: FeedCounters,
    /// Pipeline passes so far.
    pub(super) passes: u64,
    pub(super) stop_requested: bool,
    pub(super) finished: bool,
    pub(super) connected: bool,
    pub(super) reconnects: u64,
    pub(super) restarts: u64,
    /// One-line progress on stderr, only when stderr is a terminal (never in logs/journal).
    pub(super) progress: Option<Progress>,
    /// Resume: frame counts at which earlier sessions were stopped by a signal, and where to
    /// ask for their end-of-run block to be written again (see [`super::MarketFeed::with_replayed_stops`]).
    pub(super) replayed_stops: std::collections::VecDeque<u64>,
    pub(super) stop_replayer: Option<mpsc::UnboundedSender<ReplayedStop>>,
    /// Live runs: where received and sent frames are recorded (the journal's `RecordFrames`).
    pub(super) recorder: Option<Recipient<RecordFrames>>,
    /// Live resume: done once, before the first connection.
    pub(super) live_resume: Option<LiveResume>,
    /// A disconnect not yet caught up on (reconnect attempt, reason): the next connection
    /// first fills the gap, then invalidates the books, before it reads a frame (a
    /// re-execution of the recording runs them in this order).
    pub(super) reconnected: Option<(u32, &'static str)>,
    /// Live runs: what fills the gaps after reconnects and on resume.
    pub(super) gap_fetch: Option<Rc<GapFetch>>,
    /// Live runs: `fees` lines from the start-up REST fetch, applied before the next frame.
    pub(super) rest_fees: Option<mpsc::UnboundedReceiver<Vec<RestLine>>>,
    /// Live runs: the warm-up candles, awaited (bounded) before the first connection.
    pub(super) warmup: Option<(tokio::sync::oneshot::Receiver<Vec<RestLine>>, Duration)>,
    /// The test hook (`KRAKEN_PAPER_TEST_PANIC=market_feed@n`): panic once n frames are
    /// decoded (taken when it fires, so the restarted feed goes on).
    pub(super) test_panic_at: Option<u64>,
}

impl FeedState {
    /// The state of a feed that has not connected yet.
    pub(super) fn new(settings: &FeedSettings) -> FeedState {
        FeedState {
            decoder: settings.decoder(),
            book: FeedBook::new(settings.first_seq, settings.end_time),
            passed: FeedCounters::default(),
            passes: 0,
            stop_requested: false,
            finished: false,
            connected: false,
            reconnects: 0,
            restarts: 0,
            progress: Progress::for_terminal(settings.duration_micros),
            replayed_stops: Default::default(),
            stop_replayer: None,
            recorder: None,
            live_resume: None,
            reconnected: None,
            gap_fetch: None,
            rest_fees: None,
            warmup: None,
            test_panic_at: None,
        }
    }
}
