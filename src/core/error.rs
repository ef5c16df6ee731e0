//! What a failure means for the run: the one classification every error enum at a module
//! boundary answers (STYLE habit 9).
//!
//! Each boundary has its own `thiserror` enum (journal, pipeline, engine, signals, REST,
//! connection, …) whose variants say what went wrong; [`Disposition`] says what the caller
//! does about it. Tagging each variant in one `match` (the enum's `disposition()`) keeps the
//! decision next to the error instead of spread over the callers.

/// What the caller does with a failure.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Log it, count it, carry on (a malformed frame, a refused REST call that is retried).
    Recoverable,
    /// The actor stops itself (`ctx.stop()`) and its supervisor restarts it (a dead
    /// connection, a stopped signal model).
    Restart,
    /// The run cannot go on: trading halts and the run ends with its end-of-run records (the
    /// journal cannot write, a wiring or start-up failure).
    Halt,
}

/// An error that knows its [`Disposition`].
pub trait Classified {
    /// What the caller does about this error.
    fn disposition(&self) -> Disposition;
}
