//! Logging: `tracing` to stderr in a human or JSON format (human: warnings and errors only,
//! unless `-v`), plus optional JSON log files with everything, rotated by period and size
//! ([`RotatingFile`]). actix and other `log` users are bridged into `tracing`.
//!
//! Supervision events are ordinary tracing events with an `event` field naming them
//! (`actor_started`, `actor_restarted`, `feed_reconnect`, `book_resync`, `emergency_stop`, …);
//! in JSON they come out with every field at the top level, so logs can be filtered by
//! machine: `jq 'select(.event == "actor_restarted")'`.

use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, Rotation};

mod progress;
mod rotating;
pub use progress::Progress;
pub use rotating::RotatingFile;

/// Names of the structured supervision events (the `event` field).
pub mod events {
    /// An actor started.
    pub const ACTOR_STARTED: &str = "actor_started";
    /// An actor stopped.
    pub const ACTOR_STOPPED: &str = "actor_stopped";
    /// A supervised actor was restarted after a failure.
    pub const ACTOR_RESTARTED: &str = "actor_restarted";
    /// The feed lost or gave up its connection and is reconnecting.
    pub const FEED_RECONNECT: &str = "feed_reconnect";
    /// The feed waits before the next connection attempt.
    pub const FEED_BACKOFF: &str = "feed_backoff";
    /// A book failed its checksum and is being rebuilt.
    pub const BOOK_RESYNC: &str = "book_resync";
    /// RiskManager halted trading.
    pub const EMERGENCY_STOP: &str = "emergency_stop";
    /// The trading halt was lifted.
    pub const HALT_LIFTED: &str = "halt_lifted";
}

/// Keeps background log writers alive; drop it last in `main`.
pub struct TelemetryGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Where log files go (optional).
pub struct LogFiles<'a> {
    /// Folder.
    pub dir: &'a Path,
    /// Rotation period.
    pub rotation: Rotation,
    /// Rotated files kept.
    pub max_files: usize,
    /// Rotate when the live file would pass this size (0: no size limit).
    pub max_bytes: u64,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `logging.level` (or `RUST_LOG`) is not a valid filter directive.
    #[error("logging.level {level:?} is not a valid filter: {error}")]
    Filter {
        /// The configured level.
        level: String,
        /// The parser's message.
        error: String,
    },
    /// The log folder cannot be created.
    #[error("cannot create log folder {}: {error}", path.display())]
    CreateFolder {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// The log file cannot be opened.
    #[error("cannot open log file in {}: {error}", path.display())]
    OpenFile {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O error's text.
        error: String,
    },
}

impl crate::core::error::Classified for TelemetryError {
    /// Logging is set up before the run starts; a failure stops the command: every variant
    /// is [`Disposition::Halt`](crate::core::error::Disposition::Halt).
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            TelemetryError::Filter { .. }
            | TelemetryError::CreateFolder { .. }
            | TelemetryError::OpenFile { .. } => crate::core::error::Disposition::Halt,
        }
    }
}

/// The most detailed level shown on stderr: everything `level` lets through with `-v` or
/// JSON logs (which are for machines), warnings and errors otherwise. Log files always get
/// everything `level` lets through.
pub fn stderr_level(format: LogFormat, verbose: bool) -> LevelFilter {
    if verbose || format == LogFormat::Json { LevelFilter::TRACE } else { LevelFilter::WARN }
}

/// Installs the global subscriber. `level` is an EnvFilter directive (`RUST_LOG` wins) for
/// stderr and the files alike; stderr shows only warnings and errors unless `verbose` or
/// `format` is JSON ([`stderr_level`]).
pub fn init(
    format: LogFormat,
    level: &str,
    verbose: bool,
    files: Option<LogFiles<'_>>,
) -> Result<TelemetryGuard, TelemetryError> {
    let on_stderr = stderr_level(format, verbose);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .map_err(|e| TelemetryError::Filter { level: level.to_string(), error: e.to_string() })?;
    let (file_layer, guard) = match files {
        Some(f) => {
            std::fs::create_dir_all(f.dir).map_err(|e| TelemetryError::CreateFolder {
                path: f.dir.to_path_buf(),
                error: e.to_string(),
            })?;
            let appender = RotatingFile::open(f.dir, "kraken-paper", f.rotation, f.max_bytes, f.max_files)
                .map_err(|e| TelemetryError::OpenFile { path: f.dir.to_path_buf(), error: e.to_string() })?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(writer);
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter).with(file_layer);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr.with_max_level(tracing::Level::TRACE))
                    .with_filter(on_stderr),
            )
            .try_init(),
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(std::io::stderr)
                    .with_filter(on_stderr),
            )
            .try_init(),
    };
    // A second init (tests, examples) keeps the first subscriber; that is not an error.
    let _ = result;
    Ok(TelemetryGuard { _file: guard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_shows_info_only_when_verbose_or_json() {
        assert_eq!(stderr_level(LogFormat::Human, false), LevelFilter::WARN);
        assert_eq!(stderr_level(LogFormat::Human, true), LevelFilter::TRACE);
        assert_eq!(stderr_level(LogFormat::Json, false), LevelFilter::TRACE);
    }
}
