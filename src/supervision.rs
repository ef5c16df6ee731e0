//! Supervision: what happens when an actor fails, in one table ([`ActorName::policy`]) that
//! the wiring (`engine::build`), the actors' panic handling and the engine's end of a run all
//! read.
//!
//! | actor | policy |
//! |---|---|
//! | `market_feed` | restart, backoff `feed.reconnect.*` |
//! | `rate_limiter`, `signal_host`, `external_signals` | restart, backoff 100 ms × 2^(n−1), at most 5 s |
//! | `aggregator`, `risk_manager`, `position_book` | stop the run (exit 3, resumable) |
//! | `journal` | stop the run without another record (exit 4, resumable) |
//!
//! How a failure is seen. actix does not restart an actor whose handler panics: the panic
//! unwinds through the arbiter's task, which tokio drops, and the actor is gone without a
//! word. So:
//! - actors that restart run their handlers inside [`catch`] and, on a panic, stop themselves
//!   (`ctx.stop()`): their `actix::Supervisor` restarts them after [`Restarts::restarting`]'s
//!   backoff;
//! - every actor holds a [`Watch`]: when its actor is dropped by a panic that was not caught
//!   (the actors that stop the run, or a panic that escaped a catch), it tells the engine
//!   ([`ActorFailure`]), which ends the run; the process never hangs on a dead actor;
//! - the panic hook ([`install_panic_hook`]) logs every panic as one structured event
//!   (`panic`: `thread`, `location`, `reason`) and keeps its text for the [`Watch`].
//!
//! The test hook [`TEST_PANIC_VAR`] (`KRAKEN_PAPER_TEST_PANIC=<actor>@<n>`, read only when
//! set) makes the named actor panic while handling its n-th message of its main input, so
//! each policy is tested on the real binary (tests/integration/supervision.rs).

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

/// The environment variable of the test hook: `<actor>@<n>` (n ≥ 1). Read only when set;
/// never set it outside tests.
pub const TEST_PANIC_VAR: &str = "KRAKEN_PAPER_TEST_PANIC";

/// The actors under supervision, by the name their log events carry (`actor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActorName {
    /// MarketFeed (the WebSocket connection and the pipeline driver).
    MarketFeed,
    /// RateLimiter (REST pacing).
    RateLimiter,
    /// A SignalHost (one per signal model).
    SignalHost,
    /// The external-signals actor.
    ExternalSignals,
    /// SignalAggregator.
    Aggregator,
    /// RiskManager.
    RiskManager,
    /// PositionBook.
    PositionBook,
    /// Journal.
    Journal,
}

/// What the supervisor does when an actor fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The actor is restarted after a backoff (its mailbox is kept; what it holds survives,
    /// connections are made again).
    Restart {
        /// How long it waits before it takes messages again.
        backoff: Backoff,
    },
    /// The actor holds trading state: the run stops cleanly. Trading halts (the feed stops),
    /// the records of the pass in flight are dropped from the journal, `actor_failed` and
    /// `run_ended` (reason `actor_failed`) are journaled, the report is written, exit code 3;
    /// `run --resume` continues the run from the journal.
    StopRun,
    /// The journal itself: nothing is acknowledged after its failure, `journal_write_failed`
    /// is logged, exit code 4; `run --resume` continues once the disk is writable.
    StopUnjournaled,
}

/// A restart's wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// `feed.reconnect.*` (initial × 2^(n−1), capped, ± jitter; reset after a healthy spell).
    Reconnect,
    /// `initial` × 2^(n−1) for the n-th restart, at most `max`.
    Doubling {
        /// The first wait.
        initial: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl Backoff {
    /// The wait before restart number `attempt` (1 for the first) of a [`Backoff::Doubling`];
    /// zero for [`Backoff::Reconnect`], which the feed computes from its settings.
    pub fn delay(self, attempt: u32) -> Duration {
        match self {
            Backoff::Reconnect => Duration::ZERO,
            Backoff::Doubling { initial, max } => {
                let exp = attempt.saturating_sub(1).min(20);
                initial.saturating_mul(1u32 << exp).min(max)
            }
        }
    }
}

/// The wait of the actors that restart without settings of their own.
const ACTOR_BACKOFF: Backoff =
    Backoff::Doubling { initial: Duration::from_millis(100), max: Duration::from_secs(5) };

impl ActorName {
    /// Every supervised actor.
    pub const ALL: [ActorName; 8] = [
        ActorName::MarketFeed,
        ActorName::RateLimiter,
        ActorName::SignalHost,
        ActorName::ExternalSignals,
        ActorName::Aggregator,
        ActorName::RiskManager,
        ActorName::PositionBook,
        ActorName::Journal,
    ];

    /// The policy table (docs/architecture.md "Supervision policy" shows the same).
    pub const fn policy(self) -> Policy {
        match self {
            ActorName::MarketFeed => Policy::Restart { backoff: Backoff::Reconnect },
            ActorName::RateLimiter | ActorName::SignalHost | ActorName::ExternalSignals => {
                Policy::Restart { backoff: ACTOR_BACKOFF }
            }
            ActorName::Aggregator | ActorName::RiskManager | ActorName::PositionBook => Policy::StopRun,
            ActorName::Journal => Policy::StopUnjournaled,
        }
    }

    /// The name in log events and in the test hook.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorName::MarketFeed => "market_feed",
            ActorName::RateLimiter => "rate_limiter",
            ActorName::SignalHost => "signal_host",
            ActorName::ExternalSignals => "external_signals",
            ActorName::Aggregator => "aggregator",
            ActorName::RiskManager => "risk_manager",
            ActorName::PositionBook => "position_book",
            ActorName::Journal => "journal",
        }
    }

    /// The actor named `s` ([`Self::as_str`]).
    pub fn parse(s: &str) -> Option<ActorName> {
        ActorName::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for ActorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An actor that failed and was not restarted: the engine ends the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorFailure {
    /// Which actor.
    pub actor: ActorName,
    /// Why (the panic's text and place).
    pub reason: String,
}

/// The test hook's value: panic in `actor` at its `at`-th message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestPanic {
    /// The actor.
    pub actor: ActorName,
    /// The message (1 for the first).
    pub at: u64,
}

/// A [`TEST_PANIC_VAR`] value that is not `<actor>@<n>`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{var}={value:?}: expected <actor>@<n> with n >= 1 and actor one of market_feed, rate_limiter, signal_host, external_signals, aggregator, risk_manager, position_book, journal",
    var = TEST_PANIC_VAR
)]
pub struct TestPanicError {
    /// The value as set.
    pub value: String,
}

impl TestPanic {
    /// Parses `<actor>@<n>`.
    pub fn parse(value: &str) -> Result<TestPanic, TestPanicError> {
        let bad = || TestPanicError { value: value.to_string() };
        let (actor, at) = value.trim().split_once('@').ok_or_else(bad)?;
        let actor = ActorName::parse(actor).ok_or_else(bad)?;
        let at: u64 = at.parse().map_err(|_| bad())?;
        if at == 0 {
            return Err(bad());
        }
        Ok(TestPanic { actor, at })
    }

    /// The hook, when [`TEST_PANIC_VAR`] is set (it is not read otherwise).
    pub fn from_env() -> Result<Option<TestPanic>, TestPanicError> {
        match std::env::var(TEST_PANIC_VAR) {
            Ok(v) => TestPanic::parse(&v).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(TestPanicError { value: v.to_string_lossy().into_owned() })
            }
        }
    }
}

/// What the engine hands every actor it starts: where failures are reported, and the test
/// hook.
#[derive(Clone, Debug)]
pub struct Supervision {
    failures: mpsc::UnboundedSender<ActorFailure>,
    test_panic: Option<TestPanic>,
}

impl Supervision {
    /// A supervision reporting to the returned receiver.
    pub fn new(test_panic: Option<TestPanic>) -> (Supervision, mpsc::UnboundedReceiver<ActorFailure>) {
        let (failures, rx) = mpsc::unbounded_channel();
        (Supervision { failures, test_panic }, rx)
    }

    /// The watch of one actor.
    pub fn watch(&self, actor: ActorName) -> Watch {
        Watch {
            actor,
            failures: Some(self.failures.clone()),
            panic_at: self.test_panic.filter(|t| t.actor == actor).map(|t| t.at),
            seen: 0,
        }
    }
}

/// Held by every actor: counts its main input for the test hook and, when the actor is
/// dropped by a panic, reports it ([`ActorFailure`]).
#[derive(Debug)]
pub struct Watch {
    actor: ActorName,
    failures: Option<mpsc::UnboundedSender<ActorFailure>>,
    panic_at: Option<u64>,
    seen: u64,
}

impl Watch {
    /// A watch that reports nothing and never panics (an actor built outside the engine:
    /// unit tests, benchmarks).
    pub fn inert(actor: ActorName) -> Watch {
        Watch { actor, failures: None, panic_at: None, seen: 0 }
    }

    /// The watched actor.
    pub fn actor(&self) -> ActorName {
        self.actor
    }

    /// One more message of the main input; panics at the test hook's message (the panic names
    /// the caller's place).
    #[track_caller]
    pub fn tick(&mut self) {
        self.seen += 1;
        if self.panic_at == Some(self.seen) {
            panic!("test panic injected by {TEST_PANIC_VAR}={}@{}", self.actor, self.seen);
        }
    }

    /// Whether the next [`Self::tick`] panics (for actors whose main input is counted
    /// elsewhere: the feed's frames).
    pub fn panic_at(&self) -> Option<u64> {
        self.panic_at
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Dropped while unwinding: the actor's task is being torn down by a panic that nothing
        // caught. (A normal stop drops it without panicking: nothing to say.)
        if std::thread::panicking()
            && let Some(tx) = &self.failures
        {
            let _ = tx.send(ActorFailure { actor: self.actor, reason: last_panic() });
        }
    }
}

/// A panic caught by [`catch`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Panicked {
    /// The panic's text and place.
    pub reason: String,
}

/// Runs `f`, turning a panic into its text (the actor then follows its policy).
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panicked> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panicked { reason: panic_text(p.as_ref()) })
}

/// The text of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".to_string());
    // The hook saw the same panic with its place: prefer that text.
    match LAST_PANIC.with(|p| p.borrow().clone()) {
        Some(last) if last.starts_with(&text) => last,
        _ => text,
    }
}

thread_local! {
    /// The last panic on this thread, as the hook formatted it.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn last_panic() -> String {
    LAST_PANIC.with(|p| p.borrow().clone()).unwrap_or_else(|| "panic".to_string())
}

/// Logs every panic as one structured `panic` event (`thread`, `location`, `reason`) instead
/// of the default text on stderr, and keeps its text for the actor's [`Watch`]. Installed by
/// the engine before it starts actors; installing again replaces it.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-text payload".to_string());
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let text = format!("{msg} (at {location})");
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        let thread = std::thread::current();
        tracing::error!(
            event = "panic",
            thread = thread.name().unwrap_or("-"),
            location = %location,
            reason = %msg,
            "panic"
        );
    }));
}

/// Restart bookkeeping of an actor with [`Policy::Restart`] and a [`Backoff::Doubling`]: the
/// reason of the last failure, the attempt, and the wait before it takes messages again.
#[derive(Debug)]
pub struct Restarts {
    actor: ActorName,
    attempt: u32,
    reason: String,
    wait: Duration,
}

impl Restarts {
    /// No restart yet.
    pub fn new(actor: ActorName) -> Restarts {
        Restarts { actor, attempt: 0, reason: String::new(), wait: Duration::ZERO }
    }

    /// A handler panicked: logs it; the caller stops the actor (`ctx.stop()`) so that its
    /// supervisor restarts it.
    pub fn failed(&mut self, panicked: Panicked, source: &str) {
        let reason = panicked.reason;
        tracing::error!(
            event = "actor_panicked",
            actor = self.actor.as_str(),
            source = source,
            reason = %reason,
            "actor panicked; its supervisor restarts it"
        );
        self.reason = reason;
    }

    /// From `Supervised::restarting`: counts the restart, computes the wait and logs
    /// `actor_restarted` (`actor`, `attempt`, `reason`, `backoff_ms`).
    pub fn restarting(&mut self, source: &str) {
        self.attempt += 1;
        self.wait = match self.actor.policy() {
            Policy::Restart { backoff } => backoff.delay(self.attempt),
            Policy::StopRun | Policy::StopUnjournaled => Duration::ZERO,
        };
        tracing::warn!(
            event = "actor_restarted",
            actor = self.actor.as_str(),
            source = source,
            attempt = self.attempt,
            reason = %self.reason,
            backoff_ms = self.wait.as_millis() as u64,
            "actor restarted by its supervisor"
        );
    }

    /// From `Actor::started`: after a restart, the actor takes no message until its backoff
    /// has passed (wall time; its mailbox keeps them).
    pub fn hold<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        let wait = std::mem::take(&mut self.wait);
        if !wait.is_zero() {
            ctx.wait(actix::fut::wrap_future(tokio::time::sleep(wait)));
        }
    }

    /// Restarts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_actor_has_a_name_that_parses_back() {
        for a in ActorName::ALL {
            assert_eq!(ActorName::parse(a.as_str()), Some(a));
        }
        assert_eq!(ActorName::parse("nobody"), None);
    }

    #[test]
    fn trading_state_stops_the_run_and_the_rest_restarts() {
        use ActorName::*;
        for a in [Aggregator, RiskManager, PositionBook] {
            assert_eq!(a.policy(), Policy::StopRun, "{a}");
        }
        for a in [MarketFeed, RateLimiter, SignalHost, ExternalSignals] {
            assert!(matches!(a.policy(), Policy::Restart { .. }), "{a}");
        }
        assert_eq!(Journal.policy(), Policy::StopUnjournaled);
    }

    #[test]
    fn doubling_backoff_is_capped() {
        let b = Backoff::Doubling { initial: Duration::from_millis(100), max: Duration::from_secs(5) };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(7), Duration::from_secs(5));
        assert_eq!(b.delay(100), Duration::from_secs(5));
    }

    #[test]
    fn test_hook_values() {
        assert_eq!(
            TestPanic::parse("position_book@12").ok(),
            Some(TestPanic { actor: ActorName::PositionBook, at: 12 })
        );
        for bad in ["position_book", "position_book@0", "position_book@x", "nobody@3", "@3"] {
            assert!(TestPanic::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_watch_panics_at_its_message_and_reports_the_uncaught_panic() {
        let (sup, mut rx) = Supervision::new(Some(TestPanic { actor: ActorName::RiskManager, at: 2 }));
        let mut other = sup.watch(ActorName::Aggregator);
        other.tick();
        other.tick();
        let mut w = sup.watch(ActorName::RiskManager);
        w.tick();
        let r = catch(move || {
            let mut w = w;
            w.tick();
        });
        assert!(r.is_err_and(|e| e.reason.contains("KRAKEN_PAPER_TEST_PANIC=risk_manager@2")));
        let failure = rx.try_recv().expect("the dropped watch reported");
        assert_eq!(failure.actor, ActorName::RiskManager);
        drop(other);
        assert!(rx.try_recv().is_err(), "a watch dropped without a panic reports nothing");
    }
}
