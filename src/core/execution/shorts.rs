//! Short margin positions of the paper exchange's account: borrowing on margin sells,
//! allowances, margin figures, opening and rollover fees, and the margin-call /
//! liquidation watch run after every event. The tables and formulas are in `margin`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::events::ExecEvent;
use super::margin::{self, MarginPosition};
use super::{MarginAccount, Order, PaperExchange, Position};
use crate::core::instrument::{Instrument, MarginTerms, Symbol};
use crate::core::market::Side;
use crate::core::money::{Cash, Price, Qty};
use crate::core::orders::{OrderId, OrderOrigin, OrderSpec};
use crate::core::time::EventTime;

/// The account's short margin positions and the margin watch's own state.
#[derive(Default)]
pub(super) struct ShortBook {
    /// Short margin positions per pair.
    pub(super) positions: BTreeMap<Symbol, MarginPosition>,
    /// The margin level is below the margin call level (re-armed when it recovers).
    pub(super) call_active: bool,
    /// Σ margin fees charged per currency: they are owed even when the balance cannot pay
    /// them, so they are the only thing that can take a quote balance below zero.
    pub(super) fees_owed: BTreeMap<String, Decimal>,
}

impl PaperExchange {
    /// What a margin sell may execute now: the long part up to the base available, the
    /// short part up to the position limit and the margin allowance.
    pub(super) fn margin_sell_affordable(&self, o: &Order, inst: &Instrument, want: Qty) -> Qty {
        let closing = want.min(self.account.position_qty(&o.spec.pair).max(Decimal::ZERO));
        if closing > Decimal::ZERO {
            let avail = (self.account.balance(&inst.base) - self.held(&inst.base, Some(o.id), true))
                .max(Decimal::ZERO);
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
    pub(super) fn borrowed(
        &self,
        inst: &Instrument,
        except: Option<OrderId>,
        with_orders: bool,
    ) -> (Qty, Qty) {
        let (mut on_pair, mut of_asset) = (Decimal::ZERO, Decimal::ZERO);
        for (pair, m) in &self.shorts.positions {
            if self.markets.inst(pair).is_some_and(|i| i.base == inst.base) {
                of_asset += m.qty;
                if *pair == inst.symbol {
                    on_pair += m.qty;
                }
            }
        }
        if with_orders {
            for o in self.desk.orders.values() {
                if !o.is_margin_sell() || Some(o.id) == except || !o.at_exchange() {
                    continue;
                }
                let Some(i) = self.markets.inst(&o.spec.pair) else { continue };
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
    pub(super) fn borrow_part(&self, o: &Order) -> Qty {
        let rem = o.remaining();
        rem - rem.min(self.account.position_qty(&o.spec.pair).max(Decimal::ZERO))
    }

    /// Proceeds of short sales in `quote` (except on `except_pair`): they back the margin
    /// positions and cannot pay for spot buys.
    pub(super) fn locked(&self, quote: &str, except_pair: Option<&str>) -> Cash {
        self.shorts
            .positions
            .iter()
            .filter(|(p, _)| {
                Some(&***p) != except_pair && self.markets.inst(p).is_some_and(|i| &*i.quote == quote)
            })
            .map(|(_, m)| m.proceeds)
            .sum()
    }

    /// Equity, used margin, margin reserved by open margin sells (other than `except`), and
    /// the margin level, in the account currency.
    pub(super) fn margin_account(&self, except: Option<OrderId>) -> MarginAccount {
        let mut a = MarginAccount { equity: self.equity(), ..Default::default() };
        for (pair, m) in &self.shorts.positions {
            let Some(inst) = self.markets.inst(pair) else { continue };
            let mark = self.pair_mark(pair, false).unwrap_or_else(|| m.proceeds / m.qty);
            a.used += m.used_margin(mark) * self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        }
        for o in self.desk.orders.values() {
            if !o.is_margin_sell() || Some(o.id) == except || !o.at_exchange() {
                continue;
            }
            let Some(inst) = self.markets.inst(&o.spec.pair) else { continue };
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
    pub(super) fn margin_after_fill(
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
            let m = self.shorts.positions.entry(pair.clone()).or_insert_with(|| MarginPosition {
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
            && let Some(m) = self.shorts.positions.get_mut(&pair)
        {
            m.repay(qty);
            if m.qty <= Decimal::ZERO {
                self.shorts.positions.remove(&pair);
            }
        }
    }

    /// Charges a margin fee on `qty` borrowed base valued at `price` (quote currency).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn charge_margin_fee(
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
        *self.account.balances.entry(inst.quote.to_string()).or_default() -= fee;
        self.memo.equity.set(None);
        *self.shorts.fees_owed.entry(inst.quote.to_string()).or_default() += fee;
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        self.memo.positions_changed += 1;
        let p = self.account.positions.get_or_insert_with(pair, Position::default);
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
    #[inline]
    pub(super) fn charge_rollovers(&mut self, out: &mut Vec<ExecEvent>) {
        let now = self.now;
        loop {
            let due = self
                .shorts
                .positions
                .iter()
                .filter(|(_, m)| m.next_rollover <= now)
                .map(|(p, m)| (m.next_rollover, p.clone()))
                .min();
            let Some((at, pair)) = due else { break };
            let Some(inst) = self.markets.inst(&pair) else { break };
            let Some(m) = self.shorts.positions.get_mut(&pair) else { break };
            m.next_rollover = at.plus_micros(margin::ROLLOVER_MICROS);
            let (qty, pct, avg) = (m.qty, m.fee_pct, m.proceeds / m.qty);
            let price = self.mid_of(&pair).unwrap_or(avg);
            self.charge_margin_fee(&pair, &inst, "rollover", qty, price, pct, at, out);
        }
    }

    /// Margin level watch: a `margin_call` record when it falls below the call level, a
    /// forced liquidation of every short margin position at or below the stop level.
    #[inline]
    pub(super) fn check_margin(&mut self, out: &mut Vec<ExecEvent>) {
        if self.shorts.positions.is_empty() {
            self.shorts.call_active = false;
            return;
        }
        let working: Vec<Symbol> = self
            .desk
            .orders
            .values()
            .filter(|o| o.origin == OrderOrigin::Liquidation)
            .map(|o| o.spec.pair.clone())
            .collect();
        for (pair, m) in self.shorts.positions.iter_mut() {
            if m.liquidating && !working.contains(pair) {
                m.liquidating = false; // the liquidation order is gone: retry if still needed
            }
        }
        let acct = self.margin_account(None);
        let Some(level) = acct.level else { return };
        let (mut call, mut stop) = (0, 0);
        for pair in self.shorts.positions.keys() {
            let t = self.markets.inst(pair).and_then(|i| i.margin.clone());
            call = call.max(t.as_ref().map_or(MarginTerms::KRAKEN_MARGIN_CALL, |t| t.margin_call));
            stop = stop.max(t.as_ref().map_or(MarginTerms::KRAKEN_MARGIN_STOP, |t| t.margin_stop));
        }
        let now = self.now;
        if level >= Decimal::from(call) {
            self.shorts.call_active = false;
        } else if !self.shorts.call_active {
            self.shorts.call_active = true;
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
            .shorts
            .positions
            .iter()
            .filter(|(_, m)| !m.liquidating)
            .map(|(p, m)| (m.opened_at, p.clone(), m.qty))
            .collect();
        targets.sort();
        for (_, pair, qty) in targets {
            // Orders that would add to the short go first.
            let adding: Vec<OrderId> = self
                .desk
                .orders
                .values()
                .filter(|o| o.spec.pair == pair && o.is_margin_sell())
                .map(|o| o.id)
                .collect();
            for id in adding {
                self.drop_order(id, now, "liquidation", out);
            }
            if let Some(m) = self.shorts.positions.get_mut(&pair) {
                m.liquidating = true;
            }
            self.stats.liquidations += 1;
            out.push(ExecEvent::MarginLiquidation {
                time: now,
                pair: pair.clone(),
                order_id: self.desk.peek_order_id(),
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
