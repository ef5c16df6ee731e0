//! SignalHost actor: hosts one [`SignalModel`] (a built-in or your own) under supervision.
//!
//! - In: [`MarketData`] (a `History` event warms the model up instead:
//!   [`SignalModel::warm_up`]); [`EmergencyStop`] (logged; the aggregator stops acting on signals).
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

/// The SignalHost actor.
pub struct SignalHost {
    model: Box<dyn SignalModel>,
    aggregator: Recipient<SignalBatch>,
    name: String,
}

impl SignalHost {
    /// Hosts `model`, sending its signals to `aggregator`.
    pub fn new(model: Box<dyn SignalModel>, aggregator: Recipient<SignalBatch>) -> Self {
        let name = model.name().to_string();
        SignalHost { model, aggregator, name }
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
            actor = "signal",
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

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "signal", source = %self.name, "signal actor started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "signal", source = %self.name, "signal actor stopped");
    }
}

impl Supervised for SignalHost {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(event = "actor_restarted", actor = "signal", source = %self.name, "signal actor restarted");
    }
}

impl Handler<MarketData> for SignalHost {
    type Result = ();

    fn handle(&mut self, msg: MarketData, _ctx: &mut Self::Context) {
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
        tracing::info!(actor = "signal", source = %self.name, "emergency stop received");
    }
}
