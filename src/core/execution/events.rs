//! What the paper exchange reports: `ExecEvent` (one journal record each), `ClosedTrade`
//! (a round trip) and `ExecStats` (the report's execution counters).

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::core::decisions::Contribution;
use crate::core::instrument::Symbol;
use crate::core::market::Side;
use crate::core::money::{Cash, Price, Qty};
use crate::core::orders::{Fill, OrderId, OrderOrigin, OrderSpec, Rejection};
use crate::core::time::EventTime;

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
    pub contributions: Vec<Contribution>,
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
        /// Realized P&L of the pair so far, net of every fee paid on it (quote currency).
        realized_pnl: Cash,
    },
    /// A round trip closed.
    TradeClosed(ClosedTrade),
    /// An AmendOrder was applied: the order's fields after it.
    OrderAmended {
        /// Event time (arrival of the amend at the book).
        time: EventTime,
        /// Id.
        order_id: OrderId,
        /// Amend transaction id.
        amend_id: u64,
        /// Quantity after the amend.
        qty: Qty,
        /// Limit / trigger price after the amend.
        price: Option<Price>,
        /// Limit price of a -limit triggered type after the amend.
        price2: Option<Price>,
        /// True when the order kept its place in the queue (quantity reduced only).
        queue_kept: bool,
        /// Added to the pair's rate counter.
        penalty: Decimal,
    },
    /// An AmendOrder was refused (the order is unchanged).
    AmendRejected {
        /// Event time.
        time: EventTime,
        /// The order named.
        order_id: OrderId,
        /// Amend transaction id.
        amend_id: u64,
        /// Kraken's error and our reason.
        rejection: Rejection,
    },
    /// A margin fee (opening or 4-hourly rollover) was charged on a short margin position.
    MarginFee {
        /// Event time.
        time: EventTime,
        /// Pair.
        pair: Symbol,
        /// `opening` or `rollover`.
        kind: String,
        /// Borrowed quantity the fee is on (base units).
        qty: Qty,
        /// Price the borrowed quantity is valued at.
        price: Price,
        /// Fee rate, percent.
        rate_pct: Decimal,
        /// Fee (quote currency).
        fee: Cash,
        /// Quote currency.
        currency: Arc<str>,
    },
    /// Kraken's published fee schedule for a pair (REST AssetPairs, live runs) replaced the
    /// built-in one from this event on (`fee_schedule`).
    FeeSchedule {
        /// Event time.
        time: EventTime,
        /// Pair.
        pair: Symbol,
        /// Taker rows `(30-day volume, percent)`.
        taker: Vec<(Decimal, Decimal)>,
        /// Maker rows.
        maker: Vec<(Decimal, Decimal)>,
        /// Currency of the thresholds.
        volume_currency: String,
        /// Taker and maker rates (fractions) at the account's 30-day volume right now.
        taker_rate: Decimal,
        /// See `taker_rate`.
        maker_rate: Decimal,
    },
    /// The margin level fell below the margin call level.
    MarginCall {
        /// Event time.
        time: EventTime,
        /// Equity / used margin × 100.
        margin_level: Decimal,
        /// Equity (account currency).
        equity: Cash,
        /// Used margin (account currency).
        used_margin: Cash,
        /// Margin call level, percent.
        margin_call: u32,
    },
    /// The margin level reached the liquidation level: a forced close was sent to the book.
    MarginLiquidation {
        /// Event time.
        time: EventTime,
        /// Pair.
        pair: Symbol,
        /// The liquidation order (origin `liquidation`).
        order_id: OrderId,
        /// Borrowed quantity being bought back.
        qty: Qty,
        /// Equity / used margin × 100.
        margin_level: Decimal,
        /// Equity (account currency).
        equity: Cash,
        /// Used margin (account currency).
        used_margin: Cash,
        /// Liquidation level, percent.
        margin_stop: u32,
    },
}

impl ExecEvent {
    /// Journal record type: `order`, `order_rejected`, `order_triggered`, `order_canceled`,
    /// `fill`, `position`, `trade_closed`, `order_amended`, `amend_rejected`, `margin_fee`,
    /// `margin_call`, `margin_liquidation`, `fee_schedule`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecEvent::OrderAccepted { .. } => "order",
            ExecEvent::OrderRejected { .. } => "order_rejected",
            ExecEvent::OrderTriggered { .. } => "order_triggered",
            ExecEvent::OrderCanceled { .. } => "order_canceled",
            ExecEvent::Fill(_) => "fill",
            ExecEvent::Position { .. } => "position",
            ExecEvent::TradeClosed(_) => "trade_closed",
            ExecEvent::OrderAmended { .. } => "order_amended",
            ExecEvent::AmendRejected { .. } => "amend_rejected",
            ExecEvent::MarginFee { .. } => "margin_fee",
            ExecEvent::MarginCall { .. } => "margin_call",
            ExecEvent::FeeSchedule { .. } => "fee_schedule",
            ExecEvent::MarginLiquidation { .. } => "margin_liquidation",
        }
    }
    /// Event time.
    pub fn time(&self) -> EventTime {
        match self {
            ExecEvent::OrderAccepted { time, .. }
            | ExecEvent::OrderRejected { time, .. }
            | ExecEvent::OrderTriggered { time, .. }
            | ExecEvent::OrderCanceled { time, .. }
            | ExecEvent::Position { time, .. }
            | ExecEvent::OrderAmended { time, .. }
            | ExecEvent::AmendRejected { time, .. }
            | ExecEvent::MarginFee { time, .. }
            | ExecEvent::MarginCall { time, .. }
            | ExecEvent::FeeSchedule { time, .. }
            | ExecEvent::MarginLiquidation { time, .. } => *time,
            ExecEvent::Fill(f) => f.time,
            ExecEvent::TradeClosed(t) => t.exit_time,
        }
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
    /// Margin opening and rollover fees paid (account currency; absent when zero).
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub margin_fees_paid: Cash,
    /// Margin calls (absent when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub margin_calls: u64,
    /// Forced liquidations (absent when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub liquidations: u64,
    /// Amends applied (absent when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub amends: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
