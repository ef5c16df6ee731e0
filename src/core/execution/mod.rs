//! Paper execution (pure): orders, the fill model against the L2 book and trades, fees,
//! balances, positions and accounting.
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
//! Files: this one holds the `PaperExchange` facade (the public calls, which coordinate the
//! parts) and the order/trade types the parts share. Each part owns its state:
//! `markets` (`Markets`: per-pair instrument, book copy, last trade, rate counter; system
//! status; published fee schedules), `open_orders` (`OrderDesk`: open orders with a change
//! counter, protection groups, amends in flight, their numbering), `accounting` (`Account`:
//! balances, positions, 30-day volume; fills, portfolio, equity, identity) and `shorts`
//! (`ShortBook`: short margin positions, the margin watch, fees owed). The behaviour parts
//! are `lifecycle` (orders and timers), `matching` (book and trade events, triggers, the
//! taker walk), `kraken_rules` (AddOrder checks by rule group) and `amend` (AmendOrder);
//! `memo` holds the event path's shortcuts with their invariant; the plain parts are
//! `config` (`execution.*`), `events` (what it reports), `fill_model` (our book copy,
//! consumed liquidity, queue rules) and `margin` (margin config, fees, allowances, margin
//! level). Fees, the 30-day volume and the trading rate counter are `core::fees`.

mod accounting;
mod amend;
mod config;
mod events;
mod fill_model;
mod kraken_rules;
mod lifecycle;
mod margin;
mod markets;
mod matching;
mod memo;
mod open_orders;
mod shorts;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::core::fees;
pub use crate::core::fees::{PairFees, Tier};
use accounting::Account;
pub use accounting::IdentityError;
pub use config::{ExecutionConfig, MarkConvention};
pub use events::{ClosedTrade, ExecEvent, ExecStats};
pub use margin::MarginConfig;
use markets::{Markets, PairState, mark_of};
use memo::Memo;
use open_orders::OrderDesk;
use shorts::ShortBook;

use super::decisions::Contribution;
use super::instrument::Symbol;
use super::market::{MarketEvent, Side};
use super::money::{Cash, Price, Qty};
use super::orders::{
    AmendRequest, Liquidity, OrderId, OrderOrigin, OrderRequest, OrderSpec, OrderType, Protection, Rejection,
};
use super::time::EventTime;

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

/// The paper exchange and account: a facade over its parts, each owning its state. The
/// public calls coordinate them; `cfg`, the event clock, the counters and the shortcuts
/// (`memo`) are shared by all.
pub struct PaperExchange {
    cfg: ExecutionConfig,
    now: EventTime,
    stats: ExecStats,
    /// Pairs (instrument, book copy, last trade, rate counter), system status, fee schedules.
    markets: Markets,
    /// Open orders, protection groups, amends in flight.
    desk: OrderDesk,
    /// Balances, positions, 30-day volume.
    account: Account,
    /// Short margin positions and the margin watch.
    shorts: ShortBook,
    /// What the event path remembers to skip work (equity, timer floor, position changes),
    /// with the invariant that makes it safe (see `memo`).
    memo: Memo,
}

fn reject(error: &str, reason: String) -> Rejection {
    Rejection { error: error.to_string(), reason }
}

impl PaperExchange {
    /// A new account in `currency` holding `balances`.
    pub fn new(cfg: &ExecutionConfig, currency: &str, balances: &BTreeMap<String, Decimal>) -> PaperExchange {
        PaperExchange {
            cfg: cfg.clone(),
            now: EventTime::ZERO,
            stats: ExecStats::default(),
            markets: Markets::new(),
            desk: OrderDesk::new(),
            account: Account::new(currency, balances, cfg.fee_tier_volume),
            shorts: ShortBook::default(),
            memo: Memo::default(),
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
            MarketEvent::BookInvalid { symbol, .. } => self.markets.pair_mut(symbol).book.invalidate(),
            MarketEvent::Instrument { instrument, .. } => {
                self.markets.pair_mut(&instrument.symbol).inst = Some(instrument.clone());
                self.memo.equity.set(None);
            }
            MarketEvent::Status { system, .. } => self.markets.system = *system,
            MarketEvent::FeeSchedule { symbol, fees: f, time } => {
                self.markets.fee_schedules.insert(symbol.clone(), f.clone());
                out.push(ExecEvent::FeeSchedule {
                    time: *time,
                    pair: symbol.clone(),
                    taker: f.taker.clone(),
                    maker: f.maker.clone(),
                    volume_currency: f.volume_currency.clone(),
                    taker_rate: f.rate(self.account.volume.total(self.now), Liquidity::Taker),
                    maker_rate: f.rate(self.account.volume.total(self.now), Liquidity::Maker),
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
            let g = self.desk.take_group();
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
            self.desk.groups.insert(
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
        if let Some(o) = self.desk.orders.get_mut(&id) {
            o.cancel_due = Some((due, reason.to_string()));
        }
        if due <= self.now {
            self.run_timers(out);
        }
    }

    /// A signal for `side` on `pair`: cancels the pair's open entry orders on the other side
    /// (orders a trade intent placed that may open exposure — a resting entry, or the
    /// remainder of a partly filled one — not protective children, exits or flattening).
    /// Their signal has reversed, so they have no reason left to fill: a resting entry would
    /// otherwise be chased to market against the new signal, and an entry's remainder left
    /// after its position's signal exit would open a new position. Each cancel travels with
    /// the modelled latency, like [`PaperExchange::cancel`]. Returns how many were cancelled.
    pub fn cancel_entries_against(
        &mut self,
        pair: &Symbol,
        side: Side,
        now: EventTime,
        out: &mut Vec<ExecEvent>,
    ) -> usize {
        let ids: Vec<OrderId> = self
            .desk
            .orders
            .values()
            .filter(|o| {
                o.spec.pair == *pair
                    && o.spec.side != side
                    && !o.spec.reduce_only
                    && !o.is_child
                    && matches!(o.origin, OrderOrigin::Intent { .. })
                    && o.cancel_due.is_none()
            })
            .map(|o| o.id)
            .collect();
        for id in &ids {
            self.cancel(*id, now, "signal_reversed", out);
        }
        ids.len()
    }

    /// Kraken's AmendOrder: the amend travels to the exchange with the modelled latency
    /// (after the order itself) and is applied there in place, or refused with an
    /// `amend_rejected` record. Refused at once (also journaled) when the order is not open
    /// now or the request changes nothing. Returns the amend's id.
    pub fn amend(&mut self, req: AmendRequest, out: &mut Vec<ExecEvent>) -> Result<u64, Rejection> {
        let (id, time) = (req.order_id, req.decided_at.max(self.now));
        let refusal = if !self.desk.orders.contains_key(&id) {
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
            let aid = self.desk.take_amend();
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
        if self.desk.amends.get(&aid).is_some_and(|a| a.due <= self.now) {
            self.run_timers(out);
        }
        Ok(aid)
    }

    /// Cancels every open order.
    pub fn cancel_all(&mut self, now: EventTime, reason: &str, out: &mut Vec<ExecEvent>) {
        self.now = self.now.max(now);
        let ids: Vec<OrderId> = self.desk.orders.keys().copied().collect();
        for id in ids {
            // Emergency path: counted on the rate counter, never refused.
            if let Some(o) = self.desk.orders.get(&id)
                && o.at_exchange()
            {
                let pen = fees::cancel_penalty(o.rest_age(now));
                let pair = o.spec.pair.clone();
                let tier = self.cfg.tier;
                self.markets.pair_mut(&pair).rate.force_add(now, tier, pen);
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
            .account
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

    /// Balances per asset (as Kraken's Balance shows them).
    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.account.balances.clone()
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
        self.shorts.positions.is_empty()
            && self
                .account
                .balances
                .iter()
                .all(|(asset, b)| b.is_zero() || asset.as_str() == &*self.account.currency)
    }

    /// Open positions.
    pub fn open_positions(&self) -> usize {
        self.account.positions.values().filter(|p| !p.qty.is_zero()).count()
    }
}
