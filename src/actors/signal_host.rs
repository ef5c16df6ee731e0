//! SignalHost actor: hosts one [`SignalModel`] (a built-in or your own) under supervision.
//!
//! - In: [`MarketData`] (a `History` event warms the model up instead:
//!   [`SignalModel::warm_up`]); [`EmergencyStop`] (logged; the aggregator stops acting on signals).
//! - Fails: a panic in the model is caught; the host stops itself and its `actix::Supervisor`
//!   restarts it after a backoff (`supervision::Policy::Restart`); the model keeps its state
//!   and misses the batch it panicked on.
//! - Out: [`SignalBatch`] to the aggregator, sent before the handler returns, so the
//!   aggregator sees them before it decides on the same batch.
//!
//! To plug in a model, implement `core::signals::SignalModel` and hand it to the engine
//! builder (see examples/custom_signal.rs); a full actor that handles `MarketData` and sends
//! `SignalBatch` works too.

use actix::prelude::*;

use crate::core::instrument::Symbol;
use crate::core::market::{MarketEvent, PriceHistory};
use crate::core::signals::SignalModel;
use crate::core::signals::common::ohlc_interval_for;
use crate::messages::{EmergencyStop, MarketData, SignalBatch};
use crate::supervision::{self, ActorName, Restarts, Watch};

/// The SignalHost actor.
pub struct SignalHost {
    model: Box<dyn SignalModel>,
    aggregator: Recipient<SignalBatch>,
    name: String,
    watch: Watch,
    restarts: Restarts,
}

impl SignalHost {
    /// Hosts `model`, sending its signals to `aggregator`.
    pub fn new(model: Box<dyn SignalModel>, aggregator: Recipient<SignalBatch>) -> Self {
        let name = model.name().to_string();
        SignalHost {
            model,
            aggregator,
            name,
            watch: Watch::inert(ActorName::SignalHost),
            restarts: Restarts::new(ActorName::SignalHost),
        }
    }

    /// Reports failures and takes the test hook through `watch` (the engine's supervision).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.watch = watch;
        self
    }
}

impl SignalHost {
    /// Start-up history (`MarketEvent::History`): handed to the model when it is at the
    /// Kraken interval the model asked for (several models may ask for different ones).
    fn warm_up(&mut self, symbol: &Symbol, history: &PriceHistory) {
        let Some(wanted) = self.model.warm_up_interval() else { return };
        if ohlc_interval_for(wanted) != history.interval_minutes {
            return;
        }
        self.model.warm_up(symbol, history);
        tracing::info!(
            actor = "signal_host",
            source = %self.name,
            pair = %symbol,
            interval_minutes = history.interval_minutes,
            candles = history.closes.len(),
            "signal model warmed up on OHLC history"
        );
    }
}

impl Actor for SignalHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "signal_host", source = %self.name, "signal actor started");
        self.restarts.hold(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "signal_host", source = %self.name, "signal actor stopped");
    }
}

impl Supervised for SignalHost {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.restarts.restarting(&self.name);
    }
}

impl Handler<MarketData> for SignalHost {
    type Result = ();

    fn handle(&mut self, msg: MarketData, ctx: &mut Self::Context) {
        if let Err(reason) = supervision::catch(|| self.on_data(&msg)) {
            self.restarts.failed(reason, &self.name);
            ctx.stop();
        }
    }
}

impl SignalHost {
    /// The model's signals on `msg`, sent to the aggregator.
    fn on_data(&mut self, msg: &MarketData) {
        self.watch.tick();
        let mut signals = Vec::new();
        for (seq, ev) in msg.iter_seq() {
            if let MarketEvent::History { symbol, history, .. } = ev {
                self.warm_up(symbol, history);
                continue;
            }
            if let Some(s) = self.model.on_event(seq, ev) {
                signals.push(s);
            }
        }
        if !signals.is_empty() {
            self.aggregator.do_send(SignalBatch { signals });
        }
    }
}

impl Handler<EmergencyStop> for SignalHost {
    type Result = ();

    fn handle(&mut self, _msg: EmergencyStop, _ctx: &mut Self::Context) {
        tracing::info!(actor = "signal_host", source = %self.name, "emergency stop received");
    }
}
