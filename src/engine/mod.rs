//! The one place the actor graph is built and wired; reads like docs/architecture.md.
//!
//! ```text
//!  source (SimServer on 127.0.0.1 | Kraken WS v2)
//!    └─ MarketFeed (Supervisor) ─ MarketData ─► PositionBook, RiskManager, signal actors, SignalAggregator
//!  signal actors ─ SignalBatch ─► SignalAggregator ─ TradeIntents ─► RiskManager ─ PlaceOrders ─► PositionBook
//!  outside process ─ WebSocket ─► ExternalSignals (a signal actor; off by default)
//!  PositionBook ─ PortfolioUpdate ─► RiskManager ─ EmergencyStop ─► every actor
//!  PositionBook ─ TradesClosed ─► SignalAggregator, RiskManager
//!  everyone ─ Append ─► Journal (own arbiter thread)       RateLimiter ◄─ REST calls
//! ```
//!
//! A session has three parts, one file each: **build** (`build.rs`: every actor created and
//! connected, nothing awaited), **run** (below: the market plays until its end or a signal)
//! and **finish** (`finish.rs`: the stop block, the journal closed, HTTP stopped, the
//! reports). Where market data comes from is chosen once, in `market.rs` ([`MarketSource`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::actors::external_signals::ServerHandle;
use crate::actors::journal::Journal;
use crate::actors::market_feed::{FeedEnded, MarketFeed};
use crate::actors::risk_manager::RiskManager;
use crate::config::Config;
use crate::core::signals::SignalModel;
use crate::http::HttpHandle;
use crate::messages::{EmergencyStop, HaltLifted, MarketData, SignalBatch};
use crate::run_dir::RunDir;
use crate::supervision::ActorFailure;

mod build;
mod finish;
mod market;

pub use crate::run_dir::Resume;
pub use market::MarketSource;

/// Builds a user's own signal actor, given where to send its signals.
pub type SignalActorFactory = Box<dyn FnOnce(Recipient<SignalBatch>) -> SignalActorInputs>;

/// What a user's signal actor takes: market data, and the halt broadcasts it can act on.
pub struct SignalActorInputs {
    /// Every market batch, whole (like the built-in signal actors).
    pub market_data: Recipient<MarketData>,
    /// Told of every emergency stop (RiskManager's broadcast), if the actor handles it.
    pub emergency_stop: Option<Recipient<EmergencyStop>>,
    /// Told when a halt is lifted, if the actor handles it.
    pub halt_lifted: Option<Recipient<HaltLifted>>,
}

impl From<Recipient<MarketData>> for SignalActorInputs {
    /// An actor that only takes market data (it sends nothing the halted aggregator would use).
    fn from(market_data: Recipient<MarketData>) -> Self {
        SignalActorInputs { market_data, emergency_stop: None, halt_lifted: None }
    }
}

/// Everything a run needs.
pub struct EngineSetup {
    /// Validated configuration (CLI overrides applied).
    pub config: Config,
    /// The run folder (created).
    pub run_dir: RunDir,
    /// HTTP address for the dashboard, if any.
    pub http: Option<SocketAddr>,
    /// The command line, kept in the run folder.
    pub command_line: Vec<String>,
    /// Extra signal models (plug-ins) next to the configured built-ins.
    pub extra_models: Vec<Box<dyn SignalModel>>,
    /// Extra signal actors (full actix actors).
    pub extra_actors: Vec<SignalActorFactory>,
    /// Continue the run folder's journal instead of starting one.
    pub resume: Option<Resume>,
    /// Play a recording instead of connecting to an exchange (`kraken-paper replay`).
    pub replay: Option<crate::actors::market_feed::ReplayInput>,
    /// Instruments preloaded into the feed's decoder (`replay --instruments FILE`).
    pub instruments: Vec<crate::core::instrument::Instrument>,
}

impl EngineSetup {
    /// A setup with no plug-ins.
    pub fn new(config: Config, run_dir: RunDir) -> Self {
        EngineSetup {
            config,
            run_dir,
            http: None,
            command_line: Vec::new(),
            extra_models: Vec::new(),
            extra_actors: Vec::new(),
            resume: None,
            replay: None,
            instruments: Vec::new(),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The final report (report.json; null when it could not be written after a journal
    /// failure).
    pub report: serde_json::Value,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Why it ended.
    pub reason: String,
    /// What the command's exit code says.
    pub status: RunStatus,
}

/// How a session ended, as the exit code says it (README "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Duration reached, recording played, or stopped by a signal: exit 0.
    Ended,
    /// An actor holding trading state failed (`supervision::Policy::StopRun`): exit 3.
    ActorFailed,
    /// The journal could not write (`supervision::Policy::StopUnjournaled`): exit 4.
    JournalFailed,
}

impl RunStatus {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Ended => 0,
            RunStatus::ActorFailed => 3,
            RunStatus::JournalFailed => 4,
        }
    }
}

/// Why a session could not be built, run or finished. Each variant prints the words of the
/// failure it carries (the command prints them after `error: `).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The run folder's start files (config copy, command line) could not be written.
    #[error("{0}")]
    StartFiles(crate::run_dir::RunDirError),
    /// The external-signals server could not bind its address or start.
    #[error("{0}")]
    ExternalSignals(crate::actors::external_signals::ServerError),
    /// The simulated exchange could not start.
    #[error("{0}")]
    Sim(crate::sources::simulated::SimServerError),
    /// The configured signal models could not be built.
    #[error("{0}")]
    Signals(crate::core::signals::SignalError),
    /// The journal could not be opened, written, synced or re-checked.
    #[error("{0}")]
    Journal(crate::core::journal::JournalError),
    /// An actor the engine asked stopped before answering.
    #[error("{0}")]
    Mailbox(MailboxError),
    /// The end-of-run reports could not be built or written.
    #[error("{0}")]
    Report(crate::report::ReportError),
    /// `KRAKEN_PAPER_TEST_PANIC` is set to something that is not `<actor>@<n>`.
    #[error("{0}")]
    TestPanic(crate::supervision::TestPanicError),
}

impl From<crate::core::journal::JournalError> for EngineError {
    fn from(e: crate::core::journal::JournalError) -> Self {
        EngineError::Journal(e)
    }
}

impl From<MailboxError> for EngineError {
    fn from(e: MailboxError) -> Self {
        EngineError::Mailbox(e)
    }
}

impl From<crate::report::ReportError> for EngineError {
    fn from(e: crate::report::ReportError) -> Self {
        EngineError::Report(e)
    }
}

impl crate::core::error::Classified for EngineError {
    /// A session that cannot be wired, or whose end cannot be written, ends the run: every
    /// variant is [`Disposition::Halt`](crate::core::error::Disposition::Halt).
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            EngineError::StartFiles(_)
            | EngineError::ExternalSignals(_)
            | EngineError::Sim(_)
            | EngineError::Signals(_)
            | EngineError::Journal(_)
            | EngineError::Mailbox(_)
            | EngineError::Report(_)
            | EngineError::TestPanic(_) => crate::core::error::Disposition::Halt,
        }
    }
}

/// Runs a session to its end (duration reached, SIGINT/SIGTERM, or an actor's failure), then
/// writes the report.
pub async fn run(setup: EngineSetup) -> Result<RunOutcome, EngineError> {
    crate::supervision::install_panic_hook();
    if setup.resume.is_none() {
        crate::run_dir::write_start_files(&setup.run_dir, &setup.config, &setup.command_line)
            .map_err(EngineError::StartFiles)?;
    }
    let mut engine = Engine::build(setup)?;
    let ended = engine.run().await;
    engine.finish(ended).await
}

/// A built session: what run and finish need of the wired graph.
struct Engine {
    /// The run folder.
    run_dir: RunDir,
    /// Set when the session continues a journal.
    resume: Option<Resume>,
    /// The market (holds the simulated exchange, which stops when this is dropped).
    _market: MarketSource,
    /// The journal actor and the arbiter (thread) it runs on.
    journal: Addr<Journal>,
    journal_arbiter: Arbiter,
    /// Resume: told the seq at which re-execution caught up with the journal.
    caught_up: Option<oneshot::Receiver<u64>>,
    risk: Addr<RiskManager>,
    feed: Addr<MarketFeed>,
    /// How the feed ended.
    ended: mpsc::UnboundedReceiver<FeedEnded>,
    /// Actors that failed and were not restarted (`supervision::Watch`).
    failures: mpsc::UnboundedReceiver<ActorFailure>,
    /// Wall time the feed started at, for run.json's throughput only (never journaled).
    feed_started: tokio::time::Instant,
    stop_block: finish::StopBlock,
    external_server: Option<ServerHandle>,
    http: Option<HttpHandle>,
}

impl Engine {
    /// The market plays (the feed started with the graph) until the duration is reached, the
    /// recording ends, or a signal stops it; a resume lifts a halt once caught up if asked to.
    async fn run(&mut self) -> finish::Ended {
        if let (Some(r), Some(caught_up_rx)) = (&self.resume, self.caught_up.take()) {
            let (risk, lift, last_seq) = (self.risk.clone(), r.lift_halt, r.last_seq);
            tracing::info!(
                actor = "engine",
                last_seq,
                "resuming: re-executing the run up to its last journaled record"
            );
            actix::spawn(async move {
                if caught_up_rx.await.is_ok() && lift {
                    match risk.send(crate::messages::OperatorCommand::Resume).await {
                        Ok(Ok(m)) => tracing::info!(actor = "engine", result = %m, "--lift-halt"),
                        other => tracing::warn!(actor = "engine", result = ?other, "--lift-halt failed"),
                    }
                }
            });
        }
        // Wait for the end: duration reached, or a signal. A second signal exits at once.
        finish::wait_for_end(&mut self.ended, &mut self.failures, &self.feed).await
    }
}
