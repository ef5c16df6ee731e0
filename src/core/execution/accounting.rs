//! Accounting of the paper exchange: fills applied to balances and positions, round trips
//! and their excursions, protective children placed for entry fills, the portfolio view,
//! equity (remembered between changes) and the identity check that proves all records agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::events::{ClosedTrade, ExecEvent};
use super::{OpenTrade, Order, PairState, PaperExchange, Position, Stage, mark_of};
use crate::core::fees::{self, VolumeTracker};
use crate::core::instrument::{Instrument, PairStatus, Symbol};
use crate::core::market::{Side, SystemStatus};
use crate::core::money::{Cash, Price, Qty};
use crate::core::orders::{Fill, FillCause, Liquidity, OrderId, OrderOrigin, OrderSpec, OrderType};
use crate::core::portfolio::{MarginView, PortfolioView, PositionView, Quote};
use crate::core::symbol_map::SymbolMap;
use crate::core::time::EventTime;

/// Tolerance of the equity identity: conversions through an inverted mid are inexact in
/// the 28th digit; everything else is exact decimal arithmetic.
const IDENTITY_TOLERANCE: Decimal = rust_decimal_macros::dec!(0.00000001);

/// A broken accounting identity: which records disagree, and by what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdentityError {
    /// A position on a pair whose instrument never arrived.
    #[error("position on {pair} without instrument")]
    NoInstrument {
        /// The pair.
        pair: Symbol,
    },
    /// A margin position that is not covered by the pair's short.
    #[error("{pair}: margin position {margin} but position qty {qty}")]
    MarginBeyondShort {
        /// The pair.
        pair: Symbol,
        /// Borrowed base of the margin position.
        margin: Qty,
        /// The pair's position quantity.
        qty: Qty,
    },
    /// The position quantity differs from the sum of its fills.
    #[error("{pair}: position qty {qty} != Σ fill qty {flow}")]
    QtyFlow {
        /// The pair.
        pair: Symbol,
        /// The position quantity.
        qty: Qty,
        /// Σ signed base of the fills.
        flow: Qty,
    },
    /// Realized P&L, fees and basis do not add up to the quote moved by the fills.
    #[error("{pair}: realized {realized} − fees {fees} − basis {basis} != quote flow {flow}")]
    QuoteFlow {
        /// The pair.
        pair: Symbol,
        /// Realized P&L gross of fees.
        realized: Cash,
        /// Fees paid.
        fees: Cash,
        /// Cost of the open quantity.
        basis: Cash,
        /// Σ quote moved by the fills.
        flow: Cash,
    },
    /// A balance differs from the initial balance plus the fills' flows.
    #[error("balance {asset} {have} != initial + fills {want}")]
    Balance {
        /// The asset.
        asset: String,
        /// The balance held.
        have: Decimal,
        /// Initial balance + Σ flows.
        want: Decimal,
    },
    /// A negative balance beyond what short margin positions borrowed.
    #[error("balance {asset} is {have}, beyond the {borrowed} borrowed for short margin positions")]
    BeyondBorrowed {
        /// The asset.
        asset: String,
        /// The balance held.
        have: Decimal,
        /// What margin positions (and unpaid margin fees) account for.
        borrowed: Decimal,
    },
    /// A negative balance while shorts are disabled.
    #[error("balance {asset} is negative ({have}) but shorts are not supported")]
    NegativeBalance {
        /// The asset.
        asset: String,
        /// The balance held.
        have: Decimal,
    },
    /// Equity from balances differs from initial holdings plus P&L.
    #[error("equity {equity} != initial holdings + realized − fees + unrealized {expected}")]
    Equity {
        /// Equity from balances.
        equity: Cash,
        /// Initial holdings + realized − fees + unrealized.
        expected: Cash,
    },
}

impl crate::core::error::Classified for IdentityError {
    /// A broken identity is reported (logged and journaled) and the run goes on:
    /// [`Disposition::Recoverable`].
    ///
    /// [`Disposition::Recoverable`]: crate::core::error::Disposition::Recoverable
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            IdentityError::NoInstrument { .. }
            | IdentityError::MarginBeyondShort { .. }
            | IdentityError::QtyFlow { .. }
            | IdentityError::QuoteFlow { .. }
            | IdentityError::Balance { .. }
            | IdentityError::BeyondBorrowed { .. }
            | IdentityError::NegativeBalance { .. }
            | IdentityError::Equity { .. } => crate::core::error::Disposition::Recoverable,
        }
    }
}

/// The account: its currency, balances (initial and now), positions per pair, the 30-day
/// volume that sets the fee tier, and the numbering of fills and round trips.
pub(super) struct Account {
    pub(super) currency: Arc<str>,
    pub(super) initial: BTreeMap<String, Decimal>,
    pub(super) balances: BTreeMap<String, Decimal>,
    pub(super) positions: SymbolMap<Position>,
    pub(super) volume: VolumeTracker,
    next_fill: u64,
    /// The id the next closed round trip gets (taken while a position is borrowed).
    pub(super) next_trade: u64,
}

impl Account {
    pub(super) fn new(
        currency: &str,
        balances: &BTreeMap<String, Decimal>,
        fee_tier_volume: Decimal,
    ) -> Account {
        Account {
            currency: currency.into(),
            initial: balances.clone(),
            balances: balances.clone(),
            positions: SymbolMap::new(),
            volume: VolumeTracker::new(fee_tier_volume),
            next_fill: 1,
            next_trade: 1,
        }
    }

    /// The balance of `asset` (zero when never held).
    #[inline]
    pub(super) fn balance(&self, asset: &str) -> Decimal {
        self.balances.get(asset).copied().unwrap_or_default()
    }

    /// The signed base quantity held on `pair`.
    #[inline]
    pub(super) fn position_qty(&self, pair: &str) -> Qty {
        self.positions.get(pair).map(|p| p.qty).unwrap_or_default()
    }

    /// Takes the next fill id.
    #[inline]
    fn take_fill_id(&mut self) -> u64 {
        let id = self.next_fill;
        self.next_fill += 1;
        id
    }
}

impl PaperExchange {
    /// The account for RiskManager and the dashboard.
    pub fn portfolio(&self) -> PortfolioView {
        let mut positions = Vec::new();
        for (pair, p) in &self.account.positions {
            if p.qty.is_zero() {
                continue;
            }
            let Some(st) = self.markets.pairs.get(pair) else { continue };
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
        for o in self.desk.orders.values() {
            *counts.entry(o.spec.pair.clone()).or_default() += 1;
        }
        let mut quotes = Vec::new();
        for (pair, st) in &self.markets.pairs {
            let Some(inst) = &st.inst else { continue };
            quotes.push(Quote {
                instrument: inst.clone(),
                bid: st.book.bid().unwrap_or_default(),
                ask: st.book.ask().unwrap_or_default(),
                quote_to_account: self.quote_to_account(&inst.quote).unwrap_or(Decimal::ZERO),
                tradable: self.tradable(pair),
            });
        }
        let cash = self.account.balance(&self.account.currency);
        let held = self.held(&self.account.currency, None, false) + self.locked(&self.account.currency, None);
        let margin = self.cfg.margin.enabled.then(|| {
            let a = self.margin_account(None);
            MarginView {
                leverage: self.cfg.margin.leverage,
                used_margin: a.used,
                free_margin: a.equity - a.used - a.reserved,
                margin_level: a.level.map(|l| l.round_dp(2)),
                positions: self.shorts.positions.len(),
            }
        });
        PortfolioView {
            time: self.now,
            currency: self.account.currency.clone(),
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
        if let Some(e) = self.memo.equity.get() {
            return e;
        }
        let e = self.equity_from_balances();
        self.memo.equity.set(Some(e));
        e
    }

    /// Equity computed afresh (what `equity_memo` holds while it is set): Σ balance × value.
    pub(super) fn equity_from_balances(&self) -> Cash {
        // Which pairs it reads (marks and mids set `valued` again) decides which pairs' moves
        // make the result stale.
        for st in self.markets.pairs.values() {
            st.memo.valued.set(false);
        }
        self.account.balances.iter().fold(Decimal::ZERO, |sum, (a, b)| {
            add_holding(sum, *b, || self.asset_value(a, *b >= Decimal::ZERO).unwrap_or_default())
        })
    }

    /// Checks equity = cash (fees deducted) + Σ qty × mark, recomputed from scratch.
    ///
    /// Three independent records must agree: the asset balances, the per-pair flows and
    /// positions (qty, basis, realized P&L, fees), and equity. Exact except for the
    /// inverted-mid conversions (tolerance 1e-8 in the account currency).
    pub fn verify_identity(&self) -> Result<(), IdentityError> {
        // 1. Balances = initial + Σ fills' flows, per asset.
        let mut expect = self.account.initial.clone();
        for (pair, p) in &self.account.positions {
            let inst = self.markets.pairs.get(pair).and_then(|s| s.inst.clone());
            let Some(inst) = inst else {
                return Err(IdentityError::NoInstrument { pair: pair.clone() });
            };
            *expect.entry(inst.base.to_string()).or_default() += p.base_flow;
            *expect.entry(inst.quote.to_string()).or_default() += p.quote_flow;
            // 2. The position's own records agree with its flows; what is borrowed on the
            //    pair is never more than its short.
            if let Some(m) = self.shorts.positions.get(pair)
                && (m.qty <= Decimal::ZERO || m.qty > (-p.qty).max(Decimal::ZERO))
            {
                return Err(IdentityError::MarginBeyondShort {
                    pair: pair.clone(),
                    margin: m.qty,
                    qty: p.qty,
                });
            }
            if p.qty != p.base_flow {
                return Err(IdentityError::QtyFlow { pair: pair.clone(), qty: p.qty, flow: p.base_flow });
            }
            if p.realized - p.fees - p.basis != p.quote_flow {
                return Err(IdentityError::QuoteFlow {
                    pair: pair.clone(),
                    realized: p.realized,
                    fees: p.fees,
                    basis: p.basis,
                    flow: p.quote_flow,
                });
            }
        }
        for (asset, want) in &expect {
            let have = self.account.balance(asset);
            if have != *want {
                return Err(IdentityError::Balance { asset: asset.clone(), have, want: *want });
            }
            let initial = self.account.initial.get(asset).copied().unwrap_or_default();
            // A negative balance is base borrowed for short margin positions, or margin fees
            // the balance could not pay; never more.
            let borrowed: Decimal = self
                .shorts
                .positions
                .iter()
                .filter(|(p, _)| self.markets.inst(p).is_some_and(|i| &*i.base == asset))
                .map(|(_, m)| m.qty)
                .sum::<Decimal>()
                + self.shorts.fees_owed.get(asset).copied().unwrap_or_default();
            if have < Decimal::ZERO && initial >= Decimal::ZERO && -have > borrowed {
                return Err(if self.cfg.margin.enabled {
                    IdentityError::BeyondBorrowed { asset: asset.clone(), have, borrowed }
                } else {
                    IdentityError::NegativeBalance { asset: asset.clone(), have }
                });
            }
        }
        // 3. Equity from balances = initial holdings + Σ (realized − fees + unrealized).
        let value = |a: &str, long: bool| self.asset_value(a, long).unwrap_or_default();
        let mut eq2: Decimal = self
            .account
            .initial
            .iter()
            .map(|(a, b)| *b * value(a, self.account.balance(a) >= Decimal::ZERO))
            .sum();
        for (pair, p) in &self.account.positions {
            if let Some(inst) = self.markets.pairs.get(pair).and_then(|s| s.inst.clone()) {
                let vb = value(&inst.base, self.account.balance(&inst.base) >= Decimal::ZERO);
                let vq = value(&inst.quote, self.account.balance(&inst.quote) >= Decimal::ZERO);
                eq2 += vb * p.qty + vq * (p.realized - p.fees - p.basis);
            }
        }
        let eq = self.equity();
        if (eq - eq2).abs() > IDENTITY_TOLERANCE {
            return Err(IdentityError::Equity { equity: eq, expected: eq2 });
        }
        Ok(())
    }

    /// Books one fill: balances, fees, position, trade, stats, protective children.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_fill(
        &mut self,
        id: OrderId,
        price: Price,
        qty: Qty,
        liquidity: Liquidity,
        cause: FillCause,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let Some(o) = self.desk.orders.get(&id).cloned() else { return };
        let Some(inst) = self.markets.inst(&o.spec.pair) else { return };
        let pair = o.spec.pair.clone();
        let side = o.spec.side;
        let sign = Decimal::from(side.sign());
        let notional = price * qty;
        let fee = inst.round_cost(notional * self.fee_rate(&inst, liquidity));
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);

        // Cash moves by exactly price × qty ± fee; base by exactly qty.
        *self.account.balances.entry(inst.quote.to_string()).or_default() += -sign * notional - fee;
        *self.account.balances.entry(inst.base.to_string()).or_default() += sign * qty;
        self.memo.equity.set(None);

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
            self.account.volume.add(time, notional * q2a);
        }
        let fill_id = self.account.take_fill_id();
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
            if let Some(m) = self.desk.orders.get_mut(&id) {
                m.filled = filled;
            }
        } else {
            self.desk.orders.remove(&id);
        }

        let pos_before = self.account.position_qty(&pair);
        let closed = self.book_position(&o, &inst, price, qty, fee, time);
        self.margin_after_fill(&o, &inst, price, qty, pos_before, time, out);
        let p = self.account.positions.get(&pair).cloned().unwrap_or_default();
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
                .desk
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
    pub(super) fn book_position(
        &mut self,
        o: &Order,
        inst: &Instrument,
        price: Price,
        qty: Qty,
        fee: Cash,
        time: EventTime,
    ) -> Option<ClosedTrade> {
        let q2a = self.quote_to_account(&inst.quote).unwrap_or(Decimal::ONE);
        let mark = self.markets.pairs.get(&inst.symbol).and_then(|s| s.book.mid()).unwrap_or(price);
        self.memo.positions_changed += 1;
        let p = self.account.positions.get_or_insert_with(&inst.symbol, Position::default);
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
                    trade_id: self.account.next_trade,
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
                self.account.next_trade += 1;
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
    #[inline]
    pub(super) fn update_excursion(&mut self, pair: &Symbol) {
        if let Some(st) = self.markets.pairs.get_mut(pair) {
            st.memo.excursion_at = Some(self.memo.positions_changed);
        }
        let Some(p) = self.account.positions.get_mut_adopting(pair) else { return };
        if p.qty.is_zero() || p.trade.is_none() {
            return;
        }
        let long = p.qty > Decimal::ZERO;
        let Some(mark) = self.markets.pairs.get(pair).and_then(|st| mark_of(st, self.cfg.mark, long)) else {
            return;
        };
        let unrealized = p.qty * mark - p.basis;
        if let Some(t) = p.trade.as_mut() {
            let running = t.realized - t.fees + unrealized;
            t.max_pnl = t.max_pnl.max(running);
            t.min_pnl = t.min_pnl.min(running);
        }
    }

    /// Places or resizes the group's reduce-only OCO children for the entry's filled size.
    pub(super) fn protect(
        &mut self,
        g: u64,
        entry_side: Side,
        qty: Qty,
        inst: &Instrument,
        time: EventTime,
        out: &mut Vec<ExecEvent>,
    ) {
        let Some(group) = self.desk.groups.get_mut(&g) else { return };
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
            if let Some(cid) = existing.filter(|c| self.desk.orders.contains_key(c)) {
                // Resize (Kraken's amend) unless it already triggered.
                let Some(c) = self.desk.orders.get_mut(&cid) else { continue };
                if matches!(c.stage, Stage::Pending | Stage::Waiting) && c.spec.qty != size {
                    c.spec.qty = size;
                    let (placed, at_ex) = (c.placed_at, c.at_exchange());
                    if at_ex {
                        let pen = fees::amend_penalty(time.micros_since(placed));
                        self.markets.pair_mut(&inst.symbol).rate.force_add(time, tier, pen);
                    }
                }
                continue;
            }
            // Kraken refuses children below the minimums: wait until the entry is big enough.
            let ref_price =
                price.or(self.markets.pairs.get(&inst.symbol).and_then(|s| s.book.mid())).unwrap_or_default();
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
            if let Some(gm) = self.desk.groups.get_mut(&g) {
                match ty {
                    OrderType::StopLoss => gm.stop = Some(cid),
                    OrderType::TakeProfit => gm.take = Some(cid),
                    _ => gm.trail = Some(cid),
                }
            }
        }
    }

    pub(super) fn tradable(&self, pair: &str) -> bool {
        let Some(st) = self.markets.pairs.get(pair) else { return false };
        let Some(inst) = &st.inst else { return false };
        let mode_ok =
            matches!(inst.status, PairStatus::Online | PairStatus::LimitOnly | PairStatus::PostOnly)
                && matches!(self.markets.system, SystemStatus::Online | SystemStatus::PostOnly);
        st.book.valid && st.book.bid().is_some() && st.book.ask().is_some() && mode_ok
    }

    /// The pair's mark per the configured convention (`long`: the side of the holding).
    #[inline]
    pub(super) fn pair_mark(&self, pair: &str, long: bool) -> Option<Price> {
        mark_of(self.markets.pairs.get(pair)?, self.cfg.mark, long)
    }

    #[inline]
    pub(super) fn mid_of(&self, pair: &str) -> Option<Price> {
        let st = self.markets.pairs.get(pair)?;
        st.book.mid().or(st.last_trade)
    }

    /// Value of one unit of a currency in the account currency, through mids (1 for the
    /// account currency; via `X/ACC`, or the inverse of `ACC/X`).
    pub(super) fn quote_to_account(&self, asset: &str) -> Option<Decimal> {
        if asset == &*self.account.currency {
            return Some(Decimal::ONE);
        }
        for st in self.markets.pairs.values() {
            let Some(inst) = &st.inst else { continue };
            if &*inst.base == asset
                && inst.quote == self.account.currency
                && let Some(m) = valued_mid(st)
            {
                return Some(m);
            }
        }
        for st in self.markets.pairs.values() {
            let Some(inst) = &st.inst else { continue };
            if inst.base == self.account.currency
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
    pub(super) fn asset_value(&self, asset: &str, long: bool) -> Option<Decimal> {
        if asset == &*self.account.currency {
            return Some(Decimal::ONE);
        }
        let mut via = None;
        for st in self.markets.pairs.values() {
            let Some(inst) = &st.inst else { continue };
            if &*inst.base != asset {
                continue;
            }
            st.memo.valued.set(true);
            let Some(m) = mark_of(st, self.cfg.mark, long) else { continue };
            if inst.quote == self.account.currency {
                return Some(m);
            }
            if via.is_none() {
                via = self.quote_to_account(&inst.quote).map(|q| m * q);
            }
        }
        via.or_else(|| self.quote_to_account(asset))
    }
}

/// A pair's mid, else its last trade, as equity reads it (the pair counts as `valued`).
#[inline]
fn valued_mid(st: &PairState) -> Option<Price> {
    st.memo.valued.set(true);
    st.book.mid().or(st.last_trade)
}

/// `sum + balance × value()`, to the digit, without valuing a zero balance: rust_decimal
/// makes `0 × v` a plain zero, and adding a plain zero leaves a nonzero sum as it is and
/// turns a zero sum (`0.00`, `−0`) into a plain zero.
pub(super) fn add_holding(sum: Decimal, balance: Decimal, value: impl FnOnce() -> Decimal) -> Decimal {
    if !balance.is_zero() {
        sum + balance * value()
    } else if sum.is_zero() {
        Decimal::ZERO
    } else {
        sum
    }
}
