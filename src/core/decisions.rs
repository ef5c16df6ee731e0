//! Signals and trade intents: what signal actors say and what the aggregator decides.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::instrument::Symbol;
use super::market::Side;
use super::time::{EventTime, Span};

/// A view from one signal source on one pair, valid for `horizon` after `event_time`.
///
/// `score` in [-1, 1] (negative = expect the price to fall), `confidence` in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Name of the source (as registered in config, e.g. `ema_cross`).
    pub source: Arc<str>,
    /// Pair.
    pub pair: Symbol,
    /// Direction and strength in [-1, 1].
    pub score: f64,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// How long the view stays valid.
    pub horizon: Span,
    /// Event time of the market event the signal was computed at.
    pub event_time: EventTime,
    /// Sequence number of that market event.
    pub event_seq: u64,
    /// Optional human explanation.
    pub explanation: Option<String>,
}

impl Signal {
    /// Event time after which the signal no longer counts.
    pub fn expires_at(&self) -> EventTime {
        self.event_time.plus_micros(self.horizon.as_micros())
    }
    /// Checks the contract: finite score in [-1, 1], confidence in [0, 1], positive horizon.
    pub fn validate(&self) -> Result<(), SignalContractError> {
        if !self.score.is_finite() || !(-1.0..=1.0).contains(&self.score) {
            return Err(SignalContractError::Score(self.score));
        }
        if !self.confidence.is_finite() || !(0.0..=1.0).contains(&self.confidence) {
            return Err(SignalContractError::Confidence(self.confidence));
        }
        if self.horizon.as_micros() <= 0 {
            return Err(SignalContractError::Horizon);
        }
        if self.source.is_empty() {
            return Err(SignalContractError::EmptySource);
        }
        Ok(())
    }
}

/// Why a [`Signal`] breaks the contract (each message names the field).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SignalContractError {
    /// The score is not a finite number in [-1, 1].
    #[error("score {0} is outside [-1, 1]")]
    Score(f64),
    /// The confidence is not a finite number in [0, 1].
    #[error("confidence {0} is outside [0, 1]")]
    Confidence(f64),
    /// The horizon is zero or negative.
    #[error("horizon must be positive")]
    Horizon,
    /// The source name is empty.
    #[error("source must not be empty")]
    EmptySource,
}

impl crate::core::error::Classified for SignalContractError {
    /// One refused signal: the run carries on ([`Disposition::Recoverable`]).
    ///
    /// [`Disposition::Recoverable`]: crate::core::error::Disposition::Recoverable
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            SignalContractError::Score(_)
            | SignalContractError::Confidence(_)
            | SignalContractError::Horizon
            | SignalContractError::EmptySource => crate::core::error::Disposition::Recoverable,
        }
    }
}

/// How much one signal counted in a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Source name.
    pub source: Arc<str>,
    /// The signal's score.
    pub score: f64,
    /// The signal's confidence.
    pub confidence: f64,
    /// The source's track-record weight at decision time.
    pub weight: f64,
}

/// The aggregator's decision to trade a pair, before sizing and risk checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeIntent {
    /// Deterministic id.
    pub intent_id: u64,
    /// Pair.
    pub pair: Symbol,
    /// Direction.
    pub side: Side,
    /// Consensus confidence in [0, 1].
    pub confidence: f64,
    /// Volatility estimate of the pair's returns per √second (0 when unknown).
    pub volatility: f64,
    /// Event time of the decision.
    pub time: EventTime,
    /// Sequence number of the market event the decision was made at.
    pub event_seq: u64,
    /// The signals that made it.
    pub contributions: Vec<Contribution>,
    /// Per-trade choices of a caller of the order API (`open_position`); empty for the
    /// aggregator's intents, which use the risk config.
    #[serde(default, skip_serializing_if = "IntentOverrides::is_empty")]
    pub overrides: IntentOverrides,
}

/// What `open_position(pair, side, confidence, volatility, stop_loss_pct, take_profit_pct,
/// tags)` may set for one trade; RiskManager still sizes and checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentOverrides {
    /// Stop distance as a fraction of price (instead of `risk.stop_loss_pct`).
    pub stop_loss_pct: Option<rust_decimal::Decimal>,
    /// Take-profit distance as a fraction of price (instead of `risk.take_profit_pct`).
    pub take_profit_pct: Option<rust_decimal::Decimal>,
    /// Tags carried to the orders and the closed trade.
    pub tags: Vec<String>,
}

impl IntentOverrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.stop_loss_pct.is_none() && self.take_profit_pct.is_none() && self.tags.is_empty()
    }
}

// Contributions hold floats; equality on them is only used in tests.
impl Eq for Contribution {}
