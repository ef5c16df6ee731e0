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
//! Submodules: `fees` (schedule, 30-day volume, trading rate counter) and `fill_model`
//! (our book copy, consumed liquidity, queue rules).

#[path = "fees.rs"]
mod fees;
#[path = "fill_model.rs"]
mod fill_model;

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use fees::Tier;
use fees::{RateCounter, VolumeTracker};
use fill_model::PairBook;

use super::decisions::Contribution;
use super::instrument::{Instrument, PairStatus, Symbol};
use super::market::{BookEvent, MarketEvent, Side, SystemStatus, TradeEvent};
use super::money::{Cash, Price, Qty};
use super::orders::{
    EntryStyle, Fill, FillCause, Liquidity, OrderId, OrderOrigin, OrderRequest, OrderSpec, OrderType,
    Protection, Rejection, TimeInForce, TrailingOffset,
};
use super::portfolio::{PortfolioView, PositionView, Quote};
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
}

impl ExecEvent {
    /// Journal record type: `order`, `order_rejected`, `order_triggered`, `order_canceled`,
    /// `fill`, `position`, `trade_closed`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecEvent::OrderAccepted { .. } => "order",
            ExecEvent::OrderRejected { .. } => "order_rejected",
            ExecEvent::OrderTriggered { .. } => "order_triggered",
            ExecEvent::OrderCanceled { .. } => "order_canceled",
            ExecEvent::Fill(_) => "fill",
            ExecEvent::Position { .. } => "position",
            ExecEvent::TradeClosed(_) => "trade_closed",
        }
    }
    /// Event time.
    pub fn time(&self) -> EventTime {
        match self {
            ExecEvent::OrderAccepted { time, .. }
            | ExecEvent::OrderRejected { time, .. }
            | ExecEvent::OrderTriggered { time, .. }
            | ExecEvent::OrderCanceled { time, .. }
            | ExecEvent::Position { time, .. } => *time,
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
    /// `exit_reason` of a trade this order closes.
    fn exit_reason(&self) -> &'static str {
        match (&self.origin, self.spec.order_type) {
            (OrderOrigin::Flatten, _) => "flatten",
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
    /// Signed base quantity traded on this pair (negative after selling base the account
    /// held before, since shorts are not supported).
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
}

/// Tolerance of the equity identity: conversions through an inverted mid are inexact in
/// the 28th digit; everything else is exact decimal arithmetic.
const IDENTITY_TOLERANCE: Decimal = rust_decimal_macros::dec!(0.00000001);

/// The paper exchange and account.
pub struct PaperExchange {
    cfg: ExecutionConfig,
    currency: Arc<str>,
    initial: BTreeMap<String, Decimal>,
    balances: BTreeMap<String, Decimal>,
    pairs: BTreeMap<Symbol, PairState>,
    orders: BTreeMap<OrderId, Order>,
    groups: BTreeMap<u64, Group>,
    positions: BTreeMap<Symbol, Position>,
    system: SystemStatus,
    volume: VolumeTracker,
    stats: ExecStats,
    now: EventTime,
    next_order: u64,
    next_fill: u64,
    next_trade: u64,
    next_group: u64,
}

/// What a due timer does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Arrive,
    Cancel,
    Expire,
    Chase,
}

fn reject(error: &str, reason: String) -> Rejection {
    Rejection { error: error.to_string(), reason }
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
            pairs: BTreeMap::new(),
            orders: BTreeMap::new(),
            groups: BTreeMap::new(),
            positions: BTreeMap::new(),
            system: SystemStatus::Online,
            volume: VolumeTracker::new(cfg.fee_tier_volume),
            stats: ExecStats::default(),
            now: EventTime::ZERO,
            next_order: 1,
            next_fill: 1,
            next_trade: 1,
            next_group: 1,
        }
    }

    /// Applies one market event (`seq` = its global sequence number): books and marks,
    /// arrivals of pending orders, triggers, fills, expiries.
    pub fn on_event(&mut self, seq: u64, ev: &MarketEvent, out: &mut Vec<ExecEvent>) {
        self.now = self.now.max(ev.time());
        // Orders, cancels and timers due before this event act on the market as it was.
        self.run_timers(out);
        match ev {
            MarketEvent::Book(b) => self.on_book(seq, b, out),
            MarketEvent::Trade(t) => self.on_trade(seq, t, out),
            MarketEvent::BookInvalid { symbol, .. } => self.pair_mut(symbol).book.invalidate(),
            MarketEvent::Instrument { instrument, .. } => {
                self.pair_mut(&instrument.symbol).inst = Some(instrument.clone());
            }
            MarketEvent::Status { system, .. } => self.system = *system,
            MarketEvent::Ticker(_) => {}
        }
        // Children placed with zero latency, or orders that waited for a valid book.
        self.run_timers(out);
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

    /// Cancels every open order.
    pub fn cancel_all(&mut self, now: EventTime, reason: &str, out: &mut Vec<ExecEvent>) {
        self.now = self.now.max(now);
        let ids: Vec<OrderId> = self.orders.keys().copied().collect();
        for id in ids {
            // Emergency path: counted on the rate counter, never refused.
            if let Some(o) = self.orders.get(&id)
                && o.at_exchange()
            {
                let pen = fees::cancel_penalty(now.micros_since(o.placed_at));
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
        let held = self.held(&self.currency, None, false);
        PortfolioView {
            time: self.now,
            currency: self.currency.clone(),
            equity: self.equity(),
            available_cash: cash - held,
            positions,
            open_orders: counts.into_iter().collect(),
            quotes,
        }
    }

    /// Equity in the account currency = cash + Σ qty × mark.
    ///
    /// Computed as Σ over asset balances × the asset's value in the account currency (the
    /// mark of its pair against the account currency, or through another pair's mid), which
    /// is cash + Σ qty × mark when positions are the only non-cash holdings.
    pub fn equity(&self) -> Cash {
        self.balances
            .iter()
            .map(|(a, b)| *b * self.asset_value(a, *b >= Decimal::ZERO).unwrap_or_default())
            .sum()
    }

    /// Balances per asset (as Kraken's Balance shows them).
    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.balances.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &ExecStats {
        &self.stats
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
            // 2. The position's own records agree with its flows.
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
            if have < Decimal::ZERO && initial >= Decimal::ZERO {
                return Err(format!("balance {asset} is negative ({have}) but shorts are not supported"));
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

// ---- internals: orders and timers ----------------------------------------------------------

impl PaperExchange {
    fn pair_mut(&mut self, pair: &Symbol) -> &mut PairState {
        self.pairs.entry(pair.clone()).or_default()
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
        fees::fee_rate(self.volume.total(self.now), Liquidity::Taker, fees::is_stable_or_fiat(&inst.base))
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

    /// The earliest due action of one order, if any is due by `now`.
    fn due_of(&self, o: &Order, now: EventTime) -> Option<(EventTime, Due)> {
        let mut best: Option<(EventTime, Due)> = None;
        let mut consider = |t: EventTime, d: Due| {
            if t <= now && best.is_none_or(|b| (t, d) < b) {
                best = Some((t, d));
            }
        };
        if o.stage == Stage::Pending {
            // A known pair whose book is untrusted holds arrivals until its next snapshot;
            // an unknown pair arrives at once (and is refused by validation).
            match self.pairs.get(&o.spec.pair) {
                Some(st) if st.inst.is_some() && !st.book.valid => {}
                Some(st) if st.inst.is_some() => consider(o.arrive_at.max(st.book.valid_since), Due::Arrive),
                _ => consider(o.arrive_at, Due::Arrive),
            }
        }
        if let Some((t, _)) = &o.cancel_due {
            // Cancels reach the exchange after the order itself (same latency, FIFO).
            consider((*t).max(if o.stage == Stage::Pending { o.arrive_at } else { *t }), Due::Cancel);
        }
        if o.at_exchange() {
            if o.spec.time_in_force == TimeInForce::Gtd
                && let Some(t) = o.spec.expire_time
            {
                consider(t, Due::Expire);
            }
            let timeout = self.cfg.entry_timeout.as_micros();
            if timeout > 0
                && o.stage == Stage::Resting
                && o.spec.order_type == OrderType::Limit
                && matches!(o.origin, OrderOrigin::Intent { .. })
            {
                consider(o.placed_at.plus_micros(timeout), Due::Chase);
            }
        }
        best
    }

    /// Runs every due arrival, cancel, expiry and chase in time order.
    fn run_timers(&mut self, out: &mut Vec<ExecEvent>) {
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
            let Some((t, d, id)) = best else { break };
            match d {
                Due::Arrive => self.arrive(id, t, out),
                Due::Cancel => self.requested_cancel(id, t, out),
                Due::Expire => self.drop_order(id, t, "expired", out),
                Due::Chase => self.chase(id, t, out),
            }
        }
    }

    fn requested_cancel(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get_mut(&id) else { return };
        let Some((_, reason)) = o.cancel_due.take() else { return };
        if o.at_exchange() {
            let pen = fees::cancel_penalty(time.micros_since(o.placed_at));
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

    /// The entry chase: cancel the resting remainder, send it as a market order.
    fn chase(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.orders.get(&id).cloned() else { return };
        let pair = o.spec.pair.clone();
        let tier = self.cfg.tier;
        let pen = fees::cancel_penalty(time.micros_since(o.placed_at));
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
        let safety = o.is_child || o.chased || o.origin == OrderOrigin::Flatten;
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
        let open = self.orders.values().filter(|x| x.spec.pair == s.pair && x.at_exchange()).count();
        let limit = self.cfg.open_order_limit();
        if open >= limit as usize {
            return Err(reject(
                "EOrder:Orders limit exceeded",
                format!("{open} open orders on {} (limit {limit})", s.pair),
            ));
        }
        // Funds, counting what open orders hold. Reduce-only orders hold nothing: they are
        // clamped to the position and to the balances when they fill.
        if !s.reduce_only {
            match s.side {
                Side::Buy => {
                    let need = self.buy_cost_estimate(o, &inst);
                    let bal = self.balance(&inst.quote);
                    let held = self.held(&inst.quote, Some(o.id), true);
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
                Side::Sell => {
                    let bal = self.balance(&inst.base);
                    let held = self.held(&inst.base, Some(o.id), true);
                    if s.qty > bal - held {
                        return Err(reject(
                            "EOrder:Insufficient funds",
                            format!(
                                "sell {} {b} but available {} {b} (balance {bal} − held {held}); shorts are not supported",
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
            if Some(o.id) == except || o.spec.reduce_only || (at_exchange_only && !o.at_exchange()) {
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
            Side::Sell => {
                let avail = self.balance(&inst.base) - self.held(&inst.base, Some(o.id), true);
                want.min(inst.round_qty_down(avail.max(Decimal::ZERO)))
            }
            Side::Buy => {
                let avail = self.balance(&inst.quote) - self.held(&inst.quote, Some(o.id), true);
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

    fn fee_rate(&self, inst: &Instrument, liq: Liquidity) -> Decimal {
        fees::fee_rate(self.volume.total(self.now), liq, fees::is_stable_or_fiat(&inst.base))
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
        let st = self.pair_mut(&b.symbol);
        let touched = st.book.apply(seq, b);
        let pair = b.symbol.clone();
        // Queue ahead of our resting orders can only shrink to what is displayed now.
        let ids = self.pair_orders(&pair);
        for id in &ids {
            let Some(o) = self.orders.get(id) else { continue };
            if o.stage != Stage::Resting {
                continue;
            }
            let Some(price) = o.limit_price() else { continue };
            let side = o.spec.side;
            let Some(st) = self.pairs.get(&pair) else { continue };
            let changed =
                if b.snapshot { st.book.covers(side, price) } else { touched.contains(&(side, price)) };
            if changed {
                let displayed = st.book.qty_at(side, price);
                if let Some(o) = self.orders.get_mut(id) {
                    o.queue_ahead = fill_model::queue_after_level_change(o.queue_ahead, displayed);
                }
            }
        }
        if self.pairs.get(&pair).is_some_and(|s| s.book.valid) {
            self.cross_resting(&pair, seq, time, out);
            // Triggered orders and reduce-only remainders execute on this book.
            for id in self.pair_orders(&pair) {
                if self.orders.get(&id).is_some_and(|o| o.stage == Stage::Working) {
                    self.work(id, time, out);
                }
            }
        }
        self.update_excursion(&pair);
    }

    /// Our resting orders on `pair`, best price first per side, then time priority.
    fn pair_orders(&self, pair: &str) -> Vec<OrderId> {
        let mut v: Vec<&Order> = self.orders.values().filter(|o| &*o.spec.pair == pair).collect();
        v.sort_by(|a, b| {
            let key = |o: &Order| {
                let p = o.limit_price().unwrap_or_default();
                (o.spec.side, if o.spec.side == Side::Buy { -p } else { p }, o.placed_at, o.id)
            };
            key(a).cmp(&key(b))
        });
        v.into_iter().map(|o| o.id).collect()
    }

    /// Resting orders the book now crosses (ask ≤ our bid, bid ≥ our ask) fill as makers at
    /// our price against the crossing displayed size.
    fn cross_resting(&mut self, pair: &Symbol, seq: u64, time: EventTime, out: &mut Vec<ExecEvent>) {
        for id in self.pair_orders(pair) {
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
        let pair = t.symbol.clone();
        self.pair_mut(&pair).last_trade = Some(t.price);
        if self.pairs.get(&pair).is_some_and(|s| s.book.valid) {
            self.trade_through(&pair, seq, t, time, out);
        }
        // Triggers read the last trade even while our book copy is untrusted (the trade is
        // a fact); the triggered order then waits for a trusted book.
        for id in self.pair_orders(&pair) {
            if self.orders.get(&id).is_some_and(|o| o.stage == Stage::Waiting) {
                self.check_trigger(id, t.price, time, out);
            }
        }
        self.update_excursion(&pair);
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
        for id in self.pair_orders(pair) {
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

        let closed = self.book_position(&o, &inst, price, qty, fee, time);
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
        let p = self.positions.entry(inst.symbol.clone()).or_default();
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
        let Some(p) = self.positions.get(pair) else { return };
        if p.qty.is_zero() {
            return;
        }
        let Some(mark) = self.pair_mark(pair, p.qty > Decimal::ZERO) else { return };
        let Some(p) = self.positions.get_mut(pair) else { return };
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
        let st = self.pairs.get(pair)?;
        let mid = st.book.mid();
        match self.cfg.mark {
            MarkConvention::Mid => mid.or(st.last_trade),
            MarkConvention::Last => st.last_trade.or(mid),
            MarkConvention::Exit => {
                if long { st.book.bid() } else { st.book.ask() }.or(mid).or(st.last_trade)
            }
        }
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
        for (sym, st) in &self.pairs {
            let Some(inst) = &st.inst else { continue };
            if &*inst.base == asset
                && inst.quote == self.currency
                && let Some(m) = self.mid_of(sym)
            {
                return Some(m);
            }
        }
        for (sym, st) in &self.pairs {
            let Some(inst) = &st.inst else { continue };
            if inst.base == self.currency
                && &*inst.quote == asset
                && let Some(m) = self.mid_of(sym).filter(|m| !m.is_zero())
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
        for (sym, st) in &self.pairs {
            let Some(inst) = &st.inst else { continue };
            if &*inst.base != asset {
                continue;
            }
            let Some(m) = self.pair_mark(sym, long) else { continue };
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
                bids: levels(bids),
                asks: levels(asks),
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
            ) {
                let bal = BTreeMap::from([
                    ("USD".to_string(), Decimal::from(usd)),
                    ("BTC".to_string(), Decimal::from(btc)),
                ]);
                let cfg = ExecutionConfig { entry_timeout: Span::from_secs(20), ..Default::default() };
                let mut r = Rig::with(cfg, bal, vec![instrument(P, "BTC", "USD")]);
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
                    }
                    r.ex.verify_identity().map_err(TestCaseError::fail)?;
                    // Every fill moves exactly price × qty and the fee, nothing else moves.
                    let after = r.ex.balances();
                    let (mut d_usd, mut d_btc) = (Decimal::ZERO, Decimal::ZERO);
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
                    prop_assert!(get(&after, "USD") >= Decimal::ZERO && get(&after, "BTC") >= Decimal::ZERO);
                }
                let s = r.ex.stats();
                prop_assert_eq!(s.fills, s.maker_fills + s.taker_fills);
            }
        }
    }
}
