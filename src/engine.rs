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

use std::net::SocketAddr;
use std::path::PathBuf;

use actix::prelude::*;
use serde_json::json;
use tokio::sync::mpsc;

use crate::actors::aggregator::{AggregatorOutputs, SignalAggregator};
use crate::actors::external_signals::{self, ExternalOutputs, ExternalSignals};
use crate::actors::journal::{Append, Close, IsVerifying, Journal, JournalPosition, JournalSink};
use crate::actors::market_feed::{
    FeedEnded, FeedSettings, LiveResume, MarketFeed, Pipeline, ReplayedStop, StopFeed,
};
use crate::actors::position_book::{PositionBook, PositionBookOutputs};
use crate::actors::rate_limiter::RateLimiter;
use crate::actors::risk_manager::{RiskManager, RiskOutputs};
use crate::actors::signal_host::SignalHost;
use crate::config::{Config, FeedSource};
use crate::core::aggregator::Aggregator;
use crate::core::execution::PaperExchange;
use crate::core::journal::{Entry, JOURNAL_VERSION};
use crate::core::rate_limit::RateLimitModel;
use crate::core::risk::RiskCore;
use crate::core::signals::SignalModel;
use crate::core::time::EventTime;
use crate::messages::{EmergencyStop, MarketData, Shutdown, SignalBatch};
use crate::run_dir::{RunDir, files};
use crate::sources::simulated::SimServer;

/// Builds a user's own signal actor, given where to send its signals.
pub type SignalActorFactory = Box<dyn FnOnce(Recipient<SignalBatch>) -> Recipient<MarketData>>;

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

/// How to continue a run: deterministic re-execution. The same config and seed regenerate
/// the journal's records, which are checked byte for byte against the file instead of being
/// written again; from the first record past the file's end on, the run appends as usual.
#[derive(Clone, Debug)]
pub struct Resume {
    /// Last complete record in the journal (after a torn tail was cut).
    pub last_seq: u64,
    /// Lift a trading halt in force once caught up (`run --resume DIR --lift-halt`).
    pub lift_halt: bool,
    /// Frame counts at which earlier sessions were stopped by a signal
    /// (`core::resume::ResumePlan::signal_stops`): their end-of-run blocks are written again
    /// there, so they are checked like every other record and the run goes on past them.
    pub signal_stops: Vec<u64>,
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
    /// The final report (report.json).
    pub report: serde_json::Value,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Why it ended.
    pub reason: String,
}

/// Runs a session to its end (duration reached, or SIGINT/SIGTERM), then writes the report.
pub async fn run(setup: EngineSetup) -> Result<RunOutcome, String> {
    let EngineSetup {
        config,
        run_dir,
        http: _http,
        command_line,
        extra_models,
        extra_actors,
        resume,
        replay,
        instruments,
    } = setup;
    if resume.is_none() {
        run_dir.write_atomic(files::CONFIG, config.to_yaml().as_bytes()).map_err(|e| e.to_string())?;
        let cmd = json!({ "argv": command_line });
        run_dir.write_atomic(files::COMMAND, cmd.to_string().as_bytes()).map_err(|e| e.to_string())?;
    }

    // Bound first, so a taken port fails the run before anything is journaled.
    let external_listener = match config.external_signals.enabled {
        true => Some(external_signals::bind(config.external_signals.bind)?),
        false => None,
    };

    // The market: the embedded simulated exchange is a server the feed connects to.
    let (url, _sim) = match config.feed.source {
        _ if replay.is_some() => (String::new(), None),
        FeedSource::Sim => {
            let sim =
                SimServer::start(&config.sim, &config.feed.pairs, config.feed.book_depth, config.run.speed)?;
            tracing::info!(actor = "engine", url = %sim.url(), "simulated Kraken exchange listening");
            (sim.url(), Some(sim))
        }
        FeedSource::Kraken => (config.feed.ws_url.clone(), None),
    };

    // Journal on its own thread: an fsync never stalls the market data path.
    let journal = Journal::open(
        &run_dir.journal(),
        config.journal.durability,
        config.journal.interval_ms,
        JournalPosition::default(),
    )?;
    // A live run records its feed beside the journal (feed.jsonl): what `run --resume`
    // re-executes. The journal actor writes both, the recording first.
    let live = config.feed.source == FeedSource::Kraken && replay.is_none();
    let journal = match live {
        true => journal.with_recording(&run_dir.file(files::FEED_RECORDING))?,
        false => journal,
    };
    let (caught_up_tx, caught_up_rx) = tokio::sync::oneshot::channel::<u64>();
    let journal = match &resume {
        Some(r) => journal.verify_prefix(r.last_seq, caught_up_tx)?,
        None => journal,
    };
    let journal_arbiter = Arbiter::new();
    let journal = Journal::start_in_arbiter(&journal_arbiter.handle(), move |_| journal);
    let sink = JournalSink::new(journal.clone().recipient());
    let start_record = Entry::new(
        EventTime::ZERO,
        "run_started",
        &json!({
            "journal_version": JOURNAL_VERSION,
            "config_fingerprint": config.fingerprint(),
            "seed": config.sim.seed,
            "source": if replay.is_some() { "replay" } else { match config.feed.source { FeedSource::Sim => "sim", FeedSource::Kraken => "kraken" } },
            "pairs": config.feed.pairs,
            "currency": config.account.currency,
            "starting_balances": config.account.balances,
        }),
    );
    sink.do_send(Append(vec![start_record]));

    // Actors that refer to each other get their addresses before they start.
    let pb_ctx = Context::<PositionBook>::new();
    let risk_ctx = Context::<RiskManager>::new();
    let agg_ctx = Context::<SignalAggregator>::new();
    let (pb, risk, agg) = (pb_ctx.address(), risk_ctx.address(), agg_ctx.address());

    let model_files =
        crate::core::signals::ModelFiles { onnx: config.signals.onnx_model_path().map(std::fs::read) };
    let mut models = config.signals.build(&model_files)?;
    models.extend(extra_models);
    // The Kraken OHLC intervals the models want history at (live warm-up).
    let warmup_intervals: std::collections::BTreeSet<u32> = models
        .iter()
        .filter_map(|m| m.warm_up_interval())
        .map(crate::core::signals::common::ohlc_interval_for)
        .collect();
    let mut signal_inputs: Vec<Recipient<MarketData>> = Vec::new();
    let mut stop_receivers: Vec<Recipient<EmergencyStop>> =
        vec![pb.clone().recipient(), agg.clone().recipient()];
    for model in models {
        let aggregator = agg.clone().recipient();
        let host = Supervisor::start(move |_| SignalHost::new(model, aggregator));
        signal_inputs.push(host.clone().recipient());
        stop_receivers.push(host.recipient());
    }
    for factory in extra_actors {
        signal_inputs.push(factory(agg.clone().recipient()));
    }
    let external_server = match external_listener {
        Some(listener) => {
            let actor = ExternalSignals::new(
                config.feed.pairs.clone(),
                ExternalOutputs { aggregator: agg.clone().recipient(), journal: sink.clone() },
            )
            .start();
            signal_inputs.push(actor.clone().recipient());
            let token = std::env::var(&config.external_signals.token_env).ok().filter(|t| !t.is_empty());
            Some(external_signals::serve(listener, token, actor)?)
        }
        None => None,
    };

    let rate_limiter = {
        // One verification tier for both of Kraken's limiters (`execution.tier`).
        let model = RateLimitModel::new(1.0, config.execution.tier);
        Supervisor::start(move |_| RateLimiter::new(model))
    };

    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<FeedEnded>();
    let pipeline = Pipeline {
        position_book: pb.clone().recipient(),
        position_book_barrier: pb.clone().recipient(),
        risk: risk.clone().recipient(),
        risk_watch: risk.clone().recipient(),
        signals: signal_inputs,
        aggregator: agg.clone().recipient(),
        next_decision: agg.clone().recipient(),
        journal_flush: journal.clone().recipient(),
        journal: sink.clone(),
        flushed_at: Default::default(),
        always_flush: live,
        // Frame by frame until RiskManager's first answer.
        watch: Default::default(),
        pending_flush: Default::default(),
    };
    let mut settings = feed_settings(&config, url);
    settings.replay = replay;
    settings.instruments = instruments;
    // Resume: the re-executed feed asks for the end-of-run block of each earlier session that
    // a signal stopped, at the frame it stopped at.
    let (stops_tx, stops_rx) = mpsc::unbounded_channel::<ReplayedStop>();
    let signal_stops = resume.as_ref().map(|r| r.signal_stops.clone()).unwrap_or_default();
    // Wall time of the feed, for run.json's throughput only (never journaled).
    let feed_started = tokio::time::Instant::now();
    let recorder = live.then(|| journal.clone().recipient());
    let live_resume = (live && resume.is_some()).then(|| LiveResume {
        recording: run_dir.file(files::FEED_RECORDING),
        rest: crate::sources::kraken_rest::KrakenRest::new(
            &config.feed.rest_url,
            rate_limiter.clone().recipient(),
            config.feed.rest.clone(),
        )
        .map_err(|e| tracing::warn!(actor = "engine", error = %e, "REST client unavailable: the trades missed while down cannot be fetched"))
        .ok(),
        gap_review: pb.clone().recipient(),
    });
    // Live runs: fee schedules and (fresh runs) warm-up history from REST, fed to the pipeline
    // by the feed as recorded lines.
    let rest_startup = match live {
        true => {
            let warm = match (resume.is_none(), config.feed.warmup.enabled) {
                (true, true) => warmup_intervals,
                _ => Default::default(),
            };
            spawn_rest_startup(&config, rate_limiter.clone().recipient(), warm)
        }
        false => None,
    };
    let feed = Supervisor::start(move |_| {
        let mut feed = MarketFeed::new(settings, pipeline, ended_tx);
        if let Some(s) = rest_startup {
            feed = feed.with_rest_startup(s);
        }
        if !signal_stops.is_empty() {
            feed = feed.with_replayed_stops(signal_stops, stops_tx);
        }
        if let Some(r) = recorder {
            feed = feed.with_recording(r);
        }
        if let Some(r) = live_resume {
            feed = feed.with_live_resume(r);
        }
        feed
    });
    stop_receivers.push(feed.clone().recipient());
    let stop_block = StopBlock {
        position_book: pb.clone(),
        risk: risk.clone(),
        feed: feed.clone(),
        journal: journal.clone(),
        flatten: config.run.flatten_on_exit,
    };
    spawn_replayed_stops(stops_rx, stop_block.clone());

    let exchange = PaperExchange::new(&config.execution, &config.account.currency, &config.account.balances);
    pb_ctx.run(
        PositionBook::new(
            exchange,
            PositionBookOutputs {
                journal: sink.clone(),
                risk: risk.clone().recipient(),
                trades_closed: vec![agg.clone().recipient(), risk.clone().recipient()],
            },
            config.run.equity_interval,
            true,
        )
        .with_stale_book_limit(config.feed.stale_book)
        .with_view_grid(config.risk.correlation_sample_interval),
    );
    risk_ctx.run(RiskManager::new(
        RiskCore::new(&config.risk, config.execution.entry),
        RiskOutputs {
            position_book: pb.clone().recipient(),
            journal: sink.clone(),
            emergency_stop: stop_receivers,
            halt_lifted: vec![agg.clone().recipient()],
        },
    ));
    agg_ctx.run(SignalAggregator::new(
        Aggregator::new(&config.aggregator),
        AggregatorOutputs { risk: risk.clone().recipient(), journal: sink.clone() },
    ));

    let http = match _http {
        Some(addr) => crate::http::start(
            addr,
            crate::http::ApiState {
                position_book: pb.clone(),
                risk: risk.clone(),
                feed: feed.clone(),
                token: std::env::var(&config.http.token_env).ok(),
                pairs: config.feed.pairs.clone(),
                currency: config.account.currency.clone(),
            },
        ),
        None => None,
    };

    if let Some(r) = &resume {
        let (risk, lift, last_seq) = (risk.clone(), r.lift_halt, r.last_seq);
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
    let ended = wait_for_end(&mut ended_rx, &feed).await;
    let feed_wall = feed_started.elapsed();
    let (reason, end_time) = match &ended {
        FeedEnded::DurationReached(t) => ("duration".to_string(), *t),
        FeedEnded::Stopped(t) => ("signal".to_string(), *t),
        FeedEnded::PipelineFailed(e) => (format!("failed: {e}"), EventTime::ZERO),
    };

    if let Some(server) = external_server {
        server.stop();
    }
    // A resume stopped (signal) before its re-execution caught up with the journal has added
    // nothing: the end-of-run records would be checked against, and differ from, the records
    // already there. Leave the journal as it was, resumable again.
    if resume.is_some() && journal.send(IsVerifying).await.unwrap_or(false) {
        tracing::warn!(
            actor = "engine",
            reason = %reason,
            "stopped before the resumed run caught up with its journal; journal unchanged"
        );
        journal.send(Close).await.map_err(|e| e.to_string())??;
        journal_arbiter.stop();
        if let Some(h) = http {
            h.stop().await;
        }
        let report = crate::report::write_reports(run_dir.path())?;
        return Ok(RunOutcome {
            report,
            run_dir: run_dir.path().to_path_buf(),
            reason: format!("{reason} before catching up with the journal"),
        });
    }
    stop_block.write(end_time, &reason).await?;
    journal.send(Close).await.map_err(|e| e.to_string())??;
    journal_arbiter.stop();
    if let Some(h) = http {
        h.stop().await;
    }

    write_run_info(&run_dir, &feed, feed_wall).await;
    let report = crate::report::write_reports(run_dir.path())?;
    Ok(RunOutcome { report, run_dir: run_dir.path().to_path_buf(), reason })
}

/// The end of a session: the final records of PositionBook (flattening first when
/// `run.flatten_on_exit`), RiskManager and MarketFeed, then `run_ended`.
#[derive(Clone)]
struct StopBlock {
    position_book: Addr<PositionBook>,
    risk: Addr<RiskManager>,
    feed: Addr<MarketFeed>,
    journal: Addr<Journal>,
    flatten: bool,
}

impl StopBlock {
    async fn write(&self, time: EventTime, reason: &str) -> Result<(), String> {
        let shutdown = Shutdown { time, flatten: self.flatten };
        let _ = self.position_book.send(shutdown.clone()).await;
        let _ = self.risk.send(shutdown.clone()).await;
        let _ = self.feed.send(shutdown).await;
        let snapshot = self
            .position_book
            .send(crate::actors::position_book::GetPortfolio)
            .await
            .map_err(|e| e.to_string())?;
        self.journal.do_send(Append(vec![Entry::new(
            time,
            "run_ended",
            &json!({
                "reason": reason,
                "final_equity": snapshot.view.equity,
                "open_positions": snapshot.open_positions,
            }),
        )]));
        Ok(())
    }
}

/// Resume: writes again, when the re-executed feed reaches it, the end-of-run block of each
/// session that a signal stopped (they are checked against the journal like any record).
fn spawn_replayed_stops(mut requests: mpsc::UnboundedReceiver<ReplayedStop>, block: StopBlock) {
    actix::spawn(async move {
        while let Some(req) = requests.recv().await {
            if let Err(e) = block.write(req.time, "signal").await {
                tracing::error!(actor = "engine", error = %e, "resume: could not write the stop block again");
            }
            let _ = block.journal.send(crate::actors::journal::Flush).await;
            let _ = req.done.send(());
        }
    });
}

/// Live runs: what only REST has (system status, the fee schedule, ordermin/costmin as
/// AssetPairs publishes them, OHLC history for the warm-up at `warmup` intervals), fetched in
/// the background through the RateLimiter (`sources::rest_startup`). An unreachable REST API
/// is retried with backoff and never stops trading on the WS feed.
fn spawn_rest_startup(
    config: &Config,
    limiter: Recipient<crate::actors::rate_limiter::Acquire>,
    warmup: std::collections::BTreeSet<u32>,
) -> Option<crate::sources::rest_startup::RestStartup> {
    use crate::sources::kraken_rest::KrakenRest;
    match KrakenRest::new(&config.feed.rest_url, limiter, config.feed.rest.clone()) {
        Ok(rest) => Some(crate::sources::rest_startup::spawn(
            rest,
            config.feed.pairs.clone(),
            warmup,
            std::time::Duration::from_millis(config.feed.warmup.timeout_ms),
        )),
        Err(e) => {
            tracing::warn!(actor = "engine", error = %e, "REST client unavailable; trading cold on the WS feed with the built-in fee schedule");
            None
        }
    }
}

/// Writes run.json: wall-clock facts of this session (feed throughput), kept out of the
/// journal so journals stay byte-identical; the report takes `feed.events_per_sec` from it.
async fn write_run_info(run_dir: &RunDir, feed: &Addr<MarketFeed>, wall: std::time::Duration) {
    let Ok(health) = feed.send(crate::actors::market_feed::GetFeedHealth).await else {
        return;
    };
    let secs = wall.as_secs_f64();
    let c = &health.counters;
    let per_sec = |n: u64| if secs > 0.0 { json!(n as f64 / secs) } else { serde_json::Value::Null };
    let info = json!({
        "feed_wall_seconds": secs,
        "feed_frames": c.frames,
        "feed_events": c.events,
        "feed_passes": health.passes,
        "frames_per_sec": per_sec(c.frames),
        "events_per_sec": per_sec(c.events),
    });
    if let Err(e) = run_dir.write_atomic(files::RUN_INFO, info.to_string().as_bytes()) {
        tracing::warn!(actor = "engine", error = %e, "could not write run.json");
    }
}

fn feed_settings(config: &Config, url: String) -> FeedSettings {
    let f = &config.feed;
    FeedSettings {
        url,
        pairs: f.pairs.clone(),
        depth: f.book_depth,
        ping_interval: std::time::Duration::from_millis(f.ping_interval_ms),
        liveness_timeout: std::time::Duration::from_millis(f.liveness_timeout_ms),
        initial_backoff_ms: f.reconnect.initial_backoff_ms,
        max_backoff_ms: f.reconnect.max_backoff_ms,
        jitter: f.reconnect.jitter,
        healthy_after: std::time::Duration::from_millis(f.reconnect.healthy_after_ms),
        duration_micros: config.run.duration.as_micros(),
        jitter_seed: config.sim.seed,
        first_seq: 1,
        end_time: None,
        replay: None,
        instruments: Vec::new(),
    }
}

/// Waits for the feed to end or for SIGINT/SIGTERM (then stops the feed gracefully).
async fn wait_for_end(ended: &mut mpsc::UnboundedReceiver<FeedEnded>, feed: &Addr<MarketFeed>) -> FeedEnded {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    // Both listeners exist before the first signal and are kept for the second: a listener
    // created after a signal does not see it, so a second signal sent right after the first
    // could otherwise be lost.
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(actor = "engine", signal = name, error = %e, "cannot watch the signal");
            None
        }
    };
    let mut int = listen(SignalKind::interrupt(), "SIGINT");
    let mut term = listen(SignalKind::terminate(), "SIGTERM");
    async fn next(s: &mut Option<Signal>) {
        match s.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        biased;
        e = ended.recv() => return e.unwrap_or(FeedEnded::PipelineFailed("feed channel closed".into())),
        _ = next(&mut int) => tracing::warn!(actor = "engine", signal = "SIGINT", "stopping gracefully (again to exit at once)"),
        _ = next(&mut term) => tracing::warn!(actor = "engine", signal = "SIGTERM", "stopping gracefully (again to exit at once)"),
    }
    // A second signal exits at once.
    actix::spawn(async move {
        tokio::select! {
            _ = next(&mut int) => {},
            _ = next(&mut term) => {},
        }
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
    feed.do_send(StopFeed);
    // The feed stops after the batch in flight; a silent live connection gets a deadline.
    match tokio::time::timeout(std::time::Duration::from_secs(15), ended.recv()).await {
        Ok(Some(e)) => e,
        _ => FeedEnded::Stopped(EventTime::ZERO),
    }
}
