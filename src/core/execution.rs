//! Paper execution (pure): orders, the fill model against the L2 book and trades, fees,
//! balances, positions and accounting. OWNER: execution helper.
//!
//! Interface contract (used by the PositionBook actor, reports and RiskManager); internals
//! are free. Every `ExecEvent` is journaled as one record whose `type` is `ExecEvent::kind()`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::instrument::Symbol;
use super::market::{MarketEvent, Side};
use super::money::{Cash, Price, Qty};
use super::orders::{Fill, OrderId, OrderOrigin, OrderRequest, OrderSpec, Rejection};
use super::portfolio::PortfolioView;
use super::time::{EventTime, Span};
use super::validate::Issues;

/// Price used to value open positions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkConvention {
    /// (best bid + best ask) / 2.
    #[default]
    Mid,
    /// Last trade price.
    Last,
    /// The price a position would be closed at: bid for longs, ask for shorts.
    Exit,
}

/// `execution.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// Event time between a decision and the order's arrival at the book.
    pub latency: Span,
    /// How positions are valued.
    pub mark: MarkConvention,
    /// Fill resting limits when the price only touches them (optimistic; off by default).
    pub fill_at_touch: bool,
    /// How an approved intent becomes an entry order.
    pub entry: super::orders::EntryStyle,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            latency: Span::from_millis(50),
            mark: MarkConvention::Mid,
            fill_at_touch: false,
            entry: Default::default(),
        }
    }
}

impl ExecutionConfig {
    /// Adds a problem for every out-of-range key (`execution.…`).
    pub fn validate(&self, _is: &mut Issues) {}
}

/// A closed round trip (entry to exit) on one pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClosedTrade {
    /// Sequential trade id.
    pub trade_id: u64,
    /// Pair.
    pub pair: Symbol,
    /// Direction of the position (buy = long).
    pub side: Side,
    /// Quantity.
    pub qty: Qty,
    /// Event time of the first entry fill.
    pub entry_time: EventTime,
    /// Event time of the last exit fill.
    pub exit_time: EventTime,
    /// Average entry price.
    pub entry_price: Price,
    /// Average exit price.
    pub exit_price: Price,
    /// Fees paid on entry and exit (account currency).
    pub fees: Cash,
    /// Realized P&L net of fees (account currency).
    pub pnl: Cash,
    /// Best unrealized P&L during the trade (max favourable excursion).
    pub max_pnl: Cash,
    /// Worst unrealized P&L during the trade (max adverse excursion, ≤ 0).
    pub max_drawdown: Cash,
    /// Signals that caused the entry.
    pub contributions: Vec<super::decisions::Contribution>,
    /// User tags.
    pub tags: Vec<String>,
    /// Why it was closed (`stop_loss`, `take_profit`, `flatten`, `signal`, …).
    pub exit_reason: String,
}

/// What happened in the paper exchange; each is one journal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExecEvent {
    /// An order was accepted (pending its latency, or resting, or waiting for a trigger).
    OrderAccepted {
        /// Event time.
        time: EventTime,
        /// Id.
        order_id: OrderId,
        /// What was asked.
        spec: OrderSpec,
        /// Why it exists.
        origin: OrderOrigin,
    },
    /// An order was refused with Kraken's error string.
    OrderRejected {
        /// Event time.
        time: EventTime,
        /// Id.
        order_id: OrderId,
        /// What was asked.
        spec: OrderSpec,
        /// Kraken's error and our reason.
        rejection: Rejection,
    },
    /// A stop / take-profit / trailing stop triggered.
    OrderTriggered {
        /// Event time.
        time: EventTime,
        /// Id.
        order_id: OrderId,
        /// Last trade price that triggered it.
        trigger_price: Price,
    },
    /// An order left the book without filling completely.
    OrderCanceled {
        /// Event time.
        time: EventTime,
        /// Id.
        order_id: OrderId,
        /// Why (`requested`, `oco`, `ioc_remainder`, `emergency_stop`, `expired`, …).
        reason: String,
    },
    /// A fill.
    Fill(Fill),
    /// A position changed.
    Position {
        /// Event time.
        time: EventTime,
        /// Pair.
        pair: Symbol,
        /// Signed quantity after the change.
        qty: Qty,
        /// Average entry price.
        avg_price: Price,
        /// Realized P&L of the pair so far.
        realized_pnl: Cash,
    },
    /// A round trip closed.
    TradeClosed(ClosedTrade),
}

impl ExecEvent {
    /// Journal record type: `order`, `order_rejected`, `order_triggered`, `order_canceled`,
    /// `fill`, `position`, `trade_closed`.
    pub fn kind(&self) -> &'static str {
        todo!()
    }
    /// Event time.
    pub fn time(&self) -> EventTime {
        todo!()
    }
}

/// Execution counters (report `execution` section).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStats {
    /// Fills.
    pub fills: u64,
    /// Fills that left quantity on their order.
    pub partial_fills: u64,
    /// Maker fills.
    pub maker_fills: u64,
    /// Taker fills.
    pub taker_fills: u64,
    /// Stops / take-profits / trailing stops triggered.
    pub stops_triggered: u64,
    /// Orders rejected.
    pub rejected_orders: u64,
    /// Fees paid (account currency).
    pub fees_paid: Cash,
    /// Slippage paid versus the mid at arrival (account currency).
    pub slippage_paid: Cash,
}

/// The paper exchange and account.
pub struct PaperExchange {}

impl PaperExchange {
    /// A new account in `currency` holding `balances`.
    pub fn new(
        _cfg: &ExecutionConfig,
        _currency: &str,
        _balances: &BTreeMap<String, Decimal>,
    ) -> PaperExchange {
        todo!()
    }
    /// Applies one market event (`seq` = its global sequence number): books and marks,
    /// arrivals of pending orders, triggers, fills, expiries.
    pub fn on_event(&mut self, _seq: u64, _ev: &MarketEvent, _out: &mut Vec<ExecEvent>) {
        todo!()
    }
    /// Accepts an order; it reaches the book at `decided_at + latency`.
    pub fn submit(&mut self, _req: OrderRequest, _out: &mut Vec<ExecEvent>) -> OrderId {
        todo!()
    }
    /// Cancels one order.
    pub fn cancel(&mut self, _id: OrderId, _now: EventTime, _reason: &str, _out: &mut Vec<ExecEvent>) {
        todo!()
    }
    /// Cancels every open order.
    pub fn cancel_all(&mut self, _now: EventTime, _reason: &str, _out: &mut Vec<ExecEvent>) {
        todo!()
    }
    /// Cancels every open order and sends reduce-only market orders closing every position
    /// at once (no latency), against the displayed book; what the book cannot take is
    /// retried on later book events.
    pub fn flatten_all(&mut self, _now: EventTime, _reason: &str, _out: &mut Vec<ExecEvent>) {
        todo!()
    }
    /// The account for RiskManager and the dashboard.
    pub fn portfolio(&self) -> PortfolioView {
        todo!()
    }
    /// Equity in the account currency = cash + Σ qty × mark.
    pub fn equity(&self) -> Cash {
        todo!()
    }
    /// Balances per asset (as Kraken's Balance shows them).
    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        todo!()
    }
    /// Counters.
    pub fn stats(&self) -> &ExecStats {
        todo!()
    }
    /// Open positions.
    pub fn open_positions(&self) -> usize {
        todo!()
    }
    /// Checks equity = cash (fees deducted) + Σ qty × mark, recomputed from scratch.
    pub fn verify_identity(&self) -> Result<(), String> {
        todo!()
    }
}
