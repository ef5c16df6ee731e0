//! Building a session: every actor created and connected, in the order of the diagram in
//! `engine/mod.rs`. Collaborators are handed over as `Recipient<M>` named for their role;
//! nothing here is awaited (the actors start when the engine first yields).

use std::collections::BTreeSet;

use actix::prelude::*;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::finish::{StopBlock, spawn_replayed_stops};
use super::market::{self, MarketSource};
use super::{Engine, EngineError, EngineSetup, Resume, SignalActorFactory};
use crate::actors::aggregator::{AggregatorOutputs, SignalAggregator};
use crate::actors::external_signals::{self, ExternalOutputs, ExternalSignals, ServerHandle};
use crate::actors::journal::{Append, Journal, JournalError, JournalPosition, JournalSink};
use crate::actors::market_feed::{FeedEnded, MarketFeed, ReplayedStop};
use crate::actors::position_book::{PositionBook, PositionBookOutputs};
use crate::actors::rate_limiter::RateLimiter;
use crate::actors::risk_manager::{RiskManager, RiskOutputs};
use crate::actors::signal_host::SignalHost;
use crate::config::Config;
use crate::core::aggregator::Aggregator;
use crate::core::execution::PaperExchange;
use crate::core::journal::{Entry, JOURNAL_VERSION};
use crate::core::rate_limit::RateLimitModel;
use crate::core::risk::RiskCore;
use crate::core::signals::SignalModel;
use crate::core::time::EventTime;
use crate::messages::{EmergencyStop, HaltLifted, MarketData, PlaceOrders};
use crate::pipeline::{Pipeline, Stages};
use crate::run_dir::{RunDir, files};
use crate::supervision::{ActorName, Supervision, TestPanic};

impl Engine {
    /// Wires a session: journal, market, signal actors, feed, PositionBook, RiskManager,
    /// SignalAggregator, HTTP (the diagram in `engine/mod.rs`, top to bottom).
    pub(super) fn build(setup: EngineSetup) -> Result<Engine, EngineError> {
        let EngineSetup {
            config,
            run_dir,
            http: http_addr,
            extra_models,
            extra_actors,
            resume,
            replay,
            instruments,
            ..
        } = setup;
        // Every actor reports a failure its policy does not absorb here (and takes the test
        // hook, read only when set).
        let (supervision, failures) =
            Supervision::new(TestPanic::from_env().map_err(EngineError::TestPanic)?);
        // Bound first, so a taken port fails the run before anything is journaled.
        let external_listener = match config.external_signals.enabled {
            true => Some(
                external_signals::bind(config.external_signals.bind).map_err(EngineError::ExternalSignals)?,
            ),
            false => None,
        };
        let market = MarketSource::select(&config, replay)?;
        let (journal, journal_arbiter, caught_up) =
            open_journal(&config, &run_dir, &market, resume.as_ref(), &supervision)?;
        let sink = JournalSink::new(journal.clone().recipient());
        sink.do_send(Append { entries: vec![run_started(&config, market.name())] });
        // Committed before the first pass: an actor failing in that pass rolls the journal back
        // to here, never past `run_started` (a resume then starts from the first frame).
        journal.do_send(crate::messages::Flush);

        // Actors that refer to each other get their addresses before they start.
        let trading = TradingActors::new();
        let (pb, risk, agg) = (trading.pb.address(), trading.risk.address(), trading.agg.address());
        // Every actor that can act on an emergency stop hears it: PositionBook (flattens), the
        // aggregator (stops deciding), the signal actors (built-in, external, yours), the feed.
        let mut stop_receivers: Vec<Recipient<EmergencyStop>> =
            vec![pb.clone().recipient(), agg.clone().recipient()];
        let mut halt_lifted: Vec<Recipient<HaltLifted>> = vec![agg.clone().recipient()];
        let mut signals =
            start_signals(&config, extra_models, extra_actors, &agg, &sink, external_listener, &supervision)?;
        stop_receivers.append(&mut signals.emergency_stop);
        halt_lifted.append(&mut signals.halt_lifted);
        let external_server = signals.external_server.take();
        let rate_limiter = start_rate_limiter(&config, &supervision);
        let graph = Graph {
            pb: &pb,
            risk: &risk,
            agg: &agg,
            journal: &journal,
            sink: &sink,
            rate_limiter: &rate_limiter,
            supervision: &supervision,
        };
        let feed = start_feed(&config, &run_dir, &market, instruments, resume.as_ref(), graph, signals);
        stop_receivers.push(feed.addr.clone().recipient());
        let stop_block = StopBlock {
            position_book: pb.clone(),
            risk: risk.clone(),
            feed: feed.addr.clone(),
            journal: journal.clone(),
            flatten: config.run.flatten_on_exit,
        };
        let stops = resume.as_ref().map(|r| r.stops.clone()).unwrap_or_default();
        spawn_replayed_stops(feed.replayed_stops, stop_block.clone(), stops);

        trading.run(&config, sink, Listeners { emergency_stop: stop_receivers, halt_lifted }, &supervision);
        let http = http_addr.and_then(|addr| start_http(addr, &config, &pb, &risk, &feed.addr));

        Ok(Engine {
            run_dir,
            resume,
            _market: market,
            journal,
            journal_arbiter,
            caught_up: Some(caught_up),
            risk,
            feed: feed.addr,
            ended: feed.ended,
            failures,
            feed_started: feed.started,
            stop_block,
            external_server,
            http,
        })
    }
}

/// Who hears RiskManager's broadcasts.
struct Listeners {
    emergency_stop: Vec<Recipient<EmergencyStop>>,
    halt_lifted: Vec<Recipient<HaltLifted>>,
}

/// PositionBook, RiskManager and SignalAggregator: created first, so that each has the
/// others' addresses, and run once everything they send to exists.
struct TradingActors {
    pb: Context<PositionBook>,
    risk: Context<RiskManager>,
    agg: Context<SignalAggregator>,
}

impl TradingActors {
    fn new() -> TradingActors {
        TradingActors { pb: Context::new(), risk: Context::new(), agg: Context::new() }
    }

    /// Starts the three: fills and closed trades flow PositionBook → RiskManager and the
    /// aggregator; decisions aggregator → RiskManager → order entry; an emergency stop (and
    /// its lifting) from RiskManager reaches `listeners`. A failure of any of the three ends
    /// the run (`supervision::Policy::StopRun`).
    fn run(self, config: &Config, sink: JournalSink, listeners: Listeners, supervision: &Supervision) {
        let (pb, risk, agg) = (self.pb.address(), self.risk.address(), self.agg.address());
        // Order entry: the one recipient every order reaches PositionBook by (today the
        // orders RiskManager approved).
        let order_entry: Recipient<PlaceOrders> = pb.recipient();
        self.pb.run(
            position_book(
                config,
                PositionBookOutputs {
                    journal: sink.clone(),
                    risk: risk.clone().recipient(),
                    trades_closed: vec![agg.clone().recipient(), risk.clone().recipient()],
                },
            )
            .supervised(supervision.watch(ActorName::PositionBook)),
        );
        self.risk.run(
            risk_manager(
                config,
                RiskOutputs {
                    position_book: order_entry,
                    journal: sink.clone(),
                    emergency_stop: listeners.emergency_stop,
                    halt_lifted: listeners.halt_lifted,
                },
            )
            .supervised(supervision.watch(ActorName::RiskManager)),
        );
        self.agg.run(
            SignalAggregator::new(
                Aggregator::new(&config.aggregator),
                AggregatorOutputs { risk: risk.recipient(), journal: sink },
            )
            .supervised(supervision.watch(ActorName::Aggregator)),
        );
    }
}

/// The addresses the feed's pipeline and its REST clients are wired to.
#[derive(Clone, Copy)]
struct Graph<'a> {
    pb: &'a Addr<PositionBook>,
    risk: &'a Addr<RiskManager>,
    agg: &'a Addr<SignalAggregator>,
    journal: &'a Addr<Journal>,
    sink: &'a JournalSink,
    rate_limiter: &'a Addr<RateLimiter>,
    /// Where the feed reports a failure it does not absorb (and its test hook).
    supervision: &'a Supervision,
}

/// The signal side, started: the signal actors and the external-signals server.
struct Signals {
    /// Every signal actor's market-data input (the pipeline's `signals` hop).
    inputs: Vec<Recipient<MarketData>>,
    /// The signal actors that hear an emergency stop (every one that can act on it).
    emergency_stop: Vec<Recipient<EmergencyStop>>,
    /// The signal actors told when a halt is lifted.
    halt_lifted: Vec<Recipient<HaltLifted>>,
    /// The Kraken OHLC intervals the models want history at (live warm-up).
    warmup_intervals: BTreeSet<u32>,
    /// The external-signals WebSocket server, when enabled.
    external_server: Option<ServerHandle>,
}

/// The feed, started.
struct Feed {
    addr: Addr<MarketFeed>,
    /// How it ended.
    ended: mpsc::UnboundedReceiver<FeedEnded>,
    /// Resume: the earlier sessions' stops it reached.
    replayed_stops: mpsc::UnboundedReceiver<ReplayedStop>,
    /// Wall time of the feed, for run.json's throughput only (never journaled).
    started: tokio::time::Instant,
}

/// Journal on its own thread: an fsync never stalls the market data path. A live run records
/// its feed beside the journal (feed.jsonl): what `run --resume` re-executes. The journal
/// actor writes both, the recording first. A resume checks the records it regenerates against
/// the file until it has caught up (the receiver is told the seq then).
fn open_journal(
    config: &Config,
    run_dir: &RunDir,
    market: &MarketSource,
    resume: Option<&Resume>,
    supervision: &Supervision,
) -> Result<(Addr<Journal>, Arbiter, oneshot::Receiver<u64>), JournalError> {
    let journal = Journal::open(
        &run_dir.journal(),
        config.journal.durability,
        config.journal.interval_ms,
        JournalPosition::default(),
    )?
    .supervised(supervision.watch(ActorName::Journal));
    let journal = match market.is_live() {
        true => journal.with_recording(&run_dir.file(files::FEED_RECORDING))?,
        false => journal,
    };
    let (caught_up_tx, caught_up_rx) = tokio::sync::oneshot::channel::<u64>();
    let journal = match resume {
        Some(r) => journal.verify_prefix(r.last_seq, caught_up_tx)?,
        None => journal,
    };
    let journal_arbiter = Arbiter::new();
    let journal = Journal::start_in_arbiter(&journal_arbiter.handle(), move |_| journal);
    Ok((journal, journal_arbiter, caught_up_rx))
}

/// The journal's first record. `starting_equity` is the paper account's equity before any
/// market data (what PositionBook starts from) and `risk_free_rate` the annual
/// `report.risk_free_rate`: the report's statistics read both from here.
fn run_started(config: &Config, source: &str) -> Entry {
    Entry::new(
        EventTime::ZERO,
        "run_started",
        &json!({
            "starting_equity": paper_exchange(config).equity(),
            "risk_free_rate": config.report.risk_free_rate,
            "journal_version": JOURNAL_VERSION,
            "config_fingerprint": config.fingerprint(),
            "seed": config.sim.seed,
            "source": source,
            "pairs": config.feed.pairs,
            "currency": config.account.currency,
            "starting_balances": config.account.balances,
        }),
    )
}

/// Starts a supervised host per signal model (configured built-ins, then plug-ins), the
/// plug-in signal actors, and the supervised external-signals actor and its server, all
/// sending to the aggregator.
fn start_signals(
    config: &Config,
    extra_models: Vec<Box<dyn SignalModel>>,
    extra_actors: Vec<SignalActorFactory>,
    agg: &Addr<SignalAggregator>,
    sink: &JournalSink,
    external_listener: Option<std::net::TcpListener>,
    supervision: &Supervision,
) -> Result<Signals, EngineError> {
    let model_files =
        crate::core::signals::ModelFiles { onnx: config.signals.onnx_model_path().map(std::fs::read) };
    let mut models = config.signals.build(&model_files).map_err(EngineError::Signals)?;
    models.extend(extra_models);
    let warmup_intervals: BTreeSet<u32> = models
        .iter()
        .filter_map(|m| m.warm_up_interval())
        .map(crate::core::signals::common::ohlc_interval_for)
        .collect();
    let mut signal_inputs: Vec<Recipient<MarketData>> = Vec::new();
    let mut emergency_stop: Vec<Recipient<EmergencyStop>> = Vec::new();
    let mut halt_lifted: Vec<Recipient<HaltLifted>> = Vec::new();
    for model in models {
        let aggregator = agg.clone().recipient();
        let watch = supervision.watch(ActorName::SignalHost);
        let host = Supervisor::start(move |_| SignalHost::new(model, aggregator).supervised(watch));
        signal_inputs.push(host.clone().recipient());
        emergency_stop.push(host.recipient());
    }
    for factory in extra_actors {
        let inputs = factory(agg.clone().recipient());
        signal_inputs.push(inputs.market_data);
        emergency_stop.extend(inputs.emergency_stop);
        halt_lifted.extend(inputs.halt_lifted);
    }
    let external_server = match external_listener {
        Some(listener) => {
            let actor = ExternalSignals::new(
                config.feed.pairs.clone(),
                ExternalOutputs { aggregator: agg.clone().recipient(), journal: sink.clone() },
            )
            .supervised(supervision.watch(ActorName::ExternalSignals));
            let actor = Supervisor::start(move |_| actor);
            signal_inputs.push(actor.clone().recipient());
            emergency_stop.push(actor.clone().recipient());
            halt_lifted.push(actor.clone().recipient());
            let token = std::env::var(&config.external_signals.token_env).ok().filter(|t| !t.is_empty());
            Some(external_signals::serve(listener, token, actor).map_err(EngineError::ExternalSignals)?)
        }
        None => None,
    };
    Ok(Signals { inputs: signal_inputs, emergency_stop, halt_lifted, warmup_intervals, external_server })
}

/// Starts the supervised MarketFeed on `market`, its frames passed through the pipeline:
/// PositionBook, RiskManager, the signal actors, the aggregator, the journal.
fn start_feed(
    config: &Config,
    run_dir: &RunDir,
    market: &MarketSource,
    instruments: Vec<crate::core::instrument::Instrument>,
    resume: Option<&Resume>,
    graph: Graph<'_>,
    signals: Signals,
) -> Feed {
    let Graph { pb, risk, agg, journal, sink, rate_limiter, supervision } = graph;
    let Signals { inputs: signal_inputs, warmup_intervals, .. } = signals;
    let (ended_tx, ended_rx) = mpsc::unbounded_channel::<FeedEnded>();
    let stages = Stages {
        position_book: pb.clone().recipient(),
        position_book_barrier: pb.clone().recipient(),
        risk: risk.clone().recipient(),
        risk_watch: risk.clone().recipient(),
        signals: signal_inputs,
        aggregator: agg.clone().recipient(),
        next_decision: agg.clone().recipient(),
        journal_flush: journal.clone().recipient(),
        journal: sink.clone(),
    };
    // Frame by frame until RiskManager's first answer; a live feed's journal is flushed
    // every pass (the journal writes its recording on Flush).
    let pipeline = Pipeline::new(stages, market.is_live());
    let settings = market.feed_settings(config, instruments);
    // Resume: the re-executed feed asks for the end-of-run block of each earlier session that
    // a signal stopped, at the frame it stopped at.
    let (stops_tx, stops_rx) = mpsc::unbounded_channel::<ReplayedStop>();
    let stop_frames: Vec<u64> =
        resume.map(|r| r.stops.iter().map(|s| s.frames).collect()).unwrap_or_default();
    // Wall time of the feed, for run.json's throughput only (never journaled).
    let feed_started = tokio::time::Instant::now();
    // What only a live source adds: its recording, REST at start-up, the gap fetch.
    let wiring = market::LiveWiring {
        recorder: journal.clone().recipient(),
        limiter: rate_limiter.clone().recipient(),
        gap_review: pb.clone().recipient(),
        warmup_intervals,
    };
    let live_parts = market.live_parts(config, run_dir, resume.is_some(), wiring);
    let watch = supervision.watch(ActorName::MarketFeed);
    let feed = Supervisor::start(move |_| {
        let mut feed = MarketFeed::new(settings, pipeline, ended_tx).supervised(watch);
        if !stop_frames.is_empty() {
            feed = feed.with_replayed_stops(stop_frames, stops_tx);
        }
        match live_parts {
            Some(parts) => parts.attach(feed),
            None => feed,
        }
    });
    Feed { addr: feed, ended: ended_rx, replayed_stops: stops_rx, started: feed_started }
}

/// The RateLimiter every REST call goes through.
fn start_rate_limiter(config: &Config, supervision: &Supervision) -> Addr<RateLimiter> {
    // One verification tier for both of Kraken's limiters (`execution.tier`).
    let model = RateLimitModel::new(1.0, config.execution.tier);
    let watch = supervision.watch(ActorName::RateLimiter);
    Supervisor::start(move |_| RateLimiter::new(model).supervised(watch))
}

/// The paper exchange of `execution` and `account`, before any market data.
fn paper_exchange(config: &Config) -> PaperExchange {
    PaperExchange::new(&config.execution, &config.account.currency, &config.account.balances)
}

/// PositionBook on the paper exchange of `execution` and `account`.
fn position_book(config: &Config, outputs: PositionBookOutputs) -> PositionBook {
    PositionBook::new(paper_exchange(config), outputs, config.run.equity_interval, true)
        .with_stale_book_limit(config.feed.stale_book)
        .with_view_grid(config.risk.correlation_sample_interval)
}

/// RiskManager with the limits of `risk` and the entry style of `execution`.
fn risk_manager(config: &Config, outputs: RiskOutputs) -> RiskManager {
    RiskManager::new(RiskCore::new(&config.risk, config.execution.entry), outputs)
}

/// The dashboard and JSON API (`http.enabled`).
fn start_http(
    addr: std::net::SocketAddr,
    config: &Config,
    pb: &Addr<PositionBook>,
    risk: &Addr<RiskManager>,
    feed: &Addr<MarketFeed>,
) -> Option<crate::http::HttpHandle> {
    crate::http::start(
        addr,
        crate::http::ApiState {
            position_book: pb.clone(),
            risk: risk.clone(),
            feed: feed.clone(),
            token: std::env::var(&config.http.token_env).ok(),
            pairs: config.feed.pairs.clone(),
            currency: config.account.currency.clone(),
            risk_free_rate: config.report.risk_free_rate,
        },
    )
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::core::journal::{encode, scan};

    #[test]
    fn run_started_carries_the_starting_equity_and_the_risk_free_rate() {
        // USD 10 000 and 2 BTC (no price before market data: the account's equity at start
        // is its USD); a 5 % risk-free rate.
        let mut config = Config::default();
        config.account.balances.insert("BTC".into(), dec!(2));
        config.report.risk_free_rate = 0.05;
        let entry = run_started(&config, "sim");
        let mut bytes = Vec::new();
        encode(1, &entry, &mut bytes);
        let rec = &scan(&bytes).unwrap().records[0];
        let body = &rec.body;
        assert_eq!(rec.kind, "run_started");
        let equity = body["starting_equity"].to_string().trim_matches('"').parse::<rust_decimal::Decimal>();
        assert_eq!(equity.ok(), Some(dec!(10000)));
        assert_eq!(body["risk_free_rate"], json!(0.05));
        // The default rate is written too: 0, not absent.
        assert_eq!(run_started(&Config::default(), "sim").body["risk_free_rate"], json!(0.0));
    }
}
