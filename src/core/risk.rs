//! Risk (pure): sizing, pre-trade limits, correlation, drawdown halt. OWNER: risk helper.

use serde::{Deserialize, Serialize};

use super::decisions::TradeIntent;
use super::orders::OrderRequest;
use super::portfolio::PortfolioView;
use super::time::EventTime;
use super::validate::Issues;

/// `risk.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Max drawdown of equity from its peak before the emergency stop (fraction, 0.1 = 10 %).
    pub max_drawdown: rust_decimal::Decimal,
    /// Fraction of equity risked per trade.
    pub risk_per_trade: rust_decimal::Decimal,
    /// Stop-loss distance (fraction of price).
    pub stop_loss_pct: rust_decimal::Decimal,
    /// Take-profit distance (fraction of price).
    pub take_profit_pct: rust_decimal::Decimal,
}

impl Default for RiskConfig {
    fn default() -> Self {
        use rust_decimal_macros::dec;
        RiskConfig {
            max_drawdown: dec!(0.1),
            risk_per_trade: dec!(0.01),
            stop_loss_pct: dec!(0.01),
            take_profit_pct: dec!(0.02),
        }
    }
}

impl RiskConfig {
    /// Adds a problem for every out-of-range key (`risk.…`).
    pub fn validate(&self, _is: &mut Issues) {}
}

/// A refused intent (journaled as `type: risk_refusal`, logged with `reason`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Intent id.
    pub intent_id: u64,
    /// Pair.
    pub pair: super::instrument::Symbol,
    /// Reason code (`halted`, `max_open_positions`, `max_exposure`, `below_minimum`, …).
    pub reason: String,
    /// Human detail with the numbers.
    pub detail: String,
    /// Event time.
    pub time: EventTime,
}

/// A drawdown breach (journaled as `type: emergency_stop`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Event time.
    pub time: EventTime,
    /// Drawdown from the peak (fraction).
    pub drawdown: f64,
    /// Configured limit (fraction).
    pub limit: f64,
    /// Equity at the breach.
    pub equity: rust_decimal::Decimal,
    /// Equity peak.
    pub peak: rust_decimal::Decimal,
}

/// What the risk core decided about an intent.
#[derive(Debug)]
pub enum Verdict {
    /// Approved: the entry order (with its protective children in `protection`).
    Approved(Box<OrderRequest>),
    /// Refused.
    Refused(Refusal),
}

/// Risk state: equity peak, halt, daily loss, counters.
pub struct RiskCore {}

impl RiskCore {
    /// A new risk core.
    pub fn new(_cfg: &RiskConfig, _execution_entry: super::orders::EntryStyle) -> RiskCore {
        todo!()
    }
    /// Portfolio update (every market batch): returns a breach when the drawdown passed the
    /// limit; the core is halted from then on.
    pub fn on_portfolio(&mut self, _view: &PortfolioView) -> Option<Breach> {
        todo!()
    }
    /// Sizes and checks an intent against the latest portfolio.
    pub fn evaluate(&mut self, _intent: &TradeIntent) -> Verdict {
        todo!()
    }
    /// Feedback from a closed trade (Kelly statistics).
    pub fn on_trade_closed(&mut self, _t: &super::execution::ClosedTrade) {
        todo!()
    }
    /// Operator halt: as a breach, at `now` (None when already halted).
    pub fn halt_now(&mut self, _now: EventTime) -> Option<Breach> {
        todo!()
    }
    /// True while halted.
    pub fn halted(&self) -> bool {
        todo!()
    }
    /// Lifts a halt (operator); the drawdown peak resets to the current equity.
    pub fn lift_halt(&mut self, _now: EventTime) {
        todo!()
    }
    /// Report figures (`risk` section of report.json).
    pub fn metrics(&self) -> serde_json::Value {
        todo!()
    }
}
