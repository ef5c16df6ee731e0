//! Paper execution (pure): orders, the fill model against the L2 book and trades, fees,
//! balances, positions and accounting. OWNER: execution helper.
//!
//! Interface contract (used by the PositionBook actor, reports and RiskManager); internals
//! are free. Every `ExecEvent` is journaled as one record whose `type` is `ExecEvent::kind()`.
//!
//! How it works (docs/fill-model.md has the full model and its limits):
//! - [`PaperExchange::submit`] emits `OrderAccepted` at the decision time; the order reaches
//!   the book at `decided_at + latency`, where Kraken's rules validate it (a refusal is an
//!   `OrderRejected` with Kraken's error string).
//! - Market orders walk the displayed book (what we take stays consumed until the book
//!   changes at that level); limits take what is marketable and rest as makers; resting
//!   limits fill on trades printed through their price, after the modelled queue ahead;
//!   triggered types trigger on the last trade and execute on the next book.
//! - Every fill moves exactly price × qty and the fee (quote currency, pair cost precision)
//!   between the base and quote balances; positions, P&L and excursions follow.
//!
//! - Shorts (`execution.margin.enabled`, off by default): a sell with Kraken's `leverage`
//!   borrows the base it sells (a short margin position), pays Kraken's opening and 4-hourly
//!   rollover fees, and is watched for margin call and liquidation levels.
//! - [`PaperExchange::amend`] is Kraken's AmendOrder: in place, queue priority kept on a
//!   quantity reduction, lost on a price change, counted on the pair's rate counter.
//!
//! Submodules: `fees` (schedule, 30-day volume, trading rate counter), `fill_model`
//! (our book copy, consumed liquidity, queue rules), `margin` (margin config, fees,
//! allowances, margin level) and `open_orders` (the orders, with a change counter so that
//! most events need not scan their timers).

mod fill_model;
mod margin;
mod open_orders;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

pub use crate::core::fees::{PairFees, Tier};
use crate::core::fees::{self, RateCounter, VolumeTracker};
use fill_model::PairBook;
pub use margin::MarginConfig;
use margin::MarginPosition;
use open_orders::OpenOrders;

use super::decisions::Contribution;
use super::instrument::{Instrument, MarginTerms, PairStatus, Symbol};
use super::market::{BookEvent, MarketEvent, Side, SystemStatus, TradeEvent};
use super::money::{Cash, Price, Qty};
use super::orders::{
    AmendRequest, EntryStyle, Fill, FillCause, Liquidity, OrderId, OrderOrigin, OrderRequest, OrderSpec,
    OrderType, Protection, Rejection, TimeInForce, TrailingOffset,
};
use super::portfolio::{MarginView, PortfolioView, PositionView, Quote};
use super::symbol_map::SymbolMap;
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
    /// Event time between a decision and the order's arrival at the book (also applied to
    /// cancels and to protective children placed after a fill). Default `50ms`.
    pub latency: Span,
    /// How positions are valued. Default `mid`.
    pub mark: MarkConvention,
    /// Fill resting limits when a trade prints at their price, ignoring the queue ahead
    /// (optimistic; off by default).
    pub fill_at_touch: bool,
    /// 30-day USD trading volume of the account before the run; picks the fee tier together
    /// with the volume the run trades. Default 0 (0.25 % maker / 0.40 % taker).
    pub fee_tier_volume: Decimal,
    /// An entry limit order (origin `intent`) still open this long after reaching the book
    /// is cancelled and its remainder sent as a market order (the "chase"). `0s` disables.
    /// Default `30s`.
    pub entry_timeout: Span,
    /// Kraken verification tier: rate counter threshold/decay and open-order limit.
    /// `starter` | `intermediate` | `pro`, default `intermediate`.
    pub tier: Tier,
    /// Open orders allowed per pair; default (absent) = the tier's limit (80 intermediate).
    pub max_open_orders_per_pair: Option<u32>,
    /// How RiskManager prices entry orders (`market`, `limit`, `post_only`), default
    /// `limit` at the touch. Read by the risk core, not by the paper exchange.
    pub entry: EntryStyle,
    /// Times an entry limit still resting at `entry_timeout` is re-priced to the touch with
    /// Kraken's AmendOrder (another `entry_timeout` each) before the chase cancels it and
    /// sends the remainder as a market order. Default 0: the chase at once.
    pub chase_reprices: u32,
    /// Short margin positions (`execution.margin.*`); off by default.
    pub margin: MarginConfig,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            latency: Span::from_millis(50),
            mark: MarkConvention::Mid,
            fill_at_touch: false,
            fee_tier_volume: Decimal::ZERO,
            entry_timeout: Span::from_secs(30),
            tier: Tier::Intermediate,
            max_open_orders_per_pair: None,
            entry: EntryStyle::default(),
            chase_reprices: 0,
            margin: MarginConfig::default(),
        }
    }
}

impl ExecutionConfig {
    /// Adds a problem for every out-of-range key (`execution.…`).
    pub fn validate(&self, is: &mut Issues) {
        is.check(self.latency.as_micros() >= 0, "execution.latency", || {
            format!("must not be negative, got {}", self.latency)
        });
        is.check(self.latency.as_micros() <= 60_000_000, "execution.latency", || {
            format!("must be at most 60s, got {}", self.latency)
        });
        is.check(self.entry_timeout.as_micros() >= 0, "execution.entry_timeout", || {
            format!("must not be negative (0s disables the chase), got {}", self.entry_timeout)
        });
        is.non_negative("execution.fee_tier_volume", self.fee_tier_volume);
        if let Some(n) = self.max_open_orders_per_pair {
            is.in_range("execution.max_open_orders_per_pair", i64::from(n), 1, 100_000);
        }
        is.in_range("execution.chase_reprices", i64::from(self.chase_reprices), 0, 100);
        self.margin.validate(is);
    }

    /// True when nothing margin- or amend-related differs from the defaults (the config
    /// fingerprint then stays what it was before these keys existed).
    pub fn margin_and_chase_are_default(&self) -> bool {
        self.chase_reprices == 0 && self.margin == MarginConfig::default()
    }

    fn open_order_limit(&self) -> u32 {
        self.max_open_orders_per_pair.unwrap_or_else(|| self.tier.max_open_orders())
    }
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

/// Where an order is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// On its way to the exchange (latency), or waiting for a trusted book to arrive at.
    Pending,
    /// At the exchange, waiting for its trigger (stop-loss, take-profit, trailing stop).
    Waiting,
    /// Executing as a taker at the next book event(s): a triggered order, or a reduce-only
    /// market order (protective stop, flatten) whose rest the book could not take yet.
    Working,
    /// Resting on the book as a maker.
    Resting,
}

/// An order inside the paper exchange.
#[derive(Clone, Debug)]
struct Order {
    id: OrderId,
    spec: OrderSpec,
    origin: OrderOrigin,
    stage: Stage,
    arrive_at: EventTime,
    /// Arrival at the book (rest age for cancel penalties and the chase).
    placed_at: EventTime,
    filled: Qty,
    queue_ahead: Qty,
    /// Best trade price since placement (trailing stops).
    trail_best: Option<Price>,
    /// Mid when the order reached the book (or triggered): the slippage reference.
    ref_mid: Option<Price>,
    /// Protection group (entry orders and their OCO children).
    group: Option<u64>,
    is_child: bool,
    /// This is the market remainder of a chased limit.
    chased: bool,
    /// A requested cancel travelling to the exchange: (arrival, reason).
    cancel_due: Option<(EventTime, String)>,
    /// The entry timeout runs from here (arrival, or the last re-price of the chase).
    chase_from: EventTime,
    /// Re-prices the chase has done.
    reprices: u32,
    /// Last amend at the exchange (rest age of the rate counter's penalties runs from it).
    amended_at: Option<EventTime>,
    contributions: Vec<Contribution>,
    tags: Vec<String>,
}

impl Order {
    fn remaining(&self) -> Qty {
        self.spec.qty - self.filled
    }
    /// The limit price the order executes at or better (limits, and -limit types after
    /// their trigger).
    fn limit_price(&self) -> Option<Price> {
        match self.spec.order_type {
            OrderType::Limit => self.spec.price,
            OrderType::StopLossLimit | OrderType::TakeProfitLimit => self.spec.price2,
            _ => None,
        }
    }
    fn at_exchange(&self) -> bool {
        self.stage != Stage::Pending
    }
    /// Time since placement or the last amend (Kraken's rest age for counter penalties).
    fn rest_age(&self, now: EventTime) -> i64 {
        now.micros_since(self.amended_at.unwrap_or(self.placed_at).max(self.placed_at))
    }
    /// A sell that borrows what it sells beyond the pair's long (Kraken's `leverage`).
    fn is_margin_sell(&self) -> bool {
        self.spec.side == Side::Sell && self.spec.leverage.is_some() && !self.spec.reduce_only
    }
    /// `exit_reason` of a trade this order closes.
    fn exit_reason(&self) -> &'static str {
        match (&self.origin, self.spec.order_type) {
            (OrderOrigin::Flatten, _) => "flatten",
            (OrderOrigin::Liquidation, _) => "liquidation",
            (_, OrderType::StopLoss | OrderType::StopLossLimit) => "stop_loss",
            (_, OrderType::TakeProfit | OrderType::TakeProfitLimit) => "take_profit",
            (_, OrderType::TrailingStop) => "trailing_stop",
            _ if self.chased => "chase",
            (OrderOrigin::Intent { .. }, _) => "signal",
            (OrderOrigin::Api, _) => "api",
            (OrderOrigin::Protective { .. }, _) => "protective",
        }
    }
}

/// An entry and the protective OCO children placed for its fills.
#[derive(Clone, Debug)]
struct Group {
    protection: Protection,
    /// The original entry order (parent of the children).
    entry: OrderId,
    /// Total filled on the entry (and its chase) so far: the children's size.
    filled: Qty,
    stop: Option<OrderId>,
    take: Option<OrderId>,
    trail: Option<OrderId>,
    /// A child triggered: the group is done, nothing more is placed.
    triggered: bool,
}

impl Group {
    fn children(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.stop.into_iter().chain(self.take).chain(self.trail)
    }
}

/// The round trip open on a pair.
#[derive(Clone, Debug)]
struct OpenTrade {
    side: Side,
    entry_time: EventTime,
    entry_qty: Qty,
    entry_cost: Cash,
    exit_qty: Qty,
    exit_value: Cash,
    exit_time: EventTime,
    exit_reason: &'static str,
    /// Fees of this trade (quote currency).
    fees: Cash,
    /// Realized P&L gross of fees (quote currency).
    realized: Cash,
    /// Extremes of the running net P&L (quote currency).
    max_pnl: Cash,
    min_pnl: Cash,
    contributions: Vec<Contribution>,
    tags: Vec<String>,
}

/// Accounting of one pair.
#[derive(Clone, Debug, Default)]
struct Position {
    /// Signed base quantity traded on this pair (negative for a short margin position, or
    /// after selling base the account held before).
    qty: Qty,
    /// Signed cost of the open quantity (quote): avg price = basis / qty.
    basis: Cash,
    /// Realized P&L gross of fees, all trades (quote).
    realized: Cash,
    /// Fees paid on the pair (quote).
    fees: Cash,
    /// Σ signed base moved by fills; the identity check compares it with `qty` and balances.
    base_flow: Qty,
    /// Σ quote moved by fills (−price×qty−fee for buys, +price×qty−fee for sells).
    quote_flow: Cash,
    trade: Option<OpenTrade>,
}

impl Position {
    fn avg_price(&self) -> Price {
        if self.qty.is_zero() { Decimal::ZERO } else { self.basis / self.qty }
    }
}

/// Per-pair market state.
#[derive(Clone, Debug, Default)]
struct PairState {
    inst: Option<Arc<Instrument>>,
    book: PairBook,
    last_trade: Option<Price>,
    rate: RateCounter,
    /// Its mark or mid was read since the last computation of equity began: only then can
    /// a new touch or last trade of the pair change the remembered equity.
    valued: Cell<bool>,
    /// `positions_changed` when the excursion of the pair's trade was last taken in: while
    /// no position changed since and the pair's marks did not move (every move takes it in
    /// again), taking it in again would change nothing.
    excursion_at: Option<u64>,
}

/// Tolerance of the equity identity: conversions through an inverted mid are inexact in
/// the 28th digit; everything else is exact decimal arithmetic.
const IDENTITY_TOLERANCE: Decimal = rust_decimal_macros::dec!(0.00000001);

/// An AmendOrder travelling to the exchange.
#[derive(Clone, Debug)]
struct PendingAmend {
    req: AmendRequest,
    due: EventTime,
}

/// Margin figures of the account at one moment (account currency).
#[derive(Clone, Debug, Default)]
struct MarginAccount {
    equity: Cash,
    used: Cash,
    reserved: Cash,
    level: Option<Decimal>,
}

/// The paper exchange and account.
pub struct PaperExchange {
    cfg: ExecutionConfig,
    currency: Arc<str>,
    initial: BTreeMap<String, Decimal>,
    balances: BTreeMap<String, Decimal>,
    pairs: SymbolMap<PairState>,
    orders: OpenOrders,
    groups: BTreeMap<u64, Group>,
    positions: SymbolMap<Position>,
    system: SystemStatus,
    volume: VolumeTracker,
    stats: ExecStats,
    now: EventTime,
    next_order: u64,
    next_fill: u64,
    next_trade: u64,
    next_group: u64,
    /// Short margin positions per pair.
    margin: BTreeMap<Symbol, MarginPosition>,
    /// The margin level is below the margin call level (re-armed when it recovers).
    margin_call_active: bool,
    amends: BTreeMap<u64, PendingAmend>,
    next_amend: u64,
    /// Σ margin fees charged per currency: they are owed even when the balance cannot pay
    /// them, so they are the only thing that can take a quote balance below zero.
    margin_fees_owed: BTreeMap<String, Decimal>,
    /// Fee schedules published by Kraken (REST AssetPairs) per pair: they replace the
    /// built-in tables for those pairs.
    fee_schedules: BTreeMap<Symbol, Arc<fees::PairFees>>,
    /// `equity()` as last computed, until what it reads changes: a balance, a pair's touch
    /// or last trade, an instrument (each of those places clears it). Read once per frame
    /// and per view, it changes far less often.
    equity_memo: Cell<Option<Cash>>,
    /// `(orders.version(), timer_floor())` as of the last timer scan: while the orders are
    /// unchanged, events before the floor need no scan.
    timers: Option<(u64, Option<EventTime>)>,
    /// Bumped by every change to a position or its open trade.
    positions_changed: u64,
}

/// The ids of one pair's orders (inline up to 8: a pair rarely has more).
type PairOrders = SmallVec<[OrderId; 8]>;

/// What a due timer does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Arrive,
    Cancel,
    Expire,
    Chase,
    Amend,
}

fn reject(error: &str, reason: String) -> Rejection {
    Rejection { error: error.to_string(), reason }
}

/// A pair's mark under `convention` (`long`: the side of the holding).
fn mark_of(st: &PairState, convention: MarkConvention, long: bool) -> Option<Price> {
    // The mid only when it is needed: computed on first read after a touch change.
    let mid = || st.book.mid();
    match convention {
        MarkConvention::Mid => mid().or(st.last_trade),
        MarkConvention::Last => st.last_trade.or_else(mid),
        MarkConvention::Exit => {
            if long { st.book.bid() } else { st.book.ask() }.or_else(mid).or(st.last_trade)
        }
    }
}

/// `name` is the pair `sym`: the same `Arc` (events and their orders share the decoder's),
/// else the same text.
fn same_pair(sym: &Symbol, name: &str) -> bool {
    (std::ptr::eq(sym.as_ptr(), name.as_ptr()) && sym.len() == name.len()) || **sym == *name
}

/// A pair's mid, else its last trade, as equity reads it (the pair counts as `valued`).
fn valued_mid(st: &PairState) -> Option<Price> {
    st.valued.set(true);
    st.book.mid().or(st.last_trade)
}

/// `sum + balance × value()`, to the digit, without valuing a zero balance: rust_decimal
/// makes `0 × v` a plain zero, and adding a plain zero leaves a nonzero sum as it is and
/// turns a zero sum (`0.00`, `−0`) into a plain zero.
fn add_holding(sum: Decimal, balance: Decimal, value: impl FnOnce() -> Decimal) -> Decimal {
    if !balance.is_zero() {
        sum + balance * value()
    } else if sum.is_zero() {
        Decimal::ZERO
    } else {
        sum
    }
}

/// Decimal places a value really needs (trailing zeros ignored).
fn decimals(v: Decimal) -> u32 {
    v.normalize().scale()
}

fn is_multiple(v: Decimal, step: Decimal) -> bool {
    step <= Decimal::ZERO || (v % step).is_zero()
}

impl PaperExchange {
    /// A new account in `currency` holding `balances`.
    pub fn new(cfg: &ExecutionConfig, currency: &str, balances: &BTreeMap<String, Decimal>) -> PaperExchange {
        PaperExchange {
            cfg: cfg.clone(),
            currency: currency.into(),
            initial: balances.clone(),
            balances: balances.clone(),
            pairs: SymbolMap::new(),
            orders: OpenOrders::default(),
            groups: BTreeMap::new(),
            positions: SymbolMap::new(),
            system: SystemStatus::Online,
            volume: VolumeTracker::new(cfg.fee_tier_volume),
            stats: ExecStats::default(),
            now: EventTime::ZERO,
            next_order: 1,
            next_fill: 1,
            next_trade: 1,
            next_group: 1,
            margin: BTreeMap::new(),
            margin_call_active: false,
            amends: BTreeMap::new(),
            next_amend: 1,
            margin_fees_owed: BTreeMap::new(),
            fee_schedules: BTreeMap::new(),
            equity_memo: Cell::new(None),
            timers: None,
            positions_changed: 0,
        }
    }

    /// Applies one market event (`seq` = its global sequence number): books and marks,
    /// arrivals of pending orders, triggers, fills, expiries.
    pub fn on_event(&mut self, seq: u64, ev: &MarketEvent, out: &mut Vec<ExecEvent>) {
        self.now = self.now.max(ev.time());
        // Orders, cancels and timers due before this event act on the market as it was.
        self.run_timers(out);
        self.charge_rollovers(out);
        match ev {
            MarketEvent::Book(b) => self.on_book(seq, b, out),
            MarketEvent::Trade(t) => self.on_trade(seq, t, out),
            MarketEvent::BookInvalid { symbol, .. } => self.pair_mut(symbol).book.invalidate(),
            MarketEvent::Instrument { instrument, .. } => {
                self.pair_mut(&instrument.symbol).inst = Some(instrument.clone());
                self.equity_memo.set(None);
            }
            MarketEvent::Status { system, .. } => self.system = *system,
            MarketEvent::FeeSchedule { symbol, fees: f, time } => {
                self.fee_schedules.insert(symbol.clone(), f.clone());
                out.push(ExecEvent::FeeSchedule {
                    time: *time,
                    pair: symbol.clone(),
                    taker: f.taker.clone(),
                    maker: f.maker.clone(),
                    volume_currency: f.volume_currency.clone(),
                    taker_rate: f.rate(self.volume.total(self.now), Liquidity::Taker),
                    maker_rate: f.rate(self.volume.total(self.now), Liquidity::Maker),
                });
            }
            MarketEvent::Ticker(_) | MarketEvent::History { .. } => {}
        }
        // Children placed with zero latency, or orders that waited for a valid book.
        self.run_timers(out);
        self.check_margin(out);
    }

    /// Accepts an order; it reaches the book at `decided_at + latency`.
    pub fn submit(&mut self, req: OrderRequest, out: &mut Vec<ExecEvent>) -> OrderId {
        let p = req.protection();
        let protected = p.stop_loss.is_some() || p.take_profit.is_some() || p.trailing.is_some();
        let group = if protected && !req.spec().reduce_only {
            let g = self.next_group;
            self.next_group += 1;
            Some(g)
        } else {
            None
        };
        let arrive_at = req.decided_at().plus_micros(self.cfg.latency.as_micros());
        let id = self.new_order(
            req.spec().clone(),
            req.origin().clone(),
            req.decided_at(),
            arrive_at,
            group,
            req.contributions().to_vec(),
            req.tags().to_vec(),
            out,
        );
        if let Some(g) = group {
            self.groups.insert(
                g,
                Group {
                    protection: req.protection().clone(),
                    entry: id,
                    filled: Decimal::ZERO,
                    stop: None,
                    take: None,
                    trail: None,
                    triggered: false,
                },
            );
        }
        if arrive_at <= self.now {
            self.run_timers(out);
        }
        id
    }

    /// Cancels one order. The cancel travels to the exchange with the modelled latency
    /// (the order can still fill meanwhile) and counts on the pair's rate counter; if the
    /// counter refuses it, an `OrderRejected` with `EOrder:Rate limit exceeded` says so and
    /// the order stays open.
    pub fn cancel(&mut self, id: OrderId, now: EventTime, reason: &str, out: &mut Vec<ExecEvent>) {
        let due = now.plus_micros(self.cfg.latency.as_micros());
        if let Some(o) = self.orders.get_mut(&id) {
            o.cancel_due = Some((due, reason.to_string()));
        }
        if due <= self.now {
            self.run_timers(out);
        }
    }

    /// Kraken's AmendOrder: the amend travels to the exchange with the modelled latency
    /// (after the order itself) and is applied there in place, or refused with an
    /// `amend_rejected` record. Refused at once (also journaled) when the order is not open
    /// now or the request changes nothing. Returns the amend's id.
    pub fn amend(&mut self, req: AmendRequest, out: &mut Vec<ExecEvent>) -> Result<u64, Rejection> {
        let (id, time) = (req.order_id, req.decided_at.max(self.now));
        let refusal = if !self.orders.contains_key(&id) {
            Some(("EOrder:Unknown order", format!("order {id} is not open")))
        } else if req.qty.is_none() && req.limit_price.is_none() && req.trigger_price.is_none() {
            Some((
                "EGeneral:Invalid arguments",
                "nothing to amend: give order_qty, limit_price or trigger_price".into(),
            ))
        } else {
            req.qty.filter(|q| *q <= Decimal::ZERO).map(|q| {
                ("EGeneral:Invalid arguments:order_qty", format!("order_qty must be positive, got {q}"))
            })
        };
        if let Some((error, reason)) = refusal {
            let aid = self.next_amend;
            self.next_amend += 1;
            let rejection = reject(error, reason);
            out.push(ExecEvent::AmendRejected {
                time,
                order_id: id,
                amend_id: aid,
                rejection: rejection.clone(),
            });
            return Err(rejection);
        }
        let aid = self.queue_amend(req);
        if self.amends.get(&aid).is_some_and(|a| a.due <= self.now) {
            self.run_timers(out);
        }
        Ok(aid)
    }

    /// Cancels every open order.
    pub fn cancel_all(&mut self, now: EventTime, reason: &str, out: &mut Vec<ExecEvent>) {
        self.now = self.now.max(now);
        let ids: Vec<OrderId> = self.orders.keys().copied().collect();
        for id in ids {
            // Emergency path: counted on the rate counter, never refused.
            if let Some(o) = self.orders.get(&id)
                && o.at_exchange()
            {
                let pen = fees::cancel_penalty(o.rest_age(now));
                let pair = o.spec.pair.clone();
                let tier = self.cfg.tier;
                self.pair_mut(&pair).rate.force_add(now, tier, pen);
            }
            self.drop_order(id, now, reason, out);
        }
    }

    /// Cancels every open order and sends reduce-only market orders closing every position
    /// at once (no latency), against the displayed book; what the book cannot take is
    /// retried on later book events.
    pub fn flatten_all(&mut self, now: EventTime, reason: &str, out: &mut Vec<ExecEvent>) {
        self.cancel_all(now, reason, out);
        let now = self.now;
        let open: Vec<(Symbol, Qty)> = self
            .positions
            .iter()
            .filter(|(_, p)| !p.qty.is_zero())
            .map(|(s, p)| (s.clone(), p.qty))
            .collect();
        for (pair, qty) in open {
            let side = if qty > Decimal::ZERO { Side::Sell } else { Side::Buy };
            let mut spec = OrderSpec::market(pair, side, qty.abs());
            spec.reduce_only = true;
            let id = self.new_order(spec, OrderOrigin::Flatten, now, now, None, Vec::new(), Vec::new(), out);
            self.arrive(id, now, out);
        }
    }

    /// The account for RiskManager and the dashboard.
    pub fn portfolio(&self) -> PortfolioView {
        let mut positions = Vec::new();
        for (pair, p) in &self.positions {
            if p.qty.is_zero() {
                continue;
            }
            let Some(st) = self.pairs.get(pair) else { continue };
            let Some(inst) = &st.inst else { continue };
            let mark = self.pair_mark(pair, p.qty > Decimal::ZERO).unwrap_or_else(|| p.avg_price());
            let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ZERO);
            positions.push(PositionView {
                pair: pair.clone(),
                qty: p.qty,
                avg_price: p.avg_price().round_dp(inst.price_precision + 4),
                mark,
                notional: p.qty.abs() * mark * q2a,
                unrealized: (p.qty * mark - p.basis) * q2a,
            });
        }
        let mut counts: BTreeMap<Symbol, usize> = BTreeMap::new();
        for o in self.orders.values() {
            *counts.entry(o.spec.pair.clone()).or_default() += 1;
        }
        let mut quotes = Vec::new();
        for (pair, st) in &self.pairs {
            let Some(inst) = &st.inst else { continue };
            quotes.push(Quote {
                instrument: inst.clone(),
                bid: st.book.bid().unwrap_or_default(),
                ask: st.book.ask().unwrap_or_default(),
                quote_to_account: self.quote_to_account(&inst.quote).unwrap_or(Decimal::ZERO),
                tradable: self.tradable(pair),
            });
        }
        let cash = self.balance(&self.currency);
        let held = self.held(&self.currency, None, false) + self.locked(&self.currency, None);
        let margin = self.cfg.margin.enabled.then(|| {
            let a = self.margin_account(None);
            MarginView {
                leverage: self.cfg.margin.leverage,
                used_margin: a.used,
                free_margin: a.equity - a.used - a.reserved,
                margin_level: a.level.map(|l| l.round_dp(2)),
                positions: self.margin.len(),
            }
        });
        PortfolioView {
            time: self.now,
            currency: self.currency.clone(),
            equity: self.equity(),
            available_cash: cash - held,
            positions,
            open_orders: counts.into_iter().collect(),
            quotes,
            margin,
        }
    }

    /// Equity in the account currency = cash + Σ qty × mark.
    ///
    /// Computed as Σ over asset balances × the asset's value in the account currency (the
    /// mark of its pair against the account currency, or through another pair's mid), which
    /// is cash + Σ qty × mark when positions are the only non-cash holdings.
    pub fn equity(&self) -> Cash {
        if let Some(e) = self.equity_memo.get() {
            return e;
        }
        let e = self.equity_from_balances();
        self.equity_memo.set(Some(e));
        e
    }

    /// Equity computed afresh (what `equity_memo` holds while it is set): Σ balance × value.
    fn equity_from_balances(&self) -> Cash {
        // Which pairs it reads (marks and mids set `valued` again) decides which pairs' moves
        // make the result stale.
        for st in self.pairs.values() {
            st.valued.set(false);
        }
        self.balances.iter().fold(Decimal::ZERO, |sum, (a, b)| {
            add_holding(sum, *b, || self.asset_value(a, *b >= Decimal::ZERO).unwrap_or_default())
        })
    }

    /// Balances per asset (as Kraken's Balance shows them).
    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.balances.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &ExecStats {
        &self.stats
    }

    /// Event time of the latest event applied (the portfolio view's time).
    pub fn now(&self) -> EventTime {
        self.now
    }

    /// Holds nothing whose value moves with the market: no margin position, no balance but
    /// the account currency's. Equity then changes only with execution events.
    pub fn holds_only_currency(&self) -> bool {
        self.margin.is_empty()
            && self.balances.iter().all(|(asset, b)| b.is_zero() || asset.as_str() == &*self.currency)
    }

    /// Open positions.
    pub fn open_positions(&self) -> usize {
        self.positions.values().filter(|p| !p.qty.is_zero()).count()
    }

    /// Checks equity = cash (fees deducted) + Σ qty × mark, recomputed from scratch.
    ///
    /// Three independent records must agree: the asset balances, the per-pair flows and
    /// positions (qty, basis, realized P&L, fees), and equity. Exact except for the
    /// inverted-mid conversions (tolerance 1e-8 in the account currency).
    pub fn verify_identity(&self) -> Result<(), String> {
        // 1. Balances = initial + Σ fills' flows, per asset.
        let mut expect = self.initial.clone();
        for (pair, p) in &self.positions {
            let inst = self.pairs.get(pair).and_then(|s| s.inst.clone());
            let Some(inst) = inst else {
                return Err(format!("position on {pair} without instrument"));
            };
            *expect.entry(inst.base.to_string()).or_default() += p.base_flow;
            *expect.entry(inst.quote.to_string()).or_default() += p.quote_flow;
            // 2. The position's own records agree with its flows; what is borrowed on the
            //    pair is never more than its short.
            if let Some(m) = self.margin.get(pair)
                && (m.qty <= Decimal::ZERO || m.qty > (-p.qty).max(Decimal::ZERO))
            {
                return Err(format!("{pair}: margin position {} but position qty {}", m.qty, p.qty));
            }
            if p.qty != p.base_flow {
                return Err(format!("{pair}: position qty {} != Σ fill qty {}", p.qty, p.base_flow));
            }
            if p.realized - p.fees - p.basis != p.quote_flow {
                return Err(format!(
                    "{pair}: realized {} − fees {} − basis {} != quote flow {}",
                    p.realized, p.fees, p.basis, p.quote_flow
                ));
            }
        }
        for (asset, want) in &expect {
            let have = self.balance(asset);
            if have != *want {
                return Err(format!("balance {asset} {have} != initial + fills {want}"));
            }
            let initial = self.initial.get(asset).copied().unwrap_or_default();
            // A negative balance is base borrowed for short margin positions, or margin fees
            // the balance could not pay; never more.
            let borrowed: Decimal = self
                .margin
                .iter()
                .filter(|(p, _)| self.inst(p).is_some_and(|i| &*i.base == asset))
                .map(|(_, m)| m.qty)
                .sum::<Decimal>()
                + self.margin_fees_owed.get(asset).copied().unwrap_or_default();
            if have < Decimal::ZERO && initial >= Decimal::ZERO && -have > borrowed {
                return Err(if self.cfg.margin.enabled {
                    format!(
                        "balance {asset} is {have}, beyond the {borrowed} borrowed for short margin positions"
                    )
                } else {
                    format!("balance {asset} is negative ({have}) but shorts are not supported")
                });
            }
        }
        // 3. Equity from balances = initial holdings + Σ (realized − fees + unrealized).
        let value = |a: &str, long: bool| self.asset_value(a, long).unwrap_or_default();
        let mut eq2: Decimal =
            self.initial.iter().map(|(a, b)| *b * value(a, self.balance(a) >= Decimal::ZERO)).sum();
        for (pair, p) in &self.positions {
            if let Some(inst) = self.pairs.get(pair).and_then(|s| s.inst.clone()) {
                let vb = value(&inst.base, self.balance(&inst.base) >= Decimal::ZERO);
                let vq = value(&inst.quote, self.balance(&inst.quote) >= Decimal::ZERO);
                eq2 += vb * p.qty + vq * (p.realized - p.fees - p.basis);
            }
        }
        let eq = self.equity();
        if (eq - eq2).abs() > IDENTITY_TOLERANCE {
            return Err(format!("equity {eq} != initial holdings + realized − fees + unrealized {eq2}"));
        }
        Ok(())
    }
}

#[cfg(test)]
impl PaperExchange {
    /// What the event path remembers to skip work agrees with what it would compute: the
    /// timer floor lies at or before every order's timer, and the excursion's mark is taken
    /// in already. (The remembered equity is checked against a fresh one by the rig.)
    fn check_shortcuts(&self) {
        if let Some((v, floor)) = self.timers
            && v == self.orders.version()
        {
            for o in self.orders.values() {
                self.each_timer(o, false, |t, d| {
                    assert!(
                        floor.is_some_and(|f| f <= t),
                        "order {} {d:?} at {t:?} before floor {floor:?}",
                        o.id
                    )
                });
            }
        }
        // Where the excursion counts as taken in, taking it in again changes no extreme.
        for (pair, st) in &self.pairs {
            if st.excursion_at != Some(self.positions_changed) {
                continue;
            }
            let Some(p) = self.positions.get(pair) else { continue };
            let (Some(t), false) = (&p.trade, p.qty.is_zero()) else { continue };
            let Some(mark) = mark_of(st, self.cfg.mark, p.qty > Decimal::ZERO) else { continue };
            let running = t.realized - t.fees + (p.qty * mark - p.basis);
            assert_eq!(t.max_pnl.max(running).serialize(), t.max_pnl.serialize(), "{pair} max_pnl");
            assert_eq!(t.min_pnl.min(running).serialize(), t.min_pnl.serialize(), "{pair} min_pnl");
        }
    }
}

// ---- internals: orders and timers ----------------------------------------------------------

impl PaperExchange {
    fn pair_mut(&mut self, pair: &Symbol) -> &mut PairState {
        self.pairs.get_or_insert_with(pair, PairState::default)
    }

    fn inst(&self, pair: &str) -> Option<Arc<Instrument>> {
        self.pairs.get(pair).and_then(|s| s.inst.clone())
    }

    fn balance(&self, asset: &str) -> Decimal {
        self.balances.get(asset).copied().unwrap_or_default()
    }

    fn position_qty(&self, pair: &str) -> Qty {
        self.positions.get(pair).map(|p| p.qty).unwrap_or_default()
    }

    fn taker_rate(&self, inst: &Instrument) -> Decimal {
        self.fee_rate(inst, Liquidity::Taker)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_order(
        &mut self,
        spec: OrderSpec,
        origin: OrderOrigin,
        time: EventTime,
        arrive_at: EventTime,
        group: Option<u64>,
        contributions: Vec<Contribution>,
        tags: Vec<String>,
        out: &mut Vec<ExecEvent>,
    ) -> OrderId {
        let id = OrderId(self.next_order);
        self.next_order += 1;
        out.push(ExecEvent::OrderAccepted { time, order_id: id, spec: spec.clone(), origin: origin.clone() });
        let is_child = matches!(origin, OrderOrigin::Protective { .. });
        self.orders.insert(
            id,
            Order {
                id,
                spec,
                origin,
                stage: Stage::Pending,
                arrive_at,
                placed_at: arrive_at,
                filled: Decimal::ZERO,
                queue_ahead: Decimal::ZERO,
                trail_best: None,
                ref_mid: None,
                group,
                is_child,
                chased: false,
                cancel_due: None,
                chase_from: arrive_at,
                reprices: 0,
                amended_at: None,
                contributions,
                tags,
            },
        );
        id
    }

    /// Removes an order that will not fill any more, with an `OrderCanceled`.
    fn drop_order(&mut self, id: OrderId, time: EventTime, reason: &str, out: &mut Vec<ExecEvent>) {
        if self.orders.remove(&id).is_some() {
            out.push(ExecEvent::OrderCanceled { time, order_id: id, reason: reason.to_string() });
        }
    }

    /// Every timer of one order: `f(time it falls due, what it does)`. With `floor`, a
    /// pending arrival is given at `arrive_at`, before any wait for the pair's book: then
    /// every time given is at or before the time the timer can fall due, whatever the book
    /// does meanwhile.
    fn each_timer(&self, o: &Order, floor: bool, mut f: impl FnMut(EventTime, Due)) {
        if o.stage == Stage::Pending {
            // A known pair whose book is untrusted holds arrivals until its next snapshot;
            // an unknown pair arrives at once (and is refused by validation).
            match self.pairs.get(&o.spec.pair) {
                _ if floor => f(o.arrive_at, Due::Arrive),
                Some(st) if st.inst.is_some() && !st.book.valid => {}
                Some(st) if st.inst.is_some() => f(o.arrive_at.max(st.book.valid_since), Due::Arrive),
                _ => f(o.arrive_at, Due::Arrive),
            }
        }
        if let Some((t, _)) = &o.cancel_due {
            // Cancels reach the exchange after the order itself (same latency, FIFO).
            f((*t).max(if o.stage == Stage::Pending { o.arrive_at } else { *t }), Due::Cancel);
        }
        if o.at_exchange() {
            if o.spec.time_in_force == TimeInForce::Gtd
                && let Some(t) = o.spec.expire_time
            {
                f(t, Due::Expire);
            }
            let timeout = self.cfg.entry_timeout.as_micros();
            if timeout > 0
                && o.stage == Stage::Resting
                && o.spec.order_type == OrderType::Limit
                && matches!(o.origin, OrderOrigin::Intent { .. })
            {
                f(o.chase_from.plus_micros(timeout), Due::Chase);
            }
        }
    }

    /// The earliest due action of one order, if any is due by `now`.
    fn due_of(&self, o: &Order, now: EventTime) -> Option<(EventTime, Due)> {
        let mut best: Option<(EventTime, Due)> = None;
        self.each_timer(o, false, |t, d| {
            if t <= now && best.is_none_or(|b| (t, d) < b) {
                best = Some((t, d));
            }
        });
        best
    }

    /// No order timer falls due before this time (`None`: none at all), as far as the
    /// orders are as they were at `version`.
    fn timer_floor(&self) -> Option<EventTime> {
        let mut floor: Option<EventTime> = None;
        for o in self.orders.values() {
            self.each_timer(o, true, |t, _| floor = Some(floor.map_or(t, |f| f.min(t))));
        }
        floor
    }

    /// Whether no timer can be due by `now`: no amend travelling, and the orders unchanged
    /// since their earliest timer was found to lie after `now`.
    #[inline(always)]
    fn no_timer_due(&self, now: EventTime) -> bool {
        self.amends.is_empty()
            && self
                .timers
                .is_some_and(|(v, floor)| v == self.orders.version() && floor.is_none_or(|f| now < f))
    }

    /// Runs every due arrival, cancel, expiry and chase in time order.
    #[inline(always)] // twice per event: the check without a call
    fn run_timers(&mut self, out: &mut Vec<ExecEvent>) {
        if !self.no_timer_due(self.now) {
            self.scan_timers(out); // most events: nothing changed and nothing falls due yet
        }
    }

    /// `run_timers` when a timer may be due.
    fn scan_timers(&mut self, out: &mut Vec<ExecEvent>) {
        let now = self.now;
        loop {
            let mut best: Option<(EventTime, Due, OrderId)> = None;
            for o in self.orders.values() {
                if let Some((t, d)) = self.due_of(o, now)
                    && best.is_none_or(|b| (t, d, o.id) < b)
                {
                    best = Some((t, d, o.id));
                }
            }
            for (aid, a) in &self.amends {
                if let Some(t) = self.amend_due(a, now)
                    && best.is_none_or(|b| (t, Due::Amend, OrderId(*aid)) < b)
                {
                    best = Some((t, Due::Amend, OrderId(*aid)));
                }
            }
            let Some((t, d, id)) = best else { break };
            match d {
                Due::Arrive => self.arrive(id, t, out),
                Due::Cancel => self.requested_cancel(id, t, out),
                Due::Expire => self.drop_order(id, t, "expired", out),
                Due::Chase => self.chase(id, t, out),
                // For amends the id is the amend's own.
                Due::Amend => self.apply_amend(id.0, t, out),
            }
        }
        self.timers = Some((self.orders.version(), self.timer_floor()));
    }

    fn requested_cancel(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get_mut(&id) else { return };
        let Some((_, reason)) = o.cancel_due.take() else { return };
        if o.at_exchange() {
            let pen = fees::cancel_penalty(o.rest_age(time));
            let (pair, spec) = (o.spec.pair.clone(), o.spec.clone());
            let tier = self.cfg.tier;
            let rate = &mut self.pair_mut(&pair).rate;
            if let Err(v) = rate.try_add(time, tier, pen) {
                self.stats.rejected_orders += 1;
                let rejection = reject(
                    "EOrder:Rate limit exceeded",
                    format!("cancel refused: counter {v} + {pen} > {} ({tier:?})", tier.rate_threshold()),
                );
                out.push(ExecEvent::OrderRejected { time, order_id: id, spec, rejection });
                return;
            }
        }
        self.drop_order(id, time, &reason, out);
    }

    /// The entry chase: re-price the resting entry to the touch with an amend while
    /// `chase_reprices` allows, else cancel the resting remainder and send it as a market
    /// order.
    fn chase(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get(&id).cloned() else { return };
        let pair = o.spec.pair.clone();
        if o.reprices < self.cfg.chase_reprices {
            let touch = self.pairs.get(&pair).and_then(|s| match o.spec.side {
                Side::Buy => s.book.bid(),
                Side::Sell => s.book.ask(),
            });
            if let Some(m) = self.orders.get_mut(&id) {
                m.reprices += 1;
                m.chase_from = time;
            }
            if let Some(p) = touch.filter(|p| Some(*p) != o.limit_price()) {
                let req = AmendRequest {
                    order_id: id,
                    qty: None,
                    limit_price: Some(p),
                    trigger_price: None,
                    post_only: o.spec.post_only,
                    decided_at: time,
                };
                self.queue_amend(req);
            }
            return;
        }
        let tier = self.cfg.tier;
        let pen = fees::cancel_penalty(o.rest_age(time));
        self.pair_mut(&pair).rate.force_add(time, tier, pen);
        let rem = o.remaining();
        self.drop_order(id, time, "chase", out);
        let Some(inst) = self.inst(&pair) else { return };
        let ref_price = self.pairs.get(&pair).and_then(|s| s.book.mid()).or(o.spec.price).unwrap_or_default();
        if rem < inst.qty_min || rem * ref_price < inst.cost_min {
            // Kraken would refuse the remainder as an order: leave it unfilled.
            out.push(ExecEvent::OrderCanceled {
                time,
                order_id: id,
                reason: format!("chase_below_minimum: remainder {rem} (ordermin {})", inst.qty_min),
            });
            return;
        }
        let mut spec = OrderSpec::market(pair, o.spec.side, rem);
        spec.reduce_only = o.spec.reduce_only;
        spec.leverage = o.spec.leverage;
        let arrive = time.plus_micros(self.cfg.latency.as_micros());
        let nid = self.new_order(spec, o.origin.clone(), time, arrive, o.group, o.contributions, o.tags, out);
        if let Some(n) = self.orders.get_mut(&nid) {
            n.chased = true;
        }
    }

    /// The order reaches the exchange: rate counter, Kraken's checks, then execution.
    fn arrive(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get(&id).cloned() else { return };
        let pair = o.spec.pair.clone();
        let tier = self.cfg.tier;
        // Every add counts on receipt; our own safety orders are counted but never refused.
        let safety =
            o.is_child || o.chased || matches!(o.origin, OrderOrigin::Flatten | OrderOrigin::Liquidation);
        let rate = &mut self.pair_mut(&pair).rate;
        let verdict = if safety {
            rate.force_add(time, tier, Decimal::ONE);
            Ok(())
        } else {
            rate.try_add(time, tier, Decimal::ONE).map_err(|v| {
                reject(
                    "EOrder:Rate limit exceeded",
                    format!("rate counter {v} + 1 > {} ({tier:?} tier)", tier.rate_threshold()),
                )
            })
        };
        if let Err(rejection) = verdict.and_then(|_| self.validate(&o, time)) {
            self.orders.remove(&id);
            self.stats.rejected_orders += 1;
            out.push(ExecEvent::OrderRejected { time, order_id: id, spec: o.spec, rejection });
            return;
        }
        let mid = self.pairs.get(&pair).and_then(|s| s.book.mid());
        let last = self.pairs.get(&pair).and_then(|s| s.last_trade);
        if let Some(o) = self.orders.get_mut(&id) {
            o.placed_at = time;
            o.chase_from = time;
            o.ref_mid = mid;
            o.trail_best = last.or(mid);
        }
        match o.spec.order_type {
            OrderType::Market => {
                self.set_stage(id, Stage::Working);
                self.work(id, time, out);
            }
            OrderType::Limit => self.start_limit(id, time, out),
            _ => {
                self.set_stage(id, Stage::Waiting);
                // A trigger already passed by the last trade fires at once (as on Kraken).
                if let Some(last) = last {
                    self.check_trigger(id, last, time, out);
                }
            }
        }
    }

    fn set_stage(&mut self, id: OrderId, stage: Stage) {
        if let Some(o) = self.orders.get_mut(&id) {
            o.stage = stage;
        }
    }

    /// Kraken's AddOrder checks, in the order the engine applies them.
    fn validate(&self, o: &Order, time: EventTime) -> Result<(), Rejection> {
        let s = &o.spec;
        let Some(inst) = self.inst(&s.pair) else {
            return Err(reject("EQuery:Unknown asset pair", format!("no instrument data for {}", s.pair)));
        };
        // Trading mode: the pair's status, overlaid by the exchange-wide status.
        let mode = match self.system {
            SystemStatus::Maintenance => PairStatus::Maintenance,
            SystemStatus::CancelOnly => PairStatus::CancelOnly,
            SystemStatus::PostOnly if inst.status == PairStatus::Online => PairStatus::PostOnly,
            _ => inst.status,
        };
        let is_post_limit = s.order_type == OrderType::Limit && s.post_only;
        match mode {
            PairStatus::Online => {}
            PairStatus::CancelOnly => {
                return Err(reject(
                    "EService:Market in cancel_only mode",
                    format!("{} is cancel_only", s.pair),
                ));
            }
            PairStatus::PostOnly if !is_post_limit => {
                return Err(reject(
                    "EService:Market in post_only mode",
                    format!("{} accepts only post-only limit orders", s.pair),
                ));
            }
            PairStatus::LimitOnly if s.order_type != OrderType::Limit => {
                return Err(reject(
                    "EService:Market in limit_only mode",
                    format!("{} accepts only limit orders, got {}", s.pair, s.order_type.as_str()),
                ));
            }
            PairStatus::ReduceOnly if !s.reduce_only => {
                return Err(reject(
                    "EService:Market in reduce_only mode",
                    format!("{} accepts only reduce-only orders", s.pair),
                ));
            }
            PairStatus::PostOnly | PairStatus::LimitOnly | PairStatus::ReduceOnly => {}
            PairStatus::Maintenance | PairStatus::Delisted | PairStatus::WorkInProgress => {
                return Err(reject("EService:Unavailable", format!("{} is {}", s.pair, mode.as_str())));
            }
        }
        // Arguments.
        if s.qty <= Decimal::ZERO
            || decimals(s.qty) > inst.qty_precision
            || !is_multiple(s.qty, inst.qty_increment)
        {
            return Err(reject(
                "EGeneral:Invalid arguments:volume",
                format!(
                    "volume {} (lot decimals {}, increment {})",
                    s.qty, inst.qty_precision, inst.qty_increment
                ),
            ));
        }
        if s.post_only && s.order_type != OrderType::Limit {
            return Err(reject(
                "EGeneral:Invalid arguments:oflags",
                "post-only is for limit orders only".into(),
            ));
        }
        let needs_price = !matches!(s.order_type, OrderType::Market | OrderType::TrailingStop);
        let needs_price2 = matches!(s.order_type, OrderType::StopLossLimit | OrderType::TakeProfitLimit);
        for (name, need, p) in [("price", needs_price, s.price), ("price2", needs_price2, s.price2)] {
            match (need, p) {
                (true, None) => {
                    return Err(reject(
                        &format!("EGeneral:Invalid arguments:{name}"),
                        format!("{} needs {name}", s.order_type.as_str()),
                    ));
                }
                (true, Some(p)) => self.check_price(&inst, name, p)?,
                _ => {}
            }
        }
        if s.order_type == OrderType::TrailingStop {
            match s.trailing {
                Some(TrailingOffset::Absolute(d)) => self.check_price(&inst, "price", d)?,
                Some(TrailingOffset::Percent(p)) if p > Decimal::ZERO && p < Decimal::ONE_HUNDRED => {}
                other => {
                    return Err(reject(
                        "EGeneral:Invalid arguments:price",
                        format!("trailing-stop needs a positive offset, got {other:?}"),
                    ));
                }
            }
        }
        if s.time_in_force == TimeInForce::Gtd && s.expire_time.is_none_or(|t| t <= time) {
            return Err(reject(
                "EGeneral:Invalid arguments:expiretm",
                format!("GTD needs an expiry after the arrival time {time}, got {:?}", s.expire_time),
            ));
        }
        // Minimums.
        if s.qty < inst.qty_min {
            return Err(reject(
                "EOrder:Order minimum not met",
                format!("volume {} < ordermin {}", s.qty, inst.qty_min),
            ));
        }
        let ref_price = self.reference_price(o).unwrap_or_default();
        let cost = s.qty * ref_price;
        if !ref_price.is_zero() && cost < inst.cost_min {
            return Err(reject(
                "EOrder:Cost minimum not met",
                format!(
                    "cost {} × {} = {} < costmin {} {}",
                    s.qty,
                    ref_price,
                    inst.round_cost(cost),
                    inst.cost_min,
                    inst.quote
                ),
            ));
        }
        // Reduce-only against the pair's position.
        let pos = self.position_qty(&s.pair);
        if s.reduce_only {
            if pos.is_zero() {
                return Err(reject(
                    "EOrder:Reduce only:No position exists",
                    format!("reduce-only {} on {} with no position", s.side.as_str(), s.pair),
                ));
            }
            if (pos > Decimal::ZERO) == (s.side == Side::Buy) {
                return Err(reject(
                    "EOrder:Reduce only:Cannot increase position",
                    format!("reduce-only {} would increase the position {pos}", s.side.as_str()),
                ));
            }
        }
        // Post-only that would take: Kraken cancels it at once ("Post only order").
        if is_post_limit {
            let book = self.pairs.get(&s.pair).map(|st| &st.book);
            let price = s.price.unwrap_or_default();
            let touch = match s.side {
                Side::Buy => book.and_then(|b| b.ask()).filter(|a| *a <= price),
                Side::Sell => book.and_then(|b| b.bid()).filter(|b| *b >= price),
            };
            if let Some(t) = touch {
                return Err(reject(
                    "EOrder:Post only order",
                    format!("post-only {} at {price} would take the touch at {t}", s.side.as_str()),
                ));
            }
        }
        // Open orders on the pair.
        let open =
            self.orders.values().filter(|x| x.spec.pair == s.pair && x.at_exchange() && x.id != o.id).count();
        let limit = self.cfg.open_order_limit();
        if open >= limit as usize {
            return Err(reject(
                "EOrder:Orders limit exceeded",
                format!("{open} open orders on {} (limit {limit})", s.pair),
            ));
        }
        if let Some(lev) = s.leverage {
            self.check_leverage(o, &inst, lev)?;
        }
        // Funds, counting what open orders hold. Reduce-only orders hold nothing: they are
        // clamped to the position and to the balances when they fill.
        if !s.reduce_only {
            match s.side {
                Side::Buy => {
                    let need = self.buy_cost_estimate(o, &inst);
                    let bal = self.balance(&inst.quote);
                    // Proceeds of short sales back their margin positions: not spendable.
                    let held =
                        self.held(&inst.quote, Some(o.id), true) + self.locked(&inst.quote, Some(&s.pair));
                    if need > bal - held {
                        return Err(reject(
                            "EOrder:Insufficient funds",
                            format!(
                                "needs {} {q} (cost + taker fee), available {} {q} (balance {bal} − held {held})",
                                inst.round_cost(need),
                                bal - held,
                                q = inst.quote
                            ),
                        ));
                    }
                }
                Side::Sell if s.leverage.is_some() => self.check_margin_sell(o, &inst, time)?,
                Side::Sell => {
                    let bal = self.balance(&inst.base);
                    let held = self.held(&inst.base, Some(o.id), true);
                    if s.qty > bal - held {
                        let why = if !self.cfg.margin.enabled {
                            "shorts are not supported".to_string()
                        } else if inst.margin.is_some() {
                            format!("a short on {} needs a margin order (leverage)", s.pair)
                        } else {
                            format!("{} is not marginable: no shorts", s.pair)
                        };
                        return Err(reject(
                            "EOrder:Insufficient funds",
                            format!(
                                "sell {} {b} but available {} {b} (balance {bal} − held {held}); {why}",
                                s.qty,
                                bal - held,
                                b = inst.base
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_price(&self, inst: &Instrument, name: &str, p: Price) -> Result<(), Rejection> {
        if p <= Decimal::ZERO {
            return Err(reject(
                &format!("EGeneral:Invalid arguments:{name}"),
                format!("{name} {p} must be positive"),
            ));
        }
        if decimals(p) > inst.price_precision {
            return Err(reject(
                &format!(
                    "EOrder:Invalid price:{} price can only be specified up to {} decimals.",
                    inst.symbol, inst.price_precision
                ),
                format!("{name} {p} has {} decimals", decimals(p)),
            ));
        }
        if !is_multiple(p, inst.price_increment) {
            return Err(reject(
                "EOrder:Tick size check failed",
                format!("{name} {p} is not a multiple of the tick {}", inst.price_increment),
            ));
        }
        Ok(())
    }

    /// Price used for the cost minimum and fund holds: the limit, the trigger, or the touch.
    fn reference_price(&self, o: &Order) -> Option<Price> {
        let st = self.pairs.get(&o.spec.pair)?;
        let touch = match o.spec.side {
            Side::Buy => st.book.ask(),
            Side::Sell => st.book.bid(),
        };
        match o.spec.order_type {
            OrderType::Market => touch.or(st.last_trade),
            OrderType::Limit => o.spec.price,
            OrderType::StopLossLimit | OrderType::TakeProfitLimit => o.spec.price2,
            OrderType::StopLoss | OrderType::TakeProfit => o.spec.price,
            OrderType::TrailingStop => st.last_trade.or(touch),
        }
    }

    /// Quote needed for a buy: limit/trigger price × qty, or the walk of the displayed asks
    /// for a market order (beyond the book: its worst level), plus the taker fee.
    fn buy_cost_estimate(&self, o: &Order, inst: &Instrument) -> Cash {
        let qty = o.remaining();
        let rate = Decimal::ONE + self.taker_rate(inst);
        if o.spec.order_type != OrderType::Market {
            return qty * self.reference_price(o).unwrap_or_default() * rate;
        }
        let Some(st) = self.pairs.get(&o.spec.pair) else { return Decimal::ZERO };
        let (mut left, mut cost, mut last) = (qty, Decimal::ZERO, Decimal::ZERO);
        for (price, _, avail) in st.book.levels(Side::Sell) {
            let take = left.min(avail);
            cost += take * price;
            left -= take;
            last = price;
            if left.is_zero() {
                break;
            }
        }
        (cost + left * last) * rate
    }

    /// What open orders hold of `asset` (optionally excluding one order, optionally only
    /// orders already at the exchange).
    fn held(&self, asset: &str, except: Option<OrderId>, at_exchange_only: bool) -> Decimal {
        let mut sum = Decimal::ZERO;
        for o in self.orders.values() {
            if Some(o.id) == except
                || o.spec.reduce_only
                || o.is_margin_sell()
                || (at_exchange_only && !o.at_exchange())
            {
                continue;
            }
            let Some(inst) = self.inst(&o.spec.pair) else { continue };
            match o.spec.side {
                Side::Buy if &*inst.quote == asset => sum += self.buy_cost_estimate(o, &inst),
                Side::Sell if &*inst.base == asset => sum += o.remaining(),
                _ => {}
            }
        }
        sum
    }

    /// Quantity the order may execute now: its remainder, clamped for reduce-only orders to
    /// the position (0 when the position is gone or on the same side).
    fn executable(&self, o: &Order) -> Qty {
        let rem = o.remaining();
        if !o.spec.reduce_only {
            return rem;
        }
        let pos = self.position_qty(&o.spec.pair);
        let reducing = (pos > Decimal::ZERO && o.spec.side == Side::Sell)
            || (pos < Decimal::ZERO && o.spec.side == Side::Buy);
        if reducing { rem.min(pos.abs()) } else { Decimal::ZERO }
    }

    /// Caps `want` at what the balances pay for at `price` (fee included), excluding what
    /// other orders hold. Keeps every balance non-negative.
    fn affordable(&self, o: &Order, inst: &Instrument, price: Price, want: Qty, liq: Liquidity) -> Qty {
        match o.spec.side {
            Side::Sell if o.is_margin_sell() => self.margin_sell_affordable(o, inst, want),
            Side::Sell => {
                let avail = self.balance(&inst.base) - self.held(&inst.base, Some(o.id), true);
                want.min(inst.round_qty_down(avail.max(Decimal::ZERO)))
            }
            Side::Buy => {
                let avail = self.balance(&inst.quote)
                    - self.held(&inst.quote, Some(o.id), true)
                    - self.locked(&inst.quote, Some(&o.spec.pair));
                if avail <= Decimal::ZERO || price <= Decimal::ZERO {
                    return Decimal::ZERO;
                }
                let rate = self.fee_rate(inst, liq);
                let mut q = want.min(inst.round_qty_down(avail / (price * (Decimal::ONE + rate))));
                // Fee rounding can add half a cost unit: step down until it truly fits.
                let step = if inst.qty_increment > Decimal::ZERO {
                    inst.qty_increment
                } else {
                    Decimal::new(1, inst.qty_precision)
                };
                while q > Decimal::ZERO && price * q + inst.round_cost(price * q * rate) > avail {
                    q -= step;
                }
                q.max(Decimal::ZERO)
            }
        }
    }

    /// The pair's rate at the 30-day volume: Kraken's published schedule for the pair when
    /// one arrived (`MarketEvent::FeeSchedule`), else the built-in table.
    fn fee_rate(&self, inst: &Instrument, liq: Liquidity) -> Decimal {
        let volume = self.volume.total(self.now);
        match self.fee_schedules.get(&inst.symbol) {
            Some(f) => f.rate(volume, liq),
            None => fees::fee_rate(volume, liq, fees::is_stable_or_fiat(&inst.base)),
        }
    }

    /// A limit order at the book: the marketable part takes, the rest rests (IOC: cancelled).
    fn start_limit(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(limit) = self.orders.get(&id).and_then(|o| o.limit_price()) else { return };
        let seq = self.orders.get(&id).and_then(|o| self.pairs.get(&o.spec.pair)).map(|s| s.book.seq);
        self.take(id, time, Some(limit), seq.unwrap_or_default(), out);
        let Some(o) = self.orders.get(&id) else { return };
        if o.spec.time_in_force == TimeInForce::Ioc {
            self.drop_order(id, time, "ioc_remainder", out);
            return;
        }
        if o.spec.reduce_only && self.executable(o).is_zero() {
            self.drop_order(id, time, "position_closed", out);
            return;
        }
        // Join the queue behind everything displayed at our price.
        let (pair, side) = (o.spec.pair.clone(), o.spec.side);
        let queue = self.pairs.get(&pair).map(|s| s.book.qty_at(side, limit)).unwrap_or_default();
        if let Some(o) = self.orders.get_mut(&id) {
            o.stage = Stage::Resting;
            o.queue_ahead = queue;
        }
    }

    /// A market-like order executes against the current book; what the book cannot take is
    /// cancelled, except for reduce-only orders (stops, flatten) which keep working.
    fn work(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get(&id) else { return };
        if !self.pairs.get(&o.spec.pair).is_some_and(|s| s.book.valid) {
            return; // retried at the next trusted book
        }
        if o.limit_price().is_some() {
            // A triggered -limit order now behaves as a limit arriving at the book.
            self.start_limit(id, time, out);
            return;
        }
        let seq = self.pairs.get(&o.spec.pair).map(|s| s.book.seq).unwrap_or_default();
        let stopped = self.take(id, time, None, seq, out);
        let Some(o) = self.orders.get(&id) else { return };
        if o.spec.reduce_only {
            if self.executable(o).is_zero() {
                self.drop_order(id, time, "position_closed", out);
            } else if stopped == Some("insufficient_funds") {
                self.drop_order(id, time, "insufficient_funds", out);
            }
            // Otherwise: the displayed book ran out; keep working on later book events.
        } else {
            self.drop_order(id, time, stopped.unwrap_or("book_exhausted"), out);
        }
    }

    /// Takes displayed liquidity up to `limit` (none: any price) as a taker, level by level.
    /// Returns why it stopped early (`insufficient_funds`), if it did.
    fn take(
        &mut self,
        id: OrderId,
        time: EventTime,
        limit: Option<Price>,
        seq: u64,
        out: &mut Vec<ExecEvent>,
    ) -> Option<&'static str> {
        loop {
            let o = self.orders.get(&id)?;
            let want = self.executable(o);
            if want.is_zero() {
                return None;
            }
            let inst = self.inst(&o.spec.pair)?;
            let st = self.pairs.get(&o.spec.pair)?;
            let book_side = o.spec.side.opposite();
            let level = st.book.levels(book_side).find(|l| l.2 > Decimal::ZERO);
            let (price, displayed, avail) = level?;
            let within = match (limit, o.spec.side) {
                (None, _) => true,
                (Some(l), Side::Buy) => price <= l,
                (Some(l), Side::Sell) => price >= l,
            };
            if !within {
                return None;
            }
            let qty = self.affordable(o, &inst, price, want.min(avail), Liquidity::Taker);
            if qty <= Decimal::ZERO {
                return Some("insufficient_funds");
            }
            let pair = o.spec.pair.clone();
            self.pair_mut(&pair).book.consume(book_side, price, qty);
            let cause = FillCause::BookLevel { event_seq: seq, level_price: price, level_qty: displayed };
            self.apply_fill(id, price, qty, Liquidity::Taker, cause, time, out);
        }
    }
}

// ---- internals: market events, triggers, fills ---------------------------------------------

impl PaperExchange {
    fn on_book(&mut self, seq: u64, b: &BookEvent, out: &mut Vec<ExecEvent>) {
        let time = self.now;
        let pair = &b.symbol;
        let st = self.pairs.get_or_insert_with(pair, PairState::default);
        let touch_moved = st.book.apply(seq, b);
        let valid = st.book.valid;
        // Nothing new for the excursion unless the marks moved or a position changes here.
        let positions_at = self.positions_changed;
        let excursion_current = !touch_moved && st.excursion_at == Some(positions_at);
        if touch_moved && st.valued.get() {
            self.equity_memo.set(None); // new marks of a pair that equity reads
        }
        let ids = self.pair_orders(pair, Stage::Resting);
        // Queue ahead of our resting orders can only shrink to what is displayed now.
        for id in &ids {
            let Some(o) = self.orders.get(id) else { continue };
            let Some(price) = o.limit_price() else { continue };
            let side = o.spec.side;
            let Some(st) = self.pairs.get(pair) else { continue };
            let touched = match side {
                Side::Buy => &b.bids,
                Side::Sell => &b.asks,
            };
            let changed = if b.snapshot {
                st.book.covers(side, price)
            } else {
                touched.iter().any(|l| l.price == price)
            };
            if changed {
                let displayed = st.book.qty_at(side, price);
                if let Some(o) = self.orders.get_mut(id) {
                    o.queue_ahead = fill_model::queue_after_level_change(o.queue_ahead, displayed);
                }
            }
        }
        if valid {
            // The requeue above changed no order's stage or priority: still `ids`.
            if !ids.is_empty() {
                self.cross_resting(pair, &ids, seq, time, out);
            }
            // Triggered orders and reduce-only remainders execute on this book.
            for id in self.pair_orders(pair, Stage::Working) {
                if self.orders.get(&id).is_some_and(|o| o.stage == Stage::Working) {
                    self.work(id, time, out);
                }
            }
        }
        if !(excursion_current && self.positions_changed == positions_at) {
            self.update_excursion(pair);
        }
    }

    /// Our orders on `pair` at `stage`, best price first per side, then time priority.
    ///
    /// The loops over them act only on orders at that stage, and nothing they do moves
    /// another order of the pair into it (fills place new children, which are pending):
    /// leaving the others out changes nothing but the work of listing them.
    #[inline]
    fn pair_orders(&self, pair: &str, stage: Stage) -> PairOrders {
        if !self.orders.any_at(stage) {
            return PairOrders::new(); // most events: only the protective children, waiting
        }
        self.list_pair_orders(pair, stage)
    }

    /// `pair_orders` when some order is at `stage`.
    fn list_pair_orders(&self, pair: &str, stage: Stage) -> PairOrders {
        let mut ids = PairOrders::new();
        let mut keyed: SmallVec<[_; 8]> = SmallVec::new();
        for o in self.orders.values() {
            if o.stage == stage && same_pair(&o.spec.pair, pair) {
                let p = o.limit_price().unwrap_or_default();
                keyed.push((o.spec.side, if o.spec.side == Side::Buy { -p } else { p }, o.placed_at, o.id));
            }
        }
        // Keys end with the unique id: an unstable sort gives the one order there is.
        keyed.sort_unstable();
        ids.extend(keyed.into_iter().map(|k| k.3));
        ids
    }

    /// Resting orders the book now crosses (ask ≤ our bid, bid ≥ our ask) fill as makers at
    /// our price against the crossing displayed size. `ids`: `pair_orders(pair, Resting)`.
    fn cross_resting(
        &mut self,
        pair: &Symbol,
        ids: &[OrderId],
        seq: u64,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        for &id in ids {
            while let Some(o) = self.orders.get(&id) {
                if o.stage != Stage::Resting {
                    break;
                }
                let Some(ours) = o.limit_price() else { break };
                let want = self.executable(o);
                let Some(inst) = self.inst(pair) else { break };
                let Some(st) = self.pairs.get(pair) else { break };
                let book_side = o.spec.side.opposite();
                let Some((price, displayed, avail)) = st.book.levels(book_side).find(|l| l.2 > Decimal::ZERO)
                else {
                    break;
                };
                let crossed = match o.spec.side {
                    Side::Buy => price <= ours,
                    Side::Sell => price >= ours,
                };
                if !crossed || want.is_zero() {
                    break;
                }
                let qty = self.affordable(o, &inst, ours, want.min(avail), Liquidity::Maker);
                if qty <= Decimal::ZERO {
                    break;
                }
                self.pair_mut(pair).book.consume(book_side, price, qty);
                let cause = FillCause::BookLevel { event_seq: seq, level_price: price, level_qty: displayed };
                self.apply_fill(id, ours, qty, Liquidity::Maker, cause, time, out);
            }
        }
    }

    fn on_trade(&mut self, seq: u64, t: &TradeEvent, out: &mut Vec<ExecEvent>) {
        let time = self.now;
        let pair = &t.symbol;
        // Nothing new for the excursion unless a mark moved (to the digit) or a position
        // changes here. Only an open trade is worth the comparison (and the mid it reads):
        // without one, taking the excursion in ends at once.
        let positions_at = self.positions_changed;
        let trade_open = self.positions.get(pair).is_some_and(|p| p.trade.is_some() && !p.qty.is_zero());
        let st = self.pairs.get_or_insert_with(pair, PairState::default);
        let marks = |st: &PairState| {
            [true, false].map(|long| mark_of(st, self.cfg.mark, long).map(|m| m.serialize()))
        };
        let marks_before = trade_open.then(|| marks(st));
        st.last_trade = Some(t.price);
        let valid = st.book.valid;
        let excursion_current =
            trade_open && st.excursion_at == Some(positions_at) && marks_before == Some(marks(st));
        if st.valued.get() {
            self.equity_memo.set(None); // a new last trade: marks equity reads may move
        }
        if valid {
            self.trade_through(pair, seq, t, time, out);
        }
        // Triggers read the last trade even while our book copy is untrusted (the trade is
        // a fact); the triggered order then waits for a trusted book.
        for id in self.pair_orders(pair, Stage::Waiting) {
            if self.orders.get(&id).is_some_and(|o| o.stage == Stage::Waiting) {
                self.check_trigger(id, t.price, time, out);
            }
        }
        if !(excursion_current && self.positions_changed == positions_at) {
            self.update_excursion(pair);
        }
    }

    /// Resting limits fill from a trade printed through (or, after the queue ahead, at)
    /// their price, for at most the printed quantity.
    fn trade_through(
        &mut self,
        pair: &Symbol,
        seq: u64,
        t: &TradeEvent,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        // Each side of our book shares the printed quantity, best price first.
        let mut left_buy = t.qty;
        let mut left_sell = t.qty;
        for id in self.pair_orders(pair, Stage::Resting) {
            let Some(o) = self.orders.get(&id) else { continue };
            if o.stage != Stage::Resting {
                continue;
            }
            let Some(ours) = o.limit_price() else { continue };
            let Some(_through) = fill_model::trade_reaches(o.spec.side, ours, t) else { continue };
            let left = if o.spec.side == Side::Buy { &mut left_buy } else { &mut left_sell };
            let (eaten, avail) = fill_model::split_trade(*left, o.queue_ahead, self.cfg.fill_at_touch);
            let want = self.executable(o);
            let Some(inst) = self.inst(pair) else { continue };
            let qty = self.affordable(o, &inst, ours, want.min(avail), Liquidity::Maker);
            let left = if o.spec.side == Side::Buy { &mut left_buy } else { &mut left_sell };
            *left -= eaten + qty.max(Decimal::ZERO);
            if let Some(o) = self.orders.get_mut(&id) {
                o.queue_ahead -= eaten;
            }
            if qty > Decimal::ZERO {
                let cause = FillCause::Trade {
                    event_seq: seq,
                    trade_id: t.trade_id,
                    trade_price: t.price,
                    trade_qty: t.qty,
                };
                self.apply_fill(id, ours, qty, Liquidity::Maker, cause, time, out);
            }
        }
    }

    /// Checks a waiting order's trigger against the last trade `last`.
    fn check_trigger(&mut self, id: OrderId, last: Price, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get_mut(&id) else { return };
        if o.stage != Stage::Waiting {
            return;
        }
        let sell = o.spec.side == Side::Sell;
        let fired = match o.spec.order_type {
            OrderType::StopLoss | OrderType::StopLossLimit => {
                let p = o.spec.price.unwrap_or_default();
                if sell { last <= p } else { last >= p }
            }
            OrderType::TakeProfit | OrderType::TakeProfitLimit => {
                let p = o.spec.price.unwrap_or_default();
                if sell { last >= p } else { last <= p }
            }
            OrderType::TrailingStop => {
                // The best price since placement moves with the market, never back.
                let best = match o.trail_best {
                    Some(b) if sell => b.max(last),
                    Some(b) => b.min(last),
                    None => last,
                };
                o.trail_best = Some(best);
                let offset = match o.spec.trailing {
                    Some(TrailingOffset::Absolute(d)) => d,
                    Some(TrailingOffset::Percent(p)) => best * p / Decimal::ONE_HUNDRED,
                    None => Decimal::ZERO,
                };
                if sell { last <= best - offset } else { last >= best + offset }
            }
            OrderType::Market | OrderType::Limit => false,
        };
        if !fired {
            return;
        }
        o.stage = Stage::Working;
        let (pair, group) = (o.spec.pair.clone(), o.group);
        o.ref_mid = self.pairs.get(&pair).and_then(|s| s.book.mid());
        self.stats.stops_triggered += 1;
        out.push(ExecEvent::OrderTriggered { time, order_id: id, trigger_price: last });
        // One cancels the other: the siblings go, and so does what is left of the entry.
        if let Some(g) = group.and_then(|g| self.groups.get_mut(&g)) {
            g.triggered = true;
            let others: Vec<OrderId> = g.children().filter(|c| *c != id).collect();
            let entry = g.entry;
            for c in others {
                self.drop_order(c, time, "oco", out);
            }
            let entries: Vec<OrderId> = self
                .orders
                .values()
                .filter(|x| x.group == group && !x.is_child && (x.id == entry || x.chased))
                .map(|x| x.id)
                .collect();
            for e in entries {
                self.drop_order(e, time, "protection_triggered", out);
            }
        }
    }

    /// Books one fill: balances, fees, position, trade, stats, protective children.
    #[allow(clippy::too_many_arguments)]
    fn apply_fill(
        &mut self,
        id: OrderId,
        price: Price,
        qty: Qty,
        liquidity: Liquidity,
        cause: FillCause,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let Some(o) = self.orders.get(&id).cloned() else { return };
        let Some(inst) = self.inst(&o.spec.pair) else { return };
        let pair = o.spec.pair.clone();
        let side = o.spec.side;
        let sign = Decimal::from(side.sign());
        let notional = price * qty;
        let fee = inst.round_cost(notional * self.fee_rate(&inst, liquidity));
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);

        // Cash moves by exactly price × qty ± fee; base by exactly qty.
        *self.balances.entry(inst.quote.to_string()).or_default() += -sign * notional - fee;
        *self.balances.entry(inst.base.to_string()).or_default() += sign * qty;
        self.equity_memo.set(None);

        let filled = o.filled + qty;
        let partial = filled < o.spec.qty;
        let slippage = o.ref_mid.map(|m| inst.round_cost((price - m) * qty * sign)).unwrap_or_default();
        self.stats.fills += 1;
        if partial {
            self.stats.partial_fills += 1;
        }
        match liquidity {
            Liquidity::Maker => self.stats.maker_fills += 1,
            Liquidity::Taker => self.stats.taker_fills += 1,
        }
        self.stats.fees_paid += fee * q2a;
        self.stats.slippage_paid += slippage * q2a;
        if !fees::is_stable_or_fiat(&inst.base) {
            self.volume.add(time, notional * q2a);
        }
        let fill_id = self.next_fill;
        self.next_fill += 1;
        out.push(ExecEvent::Fill(Fill {
            fill_id,
            order_id: id,
            pair: pair.clone(),
            side,
            price,
            qty,
            fee,
            fee_currency: inst.quote.clone(),
            liquidity,
            time,
            cause,
            slippage,
            partial,
        }));
        if partial {
            if let Some(m) = self.orders.get_mut(&id) {
                m.filled = filled;
            }
        } else {
            self.orders.remove(&id);
        }

        let pos_before = self.position_qty(&pair);
        let closed = self.book_position(&o, &inst, price, qty, fee, time);
        self.margin_after_fill(&o, &inst, price, qty, pos_before, time, out);
        let p = self.positions.get(&pair).cloned().unwrap_or_default();
        out.push(ExecEvent::Position {
            time,
            pair: pair.clone(),
            qty: p.qty,
            avg_price: p.avg_price().round_dp(inst.price_precision + 4),
            realized_pnl: p.realized - p.fees,
        });
        if let Some(ct) = closed {
            out.push(ExecEvent::TradeClosed(ct));
        }

        // Protective children follow the entry's filled size.
        if !o.is_child
            && !o.spec.reduce_only
            && let Some(g) = o.group
        {
            self.protect(g, side, qty, &inst, time, out);
        }
        // A flat position leaves nothing for reduce-only orders to do.
        if p.qty.is_zero() {
            let ids: Vec<OrderId> = self
                .orders
                .values()
                .filter(|x| x.spec.pair == pair && x.spec.reduce_only)
                .map(|x| x.id)
                .collect();
            for x in ids {
                self.drop_order(x, time, "position_closed", out);
            }
        }
    }

    /// Updates the pair's position and open trade; returns the trade if it closed.
    fn book_position(
        &mut self,
        o: &Order,
        inst: &Instrument,
        price: Price,
        qty: Qty,
        fee: Cash,
        time: EventTime,
    ) -> Option<ClosedTrade> {
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        let mark = self.pairs.get(&inst.symbol).and_then(|s| s.book.mid()).unwrap_or(price);
        self.positions_changed += 1;
        let p = self.positions.get_or_insert_with(&inst.symbol, Position::default);
        let sign = Decimal::from(o.spec.side.sign());
        p.base_flow += sign * qty;
        p.quote_flow += -sign * price * qty - fee;
        p.fees += fee;
        let mut closed = None;
        let mut open_qty = qty;
        let mut open_fee = fee;
        let reducing = (p.qty > Decimal::ZERO && sign < Decimal::ZERO)
            || (p.qty < Decimal::ZERO && sign > Decimal::ZERO);
        if reducing {
            let held = p.qty.abs();
            let close = qty.min(held);
            // The pro-rata basis is rounded to a fixed scale so that every later sum stays
            // within Decimal's 28 digits: the bookkeeping identity then holds exactly.
            let dp = (inst.cost_precision + 6).min(18);
            let released = if close == held { p.basis } else { (p.basis * close / held).round_dp(dp) };
            let realized = -sign * close * price - released;
            let close_fee = if close == qty { fee } else { (fee * close / qty).round_dp(dp) };
            p.basis -= released;
            p.qty += sign * close;
            p.realized += realized;
            open_qty = qty - close;
            open_fee = fee - close_fee;
            if let Some(t) = p.trade.as_mut() {
                t.exit_qty += close;
                t.exit_value += close * price;
                t.exit_time = time;
                t.exit_reason = o.exit_reason();
                t.fees += close_fee;
                t.realized += realized;
                let running = t.realized - t.fees + p.qty * mark - p.basis;
                t.max_pnl = t.max_pnl.max(running);
                t.min_pnl = t.min_pnl.min(running);
            }
            if p.qty.is_zero()
                && let Some(t) = p.trade.take()
            {
                let pnl = t.realized - t.fees;
                let dp = inst.price_precision + 4;
                closed = Some(ClosedTrade {
                    trade_id: self.next_trade,
                    pair: inst.symbol.clone(),
                    side: t.side,
                    qty: t.entry_qty,
                    entry_time: t.entry_time,
                    exit_time: t.exit_time,
                    entry_price: (t.entry_cost / t.entry_qty).round_dp(dp),
                    exit_price: if t.exit_qty.is_zero() {
                        Decimal::ZERO
                    } else {
                        (t.exit_value / t.exit_qty).round_dp(dp)
                    },
                    fees: t.fees * q2a,
                    pnl: pnl * q2a,
                    max_pnl: t.max_pnl.max(pnl).max(Decimal::ZERO) * q2a,
                    max_drawdown: t.min_pnl.min(pnl).min(Decimal::ZERO) * q2a,
                    contributions: t.contributions,
                    tags: t.tags,
                    exit_reason: t.exit_reason.to_string(),
                });
                self.next_trade += 1;
            }
        }
        if open_qty > Decimal::ZERO {
            p.basis += sign * open_qty * price;
            p.qty += sign * open_qty;
            let t = p.trade.get_or_insert_with(|| OpenTrade {
                side: o.spec.side,
                entry_time: time,
                entry_qty: Decimal::ZERO,
                entry_cost: Decimal::ZERO,
                exit_qty: Decimal::ZERO,
                exit_value: Decimal::ZERO,
                exit_time: time,
                exit_reason: "",
                fees: Decimal::ZERO,
                realized: Decimal::ZERO,
                max_pnl: Decimal::ZERO,
                min_pnl: Decimal::ZERO,
                contributions: o.contributions.clone(),
                tags: o.tags.clone(),
            });
            t.entry_qty += open_qty;
            t.entry_cost += open_qty * price;
            t.fees += open_fee;
            let running = t.realized - t.fees + p.qty * mark - p.basis;
            t.max_pnl = t.max_pnl.max(running);
            t.min_pnl = t.min_pnl.min(running);
        }
        closed
    }

    /// Tracks the open trade's best and worst running P&L at the current mark.
    fn update_excursion(&mut self, pair: &Symbol) {
        if let Some(st) = self.pairs.get_mut(pair) {
            st.excursion_at = Some(self.positions_changed);
        }
        let Some(p) = self.positions.get_mut_adopting(pair) else { return };
        if p.qty.is_zero() || p.trade.is_none() {
            return;
        }
        let long = p.qty > Decimal::ZERO;
        let Some(mark) = self.pairs.get(pair).and_then(|st| mark_of(st, self.cfg.mark, long)) else { return };
        let unrealized = p.qty * mark - p.basis;
        if let Some(t) = p.trade.as_mut() {
            let running = t.realized - t.fees + unrealized;
            t.max_pnl = t.max_pnl.max(running);
            t.min_pnl = t.min_pnl.min(running);
        }
    }

    /// Places or resizes the group's reduce-only OCO children for the entry's filled size.
    fn protect(
        &mut self,
        g: u64,
        entry_side: Side,
        qty: Qty,
        inst: &Instrument,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let Some(group) = self.groups.get_mut(&g) else { return };
        group.filled += qty;
        if group.triggered {
            return;
        }
        let group = group.clone();
        let size = inst.round_qty_down(group.filled);
        let tier = self.cfg.tier;
        let arrive = time.plus_micros(self.cfg.latency.as_micros());
        let prot = group.protection.clone();
        let kinds = [
            (OrderType::StopLoss, prot.stop_loss, None, group.stop),
            (OrderType::TakeProfit, prot.take_profit, None, group.take),
            (OrderType::TrailingStop, None, prot.trailing, group.trail),
        ];
        for (ty, price, trailing, existing) in kinds {
            if price.is_none() && trailing.is_none() {
                continue;
            }
            if let Some(cid) = existing.filter(|c| self.orders.contains_key(c)) {
                // Resize (Kraken's amend) unless it already triggered.
                let Some(c) = self.orders.get_mut(&cid) else { continue };
                if matches!(c.stage, Stage::Pending | Stage::Waiting) && c.spec.qty != size {
                    c.spec.qty = size;
                    let (placed, at_ex) = (c.placed_at, c.at_exchange());
                    if at_ex {
                        let pen = fees::amend_penalty(time.micros_since(placed));
                        self.pair_mut(&inst.symbol).rate.force_add(time, tier, pen);
                    }
                }
                continue;
            }
            // Kraken refuses children below the minimums: wait until the entry is big enough.
            let ref_price =
                price.or(self.pairs.get(&inst.symbol).and_then(|s| s.book.mid())).unwrap_or_default();
            if size < inst.qty_min || size * ref_price < inst.cost_min {
                continue;
            }
            let spec = OrderSpec {
                order_type: ty,
                price,
                trailing,
                reduce_only: true,
                ..OrderSpec::market(inst.symbol.clone(), entry_side.opposite(), size)
            };
            let origin = OrderOrigin::Protective { parent: group.entry };
            let cid = self.new_order(spec, origin, time, arrive, Some(g), Vec::new(), Vec::new(), out);
            if let Some(gm) = self.groups.get_mut(&g) {
                match ty {
                    OrderType::StopLoss => gm.stop = Some(cid),
                    OrderType::TakeProfit => gm.take = Some(cid),
                    _ => gm.trail = Some(cid),
                }
            }
        }
    }
}

// ---- internals: short margin positions ----------------------------------------------------

impl PaperExchange {
    /// Refuses a `leverage` the account, the side or the pair cannot take.
    fn check_leverage(&self, o: &Order, inst: &Instrument, lev: u32) -> Result<(), Rejection> {
        let s = &o.spec;
        if !self.cfg.margin.enabled {
            return Err(reject(
                "EGeneral:Invalid arguments:leverage",
                "margin orders need execution.margin.enabled: true".into(),
            ));
        }
        if s.side == Side::Buy && !s.reduce_only {
            return Err(reject(
                "EGeneral:Invalid arguments:leverage",
                "only sells open margin positions here (short margin positions; longs are spot)".into(),
            ));
        }
        let Some(t) = &inst.margin else {
            return Err(reject("EOrder:Cannot open position", format!("{} is not marginable", s.pair)));
        };
        if lev < 2 || lev > t.max_leverage_sell {
            return Err(reject(
                "EGeneral:Invalid arguments:leverage",
                format!("{} offers leverage 2…{} for shorts, got {lev}", s.pair, t.max_leverage_sell),
            ));
        }
        Ok(())
    }

    /// Kraken's margin checks for a sell with `leverage`: the part that closes a long on the
    /// pair needs the base like a spot sell; the part that goes short needs margin level,
    /// position size, allowance and free margin.
    fn check_margin_sell(&self, o: &Order, inst: &Instrument, _time: EventTime) -> Result<(), Rejection> {
        let s = &o.spec;
        let rem = o.remaining();
        let closing = rem.min(self.position_qty(&s.pair).max(Decimal::ZERO));
        if closing > Decimal::ZERO {
            let avail = self.balance(&inst.base) - self.held(&inst.base, Some(o.id), true);
            if closing > avail {
                return Err(reject(
                    "EOrder:Insufficient funds",
                    format!("closing {closing} {b} of the long but available {avail} {b}", b = inst.base),
                ));
            }
        }
        let borrow = rem - closing;
        if borrow <= Decimal::ZERO {
            return Ok(());
        }
        let Some(terms) = &inst.margin else {
            return Err(reject("EOrder:Cannot open position", format!("{} is not marginable", s.pair)));
        };
        let lev = s.leverage.unwrap_or(2);
        let acct = self.margin_account(Some(o.id));
        if let Some(level) = acct.level
            && level <= Decimal::ONE_HUNDRED
        {
            return Err(reject(
                "EOrder:Margin level too low",
                format!("margin level {} % ≤ 100 %: no new margin positions", level.round_dp(2)),
            ));
        }
        let (on_pair, of_asset) = self.borrowed(inst, Some(o.id), true);
        if let Some(limit) = terms.short_position_limit
            && on_pair + borrow > limit
        {
            return Err(reject(
                "EOrder:Margin position size exceeded",
                format!(
                    "short {on_pair} + {borrow} {b} > short_position_limit {limit} {b} on {}",
                    s.pair,
                    b = inst.base
                ),
            ));
        }
        if let Some(allowance) = self.cfg.margin.allowance(&inst.base)
            && of_asset + borrow > allowance
        {
            return Err(reject(
                "EOrder:Margin allowance exceeded",
                format!(
                    "borrowed {of_asset} + {borrow} {b} > margin allowance {allowance} {b}",
                    b = inst.base
                ),
            ));
        }
        let price = self.reference_price(o).unwrap_or_default();
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        let need = margin::used_margin(borrow, price, lev) * q2a;
        let free = acct.equity - acct.used - acct.reserved;
        if need > free {
            return Err(reject(
                "EOrder:Insufficient margin",
                format!(
                    "needs {} {c} of margin ({borrow} × {price} / {lev}), free margin {} {c} (equity {} − used {} − reserved {})",
                    need.round_dp(8),
                    free.round_dp(8),
                    acct.equity.round_dp(8),
                    acct.used.round_dp(8),
                    acct.reserved.round_dp(8),
                    c = self.currency
                ),
            ));
        }
        Ok(())
    }

    /// What a margin sell may execute now: the long part up to the base available, the
    /// short part up to the position limit and the margin allowance.
    fn margin_sell_affordable(&self, o: &Order, inst: &Instrument, want: Qty) -> Qty {
        let closing = want.min(self.position_qty(&o.spec.pair).max(Decimal::ZERO));
        if closing > Decimal::ZERO {
            let avail =
                (self.balance(&inst.base) - self.held(&inst.base, Some(o.id), true)).max(Decimal::ZERO);
            if avail < closing {
                return inst.round_qty_down(avail);
            }
        }
        let mut room = want - closing;
        let (on_pair, of_asset) = self.borrowed(inst, Some(o.id), false);
        if let Some(limit) = inst.margin.as_ref().and_then(|t| t.short_position_limit) {
            room = room.min(limit - on_pair);
        }
        if let Some(a) = self.cfg.margin.allowance(&inst.base) {
            room = room.min(a - of_asset);
        }
        inst.round_qty_down(closing + room.max(Decimal::ZERO))
    }

    /// Base borrowed (on this pair, of this base asset), optionally with what open margin
    /// sells at the exchange (other than `except`) would borrow.
    fn borrowed(&self, inst: &Instrument, except: Option<OrderId>, with_orders: bool) -> (Qty, Qty) {
        let (mut on_pair, mut of_asset) = (Decimal::ZERO, Decimal::ZERO);
        for (pair, m) in &self.margin {
            if self.inst(pair).is_some_and(|i| i.base == inst.base) {
                of_asset += m.qty;
                if *pair == inst.symbol {
                    on_pair += m.qty;
                }
            }
        }
        if with_orders {
            for o in self.orders.values() {
                if !o.is_margin_sell() || Some(o.id) == except || !o.at_exchange() {
                    continue;
                }
                let Some(i) = self.inst(&o.spec.pair) else { continue };
                if i.base != inst.base {
                    continue;
                }
                let b = self.borrow_part(o);
                of_asset += b;
                if o.spec.pair == inst.symbol {
                    on_pair += b;
                }
            }
        }
        (on_pair, of_asset)
    }

    /// The part of an open margin sell's remainder that would go short.
    fn borrow_part(&self, o: &Order) -> Qty {
        let rem = o.remaining();
        rem - rem.min(self.position_qty(&o.spec.pair).max(Decimal::ZERO))
    }

    /// Proceeds of short sales in `quote` (except on `except_pair`): they back the margin
    /// positions and cannot pay for spot buys.
    fn locked(&self, quote: &str, except_pair: Option<&str>) -> Cash {
        self.margin
            .iter()
            .filter(|(p, _)| Some(&***p) != except_pair && self.inst(p).is_some_and(|i| &*i.quote == quote))
            .map(|(_, m)| m.proceeds)
            .sum()
    }

    /// Equity, used margin, margin reserved by open margin sells (other than `except`), and
    /// the margin level, in the account currency.
    fn margin_account(&self, except: Option<OrderId>) -> MarginAccount {
        let mut a = MarginAccount { equity: self.equity(), ..Default::default() };
        for (pair, m) in &self.margin {
            let Some(inst) = self.inst(pair) else { continue };
            let mark = self.pair_mark(pair, false).unwrap_or_else(|| m.proceeds / m.qty);
            a.used += m.used_margin(mark) * self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        }
        for o in self.orders.values() {
            if !o.is_margin_sell() || Some(o.id) == except || !o.at_exchange() {
                continue;
            }
            let Some(inst) = self.inst(&o.spec.pair) else { continue };
            let price = self.reference_price(o).unwrap_or_default();
            let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
            a.reserved += margin::used_margin(self.borrow_part(o), price, o.spec.leverage.unwrap_or(2)) * q2a;
        }
        a.level = margin::margin_level(a.equity, a.used);
        a
    }

    /// Margin bookkeeping of one fill: a margin sell borrows what takes the pair below zero
    /// (opening fee on it); a buy repays the pair's borrowed base first.
    #[allow(clippy::too_many_arguments)]
    fn margin_after_fill(
        &mut self,
        o: &Order,
        inst: &Instrument,
        price: Price,
        qty: Qty,
        pos_before: Qty,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let pair = inst.symbol.clone();
        if o.is_margin_sell() {
            let borrowed = qty - qty.min(pos_before.max(Decimal::ZERO));
            if borrowed <= Decimal::ZERO {
                return;
            }
            let pct = self.cfg.margin.fee_pct(&inst.base);
            let lev = o.spec.leverage.unwrap_or(2);
            let m = self.margin.entry(pair.clone()).or_insert_with(|| MarginPosition {
                qty: Decimal::ZERO,
                proceeds: Decimal::ZERO,
                leverage: lev,
                opened_at: time,
                next_rollover: time.plus_micros(margin::ROLLOVER_MICROS),
                fee_pct: pct,
                liquidating: false,
            });
            m.qty += borrowed;
            m.proceeds += borrowed * price;
            let pct = m.fee_pct;
            self.charge_margin_fee(&pair, inst, "opening", borrowed, price, pct, time, out);
        } else if o.spec.side == Side::Buy
            && let Some(m) = self.margin.get_mut(&pair)
        {
            m.repay(qty);
            if m.qty <= Decimal::ZERO {
                self.margin.remove(&pair);
            }
        }
    }

    /// Charges a margin fee on `qty` borrowed base valued at `price` (quote currency).
    #[allow(clippy::too_many_arguments)]
    fn charge_margin_fee(
        &mut self,
        pair: &Symbol,
        inst: &Instrument,
        kind: &str,
        qty: Qty,
        price: Price,
        pct: Decimal,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let fee = inst.round_cost(margin::fee(qty, price, pct));
        if fee <= Decimal::ZERO {
            return;
        }
        *self.balances.entry(inst.quote.to_string()).or_default() -= fee;
        self.equity_memo.set(None);
        *self.margin_fees_owed.entry(inst.quote.to_string()).or_default() += fee;
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        self.positions_changed += 1;
        let p = self.positions.get_or_insert_with(pair, Position::default);
        p.fees += fee;
        p.quote_flow -= fee;
        if let Some(t) = p.trade.as_mut() {
            t.fees += fee;
        }
        self.stats.margin_fees_paid += fee * q2a;
        out.push(ExecEvent::MarginFee {
            time,
            pair: pair.clone(),
            kind: kind.to_string(),
            qty,
            price,
            rate_pct: pct,
            fee,
            currency: inst.quote.clone(),
        });
    }

    /// Rollover fees due by now (every 4 hours of event time after the opening), in time
    /// order, on the borrowed quantity valued at the pair's mid.
    fn charge_rollovers(&mut self, out: &mut Vec<ExecEvent>) {
        let now = self.now;
        loop {
            let due = self
                .margin
                .iter()
                .filter(|(_, m)| m.next_rollover <= now)
                .map(|(p, m)| (m.next_rollover, p.clone()))
                .min();
            let Some((at, pair)) = due else { break };
            let Some(inst) = self.inst(&pair) else { break };
            let Some(m) = self.margin.get_mut(&pair) else { break };
            m.next_rollover = at.plus_micros(margin::ROLLOVER_MICROS);
            let (qty, pct, avg) = (m.qty, m.fee_pct, m.proceeds / m.qty);
            let price = self.mid_of(&pair).unwrap_or(avg);
            self.charge_margin_fee(&pair, &inst, "rollover", qty, price, pct, at, out);
        }
    }

    /// Margin level watch: a `margin_call` record when it falls below the call level, a
    /// forced liquidation of every short margin position at or below the stop level.
    fn check_margin(&mut self, out: &mut Vec<ExecEvent>) {
        if self.margin.is_empty() {
            self.margin_call_active = false;
            return;
        }
        let working: Vec<Symbol> = self
            .orders
            .values()
            .filter(|o| o.origin == OrderOrigin::Liquidation)
            .map(|o| o.spec.pair.clone())
            .collect();
        for (pair, m) in self.margin.iter_mut() {
            if m.liquidating && !working.contains(pair) {
                m.liquidating = false; // the liquidation order is gone: retry if still needed
            }
        }
        let acct = self.margin_account(None);
        let Some(level) = acct.level else { return };
        let (mut call, mut stop) = (0, 0);
        for pair in self.margin.keys() {
            let t = self.inst(pair).and_then(|i| i.margin.clone());
            call = call.max(t.as_ref().map_or(MarginTerms::KRAKEN_MARGIN_CALL, |t| t.margin_call));
            stop = stop.max(t.as_ref().map_or(MarginTerms::KRAKEN_MARGIN_STOP, |t| t.margin_stop));
        }
        let now = self.now;
        if level >= Decimal::from(call) {
            self.margin_call_active = false;
        } else if !self.margin_call_active {
            self.margin_call_active = true;
            self.stats.margin_calls += 1;
            out.push(ExecEvent::MarginCall {
                time: now,
                margin_level: level.round_dp(2),
                equity: acct.equity,
                used_margin: acct.used.round_dp(8),
                margin_call: call,
            });
        }
        if level > Decimal::from(stop) {
            return;
        }
        // Oldest position first, as Kraken liquidates (FIFO).
        let mut targets: Vec<(EventTime, Symbol, Qty)> = self
            .margin
            .iter()
            .filter(|(_, m)| !m.liquidating)
            .map(|(p, m)| (m.opened_at, p.clone(), m.qty))
            .collect();
        targets.sort();
        for (_, pair, qty) in targets {
            // Orders that would add to the short go first.
            let adding: Vec<OrderId> = self
                .orders
                .values()
                .filter(|o| o.spec.pair == pair && o.is_margin_sell())
                .map(|o| o.id)
                .collect();
            for id in adding {
                self.drop_order(id, now, "liquidation", out);
            }
            if let Some(m) = self.margin.get_mut(&pair) {
                m.liquidating = true;
            }
            self.stats.liquidations += 1;
            out.push(ExecEvent::MarginLiquidation {
                time: now,
                pair: pair.clone(),
                order_id: OrderId(self.next_order),
                qty,
                margin_level: level.round_dp(2),
                equity: acct.equity,
                used_margin: acct.used.round_dp(8),
                margin_stop: stop,
            });
            let mut spec = OrderSpec::market(pair, Side::Buy, qty);
            spec.reduce_only = true;
            let id =
                self.new_order(spec, OrderOrigin::Liquidation, now, now, None, Vec::new(), Vec::new(), out);
            self.arrive(id, now, out);
        }
    }
}

// ---- internals: amends ---------------------------------------------------------------------

impl PaperExchange {
    fn queue_amend(&mut self, req: AmendRequest) -> u64 {
        let aid = self.next_amend;
        self.next_amend += 1;
        let due = req.decided_at.plus_micros(self.cfg.latency.as_micros());
        self.amends.insert(aid, PendingAmend { req, due });
        aid
    }

    /// When an amend can be handled: after its latency, and not before the order itself has
    /// reached the exchange (FIFO); at once if the order is gone.
    fn amend_due(&self, a: &PendingAmend, now: EventTime) -> Option<EventTime> {
        let t = match self.orders.get(&a.req.order_id) {
            None => a.due,
            Some(o) if o.at_exchange() => a.due,
            Some(_) => return None,
        };
        (t <= now).then_some(t)
    }

    fn amend_rejected(
        &mut self,
        aid: u64,
        order_id: OrderId,
        time: EventTime,
        error: &str,
        reason: String,
        out: &mut Vec<ExecEvent>,
    ) {
        out.push(ExecEvent::AmendRejected {
            time,
            order_id,
            amend_id: aid,
            rejection: reject(error, reason),
        });
    }

    /// The order as the amend would leave it, checked with Kraken's AddOrder rules.
    fn amended(&self, o: &Order, req: &AmendRequest, time: EventTime) -> Result<Order, Rejection> {
        let ty = o.spec.order_type;
        if req.limit_price.is_some() && o.limit_price().is_none() {
            return Err(reject(
                "EGeneral:Invalid arguments:limit_price",
                format!("a {} order has no limit price", ty.as_str()),
            ));
        }
        if req.trigger_price.is_some() {
            let has_trigger = matches!(
                ty,
                OrderType::StopLoss
                    | OrderType::TakeProfit
                    | OrderType::StopLossLimit
                    | OrderType::TakeProfitLimit
            );
            if !has_trigger {
                return Err(reject(
                    "EGeneral:Invalid arguments:trigger_price",
                    format!("a {} order has no trigger price", ty.as_str()),
                ));
            }
            if o.stage != Stage::Waiting {
                return Err(reject(
                    "EGeneral:Invalid arguments:trigger_price",
                    format!("order {} has already triggered", o.id),
                ));
            }
        }
        let mut n = o.clone();
        if let Some(q) = req.qty {
            n.spec.qty = q;
        }
        if let Some(p) = req.limit_price {
            match ty {
                OrderType::Limit => n.spec.price = Some(p),
                _ => n.spec.price2 = Some(p),
            }
        }
        if let Some(p) = req.trigger_price {
            n.spec.price = Some(p);
        }
        let mut check = n.clone();
        // Kraken's amend `post_only`: this price change must rest, not take.
        check.spec.post_only |= req.post_only && req.limit_price.is_some() && ty == OrderType::Limit;
        self.validate(&check, time)?;
        Ok(n)
    }

    /// An amend reaches the exchange: rate counter, then the order is changed in place or
    /// the amend refused with Kraken's error.
    fn apply_amend(&mut self, aid: u64, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(a) = self.amends.remove(&aid) else { return };
        let req = a.req;
        let id = req.order_id;
        let Some(o) = self.orders.get(&id).cloned() else {
            let why = format!("order {id} is no longer open (filled or cancelled before the amend arrived)");
            self.amend_rejected(aid, id, time, "EOrder:Unknown order", why, out);
            return;
        };
        let below_fill = req.qty.is_some_and(|q| q <= o.filled);
        // An amend that cancels the remainder pays the cancel penalty (Kraken's amends guide).
        let age = o.rest_age(time);
        let pen = if below_fill { fees::cancel_penalty(age) } else { fees::amend_penalty(age) };
        let tier = self.cfg.tier;
        let pair = o.spec.pair.clone();
        if let Err(v) = self.pair_mut(&pair).rate.try_add(time, tier, pen) {
            let why = format!("amend refused: counter {v} + {pen} > {} ({tier:?})", tier.rate_threshold());
            self.amend_rejected(aid, id, time, "EOrder:Rate limit exceeded", why, out);
            return;
        }
        if below_fill {
            // Amended to what already filled: the remainder is cancelled.
            self.stats.amends += 1;
            out.push(ExecEvent::OrderAmended {
                time,
                order_id: id,
                amend_id: aid,
                qty: o.filled,
                price: o.spec.price,
                price2: o.spec.price2,
                queue_kept: true,
                penalty: pen,
            });
            self.drop_order(id, time, "amended_below_filled", out);
            return;
        }
        let n = match self.amended(&o, &req, time) {
            Ok(n) => n,
            Err(r) => {
                out.push(ExecEvent::AmendRejected { time, order_id: id, amend_id: aid, rejection: r });
                return;
            }
        };
        let price_changed = n.limit_price() != o.limit_price();
        let queue_kept = !price_changed && n.spec.qty <= o.spec.qty;
        let trigger_changed = n.spec.price != o.spec.price && o.spec.order_type.is_triggered();
        let (qty, price, price2) = (n.spec.qty, n.spec.price, n.spec.price2);
        if let Some(m) = self.orders.get_mut(&id) {
            m.spec = n.spec;
            m.amended_at = Some(time);
            if !queue_kept {
                m.placed_at = time; // time priority lost
            }
        }
        self.stats.amends += 1;
        out.push(ExecEvent::OrderAmended {
            time,
            order_id: id,
            amend_id: aid,
            qty,
            price,
            price2,
            queue_kept,
            penalty: pen,
        });
        match o.stage {
            // A new price (or more size) joins the back of the queue at its price; what is
            // marketable at the new price takes at once.
            Stage::Resting if !queue_kept => self.start_limit(id, time, out),
            Stage::Waiting if trigger_changed => {
                if let Some(last) = self.pairs.get(&pair).and_then(|s| s.last_trade) {
                    self.check_trigger(id, last, time, out);
                }
            }
            _ => {}
        }
    }
}

// ---- internals: valuation ------------------------------------------------------------------

impl PaperExchange {
    fn tradable(&self, pair: &str) -> bool {
        let Some(st) = self.pairs.get(pair) else { return false };
        let Some(inst) = &st.inst else { return false };
        let mode_ok =
            matches!(inst.status, PairStatus::Online | PairStatus::LimitOnly | PairStatus::PostOnly)
                && matches!(self.system, SystemStatus::Online | SystemStatus::PostOnly);
        st.book.valid && st.book.bid().is_some() && st.book.ask().is_some() && mode_ok
    }

    /// The pair's mark per the configured convention (`long`: the side of the holding).
    fn pair_mark(&self, pair: &str, long: bool) -> Option<Price> {
        mark_of(self.pairs.get(pair)?, self.cfg.mark, long)
    }

    fn mid_of(&self, pair: &str) -> Option<Price> {
        let st = self.pairs.get(pair)?;
        st.book.mid().or(st.last_trade)
    }

    /// Value of one unit of a currency in the account currency, through mids (1 for the
    /// account currency; via `X/ACC`, or the inverse of `ACC/X`).
    fn quote_to_account(&self, asset: &str) -> Option<Decimal> {
        if asset == &*self.currency {
            return Some(Decimal::ONE);
        }
        for st in self.pairs.values() {
            let Some(inst) = &st.inst else { continue };
            if &*inst.base == asset
                && inst.quote == self.currency
                && let Some(m) = valued_mid(st)
            {
                return Some(m);
            }
        }
        for st in self.pairs.values() {
            let Some(inst) = &st.inst else { continue };
            if inst.base == self.currency
                && &*inst.quote == asset
                && let Some(m) = valued_mid(st).filter(|m| !m.is_zero())
            {
                return Some(Decimal::ONE / m);
            }
        }
        None
    }

    /// Value of one unit of `asset` held (`long`) in the account currency: the mark of its
    /// pair against the account currency, else its mark against another currency times that
    /// currency's value through mids (ETH in a USD account via ETH/BTC × BTC/USD).
    fn asset_value(&self, asset: &str, long: bool) -> Option<Decimal> {
        if asset == &*self.currency {
            return Some(Decimal::ONE);
        }
        let mut via = None;
        for st in self.pairs.values() {
            let Some(inst) = &st.inst else { continue };
            if &*inst.base != asset {
                continue;
            }
            st.valued.set(true);
            let Some(m) = mark_of(st, self.cfg.mark, long) else { continue };
            if inst.quote == self.currency {
                return Some(m);
            }
            if via.is_none() {
                via = self.quote_to_account(&inst.quote).map(|q| m * q);
            }
        }
        via.or_else(|| self.quote_to_account(asset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::market::{Level, TopOfBook};
    use crate::core::orders::{RiskApproval, Sealed};
    use rust_decimal_macros::dec;

    /// An approval as the risk core would give it (tests live inside `crate::core`).
    pub(crate) fn approval_for_tests() -> RiskApproval {
        RiskApproval { _sealed: Sealed::new_for_risk() }
    }

    const P: &str = "BTC/USD";

    fn t(ms: i64) -> EventTime {
        EventTime::from_millis(ms)
    }

    fn instrument(symbol: &str, base: &str, quote: &str) -> Instrument {
        Instrument {
            symbol: symbol.into(),
            base: base.into(),
            quote: quote.into(),
            status: PairStatus::Online,
            price_precision: 1,
            qty_precision: 8,
            cost_precision: 5,
            price_increment: dec!(0.1),
            qty_increment: dec!(0.00000001),
            qty_min: dec!(0.00005),
            cost_min: dec!(0.5),
            marginable: false,
            margin: None,
        }
    }

    fn levels(v: &[(Decimal, Decimal)]) -> Vec<Level> {
        v.iter().map(|&(price, qty)| Level { price, qty }).collect()
    }

    struct Rig {
        ex: PaperExchange,
        seq: u64,
    }

    impl Rig {
        fn new(cfg: ExecutionConfig, usd: Decimal) -> Rig {
            let bal = BTreeMap::from([("USD".to_string(), usd)]);
            Rig::with(cfg, bal, vec![instrument(P, "BTC", "USD")])
        }
        fn with(cfg: ExecutionConfig, bal: BTreeMap<String, Decimal>, insts: Vec<Instrument>) -> Rig {
            let mut r = Rig { ex: PaperExchange::new(&cfg, "USD", &bal), seq: 0 };
            for i in insts {
                r.ev(MarketEvent::Instrument { instrument: Arc::new(i), time: t(0) });
            }
            r
        }
        fn ev(&mut self, e: MarketEvent) -> Vec<ExecEvent> {
            self.seq += 1;
            let mut out = Vec::new();
            self.ex.on_event(self.seq, &e, &mut out);
            self.ex.verify_identity().unwrap();
            self.ex.check_shortcuts();
            // The remembered equity is the one computed afresh, digit for digit.
            assert_eq!(self.ex.equity().serialize(), self.ex.equity_from_balances().serialize());
            out
        }
        fn book_on(
            &mut self,
            pair: &str,
            ms: i64,
            snapshot: bool,
            bids: &[(Decimal, Decimal)],
            asks: &[(Decimal, Decimal)],
        ) -> Vec<ExecEvent> {
            self.ev(MarketEvent::Book(BookEvent {
                symbol: pair.into(),
                time: t(ms),
                snapshot,
                depth: 10,
                bids: levels(bids).into(),
                asks: levels(asks).into(),
                top: TopOfBook::default(),
            }))
        }
        fn book(
            &mut self,
            ms: i64,
            snapshot: bool,
            bids: &[(Decimal, Decimal)],
            asks: &[(Decimal, Decimal)],
        ) -> Vec<ExecEvent> {
            self.book_on(P, ms, snapshot, bids, asks)
        }
        /// An event that changes nothing we trade on (a ticker), to let time pass.
        fn tick(&mut self, ms: i64) -> Vec<ExecEvent> {
            self.ev(MarketEvent::Ticker(crate::core::market::TickerEvent {
                symbol: P.into(),
                time: t(ms),
                bid: dec!(0),
                ask: dec!(0),
                last: dec!(0),
                volume: dec!(0),
                vwap: dec!(0),
            }))
        }
        fn trade(&mut self, ms: i64, side: Side, price: Decimal, qty: Decimal) -> Vec<ExecEvent> {
            self.ev(MarketEvent::Trade(TradeEvent {
                symbol: P.into(),
                time: t(ms),
                side,
                price,
                qty,
                trade_id: self.seq + 1,
                market_order: true,
            }))
        }
        fn open(&mut self, spec: OrderSpec, protection: Protection, ms: i64) -> (OrderId, Vec<ExecEvent>) {
            let req = OrderRequest::opening(
                spec,
                protection,
                OrderOrigin::Intent { intent_id: 7 },
                t(ms),
                Vec::new(),
                vec!["test".into()],
                approval_for_tests(),
            );
            let mut out = Vec::new();
            let id = self.ex.submit(req, &mut out);
            (id, out)
        }
        fn reduce(&mut self, spec: OrderSpec, ms: i64) -> OrderId {
            let mut out = Vec::new();
            self.ex.submit(OrderRequest::reducing(spec, OrderOrigin::Api, t(ms)), &mut out)
        }
        fn bal(&self, a: &str) -> Decimal {
            self.ex.balances().get(a).copied().unwrap_or_default()
        }
    }

    fn fills(evs: &[ExecEvent]) -> Vec<&Fill> {
        evs.iter()
            .filter_map(|e| match e {
                ExecEvent::Fill(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn rejections(evs: &[ExecEvent]) -> Vec<&Rejection> {
        evs.iter()
            .filter_map(|e| match e {
                ExecEvent::OrderRejected { rejection, .. } => Some(rejection),
                _ => None,
            })
            .collect()
    }

    fn cancels(evs: &[ExecEvent]) -> Vec<(OrderId, &str)> {
        evs.iter()
            .filter_map(|e| match e {
                ExecEvent::OrderCanceled { order_id, reason, .. } => Some((*order_id, reason.as_str())),
                _ => None,
            })
            .collect()
    }

    fn closed(evs: &[ExecEvent]) -> Vec<&ClosedTrade> {
        evs.iter()
            .filter_map(|e| match e {
                ExecEvent::TradeClosed(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn buy(qty: Decimal) -> OrderSpec {
        OrderSpec::market(P.into(), Side::Buy, qty)
    }

    fn standard_book(r: &mut Rig) {
        r.book(
            100,
            true,
            &[(dec!(99.5), dec!(1))],
            &[(dec!(100.0), dec!(0.5)), (dec!(100.5), dec!(0.3)), (dec!(101.0), dec!(1.0))],
        );
    }

    #[test]
    fn a_holding_adds_what_balance_times_value_adds_to_the_digit() {
        // Sums with and without digits, zero sums with a scale or a sign, big ones; zero
        // balances with scales and signs (never valued), and ordinary ones.
        let big = Decimal::from_i128_with_scale(12_345_678_901_234_567_890_123, 4);
        let sums = [dec!(0), dec!(10000), dec!(9993.84152), dec!(0.00), -dec!(0.0), dec!(-12.5), big];
        let balances = [dec!(0), dec!(0.000), -dec!(0.00), dec!(1.5), dec!(-0.25)];
        let values = [dec!(0), dec!(97.125), dec!(1), dec!(0.0001)];
        for sum in sums {
            for balance in balances {
                for value in values {
                    let got = add_holding(sum, balance, || value);
                    let want = sum + balance * value;
                    assert_eq!(
                        got.serialize(),
                        want.serialize(),
                        "{sum} + {balance} × {value}: {got} vs {want}"
                    );
                }
            }
        }
        // Zero balances are never valued.
        assert_eq!(add_holding(dec!(5), dec!(0.00), || unreachable!()), dec!(5));
    }

    #[test]
    fn market_buy_walks_three_levels() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        standard_book(&mut r);
        let (id, acc) = r.open(buy(dec!(1)), Protection::default(), 1000);
        assert_eq!(acc.len(), 1, "only accepted before the latency elapses");
        let out = r.tick(1100); // arrival at 1000 + 50 ms
        let f = fills(&out);
        // 0.5 @ 100.0, 0.3 @ 100.5, 0.2 @ 101.0 = 50 + 30.15 + 20.2 = 100.35 → VWAP 100.35.
        let got: Vec<_> = f.iter().map(|f| (f.price, f.qty, f.fee, f.slippage, f.partial)).collect();
        // Taker 0.40 %: 0.2, 0.1206, 0.0808. Slippage vs mid 99.75: 0.125, 0.225, 0.25.
        assert_eq!(
            got,
            vec![
                (dec!(100.0), dec!(0.5), dec!(0.2), dec!(0.125), true),
                (dec!(100.5), dec!(0.3), dec!(0.1206), dec!(0.225), true),
                (dec!(101.0), dec!(0.2), dec!(0.0808), dec!(0.25), false),
            ]
        );
        assert!(f.iter().all(|f| f.order_id == id && f.time == t(1050) && f.liquidity == Liquidity::Taker));
        let vwap = f.iter().map(|f| f.price * f.qty).sum::<Decimal>() / dec!(1);
        assert_eq!(vwap, dec!(100.35));
        // 10000 − 100.35 − 0.4014 = 9899.2486 USD, 1 BTC.
        assert_eq!(r.bal("USD"), dec!(9899.2486));
        assert_eq!(r.bal("BTC"), dec!(1));
        let s = r.ex.stats();
        assert_eq!((s.fills, s.partial_fills, s.taker_fills), (3, 2, 3));
        assert_eq!((s.fees_paid, s.slippage_paid), (dec!(0.4014), dec!(0.6)));
        // What we took stays taken: another 0.3 starts at 101.0 (0.8 left there).
        r.open(buy(dec!(0.3)), Protection::default(), 1100);
        let out = r.tick(1200);
        assert_eq!(
            fills(&out).iter().map(|f| (f.price, f.qty)).collect::<Vec<_>>(),
            vec![(dec!(101.0), dec!(0.3))]
        );
        // Equity at mid 99.75: 9899.2486 − 30.3 − 0.1212 + 1.3 × 99.75 = 9998.5024.
        assert_eq!(r.ex.equity(), dec!(9998.5024));
    }

    #[test]
    fn market_remainder_beyond_the_book_is_cancelled() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        standard_book(&mut r);
        let (id, _) = r.open(buy(dec!(2)), Protection::default(), 1000);
        let out = r.tick(1100);
        // 1.8 displayed: the 0.2 remainder is cancelled (IOC-like).
        assert_eq!(fills(&out).iter().map(|f| f.qty).sum::<Decimal>(), dec!(1.8));
        assert_eq!(cancels(&out), vec![(id, "book_exhausted")]);
    }

    #[test]
    fn fee_tier_follows_configured_volume() {
        let cfg = ExecutionConfig { fee_tier_volume: dec!(50000), ..Default::default() };
        let mut r = Rig::new(cfg, dec!(10000));
        standard_book(&mut r);
        r.open(buy(dec!(0.5)), Protection::default(), 1000);
        let out = r.tick(1100);
        // 50,000 USD tier: taker 0.24 % of 50 = 0.12.
        assert_eq!(fills(&out)[0].fee, dec!(0.12));
    }

    #[test]
    fn rest_fee_schedule_replaces_the_built_in_one_for_its_pair_with_its_tiers() {
        let cfg = ExecutionConfig { fee_tier_volume: dec!(50000), ..Default::default() };
        let mut r = Rig::new(cfg, dec!(10000));
        standard_book(&mut r);
        let rows = |r: &[(i64, Decimal)]| -> Vec<(Decimal, Decimal)> {
            r.iter().map(|(v, p)| (Decimal::from(*v), *p)).collect()
        };
        let fees = PairFees::new(
            rows(&[(0, dec!(0.30)), (50000, dec!(0.26)), (100000, dec!(0.20))]),
            rows(&[(0, dec!(0.20)), (50000, dec!(0.16))]),
            "ZUSD",
        )
        .unwrap();
        let out = r.ev(MarketEvent::FeeSchedule { symbol: P.into(), time: t(900), fees: Arc::new(fees) });
        // Journaled with the rates at the account's 50,000 USD volume.
        match &out[..] {
            [ExecEvent::FeeSchedule { pair, taker_rate, maker_rate, volume_currency, .. }] => {
                assert_eq!((&**pair, *taker_rate, *maker_rate), (P, dec!(0.0026), dec!(0.0016)));
                assert_eq!(volume_currency, "ZUSD");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out[0].kind(), "fee_schedule");
        r.open(buy(dec!(0.5)), Protection::default(), 1000);
        let out = r.tick(1100);
        // The 50,000 row of Kraken's table for the pair: taker 0.26 % of 50 = 0.13 (the
        // built-in table would charge 0.24 %: 0.12).
        assert_eq!(fills(&out)[0].fee, dec!(0.13));
    }

    #[test]
    fn post_only_that_would_cross_is_rejected() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        standard_book(&mut r);
        let mut spec = OrderSpec::limit(P.into(), Side::Buy, dec!(0.1), dec!(100.0));
        spec.post_only = true;
        r.open(spec.clone(), Protection::default(), 1000);
        spec.price = Some(dec!(99.9));
        r.open(spec, Protection::default(), 1000);
        let out = r.tick(1100);
        let rej = rejections(&out);
        assert_eq!(rej.len(), 1, "{out:?}");
        assert_eq!(rej[0].error, "EOrder:Post only order");
        assert!(rej[0].reason.contains("100.0"), "{}", rej[0].reason);
        assert!(fills(&out).is_empty());
        assert_eq!(r.ex.portfolio().open_orders_on(P), 1, "the 99.9 bid rests");
    }

    #[test]
    fn resting_limit_fills_on_trade_through_after_the_queue() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.5), dec!(2))], &[(dec!(100.0), dec!(1))]);
        let (id, _) =
            r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
        r.tick(1100); // rests behind 2.0
        // 1.5 sold at our price: the queue ahead drops to 0.5, nothing reaches us.
        assert!(fills(&r.trade(1200, Side::Sell, dec!(99.5), dec!(1.5))).is_empty());
        // The level shrinks to 0.4: removed size was ahead of us → queue 0.4.
        r.book(1300, false, &[(dec!(99.5), dec!(0.4))], &[]);
        // 1.0 printed through at 99.4: 0.4 goes to the queue, 0.6 to us at our price.
        let out = r.trade(1400, Side::Sell, dec!(99.4), dec!(1.0));
        let f = fills(&out);
        assert_eq!(f.len(), 1);
        // Maker 0.25 % of 0.6 × 99.5 = 59.7 → 0.14925.
        assert_eq!(
            (f[0].price, f[0].qty, f[0].fee, f[0].liquidity, f[0].partial),
            (dec!(99.5), dec!(0.6), dec!(0.14925), Liquidity::Maker, true)
        );
        assert!(
            matches!(f[0].cause, FillCause::Trade { trade_price, trade_qty, .. } if trade_price == dec!(99.4) && trade_qty == dec!(1.0))
        );
        // A trade at our price now fills the rest (queue empty): 0.4 × 99.5 = 39.8, fee 0.0995.
        let out = r.trade(1500, Side::Sell, dec!(99.5), dec!(3));
        let f = fills(&out);
        assert_eq!((f[0].order_id, f[0].qty, f[0].partial), (id, dec!(0.4), false));
        // 10000 − 99.5 − 0.14925 − 0.0995 = 9900.25125.
        assert_eq!(r.bal("USD"), dec!(9900.25125));
        assert_eq!(r.ex.stats().maker_fills, 2);
    }

    #[test]
    fn touch_alone_does_not_fill_unless_configured() {
        for (at_touch, want) in [(false, dec!(0)), (true, dec!(0.3))] {
            let cfg = ExecutionConfig { fill_at_touch: at_touch, ..Default::default() };
            let mut r = Rig::new(cfg, dec!(10000));
            r.book(100, true, &[(dec!(99.5), dec!(2))], &[(dec!(100.0), dec!(1))]);
            r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
            r.tick(1100);
            let out = r.trade(1200, Side::Sell, dec!(99.5), dec!(0.3));
            assert_eq!(fills(&out).iter().map(|f| f.qty).sum::<Decimal>(), want, "fill_at_touch={at_touch}");
        }
    }

    #[test]
    fn resting_order_crossed_by_the_book_fills_as_maker_at_our_price() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.0), dec!(1))], &[(dec!(100.0), dec!(1))]);
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
        r.tick(1100);
        // An ask appears at 99.4 for 0.7: we buy 0.7 at our 99.5 as maker.
        let out = r.book(1200, false, &[], &[(dec!(99.4), dec!(0.7))]);
        let f = fills(&out);
        assert_eq!((f[0].price, f[0].qty, f[0].liquidity), (dec!(99.5), dec!(0.7), Liquidity::Maker));
    }

    /// Long 1 BTC bought at 100.0 (fee 0.4) on a 99.0 / 100.0 book.
    fn long_one() -> Rig {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.0), dec!(5))], &[(dec!(100.0), dec!(5))]);
        r.open(buy(dec!(1)), Protection::default(), 1000);
        let out = r.tick(1100);
        assert_eq!(fills(&out)[0].price, dec!(100.0));
        r
    }

    #[test]
    fn stop_loss_triggers_on_last_trade_and_fills_at_next_book() {
        let mut r = long_one();
        let stop = OrderSpec {
            order_type: OrderType::StopLoss,
            price: Some(dec!(95.0)),
            ..OrderSpec::market(P.into(), Side::Sell, dec!(1))
        };
        let id = r.reduce(stop, 1100);
        r.tick(1200);
        assert!(r.trade(1300, Side::Sell, dec!(95.5), dec!(0.1)).is_empty());
        let out = r.trade(1400, Side::Sell, dec!(94.9), dec!(0.1));
        assert_eq!(
            out,
            vec![ExecEvent::OrderTriggered { time: t(1400), order_id: id, trigger_price: dec!(94.9) }]
        );
        // The next book: 0.4 @ 94.8 and 0.6 @ 94.5.
        let out = r.book(
            1500,
            false,
            &[(dec!(99.0), dec!(0)), (dec!(94.8), dec!(0.4)), (dec!(94.5), dec!(1))],
            &[],
        );
        let f = fills(&out);
        // 37.92 (fee 0.15168) + 56.7 (fee 0.2268).
        assert_eq!(
            f.iter().map(|f| (f.price, f.qty, f.fee)).collect::<Vec<_>>(),
            vec![(dec!(94.8), dec!(0.4), dec!(0.15168)), (dec!(94.5), dec!(0.6), dec!(0.2268))]
        );
        let c = closed(&out);
        assert_eq!(c.len(), 1);
        // P&L: 94.62 − 100 − 0.4 − 0.37848 = −6.15848; exit VWAP 94.62.
        assert_eq!(
            (c[0].pnl, c[0].fees, c[0].exit_price, c[0].entry_price),
            (dec!(-6.15848), dec!(0.77848), dec!(94.62), dec!(100))
        );
        assert_eq!(c[0].exit_reason, "stop_loss");
        assert_eq!(c[0].max_drawdown, dec!(-6.15848));
        assert_eq!(c[0].tags, vec!["test".to_string()]);
        assert_eq!(r.ex.stats().stops_triggered, 1);
        assert_eq!(r.ex.open_positions(), 0);
        // 10000 − 100.4 + 94.62 − 0.37848 = 9993.84152.
        assert_eq!(r.bal("USD"), dec!(9993.84152));
    }

    #[test]
    fn trailing_stop_follows_the_best_trade_then_triggers() {
        let mut r = long_one();
        r.trade(1150, Side::Buy, dec!(100.0), dec!(0.1));
        let trail = OrderSpec {
            order_type: OrderType::TrailingStop,
            trailing: Some(TrailingOffset::Absolute(dec!(2.0))),
            ..OrderSpec::market(P.into(), Side::Sell, dec!(1))
        };
        let id = r.reduce(trail, 1150);
        r.tick(1250);
        // Best 101 → stop 99.0; best 103 → stop 101.0; 101.5 is above it.
        for (ms, px) in [(1300, dec!(101.0)), (1400, dec!(103.0)), (1500, dec!(101.5))] {
            assert!(r.trade(ms, Side::Buy, px, dec!(0.1)).is_empty(), "{px}");
        }
        let out = r.trade(1600, Side::Sell, dec!(100.9), dec!(0.1));
        assert_eq!(
            out,
            vec![ExecEvent::OrderTriggered { time: t(1600), order_id: id, trigger_price: dec!(100.9) }]
        );
        let out =
            r.book(1700, false, &[(dec!(100.8), dec!(2))], &[(dec!(100.0), dec!(0)), (dec!(101.0), dec!(1))]);
        let f = fills(&out);
        assert_eq!((f[0].price, f[0].qty), (dec!(100.8), dec!(1)));
        assert_eq!(closed(&out)[0].exit_reason, "trailing_stop");
    }

    #[test]
    fn kraken_rules_reject_with_kraken_strings() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(1000));
        standard_book(&mut r);
        let lim = |q, p| OrderSpec::limit(P.into(), Side::Buy, q, p);
        let cases = [
            (lim(dec!(0.00001), dec!(99.0)), "EOrder:Order minimum not met", "0.00001 < ordermin 0.00005"),
            (lim(dec!(0.00005), dec!(5000.0)), "EOrder:Cost minimum not met", "< costmin 0.5"),
            (
                lim(dec!(0.1), dec!(99.05)),
                "EOrder:Invalid price:BTC/USD price can only be specified up to 1 decimals.",
                "2 decimals",
            ),
            (lim(dec!(0.000000001), dec!(99.0)), "EGeneral:Invalid arguments:volume", "lot decimals 8"),
            // 10.1 × 99 × 1.004 (taker fee reserved) = 1003.9 > 1000.
            (lim(dec!(10.1), dec!(99.0)), "EOrder:Insufficient funds", "available 1000"),
            // No BTC held: a sell would be a short.
            (
                OrderSpec::market(P.into(), Side::Sell, dec!(0.1)),
                "EOrder:Insufficient funds",
                "shorts are not supported",
            ),
        ];
        for (i, (spec, _, _)) in cases.iter().enumerate() {
            r.open(spec.clone(), Protection::default(), 1000 + i as i64);
        }
        let out = r.tick(2000);
        let rej = rejections(&out);
        assert_eq!(rej.len(), cases.len(), "{rej:?}");
        for (rj, (_, error, why)) in rej.iter().zip(&cases) {
            assert_eq!(&rj.error, error);
            assert!(rj.reason.contains(why), "{} lacks {why}", rj.reason);
        }
        assert_eq!(r.ex.stats().rejected_orders, 6);
        // A tick of 0.5: 100.3 fails the tick check.
        let mut i = instrument(P, "BTC", "USD");
        i.price_increment = dec!(0.5);
        r.ev(MarketEvent::Instrument { instrument: Arc::new(i), time: t(2000) });
        r.open(lim(dec!(0.1), dec!(99.3)), Protection::default(), 2000);
        assert_eq!(rejections(&r.tick(2100))[0].error, "EOrder:Tick size check failed");
    }

    #[test]
    fn funds_held_by_open_orders_count() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(1000));
        standard_book(&mut r);
        let lim = |q| OrderSpec::limit(P.into(), Side::Buy, q, dec!(99.0));
        // Holds: 6 × 99 × 1.004 = 596.376; 4 × 99 × 1.004 = 397.584 → 993.96 held.
        r.open(lim(dec!(6)), Protection::default(), 1000);
        r.open(lim(dec!(4)), Protection::default(), 1001);
        // 0.1 more needs 9.9396 > 1000 − 993.96 = 6.04.
        r.open(lim(dec!(0.1)), Protection::default(), 1002);
        let out = r.tick(1100);
        let rej = rejections(&out);
        assert_eq!(rej.len(), 1);
        assert!(rej[0].reason.contains("held 993.96"), "{}", rej[0].reason);
        // Available cash in the view excludes the holds.
        assert_eq!(r.ex.portfolio().available_cash, dec!(6.04));
    }

    #[test]
    fn rate_counter_and_open_order_limit_reject() {
        // Starter: threshold 60. 61 adds in one instant: the 61st is refused.
        let cfg = ExecutionConfig {
            tier: Tier::Starter,
            max_open_orders_per_pair: Some(100),
            ..Default::default()
        };
        let mut r = Rig::new(cfg, dec!(10000));
        standard_book(&mut r);
        for _ in 0..61 {
            r.open(
                OrderSpec::limit(P.into(), Side::Buy, dec!(0.01), dec!(90.0)),
                Protection::default(),
                1000,
            );
        }
        let out = r.tick(1100);
        let rej = rejections(&out);
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].error, "EOrder:Rate limit exceeded");
        // Cancelling a 1 s old order costs 8; the counter decayed 1 s × 1/s to 59: 59 + 8 > 60.
        let mut out = Vec::new();
        r.ex.cancel(OrderId(1), t(2000), "requested", &mut out);
        let out = r.tick(2100);
        assert_eq!(rejections(&out)[0].error, "EOrder:Rate limit exceeded");
        assert_eq!(r.ex.portfolio().open_orders_on(P), 60);

        let cfg = ExecutionConfig { max_open_orders_per_pair: Some(2), ..Default::default() };
        let mut r = Rig::new(cfg, dec!(10000));
        standard_book(&mut r);
        for _ in 0..3 {
            r.open(
                OrderSpec::limit(P.into(), Side::Buy, dec!(0.01), dec!(90.0)),
                Protection::default(),
                1000,
            );
        }
        let rej = rejections(&r.tick(1100)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].error, "EOrder:Orders limit exceeded");
    }

    #[test]
    fn cancel_arrives_after_latency() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        standard_book(&mut r);
        let (id, _) =
            r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(0.1), dec!(90.0)), Protection::default(), 1000);
        r.tick(1100);
        let mut out = Vec::new();
        r.ex.cancel(id, t(20000), "requested", &mut out);
        assert!(out.is_empty());
        let out = r.tick(20100);
        assert_eq!(cancels(&out), vec![(id, "requested")]);
    }

    #[test]
    fn oco_children_cancel_each_other() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.0), dec!(5))], &[(dec!(100.0), dec!(5))]);
        let prot = Protection { stop_loss: Some(dec!(95.0)), take_profit: Some(dec!(105.0)), trailing: None };
        let (entry, _) = r.open(buy(dec!(1)), prot, 1000);
        let out = r.tick(1100);
        let children: Vec<(OrderId, OrderType, Qty)> = out
            .iter()
            .filter_map(|e| match e {
                ExecEvent::OrderAccepted {
                    order_id,
                    spec,
                    origin: OrderOrigin::Protective { parent },
                    ..
                } => {
                    assert_eq!(*parent, entry);
                    assert!(spec.reduce_only && spec.side == Side::Sell);
                    Some((*order_id, spec.order_type, spec.qty))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            children.iter().map(|c| (c.1, c.2)).collect::<Vec<_>>(),
            vec![(OrderType::StopLoss, dec!(1)), (OrderType::TakeProfit, dec!(1))]
        );
        r.tick(1200); // children arrive (fill time 1050 + 50 ms)
        let out = r.trade(1300, Side::Buy, dec!(105.0), dec!(0.1));
        let (stop, take) = (children[0].0, children[1].0);
        assert!(out.contains(&ExecEvent::OrderTriggered {
            time: t(1300),
            order_id: take,
            trigger_price: dec!(105.0)
        }));
        assert_eq!(cancels(&out), vec![(stop, "oco")]);
        let out = r.book(
            1400,
            false,
            &[(dec!(99.0), dec!(0)), (dec!(104.9), dec!(3))],
            &[(dec!(100.0), dec!(0)), (dec!(105.0), dec!(1))],
        );
        assert_eq!(fills(&out)[0].price, dec!(104.9));
        assert_eq!(closed(&out)[0].exit_reason, "take_profit");
        assert!(r.ex.portfolio().open_orders.is_empty());
    }

    #[test]
    fn children_resize_with_each_entry_fill() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.0), dec!(1))], &[(dec!(100.0), dec!(5))]);
        let prot = Protection { stop_loss: Some(dec!(95.0)), ..Default::default() };
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.0)), prot, 1000);
        r.tick(1100);
        // Queue 1 ahead: a 1.4 trade through fills 0.4, the child is placed for 0.4…
        let out = r.trade(1200, Side::Sell, dec!(98.9), dec!(1.4));
        let child = out.iter().find_map(|e| match e {
            ExecEvent::OrderAccepted { order_id, spec, .. } => Some((*order_id, spec.qty)),
            _ => None,
        });
        let (cid, q) = child.unwrap();
        assert_eq!(q, dec!(0.4));
        // …and resized to 1.0 when the rest fills.
        r.trade(1300, Side::Sell, dec!(98.8), dec!(1.0));
        assert_eq!(r.ex.orders[&cid].spec.qty, dec!(1));
    }

    #[test]
    fn unfilled_entry_is_chased_after_timeout() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.0), dec!(2))], &[(dec!(100.0), dec!(5))]);
        let (id, _) =
            r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.0)), Protection::default(), 1000);
        r.tick(1100); // rests from 1050
        // 2.5 sold at 99.0: 2 for the queue, 0.5 for us.
        assert_eq!(fills(&r.trade(5000, Side::Sell, dec!(99.0), dec!(2.5)))[0].qty, dec!(0.5));
        assert!(r.tick(31000).is_empty(), "not yet: 1050 + 30 s = 31050");
        let out = r.tick(31100);
        assert_eq!(cancels(&out), vec![(id, "chase")]);
        // The remainder goes as a market order arriving at 31050 + 50 ms, and fills now.
        let f = fills(&out);
        assert_eq!(
            (f[0].qty, f[0].price, f[0].liquidity, f[0].time),
            (dec!(0.5), dec!(100.0), Liquidity::Taker, t(31100))
        );
        assert_eq!(r.bal("BTC"), dec!(1));
    }

    #[test]
    fn flatten_sells_now_and_retries_what_the_book_cannot_take() {
        let mut r = long_one();
        r.book(1200, false, &[(dec!(99.0), dec!(0.3))], &[]);
        let mut out = Vec::new();
        r.ex.flatten_all(t(1300), "emergency_stop", &mut out);
        assert_eq!(
            fills(&out).iter().map(|f| (f.price, f.qty, f.time)).collect::<Vec<_>>(),
            vec![(dec!(99.0), dec!(0.3), t(1300))]
        );
        let out = r.book(1400, false, &[(dec!(98.5), dec!(2))], &[]);
        assert_eq!(fills(&out)[0].qty, dec!(0.7));
        assert_eq!(closed(&out)[0].exit_reason, "flatten");
        assert_eq!(r.ex.open_positions(), 0);
    }

    #[test]
    fn untrusted_book_pauses_trading_until_the_next_snapshot() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        standard_book(&mut r);
        r.ev(MarketEvent::BookInvalid {
            symbol: P.into(),
            time: t(500),
            reason: crate::core::market::BookInvalidReason::ChecksumMismatch,
        });
        assert!(!r.ex.portfolio().quote(P).unwrap().tradable);
        r.open(buy(dec!(0.1)), Protection::default(), 1000);
        assert!(fills(&r.tick(1100)).is_empty());
        let out = r.book(1200, true, &[(dec!(99.0), dec!(1))], &[(dec!(99.5), dec!(1))]);
        assert_eq!(fills(&out)[0].price, dec!(99.5));
        assert!(r.ex.portfolio().quote(P).unwrap().tradable);
    }

    #[test]
    fn cross_currency_positions_value_through_the_quote_mid() {
        let bal = BTreeMap::from([("USD".to_string(), dec!(1000)), ("BTC".to_string(), dec!(1))]);
        let mut eth = instrument("ETH/BTC", "ETH", "BTC");
        eth.price_precision = 5;
        eth.price_increment = dec!(0.00001);
        eth.cost_precision = 10;
        eth.cost_min = dec!(0.00002);
        let mut r = Rig::with(ExecutionConfig::default(), bal, vec![instrument(P, "BTC", "USD"), eth]);
        r.book(100, true, &[(dec!(99.0), dec!(1))], &[(dec!(101.0), dec!(1))]);
        r.book_on("ETH/BTC", 100, true, &[(dec!(0.04990), dec!(10))], &[(dec!(0.05010), dec!(10))]);
        // 1000 USD + 1 BTC × 100 (mid).
        assert_eq!(r.ex.equity(), dec!(1100));
        let mut out = Vec::new();
        let spec = OrderSpec::market("ETH/BTC".into(), Side::Buy, dec!(2));
        let req = OrderRequest::opening(
            spec,
            Protection::default(),
            OrderOrigin::Api,
            t(1000),
            vec![],
            vec![],
            approval_for_tests(),
        );
        r.ex.submit(req, &mut out);
        r.tick(1100);
        // Cost 2 × 0.0501 = 0.1002 BTC, fee 0.4 % = 0.0004008 BTC.
        assert_eq!(r.bal("BTC"), dec!(0.8993992));
        // Equity: 1000 + 0.8993992 × 100 + 2 × 0.05 × 100 = 1099.93992.
        assert_eq!(r.ex.equity(), dec!(1099.93992));
        let view = r.ex.portfolio();
        assert_eq!(view.quote("ETH/BTC").unwrap().quote_to_account, dec!(100));
        // Unrealized: (2 × 0.05 − 0.1002) BTC × 100 = −0.02 USD.
        assert_eq!(view.position("ETH/BTC").unwrap().unrealized, dec!(-0.02));
    }

    #[test]
    fn unknown_pair_is_refused() {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        standard_book(&mut r);
        r.open(OrderSpec::market("XYZ/USD".into(), Side::Buy, dec!(1)), Protection::default(), 1000);
        assert_eq!(rejections(&r.tick(1100))[0].error, "EQuery:Unknown asset pair");
    }

    #[test]
    fn config_reads_every_key_with_defaults() {
        let cfg: ExecutionConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, ExecutionConfig::default());
        let cfg: ExecutionConfig = serde_json::from_str(
            r#"{"tier":"pro","entry_timeout":"10s","fee_tier_volume":"50000","max_open_orders_per_pair":5,
                "entry":{"type":"post_only","offset_ticks":1},"mark":"exit","fill_at_touch":true,"latency":"0ms"}"#,
        )
        .unwrap();
        assert_eq!(
            (cfg.tier, cfg.entry_timeout, cfg.max_open_orders_per_pair),
            (Tier::Pro, Span::from_secs(10), Some(5))
        );
        assert!(serde_json::from_str::<ExecutionConfig>(r#"{"allow_shorts":true}"#).is_err());
    }

    #[test]
    fn kinds_and_times() {
        let e = ExecEvent::OrderCanceled { time: t(5), order_id: OrderId(1), reason: "x".into() };
        assert_eq!((e.kind(), e.time()), ("order_canceled", t(5)));
    }

    #[test]
    fn config_validation_names_keys() {
        let mut is = Issues::default();
        let cfg = ExecutionConfig {
            latency: Span(-1),
            fee_tier_volume: dec!(-1),
            max_open_orders_per_pair: Some(0),
            ..Default::default()
        };
        cfg.validate(&mut is);
        let keys: Vec<_> = is.list.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["execution.latency", "execution.fee_tier_volume", "execution.max_open_orders_per_pair"]
        );
        let mut is = Issues::default();
        ExecutionConfig::default().validate(&mut is);
        assert!(is.is_empty());
    }

    // ---- shorts (margin) ------------------------------------------------------------------

    /// BTC/USD as AssetPairs would describe it for margin (5× max, 80 / 40, 250 BTC short).
    fn margin_inst() -> Instrument {
        let mut i = instrument(P, "BTC", "USD");
        i.marginable = true;
        i.margin = Some(MarginTerms {
            max_leverage_sell: 5,
            margin_call: 80,
            margin_stop: 40,
            short_position_limit: Some(dec!(250)),
        });
        i
    }

    fn margin_cfg(leverage: u32) -> ExecutionConfig {
        ExecutionConfig {
            margin: MarginConfig { enabled: true, leverage, ..Default::default() },
            ..Default::default()
        }
    }

    fn margin_rig(usd: Decimal) -> Rig {
        let bal = BTreeMap::from([("USD".to_string(), usd)]);
        let mut r = Rig::with(margin_cfg(5), bal, vec![margin_inst()]);
        // Mid 50,000.
        r.book(100, true, &[(dec!(49999.9), dec!(1))], &[(dec!(50000.1), dec!(1))]);
        r
    }

    fn short_sell(qty: Decimal, leverage: u32) -> OrderSpec {
        OrderSpec { leverage: Some(leverage), ..OrderSpec::market(P.into(), Side::Sell, qty) }
    }

    fn margin_fees(evs: &[ExecEvent]) -> Vec<(&str, Decimal, Decimal, EventTime)> {
        evs.iter()
            .filter_map(|e| match e {
                ExecEvent::MarginFee { kind, qty, fee, time, .. } => Some((kind.as_str(), *qty, *fee, *time)),
                _ => None,
            })
            .collect()
    }

    /// Kraken's margin example (support 203053156) with fees: 5,000 USD, short 0.2 BTC at 5×.
    fn short_open() -> Rig {
        let mut r = margin_rig(dec!(5000));
        r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
        let out = r.tick(1100);
        // 0.2 sold at the bid 49,999.9 = 9,999.98; taker 0.40 % = 39.99992.
        let f = fills(&out);
        assert_eq!((f[0].price, f[0].qty, f[0].fee), (dec!(49999.9), dec!(0.2), dec!(39.99992)));
        // Opening fee 0.01 % (BTC) of 0.2 × 49,999.9 = 0.999998 → 1.00000 at cost precision.
        assert_eq!(margin_fees(&out), vec![("opening", dec!(0.2), dec!(1.00000), t(1050))]);
        r
    }

    #[test]
    fn short_pays_the_opening_fee_and_shows_as_an_open_position() {
        let r = short_open();
        // 5,000 + 9,999.98 − 39.99992 − 1 = 14,958.98008 USD; −0.2 BTC (borrowed).
        assert_eq!((r.bal("USD"), r.bal("BTC")), (dec!(14958.98008), dec!(-0.2)));
        // Equity at mid 50,000: 14,958.98008 − 0.2 × 50,000 = 4,958.98008.
        assert_eq!(r.ex.equity(), dec!(4958.98008));
        let v = r.ex.portfolio();
        let p = v.position(P).unwrap();
        // Short at 49,999.9 marked at 50,000: unrealized −0.2 × 50,000 + 9,999.98 = −0.02.
        assert_eq!(
            (p.qty, p.avg_price, p.notional, p.unrealized),
            (dec!(-0.2), dec!(49999.9), dec!(10000), dec!(-0.02))
        );
        // Used margin 0.2 × 50,000 / 5 = 2,000; level 4,958.98008 / 2,000 = 247.95 %.
        let m = v.margin.unwrap();
        assert_eq!(
            (m.used_margin, m.free_margin, m.margin_level),
            (dec!(2000), dec!(2958.98008), Some(dec!(247.95)))
        );
        // The sale proceeds back the short: they are not available for spot buys.
        assert_eq!(v.available_cash, dec!(14958.98008) - dec!(9999.98));
        assert_eq!(r.ex.stats().margin_fees_paid, dec!(1));
    }

    #[test]
    fn rollover_is_charged_every_four_hours_of_event_time() {
        let mut r = short_open();
        let opened = 1050;
        assert!(margin_fees(&r.tick(opened + 14_400_000 - 1)).is_empty(), "not before 4 h");
        let out = r.tick(opened + 14_400_000 + 500);
        // 0.01 % of 0.2 × mid 50,000 = 1.00000, charged at opening + 4 h.
        assert_eq!(margin_fees(&out), vec![("rollover", dec!(0.2), dec!(1.00000), t(opened + 14_400_000))]);
        assert_eq!(r.bal("USD"), dec!(14957.98008));
        // Two more are due by opening + 12 h.
        let out = r.tick(opened + 3 * 14_400_000);
        assert_eq!(margin_fees(&out).len(), 2);
        assert_eq!(r.ex.stats().margin_fees_paid, dec!(4));
    }

    #[test]
    fn margin_call_then_liquidation_at_margin_stop() {
        let mut r = short_open();
        r.tick(1050 + 14_400_000); // one rollover: USD 14,957.98008
        // Mid 65,000: equity 14,957.98008 − 13,000 = 1,957.98008; used 0.2 × 65,000 / 5 =
        // 2,600; level 75.31 % < 80 %: margin call, not yet liquidation.
        let out = r.book(20_000_000, true, &[(dec!(64999.9), dec!(1))], &[(dec!(65000.1), dec!(1))]);
        let calls: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                ExecEvent::MarginCall { margin_level, equity, used_margin, margin_call, .. } => {
                    Some((*margin_level, *equity, *used_margin, *margin_call))
                }
                _ => None,
            })
            .collect();
        assert_eq!(calls, vec![(dec!(75.31), dec!(1957.98008), dec!(2600), 80)]);
        assert!(fills(&out).is_empty());
        // Mid 70,000: equity 957.98008, used 2,800 → 34.21 % ≤ 40 %: liquidated through the
        // book, 0.2 bought at the ask 70,000.1 = 14,000.02, taker fee 56.00008.
        let out = r.book(20_100_000, true, &[(dec!(69999.9), dec!(1))], &[(dec!(70000.1), dec!(1))]);
        let liq: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                ExecEvent::MarginLiquidation { margin_level, qty, order_id, .. } => {
                    Some((*margin_level, *qty, *order_id))
                }
                _ => None,
            })
            .collect();
        assert_eq!(liq.len(), 1);
        assert_eq!((liq[0].0, liq[0].1), (dec!(34.21), dec!(0.2)));
        assert!(!out.iter().any(|e| matches!(e, ExecEvent::MarginCall { .. })), "one call per crossing");
        assert!(out.iter().any(|e| matches!(e,
            ExecEvent::OrderAccepted { order_id, origin: OrderOrigin::Liquidation, spec, .. }
                if *order_id == liq[0].2 && spec.reduce_only && spec.side == Side::Buy)));
        let f = fills(&out);
        assert_eq!(
            (f[0].order_id, f[0].price, f[0].qty, f[0].fee),
            (liq[0].2, dec!(70000.1), dec!(0.2), dec!(56.00008))
        );
        let c = closed(&out);
        // P&L: 9,999.98 − 14,000.02 − fees (39.99992 + 1 opening + 1 rollover + 56.00008 = 98)
        // = −4,098.04; the worst excursion is the close itself.
        assert_eq!((c[0].side, c[0].exit_reason.as_str()), (Side::Sell, "liquidation"));
        assert_eq!((c[0].entry_price, c[0].exit_price), (dec!(49999.9), dec!(70000.1)));
        assert_eq!(
            (c[0].fees, c[0].pnl, c[0].max_drawdown, c[0].max_pnl),
            (dec!(98), dec!(-4098.04), dec!(-4098.04), dec!(0))
        );
        // 5,000 − 4,098.04 = 901.96 USD; nothing borrowed any more.
        assert_eq!((r.bal("USD"), r.bal("BTC")), (dec!(901.96), dec!(0)));
        assert!(r.ex.margin.is_empty() && r.ex.open_positions() == 0);
        assert_eq!((r.ex.stats().margin_calls, r.ex.stats().liquidations), (1, 1));
    }

    #[test]
    fn closing_a_short_with_a_buy_repays_and_books_the_trade() {
        let mut r = short_open();
        // Price falls: a reduce-only buy of 0.2 at the ask 45,000.1 = 9,000.02, fee 36.00008.
        r.book(5000, true, &[(dec!(44999.9), dec!(1))], &[(dec!(45000.1), dec!(1))]);
        r.reduce(OrderSpec::market(P.into(), Side::Buy, dec!(0.2)), 6000);
        let out = r.tick(6100);
        let c = closed(&out);
        // 9,999.98 − 9,000.02 − 39.99992 − 1 − 36.00008 = 922.96, a profit: sign is right.
        assert_eq!((c[0].side, c[0].pnl, c[0].fees), (Side::Sell, dec!(922.96), dec!(77)));
        assert!(c[0].max_pnl >= c[0].pnl);
        assert_eq!((r.bal("USD"), r.bal("BTC")), (dec!(5922.96), dec!(0)));
        assert!(r.ex.margin.is_empty());
        assert_eq!(r.ex.portfolio().margin.unwrap().margin_level, None);
    }

    #[test]
    fn margin_refusals_use_krakens_strings() {
        // 1,000 USD at 5×: 0.2 BTC at the bid 49,999.9 needs 0.2 × 49,999.9 / 5 = 1,999.996
        // of margin; free margin is 1,000.
        let mut r = margin_rig(dec!(1000));
        r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
        let rej = rejections(&r.tick(1100)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(rej[0].error, "EOrder:Insufficient margin");
        assert!(
            rej[0].reason.contains("needs 1999.996") && rej[0].reason.contains("free margin 1000"),
            "{}",
            rej[0].reason
        );
        let cases = [
            // 251 BTC > short_position_limit 250 (checked before the margin).
            (short_sell(dec!(251), 5), "EOrder:Margin position size exceeded", "short_position_limit 250"),
            // Leverage 10 > the pair's 5.
            (short_sell(dec!(0.001), 10), "EGeneral:Invalid arguments:leverage", "2…5"),
            // A margin buy that is not reduce-only: only shorts are margin here.
            (
                OrderSpec { leverage: Some(2), ..buy(dec!(0.001)) },
                "EGeneral:Invalid arguments:leverage",
                "longs are spot",
            ),
            // No leverage: a spot sell without BTC.
            (
                OrderSpec::market(P.into(), Side::Sell, dec!(0.001)),
                "EOrder:Insufficient funds",
                "needs a margin order",
            ),
        ];
        for (i, (spec, _, _)) in cases.iter().enumerate() {
            r.open(spec.clone(), Protection::default(), 2000 + i as i64);
        }
        let rej = rejections(&r.tick(3000)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(rej.len(), cases.len(), "{rej:?}");
        for (rj, (_, error, why)) in rej.iter().zip(&cases) {
            assert_eq!(&rj.error, error);
            assert!(rj.reason.contains(why), "{} lacks {why}", rj.reason);
        }
        // Allowance: borrowing more BTC than configured.
        let mut cfg = margin_cfg(5);
        cfg.margin.allowance.insert("BTC".into(), dec!(0.1));
        let mut r = Rig::with(cfg, BTreeMap::from([("USD".to_string(), dec!(100000))]), vec![margin_inst()]);
        r.book(100, true, &[(dec!(49999.9), dec!(1))], &[(dec!(50000.1), dec!(1))]);
        r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
        assert_eq!(rejections(&r.tick(1100))[0].error, "EOrder:Margin allowance exceeded");
        // Margin disabled: the same order is refused for its leverage.
        let mut r = Rig::new(ExecutionConfig::default(), dec!(100000));
        r.ev(MarketEvent::Instrument { instrument: Arc::new(margin_inst()), time: t(0) });
        r.book(100, true, &[(dec!(49999.9), dec!(1))], &[(dec!(50000.1), dec!(1))]);
        r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
        let rej = rejections(&r.tick(1100)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(rej[0].error, "EGeneral:Invalid arguments:leverage");
        assert!(rej[0].reason.contains("execution.margin.enabled"));
    }

    #[test]
    fn margin_level_too_low_refuses_new_shorts() {
        let mut r = short_open();
        // Mid 65,000: level 75.35 % (no rollover yet) ≤ 100 %: no new margin positions.
        r.book(5000, true, &[(dec!(64999.9), dec!(1))], &[(dec!(65000.1), dec!(1))]);
        r.open(short_sell(dec!(0.001), 5), Protection::default(), 6000);
        let rej = rejections(&r.tick(6100)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(rej[0].error, "EOrder:Margin level too low");
        assert!(rej[0].reason.contains("75.35"), "{}", rej[0].reason);
    }

    // ---- amends ---------------------------------------------------------------------------

    fn amend(
        r: &mut Rig,
        id: OrderId,
        qty: Option<Decimal>,
        price: Option<Decimal>,
        ms: i64,
    ) -> (Result<u64, Rejection>, Vec<ExecEvent>) {
        let mut out = Vec::new();
        let req = AmendRequest {
            order_id: id,
            qty,
            limit_price: price,
            trigger_price: None,
            post_only: false,
            decided_at: t(ms),
        };
        let res = r.ex.amend(req, &mut out);
        (res, out)
    }

    fn amended(evs: &[ExecEvent]) -> Vec<(Decimal, Option<Decimal>, bool, Decimal)> {
        evs.iter()
            .filter_map(|e| match e {
                ExecEvent::OrderAmended { qty, price, queue_kept, penalty, .. } => {
                    Some((*qty, *price, *queue_kept, *penalty))
                }
                _ => None,
            })
            .collect()
    }

    /// A 1.0 bid at 99.5 resting behind 2.0 displayed; a 1.5 print takes the queue to 0.5.
    fn resting_bid() -> (Rig, OrderId) {
        let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
        r.book(100, true, &[(dec!(99.5), dec!(2)), (dec!(99.4), dec!(1))], &[(dec!(100.0), dec!(1))]);
        let (id, _) =
            r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
        r.tick(1100); // rests from 1050
        assert!(fills(&r.trade(1200, Side::Sell, dec!(99.5), dec!(1.5))).is_empty());
        assert_eq!(r.ex.orders[&id].queue_ahead, dec!(0.5));
        (r, id)
    }

    #[test]
    fn amend_down_keeps_the_queue_and_counts_the_penalty() {
        let (mut r, id) = resting_bid();
        let (res, out) = amend(&mut r, id, Some(dec!(0.6)), None, 2000);
        assert!(res.is_ok() && out.is_empty(), "travels 50 ms");
        let out = r.tick(2100);
        // Rested 2050 − 1050 = 1.0 s: penalty 1 fixed + 3 (< 5 s) = 4; the counter (1 from
        // the add at 1050) decayed 2.34/s × 1 s to 0 first, so it now reads 4.
        assert_eq!(amended(&out), vec![(dec!(0.6), Some(dec!(99.5)), true, dec!(4))]);
        assert_eq!(r.ex.pairs[P].rate.value_at(t(2050), Tier::Intermediate), dec!(4));
        let o = &r.ex.orders[&id];
        assert_eq!((o.queue_ahead, o.placed_at, o.spec.qty), (dec!(0.5), t(1050), dec!(0.6)));
        // A 1.0 print at 99.5: 0.5 to the queue, 0.5 to us.
        assert_eq!(fills(&r.trade(2200, Side::Sell, dec!(99.5), dec!(1.0)))[0].qty, dec!(0.5));
        assert_eq!(r.ex.stats().amends, 1);
    }

    #[test]
    fn amend_of_the_price_loses_the_queue() {
        let (mut r, id) = resting_bid();
        amend(&mut r, id, None, Some(dec!(99.4)), 2000).0.unwrap();
        let out = r.tick(2100);
        assert_eq!(amended(&out), vec![(dec!(1), Some(dec!(99.4)), false, dec!(4))]);
        // Behind all 1.0 displayed at 99.4, with time priority from the amend.
        let o = &r.ex.orders[&id];
        assert_eq!((o.queue_ahead, o.placed_at, o.spec.price), (dec!(1), t(2050), Some(dec!(99.4))));
        // A larger size loses it too: back behind the 1.0 displayed.
        r.trade(2200, Side::Sell, dec!(99.4), dec!(0.4)); // queue 1.0 → 0.6
        amend(&mut r, id, Some(dec!(2)), None, 3000).0.unwrap();
        let out = r.tick(3100);
        assert!(!amended(&out)[0].2, "qty increase loses the queue");
        assert_eq!(r.ex.orders[&id].queue_ahead, dec!(1));
        // A new price that crosses takes at once, as a taker: 1.0 ask at 100.0.
        amend(&mut r, id, None, Some(dec!(100.0)), 4000).0.unwrap();
        let f = fills(&r.tick(4100)).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!((f[0].price, f[0].qty, f[0].liquidity), (dec!(100.0), dec!(1), Liquidity::Taker));
    }

    #[test]
    fn amend_refusals_use_krakens_strings() {
        let (mut r, id) = resting_bid();
        // Unknown now: refused at once (and journaled).
        let (res, out) = amend(&mut r, OrderId(99), Some(dec!(1)), None, 2000);
        assert_eq!(res.unwrap_err().error, "EOrder:Unknown order");
        assert!(matches!(out[0], ExecEvent::AmendRejected { .. }));
        // Values that break the rules, refused at the book; the order is unchanged.
        let cases = [
            (
                None,
                Some(dec!(99.55)),
                "EOrder:Invalid price:BTC/USD price can only be specified up to 1 decimals.",
            ),
            (Some(dec!(0.00001) + dec!(0.3)), Some(dec!(1000000.0)), "EOrder:Insufficient funds"),
        ];
        for (i, (q, p, _)) in cases.iter().enumerate() {
            amend(&mut r, id, *q, *p, 2000 + i as i64).0.unwrap();
        }
        let out = r.tick(2200);
        let errs: Vec<&str> = out
            .iter()
            .filter_map(|e| match e {
                ExecEvent::AmendRejected { rejection, .. } => Some(rejection.error.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(errs, cases.iter().map(|c| c.2).collect::<Vec<_>>());
        assert_eq!(r.ex.orders[&id].spec.price, Some(dec!(99.5)));
        // Gone before the amend arrives: filled by a print while the amend travels.
        amend(&mut r, id, Some(dec!(0.8)), None, 3000).0.unwrap();
        let out = r.trade(3010, Side::Sell, dec!(99.0), dec!(5));
        assert_eq!(fills(&out)[0].qty, dec!(1));
        let out = r.tick(3100);
        assert!(
            matches!(&out[0], ExecEvent::AmendRejected { rejection, .. } if rejection.error == "EOrder:Unknown order")
        );
    }

    #[test]
    fn amend_below_the_filled_quantity_cancels_the_rest() {
        let (mut r, id) = resting_bid();
        r.trade(1300, Side::Sell, dec!(99.5), dec!(0.8)); // 0.5 queue, 0.3 to us
        amend(&mut r, id, Some(dec!(0.2)), None, 2000).0.unwrap();
        let out = r.tick(2100);
        // Cancel penalty (rested 1 s: 8) instead of the amend's.
        assert_eq!(amended(&out), vec![(dec!(0.3), Some(dec!(99.5)), true, dec!(8))]);
        assert_eq!(cancels(&out), vec![(id, "amended_below_filled")]);
    }

    #[test]
    fn chase_reprices_with_amends_before_going_to_market() {
        let cfg = ExecutionConfig { chase_reprices: 1, ..Default::default() };
        let mut r = Rig::new(cfg, dec!(10000));
        r.book(100, true, &[(dec!(99.0), dec!(2))], &[(dec!(100.0), dec!(5))]);
        let (id, _) =
            r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.0)), Protection::default(), 1000);
        r.tick(1100);
        r.book(5000, false, &[(dec!(99.4), dec!(1))], &[]); // the bid moved up
        // 30 s after 1050 the entry is re-priced to the bid 99.4 (arrives 50 ms later).
        let out = r.tick(31_200);
        assert_eq!(amended(&out), vec![(dec!(1), Some(dec!(99.4)), false, dec!(1))]);
        assert!(cancels(&out).is_empty());
        // 30 s after the re-price the remainder goes to market as today.
        let out = r.tick(61_200);
        assert_eq!(cancels(&out), vec![(id, "chase")]);
        assert_eq!(fills(&out)[0].price, dec!(100.0));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One step of a random session.
        #[derive(Clone, Debug)]
        enum Op {
            /// Snapshot: best bid in ticks, spread in ticks, level sizes (1e-4 BTC units).
            Snapshot {
                bid: i64,
                spread: i64,
                bids: Vec<u32>,
                asks: Vec<u32>,
            },
            /// Update one level: side, price offset from 100.0 in ticks, size (0 deletes).
            Update {
                buy: bool,
                ticks: i64,
                size: u32,
            },
            /// A trade: taker side, price offset in ticks, size.
            Trade {
                buy: bool,
                ticks: i64,
                size: u32,
            },
            /// An order: kind 0..6, side, size, price offset, flags.
            Order {
                kind: u8,
                buy: bool,
                size: u32,
                ticks: i64,
                post: bool,
                ioc: bool,
                protect: bool,
            },
            Cancel {
                id: u64,
            },
            Flatten,
            /// A margin sell (short) of `size` at `leverage`: market or limit at `ticks`.
            Short {
                size: u32,
                leverage: u32,
                limit: bool,
                ticks: i64,
            },
            /// A price shock: a snapshot `ticks` (tenths of a USD) above 100, up to +60 %.
            Shock {
                ticks: i64,
                sizes: Vec<u32>,
            },
            /// Event time passes (hours): rollovers fall due.
            Wait {
                hours: i64,
            },
            /// An amend of order `id`: new size and/or price offset.
            Amend {
                id: u64,
                size: Option<u32>,
                ticks: Option<i64>,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                2 => (-20i64..20, 1i64..6, prop::collection::vec(1u32..20000, 1..5), prop::collection::vec(1u32..20000, 1..5))
                    .prop_map(|(bid, spread, bids, asks)| Op::Snapshot { bid, spread, bids, asks }),
                6 => (any::<bool>(), -25i64..25, 0u32..20000).prop_map(|(buy, ticks, size)| Op::Update { buy, ticks, size }),
                5 => (any::<bool>(), -25i64..25, 1u32..30000).prop_map(|(buy, ticks, size)| Op::Trade { buy, ticks, size }),
                5 => (0u8..7, any::<bool>(), 1u32..30000, -30i64..30, any::<bool>(), any::<bool>(), any::<bool>())
                    .prop_map(|(kind, buy, size, ticks, post, ioc, protect)| Op::Order { kind, buy, size, ticks, post, ioc, protect }),
                1 => (1u64..40).prop_map(|id| Op::Cancel { id }),
                1 => Just(Op::Flatten),
                3 => (1000u32..40000, 2u32..7, any::<bool>(), -30i64..30)
                    .prop_map(|(size, leverage, limit, ticks)| Op::Short { size, leverage, limit, ticks }),
                2 => (100i64..600, prop::collection::vec(1u32..40000, 1..4)).prop_map(|(ticks, sizes)| Op::Shock { ticks, sizes }),
                1 => (1i64..9).prop_map(|hours| Op::Wait { hours }),
                2 => (1u64..40, prop::option::of(1u32..30000), prop::option::of(-30i64..30))
                    .prop_map(|(id, size, ticks)| Op::Amend { id, size, ticks }),
            ]
        }

        fn px(ticks: i64) -> Decimal {
            dec!(100.0) + Decimal::new(ticks, 1)
        }

        fn qty(units: u32) -> Decimal {
            Decimal::new(i64::from(units), 4)
        }

        fn order_spec(kind: u8, buy: bool, size: u32, ticks: i64, post: bool, ioc: bool) -> OrderSpec {
            let side = if buy { Side::Buy } else { Side::Sell };
            let mut s = OrderSpec::market(P.into(), side, qty(size));
            let p = px(ticks);
            match kind {
                0 => {}
                1 | 2 => {
                    s.order_type = OrderType::Limit;
                    s.price = Some(p);
                    s.post_only = post;
                    s.time_in_force = if ioc { TimeInForce::Ioc } else { TimeInForce::Gtc };
                }
                3 => {
                    s.order_type = OrderType::StopLoss;
                    s.price = Some(p);
                }
                4 => {
                    s.order_type = OrderType::TakeProfit;
                    s.price = Some(p);
                }
                5 => {
                    s.order_type = OrderType::StopLossLimit;
                    s.price = Some(p);
                    s.price2 = Some(p - Decimal::new(i64::from(size % 5), 1));
                }
                _ => {
                    s.order_type = OrderType::TrailingStop;
                    s.trailing = Some(TrailingOffset::Absolute(Decimal::new(i64::from(1 + size % 20), 1)));
                }
            }
            s
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

            #[test]
            fn random_sessions_conserve_money_and_respect_the_book(
                ops in prop::collection::vec((op(), 1i64..20000), 1..80),
                usd in 50u32..5000,
                btc in 0u32..3,
                margin in any::<bool>(),
                reprices in 0u32..3,
            ) {
                // With shorts on, a small account (22…270 USD, at most 1 BTC) so that shorts
                // near the caps and the shocks reach margin calls and liquidations.
                let (usd, btc) = if margin { (usd / 20 + 20, btc.min(1)) } else { (usd, btc) };
                let bal = BTreeMap::from([
                    ("USD".to_string(), Decimal::from(usd)),
                    ("BTC".to_string(), Decimal::from(btc)),
                ]);
                // Shorts on (5× max, a 3 BTC position limit and a 4 BTC allowance, so the caps
                // bind) or off (every margin sell is then refused).
                let mut cfg = ExecutionConfig { entry_timeout: Span::from_secs(20), chase_reprices: reprices, ..Default::default() };
                cfg.margin.enabled = margin;
                cfg.margin.allowance.insert("BTC".into(), dec!(4));
                let mut inst = margin_inst();
                if let Some(m) = inst.margin.as_mut() {
                    m.short_position_limit = Some(dec!(3));
                }
                let mut r = Rig::with(cfg, bal, vec![inst]);
                let mut ms = 0i64;
                // Σ qty taken per (book event, side, level) and per trade, across the whole run.
                let mut from_level: BTreeMap<(u64, Side, Decimal), (Decimal, Decimal)> = BTreeMap::new();
                let mut from_trade: BTreeMap<(u64, Side), (Decimal, Decimal)> = BTreeMap::new();
                for (op, dt) in ops {
                    ms += dt;
                    let before = r.ex.balances();
                    let mut out = Vec::new();
                    match op {
                        Op::Snapshot { bid, spread, bids, asks } => {
                            let b: Vec<_> = bids.iter().enumerate().map(|(i, q)| (px(bid - i as i64), qty(*q))).collect();
                            let a: Vec<_> = asks.iter().enumerate().map(|(i, q)| (px(bid + spread + i as i64), qty(*q))).collect();
                            out = r.book(ms, true, &b, &a);
                        }
                        Op::Update { buy, ticks, size } => {
                            let l = [(px(ticks), qty(size))];
                            out = if buy { r.book(ms, false, &l, &[]) } else { r.book(ms, false, &[], &l) };
                        }
                        Op::Trade { buy, ticks, size } => {
                            out = r.trade(ms, if buy { Side::Buy } else { Side::Sell }, px(ticks), qty(size));
                        }
                        Op::Order { kind, buy, size, ticks, post, ioc, protect } => {
                            let spec = order_spec(kind, buy, size, ticks, post, ioc);
                            let prot = if protect && buy {
                                Protection { stop_loss: Some(px(ticks - 20)), take_profit: Some(px(ticks + 20)), trailing: None }
                            } else {
                                Protection::default()
                            };
                            let (_, o) = r.open(spec, prot, ms);
                            out.extend(o);
                            out.extend(r.tick(ms + 1));
                        }
                        Op::Cancel { id } => {
                            r.ex.cancel(OrderId(id), t(ms), "requested", &mut out);
                            out.extend(r.tick(ms + 1));
                        }
                        Op::Flatten => {
                            r.ex.flatten_all(t(ms), "emergency_stop", &mut out);
                        }
                        Op::Short { size, leverage, limit, ticks } => {
                            let mut spec = short_sell(qty(size), leverage);
                            if limit {
                                spec.order_type = OrderType::Limit;
                                spec.price = Some(px(ticks));
                            }
                            // Half of them carry a protective stop (a reduce-only buy above).
                            let stop = (size % 2 == 0).then(|| px(ticks + 30));
                            let (_, o) = r.open(spec, Protection { stop_loss: stop, ..Default::default() }, ms);
                            out.extend(o);
                            out.extend(r.tick(ms + 1));
                        }
                        Op::Shock { ticks, sizes } => {
                            let b: Vec<_> = sizes.iter().enumerate().map(|(i, q)| (px(ticks - i as i64), qty(*q))).collect();
                            let a: Vec<_> = sizes.iter().enumerate().map(|(i, q)| (px(ticks + 1 + i as i64), qty(*q))).collect();
                            out = r.book(ms, true, &b, &a);
                        }
                        Op::Wait { hours } => {
                            ms += hours * 3_600_000;
                            out = r.tick(ms);
                        }
                        Op::Amend { id, size, ticks } => {
                            let req = AmendRequest {
                                order_id: OrderId(id),
                                qty: size.map(qty),
                                limit_price: ticks.map(px),
                                trigger_price: None,
                                post_only: false,
                                decided_at: t(ms),
                            };
                            let _ = r.ex.amend(req, &mut out);
                            out.extend(r.tick(ms + 1));
                        }
                    }
                    r.ex.verify_identity().map_err(TestCaseError::fail)?;
                    // Every fill moves exactly price × qty and the fee, every margin fee its fee;
                    // nothing else moves.
                    let after = r.ex.balances();
                    let (mut d_usd, mut d_btc) = (Decimal::ZERO, Decimal::ZERO);
                    for e in &out {
                        if let ExecEvent::MarginFee { fee, currency, .. } = e {
                            prop_assert_eq!(&**currency, "USD");
                            prop_assert!(*fee > Decimal::ZERO && fee.normalize().scale() <= 5, "{e:?}");
                            d_usd -= *fee;
                        }
                    }
                    for f in fills(&out) {
                        let sign = Decimal::from(f.side.sign());
                        d_usd += -sign * f.price * f.qty - f.fee;
                        d_btc += sign * f.qty;
                        // Precision: tick 0.1, 8 lot decimals, fees at cost precision 5.
                        prop_assert!(f.price.normalize().scale() <= 1 && (f.price % dec!(0.1)).is_zero(), "{f:?}");
                        prop_assert!(f.qty.normalize().scale() <= 8 && f.qty > Decimal::ZERO, "{f:?}");
                        prop_assert!(f.fee.normalize().scale() <= 5 && f.fee >= Decimal::ZERO, "{f:?}");
                        match &f.cause {
                            FillCause::BookLevel { event_seq, level_price, level_qty } => {
                                let e = from_level.entry((*event_seq, f.side, *level_price)).or_insert((Decimal::ZERO, *level_qty));
                                e.0 += f.qty;
                                prop_assert!(e.0 <= e.1, "took {} from a level showing {}", e.0, e.1);
                            }
                            FillCause::Trade { event_seq, trade_qty, trade_price, .. } => {
                                let e = from_trade.entry((*event_seq, f.side)).or_insert((Decimal::ZERO, *trade_qty));
                                e.0 += f.qty;
                                prop_assert!(e.0 <= e.1, "filled {} from a trade of {}", e.0, e.1);
                                // Maker at our price, which the trade reached or went through.
                                let reached = match f.side { Side::Buy => *trade_price <= f.price, Side::Sell => *trade_price >= f.price };
                                prop_assert!(reached, "{f:?}");
                            }
                        }
                    }
                    let get = |m: &BTreeMap<String, Decimal>, k: &str| m.get(k).copied().unwrap_or_default();
                    prop_assert_eq!(get(&after, "USD") - get(&before, "USD"), d_usd);
                    prop_assert_eq!(get(&after, "BTC") - get(&before, "BTC"), d_btc);
                    // Below zero only by what is borrowed (BTC, within the caps) or margin fees
                    // owed (USD).
                    let borrowed: Decimal = r.ex.margin.values().map(|m| m.qty).sum();
                    prop_assert!(borrowed <= dec!(3), "short_position_limit 3 exceeded: {borrowed}");
                    prop_assert!(get(&after, "BTC") >= -borrowed, "{after:?} borrowed {borrowed}");
                    prop_assert!(get(&after, "USD") >= -r.ex.stats().margin_fees_paid, "{after:?}");
                    if !margin {
                        prop_assert!(borrowed.is_zero() && get(&after, "BTC") >= Decimal::ZERO && get(&after, "USD") >= Decimal::ZERO);
                    }
                }
                let s = r.ex.stats();
                prop_assert_eq!(s.fills, s.maker_fills + s.taker_fills);
            }
        }
    }
}
