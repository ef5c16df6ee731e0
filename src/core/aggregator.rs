//! Signal aggregation (pure): live signals per pair → trade intents, with confidence and
//! track-record weights. OWNER: signals helper.

use serde::{Deserialize, Serialize};

use super::decisions::{Signal, TradeIntent};
use super::execution::ClosedTrade;
use super::market::MarketEvent;
use super::validate::Issues;

/// `aggregator.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Weighted, confidence-scaled consensus needed to trade (in [0, 1]).
    pub threshold: f64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig { threshold: 0.3 }
    }
}

impl AggregatorConfig {
    /// Adds a problem for every out-of-range key (`aggregator.…`).
    pub fn validate(&self, _is: &mut Issues) {}
}

/// A decision (or non-decision) worth journaling (`type: signal_decision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The intent, when the consensus passed the threshold.
    pub intent: Option<TradeIntent>,
    /// Consensus score in [-1, 1].
    pub consensus: f64,
    /// Pair.
    pub pair: super::instrument::Symbol,
    /// Event time.
    pub time: super::time::EventTime,
}

/// Weights per source that survive a restart (journaled as `type: signal_weights`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceWeights {
    /// Weight per source name.
    pub weights: std::collections::BTreeMap<String, f64>,
}

/// The aggregator core.
pub struct Aggregator {}

impl Aggregator {
    /// A new aggregator.
    pub fn new(_cfg: &AggregatorConfig) -> Aggregator {
        todo!()
    }
    /// Takes in one signal (validated; invalid ones are refused with the reason).
    pub fn on_signal(&mut self, _s: Signal) -> Result<(), String> {
        todo!()
    }
    /// Market event `seq` happened: expire signals, and decide for the event's pair.
    /// Returns decisions that produced intents (and only those).
    pub fn on_event(&mut self, _seq: u64, _ev: &MarketEvent, _out: &mut Vec<Decision>) {
        todo!()
    }
    /// Feedback: a closed trade, attributed to the signals in its contributions.
    pub fn on_trade_closed(&mut self, _t: &ClosedTrade) -> Option<SourceWeights> {
        todo!()
    }
    /// Stops producing intents (emergency stop) or resumes.
    pub fn set_halted(&mut self, _halted: bool) {
        todo!()
    }
    /// Current weights.
    pub fn weights(&self) -> SourceWeights {
        todo!()
    }
    /// Restores weights (resume).
    pub fn restore_weights(&mut self, _w: SourceWeights) {
        todo!()
    }
}
