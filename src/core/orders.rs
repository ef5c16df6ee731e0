//! Orders and fills: the vocabulary shared by RiskManager (which approves opening orders),
//! PositionBook (which executes them against the book) and the Journal.
//!
//! An opening [`OrderRequest`] can only be built with a [`RiskApproval`], which only the risk
//! core can create, so the type system proves every new exposure passed risk. PositionBook
//! may itself build only reduce-only orders (protective children, flattening).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::decisions::Contribution;
pub use super::fees::Liquidity;
use super::instrument::Symbol;
use super::market::Side;
use super::money::{Cash, Price, Qty};
use super::time::EventTime;

/// Engine-assigned order id (deterministic: a counter, never random or time-based).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "O{:07}", self.0)
    }
}

/// Kraken's order types (`ordertype` in AddOrder).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderType {
    /// Fill now against the book, walking levels.
    Market,
    /// Fill at `price` or better; the rest rests on the book.
    Limit,
    /// Market order triggered when the last trade reaches `price` (adverse direction).
    StopLoss,
    /// Market order triggered when the last trade reaches `price` (favourable direction).
    TakeProfit,
    /// Limit order at `price2` triggered at `price` (adverse direction).
    StopLossLimit,
    /// Limit order at `price2` triggered at `price` (favourable direction).
    TakeProfitLimit,
    /// Market order triggered when the price retraces by the trailing offset from its best.
    TrailingStop,
}

impl OrderType {
    /// Kraken's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::StopLoss => "stop-loss",
            OrderType::TakeProfit => "take-profit",
            OrderType::StopLossLimit => "stop-loss-limit",
            OrderType::TakeProfitLimit => "take-profit-limit",
            OrderType::TrailingStop => "trailing-stop",
        }
    }
    /// True for the types that wait for a trigger price.
    pub fn is_triggered(self) -> bool {
        matches!(
            self,
            OrderType::StopLoss
                | OrderType::TakeProfit
                | OrderType::StopLossLimit
                | OrderType::TakeProfitLimit
                | OrderType::TrailingStop
        )
    }
}

/// Time in force (`timeinforce`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TimeInForce {
    /// Good till cancelled.
    #[default]
    Gtc,
    /// Immediate or cancel: whatever does not fill on arrival is cancelled.
    Ioc,
    /// Good till `expire_time` (event time).
    Gtd,
}

/// Trailing-stop offset from the best price since placement.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingOffset {
    /// A price distance (`+50` in Kraken's syntax).
    Absolute(Price),
    /// A percentage of the best price (`+1.5%`), in percent points.
    Percent(rust_decimal::Decimal),
}

/// What is asked of the exchange: the fields of Kraken's AddOrder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSpec {
    /// Pair.
    pub pair: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Order type.
    pub order_type: OrderType,
    /// Quantity in base units.
    pub qty: Qty,
    /// Limit price (limit) or trigger price (stop-loss, take-profit and their -limit forms).
    pub price: Option<Price>,
    /// Limit price of the -limit triggered types.
    pub price2: Option<Price>,
    /// Offset of a trailing stop.
    pub trailing: Option<TrailingOffset>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Expiry for GTD (event time).
    pub expire_time: Option<EventTime>,
    /// Post-only: rejected if it would take liquidity on arrival.
    pub post_only: bool,
    /// May only reduce an existing position.
    pub reduce_only: bool,
    /// Client order id (`cl_ord_id`), unique among open orders.
    pub client_order_id: Option<String>,
    /// Kraken's `leverage`: set on a margin order (a sell that opens or adds to a short
    /// margin position); absent for spot orders. Only with `execution.margin.enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<u32>,
}

impl OrderSpec {
    /// A market order.
    pub fn market(pair: Symbol, side: Side, qty: Qty) -> Self {
        OrderSpec {
            pair,
            side,
            order_type: OrderType::Market,
            qty,
            price: None,
            price2: None,
            trailing: None,
            time_in_force: TimeInForce::Gtc,
            expire_time: None,
            post_only: false,
            reduce_only: false,
            client_order_id: None,
            leverage: None,
        }
    }
    /// A GTC limit order.
    pub fn limit(pair: Symbol, side: Side, qty: Qty, price: Price) -> Self {
        OrderSpec { order_type: OrderType::Limit, price: Some(price), ..OrderSpec::market(pair, side, qty) }
    }
}

/// Protective orders placed when an entry fills (one cancels the other).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Stop-loss trigger price.
    pub stop_loss: Option<Price>,
    /// Take-profit trigger price.
    pub take_profit: Option<Price>,
    /// Trailing-stop offset (instead of, or in addition to, the stop-loss).
    pub trailing: Option<TrailingOffset>,
}

/// Why an order exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderOrigin {
    /// Approved by RiskManager for a trade intent.
    Intent {
        /// The intent's id.
        intent_id: u64,
    },
    /// A protective child (stop-loss / take-profit) of an entry order.
    Protective {
        /// The entry order.
        parent: OrderId,
    },
    /// Flattening after an emergency stop or at shutdown.
    Flatten,
    /// Placed through the order API by a user or an external tool (still risk-approved
    /// when it opens exposure).
    Api,
    /// Forced close of a short margin position whose margin level fell to the pair's
    /// `margin_stop` (Kraken marks such orders `liquidated`).
    Liquidation,
}

/// Proof that the risk core approved an opening order. Only `crate::core::risk` can make one.
#[derive(Debug)]
pub struct RiskApproval {
    pub(crate) _sealed: Sealed,
}

/// Seal for [`RiskApproval`]; its constructor is private to the risk core.
#[derive(Debug)]
pub struct Sealed(());

impl Sealed {
    /// Only called from `core::risk`.
    pub(in crate::core) fn new_for_risk() -> Sealed {
        Sealed(())
    }
}

/// An order on its way to PositionBook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    spec: OrderSpec,
    protection: Protection,
    origin: OrderOrigin,
    decided_at: EventTime,
    contributions: Vec<Contribution>,
    tags: Vec<String>,
}

impl OrderRequest {
    /// An order that may open exposure; needs the risk core's approval.
    pub fn opening(
        spec: OrderSpec,
        protection: Protection,
        origin: OrderOrigin,
        decided_at: EventTime,
        contributions: Vec<Contribution>,
        tags: Vec<String>,
        _approval: RiskApproval,
    ) -> Self {
        OrderRequest { spec, protection, origin, decided_at, contributions, tags }
    }

    /// An order that can only reduce a position (forced `reduce_only`); no approval needed.
    pub fn reducing(mut spec: OrderSpec, origin: OrderOrigin, decided_at: EventTime) -> Self {
        spec.reduce_only = true;
        OrderRequest {
            spec,
            protection: Protection::default(),
            origin,
            decided_at,
            contributions: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// The order's fields.
    pub fn spec(&self) -> &OrderSpec {
        &self.spec
    }
    /// Protective children to place when it fills.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }
    /// Why it exists.
    pub fn origin(&self) -> &OrderOrigin {
        &self.origin
    }
    /// Event time of the decision (arrival at the book is this plus the modelled latency).
    pub fn decided_at(&self) -> EventTime {
        self.decided_at
    }
    /// Signals that led to it (carried to the closed trade for attribution).
    pub fn contributions(&self) -> &[Contribution] {
        &self.contributions
    }
    /// User tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// Kraken's AmendOrder: change an open order in place (same id, fills kept). Fields left
/// `None` keep their value. A quantity reduction keeps the order's queue priority; a new
/// limit price, or a larger quantity, sends it to the back of the queue at its price.
/// Amending the quantity to or below what already filled cancels the remainder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendRequest {
    /// The order to amend.
    pub order_id: OrderId,
    /// New total quantity (`order_qty`, base units, including what already filled).
    pub qty: Option<Qty>,
    /// New limit price (`limit_price`): the price of a limit order, `price2` of the -limit
    /// triggered types.
    pub limit_price: Option<Price>,
    /// New trigger price (`trigger_price`) of a stop-loss / take-profit (and -limit) order.
    pub trigger_price: Option<Price>,
    /// Kraken's `post_only` amend flag: refuse a limit price change that would take.
    #[serde(default)]
    pub post_only: bool,
    /// Event time of the decision (the amend reaches the book after the modelled latency).
    pub decided_at: EventTime,
}

/// What market data produced a fill, so every fill can be explained from the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FillCause {
    /// Taken from a displayed book level.
    BookLevel {
        /// Sequence number of the market event whose book was walked.
        event_seq: u64,
        /// Price of the level.
        level_price: Price,
        /// Displayed quantity of the level before we took from it.
        level_qty: Qty,
    },
    /// A trade printed through our resting price.
    Trade {
        /// Sequence number of the trade event.
        event_seq: u64,
        /// Kraken's trade id.
        trade_id: u64,
        /// Trade price.
        trade_price: Price,
        /// Trade quantity.
        trade_qty: Qty,
    },
}

/// One execution of (part of) an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Unique, deterministic fill id.
    pub fill_id: u64,
    /// The order.
    pub order_id: OrderId,
    /// Pair.
    pub pair: Symbol,
    /// Side of our order.
    pub side: Side,
    /// Execution price.
    pub price: Price,
    /// Executed quantity (base).
    pub qty: Qty,
    /// Fee charged (negative = rebate), in `fee_currency`.
    pub fee: Cash,
    /// Currency of the fee (quote by default).
    pub fee_currency: Arc<str>,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// Event time of the fill.
    pub time: EventTime,
    /// Market data that produced it.
    pub cause: FillCause,
    /// Cost of crossing versus the mid at arrival, in quote currency (≥ 0 is worse).
    pub slippage: Cash,
    /// True when the order still has quantity left after this fill.
    pub partial: bool,
}

/// Lifecycle states of an order (Kraken's `status`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, waiting for its latency to elapse or its trigger.
    Pending,
    /// Resting on the book.
    Open,
    /// Fully filled.
    Closed,
    /// Cancelled (by request, OCO, IOC remainder, or emergency stop).
    Canceled,
    /// GTD expiry passed.
    Expired,
    /// Refused on arrival.
    Rejected,
    /// Closed by a forced margin liquidation (Kraken: `closed` with `misc` `liquidated`).
    Liquidated,
}

/// A refusal with Kraken's error string and our explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Kraken's error string, e.g. `EOrder:Order minimum not met`.
    pub error: String,
    /// Why, with the numbers (e.g. `qty 0.00001 < ordermin 0.00005`).
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.error, self.reason)
    }
}

/// How RiskManager turns an approved intent into an entry order (config
/// `execution.entry`): the price is set from the touch at decision time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EntryStyle {
    /// A market order (taker).
    Market,
    /// A limit order at the touch (bid for buys, ask for sells) moved `offset_ticks` toward
    /// the other side (0 = join the touch; never crossing the spread).
    Limit {
        /// Ticks inside the spread (≥ 0) or behind the touch (< 0).
        #[serde(default)]
        offset_ticks: i32,
    },
    /// Like `Limit`, with Kraken's `post` flag: rejected if it would take.
    PostOnly {
        /// Ticks inside the spread (≥ 0) or behind the touch (< 0).
        #[serde(default)]
        offset_ticks: i32,
    },
}

impl Default for EntryStyle {
    fn default() -> Self {
        EntryStyle::Limit { offset_ticks: 0 }
    }
}
