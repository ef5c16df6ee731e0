//! Kraken's AddOrder rules as the paper exchange applies them when an order reaches the
//! book, one function per rule group in the order the engine checks them: trading mode
//! (status), arguments, minimums, placement (reduce-only, post-only, open-order limit),
//! leverage and funds. A refusal is a `Rejection` carrying Kraken's error string.

use rust_decimal::Decimal;

use super::margin;
use super::{Order, PaperExchange, reject};
use crate::core::instrument::{Instrument, PairStatus};
use crate::core::market::{Side, SystemStatus};
use crate::core::money::{Cash, Price};
use crate::core::orders::{OrderId, OrderSpec, OrderType, Rejection, TimeInForce, TrailingOffset};
use crate::core::time::EventTime;

impl PaperExchange {
    /// Kraken's AddOrder checks, in the order the engine applies them: the pair, trading
    /// mode, arguments, minimums, placement, leverage, funds. The first refusal wins.
    pub(super) fn validate(&self, o: &Order, time: EventTime) -> Result<(), Rejection> {
        let s = &o.spec;
        let Some(inst) = self.markets.inst(&s.pair) else {
            return Err(reject("EQuery:Unknown asset pair", format!("no instrument data for {}", s.pair)));
        };
        self.check_status(s, &inst)?;
        self.check_arguments(s, &inst, time)?;
        self.check_minimums(o, &inst)?;
        self.check_placement(o)?;
        if let Some(lev) = s.leverage {
            self.check_leverage(o, &inst, lev)?;
        }
        self.check_funds(o, &inst, time)
    }

    /// Trading mode: the pair's status, overlaid by the exchange-wide status.
    fn check_status(&self, s: &OrderSpec, inst: &Instrument) -> Result<(), Rejection> {
        let mode = match self.markets.system {
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
        Ok(())
    }

    /// Arguments: volume, flags, prices, trailing offset, GTD expiry.
    fn check_arguments(&self, s: &OrderSpec, inst: &Instrument, time: EventTime) -> Result<(), Rejection> {
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
                (true, Some(p)) => self.check_price(inst, name, p)?,
                _ => {}
            }
        }
        if s.order_type == OrderType::TrailingStop {
            match s.trailing {
                Some(TrailingOffset::Absolute(d)) => self.check_price(inst, "price", d)?,
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
        Ok(())
    }

    /// Minimums: Kraken's `ordermin` and `costmin`.
    fn check_minimums(&self, o: &Order, inst: &Instrument) -> Result<(), Rejection> {
        let s = &o.spec;
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
        Ok(())
    }

    /// Placement: reduce-only against the pair's position, post-only against the touch, and
    /// the open-order limit of the pair.
    fn check_placement(&self, o: &Order) -> Result<(), Rejection> {
        let s = &o.spec;
        let is_post_limit = s.order_type == OrderType::Limit && s.post_only;
        // Reduce-only against the pair's position.
        let pos = self.account.position_qty(&s.pair);
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
            let book = self.markets.pairs.get(&s.pair).map(|st| &st.book);
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
        let open = self
            .desk
            .orders
            .values()
            .filter(|x| x.spec.pair == s.pair && x.at_exchange() && x.id != o.id)
            .count();
        let limit = self.cfg.open_order_limit();
        if open >= limit as usize {
            return Err(reject(
                "EOrder:Orders limit exceeded",
                format!("{open} open orders on {} (limit {limit})", s.pair),
            ));
        }
        Ok(())
    }

    /// Funds, counting what open orders hold. Reduce-only orders hold nothing: they are
    /// clamped to the position and to the balances when they fill.
    fn check_funds(&self, o: &Order, inst: &Instrument, time: EventTime) -> Result<(), Rejection> {
        let s = &o.spec;
        if !s.reduce_only {
            match s.side {
                Side::Buy => {
                    let need = self.buy_cost_estimate(o, inst);
                    let bal = self.account.balance(&inst.quote);
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
                Side::Sell if s.leverage.is_some() => self.check_margin_sell(o, inst, time)?,
                Side::Sell => {
                    let bal = self.account.balance(&inst.base);
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

    pub(super) fn check_price(&self, inst: &Instrument, name: &str, p: Price) -> Result<(), Rejection> {
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
    pub(super) fn reference_price(&self, o: &Order) -> Option<Price> {
        let st = self.markets.pairs.get(&o.spec.pair)?;
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
    pub(super) fn buy_cost_estimate(&self, o: &Order, inst: &Instrument) -> Cash {
        let qty = o.remaining();
        let rate = Decimal::ONE + self.taker_rate(inst);
        if o.spec.order_type != OrderType::Market {
            return qty * self.reference_price(o).unwrap_or_default() * rate;
        }
        let Some(st) = self.markets.pairs.get(&o.spec.pair) else { return Decimal::ZERO };
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
    pub(super) fn held(&self, asset: &str, except: Option<OrderId>, at_exchange_only: bool) -> Decimal {
        let mut sum = Decimal::ZERO;
        for o in self.desk.orders.values() {
            if Some(o.id) == except
                || o.spec.reduce_only
                || o.is_margin_sell()
                || (at_exchange_only && !o.at_exchange())
            {
                continue;
            }
            let Some(inst) = self.markets.inst(&o.spec.pair) else { continue };
            match o.spec.side {
                Side::Buy if &*inst.quote == asset => sum += self.buy_cost_estimate(o, &inst),
                Side::Sell if &*inst.base == asset => sum += o.remaining(),
                _ => {}
            }
        }
        sum
    }

    /// Refuses a `leverage` the account, the side or the pair cannot take.
    pub(super) fn check_leverage(&self, o: &Order, inst: &Instrument, lev: u32) -> Result<(), Rejection> {
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
    pub(super) fn check_margin_sell(
        &self,
        o: &Order,
        inst: &Instrument,
        _time: EventTime,
    ) -> Result<(), Rejection> {
        let s = &o.spec;
        let rem = o.remaining();
        let closing = rem.min(self.account.position_qty(&s.pair).max(Decimal::ZERO));
        if closing > Decimal::ZERO {
            let avail = self.account.balance(&inst.base) - self.held(&inst.base, Some(o.id), true);
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
                    c = self.account.currency
                ),
            ));
        }
        Ok(())
    }
}

/// Decimal places a value really needs (trailing zeros ignored).
fn decimals(v: Decimal) -> u32 {
    v.normalize().scale()
}

fn is_multiple(v: Decimal, step: Decimal) -> bool {
    step <= Decimal::ZERO || (v % step).is_zero()
}
