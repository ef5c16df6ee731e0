//! What PositionBook tells RiskManager about the account after each stretch of events.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::instrument::{Instrument, Symbol};
use super::money::{Cash, Price, Qty};
use super::time::EventTime;

/// One open position, valued in the account currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionView {
    /// Pair.
    pub pair: Symbol,
    /// Signed quantity (negative = short).
    pub qty: Qty,
    /// Average entry price.
    pub avg_price: Price,
    /// Current mark price (quote currency).
    pub mark: Price,
    /// |qty| × mark, converted to the account currency.
    pub notional: Cash,
    /// Unrealized P&L in the account currency.
    pub unrealized: Cash,
}

/// Market facts risk sizing needs for one pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Pair metadata.
    pub instrument: Arc<Instrument>,
    /// Best bid.
    pub bid: Price,
    /// Best ask.
    pub ask: Price,
    /// Value of one unit of the quote currency in the account currency (1 for USD pairs
    /// in a USD account).
    pub quote_to_account: Price,
    /// False while the book is untrusted or stale: no new exposure.
    pub tradable: bool,
}

/// The account as PositionBook sees it at `time`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortfolioView {
    /// Event time of the view.
    pub time: EventTime,
    /// Account currency.
    pub currency: Arc<str>,
    /// Equity = cash + Σ qty × mark, in the account currency.
    pub equity: Cash,
    /// Free cash in the account currency (not held by open orders).
    pub available_cash: Cash,
    /// Open positions.
    pub positions: Vec<PositionView>,
    /// Open (resting or pending) orders per pair.
    pub open_orders: Vec<(Symbol, usize)>,
    /// Quotes of the traded pairs.
    pub quotes: Vec<Quote>,
    /// The margin account; None when `execution.margin.enabled` is false (no shorts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<MarginView>,
}

/// The margin account (Kraken's TradeBalance figures), in the account currency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginView {
    /// Leverage new shorts are opened with (`execution.margin.leverage`, capped per pair at
    /// its highest `leverage_sell`).
    pub leverage: u32,
    /// Σ over short margin positions of borrowed qty × mark / leverage.
    pub used_margin: Cash,
    /// Equity − used margin − margin reserved by open margin orders (what new shorts may
    /// use).
    pub free_margin: Cash,
    /// Equity / used margin × 100 (percent); None without margin positions.
    pub margin_level: Option<rust_decimal::Decimal>,
    /// Short margin positions open.
    pub positions: usize,
}

impl PortfolioView {
    /// The position on `pair`, if any.
    pub fn position(&self, pair: &str) -> Option<&PositionView> {
        self.positions.iter().find(|p| &*p.pair == pair)
    }
    /// The quote for `pair`, if any.
    pub fn quote(&self, pair: &str) -> Option<&Quote> {
        self.quotes.iter().find(|q| &*q.instrument.symbol == pair)
    }
    /// Open orders on `pair`.
    pub fn open_orders_on(&self, pair: &str) -> usize {
        self.open_orders.iter().find(|(p, _)| &**p == pair).map(|(_, n)| *n).unwrap_or(0)
    }
}

/// Mid prices sampled on a fixed event-time grid (for volatility and correlation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkSample {
    /// Grid time.
    pub time: EventTime,
    /// Mid price per pair at that time.
    pub mids: Vec<(Symbol, Price)>,
}
