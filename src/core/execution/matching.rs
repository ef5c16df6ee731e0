//! Matching of the paper exchange against market data: book events (queue updates, resting
//! orders crossed by the book, working orders taking liquidity), trades (resting limits
//! filled through their price, triggers on the last trade), and the taker walk `take`.
//!
//! The hottest code of the crate: it runs on every book and trade event.

use rust_decimal::Decimal;
use smallvec::SmallVec;

use super::events::ExecEvent;
use super::fill_model;
use super::{Order, PairState, PaperExchange, Stage, mark_of};
use crate::core::fees;
use crate::core::instrument::{Instrument, Symbol};
use crate::core::market::{BookEvent, Side, TradeEvent};
use crate::core::money::{Price, Qty};
use crate::core::orders::{FillCause, Liquidity, OrderId, OrderType, TimeInForce, TrailingOffset};
use crate::core::time::EventTime;

/// The ids of one pair's orders (inline up to 8: a pair rarely has more).
type PairOrders = SmallVec<[OrderId; 8]>;

/// `name` is the pair `sym`: the same `Arc` (events and their orders share the decoder's),
/// else the same text.
fn same_pair(sym: &Symbol, name: &str) -> bool {
    (std::ptr::eq(sym.as_ptr(), name.as_ptr()) && sym.len() == name.len()) || **sym == *name
}

impl PaperExchange {
    pub(super) fn taker_rate(&self, inst: &Instrument) -> Decimal {
        self.fee_rate(inst, Liquidity::Taker)
    }

    /// Quantity the order may execute now: its remainder, clamped for reduce-only orders to
    /// the position (0 when the position is gone or on the same side).
    pub(super) fn executable(&self, o: &Order) -> Qty {
        let rem = o.remaining();
        if !o.spec.reduce_only {
            return rem;
        }
        let pos = self.account.position_qty(&o.spec.pair);
        let reducing = (pos > Decimal::ZERO && o.spec.side == Side::Sell)
            || (pos < Decimal::ZERO && o.spec.side == Side::Buy);
        if reducing { rem.min(pos.abs()) } else { Decimal::ZERO }
    }

    /// Caps `want` at what the balances pay for at `price` (fee included), excluding what
    /// other orders hold. Keeps every balance non-negative.
    pub(super) fn affordable(
        &self,
        o: &Order,
        inst: &Instrument,
        price: Price,
        want: Qty,
        liq: Liquidity,
    ) -> Qty {
        match o.spec.side {
            Side::Sell if o.is_margin_sell() => self.margin_sell_affordable(o, inst, want),
            Side::Sell => {
                let avail = self.account.balance(&inst.base) - self.held(&inst.base, Some(o.id), true);
                want.min(inst.round_qty_down(avail.max(Decimal::ZERO)))
            }
            Side::Buy => {
                let avail = self.account.balance(&inst.quote)
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
    pub(super) fn fee_rate(&self, inst: &Instrument, liq: Liquidity) -> Decimal {
        let volume = self.account.volume.total(self.now);
        match self.markets.fee_schedules.get(&inst.symbol) {
            Some(f) => f.rate(volume, liq),
            None => fees::fee_rate(volume, liq, fees::is_stable_or_fiat(&inst.base)),
        }
    }

    /// A limit order at the book: the marketable part takes, the rest rests (IOC: cancelled).
    pub(super) fn start_limit(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(limit) = self.desk.orders.get(&id).and_then(|o| o.limit_price()) else { return };
        let seq =
            self.desk.orders.get(&id).and_then(|o| self.markets.pairs.get(&o.spec.pair)).map(|s| s.book.seq);
        self.take(id, time, Some(limit), seq.unwrap_or_default(), out);
        let Some(o) = self.desk.orders.get(&id) else { return };
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
        let queue = self.markets.pairs.get(&pair).map(|s| s.book.qty_at(side, limit)).unwrap_or_default();
        if let Some(o) = self.desk.orders.get_mut(&id) {
            o.stage = Stage::Resting;
            o.queue_ahead = queue;
        }
    }

    /// A market-like order executes against the current book; what the book cannot take is
    /// cancelled, except for reduce-only orders (stops, flatten) which keep working.
    pub(super) fn work(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.desk.orders.get(&id) else { return };
        if !self.markets.pairs.get(&o.spec.pair).is_some_and(|s| s.book.valid) {
            return; // retried at the next trusted book
        }
        if o.limit_price().is_some() {
            // A triggered -limit order now behaves as a limit arriving at the book.
            self.start_limit(id, time, out);
            return;
        }
        let seq = self.markets.pairs.get(&o.spec.pair).map(|s| s.book.seq).unwrap_or_default();
        let stopped = self.take(id, time, None, seq, out);
        let Some(o) = self.desk.orders.get(&id) else { return };
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
    pub(super) fn take(
        &mut self,
        id: OrderId,
        time: EventTime,
        limit: Option<Price>,
        seq: u64,
        out: &mut Vec<ExecEvent>,
    ) -> Option<&'static str> {
        loop {
            let o = self.desk.orders.get(&id)?;
            let want = self.executable(o);
            if want.is_zero() {
                return None;
            }
            let inst = self.markets.inst(&o.spec.pair)?;
            let st = self.markets.pairs.get(&o.spec.pair)?;
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
            self.markets.pair_mut(&pair).book.consume(book_side, price, qty);
            let cause = FillCause::BookLevel { event_seq: seq, level_price: price, level_qty: displayed };
            self.apply_fill(id, price, qty, Liquidity::Taker, cause, time, out);
        }
    }

    #[inline]
    pub(super) fn on_book(&mut self, seq: u64, b: &BookEvent, out: &mut Vec<ExecEvent>) {
        let time = self.now;
        let pair = &b.symbol;
        let st = self.markets.pairs.get_or_insert_with(pair, PairState::default);
        let touch_moved = st.book.apply(seq, b);
        let valid = st.book.valid;
        // Nothing new for the excursion unless the marks moved or a position changes here.
        let positions_at = self.memo.positions_changed;
        let excursion_current = !touch_moved && st.memo.excursion_at == Some(positions_at);
        if touch_moved && st.memo.valued.get() {
            self.memo.equity.set(None); // new marks of a pair that equity reads
        }
        let ids = self.pair_orders(pair, Stage::Resting);
        // Queue ahead of our resting orders can only shrink to what is displayed now.
        for id in &ids {
            let Some(o) = self.desk.orders.get(id) else { continue };
            let Some(price) = o.limit_price() else { continue };
            let side = o.spec.side;
            let Some(st) = self.markets.pairs.get(pair) else { continue };
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
                if let Some(o) = self.desk.orders.get_mut(id) {
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
                if self.desk.orders.get(&id).is_some_and(|o| o.stage == Stage::Working) {
                    self.work(id, time, out);
                }
            }
        }
        if !(excursion_current && self.memo.positions_changed == positions_at) {
            self.update_excursion(pair);
        }
    }

    /// Our orders on `pair` at `stage`, best price first per side, then time priority.
    ///
    /// The loops over them act only on orders at that stage, and nothing they do moves
    /// another order of the pair into it (fills place new children, which are pending):
    /// leaving the others out changes nothing but the work of listing them.
    #[inline]
    pub(super) fn pair_orders(&self, pair: &str, stage: Stage) -> PairOrders {
        if !self.desk.orders.any_at(stage) {
            return PairOrders::new(); // most events: only the protective children, waiting
        }
        self.list_pair_orders(pair, stage)
    }

    /// `pair_orders` when some order is at `stage`.
    pub(super) fn list_pair_orders(&self, pair: &str, stage: Stage) -> PairOrders {
        let mut ids = PairOrders::new();
        let mut keyed: SmallVec<[_; 8]> = SmallVec::new();
        for o in self.desk.orders.values() {
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
    pub(super) fn cross_resting(
        &mut self,
        pair: &Symbol,
        ids: &[OrderId],
        seq: u64,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        for &id in ids {
            while let Some(o) = self.desk.orders.get(&id) {
                if o.stage != Stage::Resting {
                    break;
                }
                let Some(ours) = o.limit_price() else { break };
                let want = self.executable(o);
                let Some(inst) = self.markets.inst(pair) else { break };
                let Some(st) = self.markets.pairs.get(pair) else { break };
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
                self.markets.pair_mut(pair).book.consume(book_side, price, qty);
                let cause = FillCause::BookLevel { event_seq: seq, level_price: price, level_qty: displayed };
                self.apply_fill(id, ours, qty, Liquidity::Maker, cause, time, out);
            }
        }
    }

    #[inline]
    pub(super) fn on_trade(&mut self, seq: u64, t: &TradeEvent, out: &mut Vec<ExecEvent>) {
        let time = self.now;
        let pair = &t.symbol;
        // Nothing new for the excursion unless a mark moved (to the digit) or a position
        // changes here. Only an open trade is worth the comparison (and the mid it reads):
        // without one, taking the excursion in ends at once.
        let positions_at = self.memo.positions_changed;
        let trade_open =
            self.account.positions.get(pair).is_some_and(|p| p.trade.is_some() && !p.qty.is_zero());
        let st = self.markets.pairs.get_or_insert_with(pair, PairState::default);
        let marks = |st: &PairState| {
            [true, false].map(|long| mark_of(st, self.cfg.mark, long).map(|m| m.serialize()))
        };
        let marks_before = trade_open.then(|| marks(st));
        st.last_trade = Some(t.price);
        let valid = st.book.valid;
        let excursion_current =
            trade_open && st.memo.excursion_at == Some(positions_at) && marks_before == Some(marks(st));
        if st.memo.valued.get() {
            self.memo.equity.set(None); // a new last trade: marks equity reads may move
        }
        if valid {
            self.trade_through(pair, seq, t, time, out);
        }
        // Triggers read the last trade even while our book copy is untrusted (the trade is
        // a fact); the triggered order then waits for a trusted book.
        for id in self.pair_orders(pair, Stage::Waiting) {
            if self.desk.orders.get(&id).is_some_and(|o| o.stage == Stage::Waiting) {
                self.check_trigger(id, t.price, time, out);
            }
        }
        if !(excursion_current && self.memo.positions_changed == positions_at) {
            self.update_excursion(pair);
        }
    }

    /// Resting limits fill from a trade printed through (or, after the queue ahead, at)
    /// their price, for at most the printed quantity.
    pub(super) fn trade_through(
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
            let Some(o) = self.desk.orders.get(&id) else { continue };
            if o.stage != Stage::Resting {
                continue;
            }
            let Some(ours) = o.limit_price() else { continue };
            let Some(_through) = fill_model::trade_reaches(o.spec.side, ours, t) else { continue };
            let left = if o.spec.side == Side::Buy { &mut left_buy } else { &mut left_sell };
            let (eaten, avail) = fill_model::split_trade(*left, o.queue_ahead, self.cfg.fill_at_touch);
            let want = self.executable(o);
            let Some(inst) = self.markets.inst(pair) else { continue };
            let qty = self.affordable(o, &inst, ours, want.min(avail), Liquidity::Maker);
            let left = if o.spec.side == Side::Buy { &mut left_buy } else { &mut left_sell };
            *left -= eaten + qty.max(Decimal::ZERO);
            if let Some(o) = self.desk.orders.get_mut(&id) {
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
    pub(super) fn check_trigger(
        &mut self,
        id: OrderId,
        last: Price,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let Some(o) = self.desk.orders.get_mut(&id) else { return };
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
        o.ref_mid = self.markets.pairs.get(&pair).and_then(|s| s.book.mid());
        self.stats.stops_triggered += 1;
        out.push(ExecEvent::OrderTriggered { time, order_id: id, trigger_price: last });
        // One cancels the other: the siblings go, and so does what is left of the entry.
        if let Some(g) = group.and_then(|g| self.desk.groups.get_mut(&g)) {
            g.triggered = true;
            let others: Vec<OrderId> = g.children().filter(|c| *c != id).collect();
            let entry = g.entry;
            for c in others {
                self.drop_order(c, time, "oco", out);
            }
            let entries: Vec<OrderId> = self
                .desk
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
}
