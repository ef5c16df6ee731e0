//! Plugging your own signals into kraken-paper, two ways, against the embedded simulated
//! exchange (offline):
//!
//! 1. a [`SignalModel`]: one small trait over market events, hosted by the engine in a
//!    supervised actor — the easy way;
//! 2. a full actix actor that receives `MarketData` and sends `SignalBatch` to the
//!    aggregator — when you need your own mailbox, timers or I/O. It can also hear
//!    `EmergencyStop` (and `HaltLifted`) by handing those recipients to the engine
//!    (`SignalActorInputs`).
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release --example custom_signal
//! ```
//!
//! It trades 6 hours of simulated market with only these two signals (the built-in ones are
//! switched off) and ends by printing `trades=N`, the number of closed round trips.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use kraken_paper::config::{Config, ConfigSource};
use kraken_paper::core::decisions::Signal;
use kraken_paper::core::market::{MarketEvent, Side};
use kraken_paper::core::money::to_f64;
use kraken_paper::core::signals::SignalModel;
use kraken_paper::core::time::{EventTime, Span};
use kraken_paper::engine::{self, EngineSetup, SignalActorInputs};
use kraken_paper::messages::{EmergencyStop, MarketData, SignalBatch};
use kraken_paper::run_dir::RunDir;

/// Way 1: time-series momentum. Every minute of event time, compare the mid with the mid
/// ten minutes ago; a move beyond 0.15 % is a signal in its direction.
struct Momentum {
    history: BTreeMap<Arc<str>, Vec<(EventTime, f64)>>,
}

impl SignalModel for Momentum {
    fn name(&self) -> &str {
        "my_momentum"
    }

    fn on_event(&mut self, seq: u64, ev: &MarketEvent) -> Option<Signal> {
        let MarketEvent::Book(b) = ev else { return None };
        let mid = to_f64(b.top.mid()?);
        let h = self.history.entry(b.symbol.clone()).or_default();
        if h.last().is_some_and(|(t, _)| b.time.micros_since(*t) < 60_000_000) {
            return None;
        }
        h.push((b.time, mid));
        if h.len() > 11 {
            h.remove(0);
        }
        let (_, old) = *h.first()?;
        let ret = mid / old - 1.0;
        if h.len() < 11 || ret.abs() < 0.0015 {
            return None;
        }
        Some(Signal {
            source: "my_momentum".into(),
            pair: b.symbol.clone(),
            score: ret.signum(),
            confidence: (ret.abs() * 300.0).min(0.9),
            horizon: Span::from_secs(300),
            event_time: b.time,
            event_seq: seq,
            explanation: Some(format!("10-minute return {:.3} %", ret * 100.0)),
        })
    }
}

/// Way 2: a full actor. It watches trade flow (who is aggressive) per pair and, when buyers
/// dominate the last 50 trades, says so.
struct TradeFlowActor {
    aggregator: Recipient<SignalBatch>,
    flow: BTreeMap<Arc<str>, Vec<f64>>,
    /// Trading is halted: say nothing (the aggregator would drop it anyway).
    halted: bool,
}

impl Actor for TradeFlowActor {
    type Context = Context<Self>;
}

impl Handler<MarketData> for TradeFlowActor {
    type Result = ();

    fn handle(&mut self, msg: MarketData, _ctx: &mut Self::Context) {
        let mut signals = Vec::new();
        for (seq, ev) in msg.iter_seq() {
            let MarketEvent::Trade(t) = ev else { continue };
            let f = self.flow.entry(t.symbol.clone()).or_default();
            let signed = if t.side == Side::Buy { to_f64(t.qty) } else { -to_f64(t.qty) };
            f.push(signed);
            if f.len() < 50 {
                continue;
            }
            let total: f64 = f.iter().map(|x| x.abs()).sum();
            let imbalance = if total > 0.0 { f.iter().sum::<f64>() / total } else { 0.0 };
            f.clear();
            if imbalance.abs() > 0.5 {
                signals.push(Signal {
                    source: "my_trade_flow".into(),
                    pair: t.symbol.clone(),
                    score: imbalance.clamp(-1.0, 1.0),
                    confidence: 0.5,
                    horizon: Span::from_secs(120),
                    event_time: t.time,
                    event_seq: seq,
                    explanation: Some(format!("trade-flow imbalance {imbalance:.2}")),
                });
            }
        }
        // Send before returning: the aggregator decides on this batch right after us.
        if !signals.is_empty() && !self.halted {
            self.aggregator.do_send(SignalBatch { signals });
        }
    }
}

impl Handler<EmergencyStop> for TradeFlowActor {
    type Result = ();

    fn handle(&mut self, _msg: EmergencyStop, _ctx: &mut Self::Context) {
        self.halted = true;
    }
}

fn main() -> Result<(), String> {
    // The embedded default config, with our signals instead of the built-in ones.
    let mut config = Config::load(&ConfigSource::Embedded).map_err(|e| e.to_string())?;
    config.signals.enabled.clear();
    config.http.enabled = false;
    config.logging.file.enabled = false;
    config.logging.level = "warn".into();
    let _ = kraken_paper::telemetry::init(config.logging.format, &config.logging.level, false, None);

    let dir = std::env::temp_dir().join(format!("kraken-paper-custom-signal-{}", std::process::id()));
    let run_dir = RunDir::create(&dir).map_err(|e| e.to_string())?;
    let mut setup = EngineSetup::new(config, run_dir);
    setup.extra_models.push(Box::new(Momentum { history: BTreeMap::new() }));
    setup.extra_actors.push(Box::new(|aggregator| {
        let actor = TradeFlowActor { aggregator, flow: BTreeMap::new(), halted: false }.start();
        // It takes market data; emergency stops too, since it handles them.
        SignalActorInputs {
            market_data: actor.clone().recipient(),
            emergency_stop: Some(actor.recipient()),
            halt_lifted: None,
        }
    }));

    let outcome = actix::System::new().block_on(engine::run(setup)).map_err(|e| e.to_string())?;
    println!("run folder: {}", outcome.run_dir.display());
    println!("final_equity={}", outcome.report["final_equity"]);
    println!("trades={}", outcome.report["trades"]);
    Ok(())
}
