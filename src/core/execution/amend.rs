//! Kraken's AmendOrder in the paper exchange: amends travel with the modelled latency and
//! are applied in place at the exchange (queue kept on a quantity reduction, lost on a
//! price change, counted on the pair's rate counter) or refused with Kraken's strings.

use super::events::ExecEvent;
use super::{Order, PaperExchange, PendingAmend, Stage, reject};
use crate::core::fees;
use crate::core::orders::{AmendRequest, OrderId, OrderType, Rejection};
use crate::core::time::EventTime;

impl PaperExchange {
    pub(super) fn queue_amend(&mut self, req: AmendRequest) -> u64 {
        let aid = self.desk.take_amend();
        let due = req.decided_at.plus_micros(self.cfg.latency.as_micros());
        self.desk.amends.insert(aid, PendingAmend { req, due });
        aid
    }

    /// When an amend can be handled: after its latency, and not before the order itself has
    /// reached the exchange (FIFO); at once if the order is gone.
    pub(super) fn amend_due(&self, a: &PendingAmend, now: EventTime) -> Option<EventTime> {
        let t = match self.desk.orders.get(&a.req.order_id) {
            None => a.due,
            Some(o) if o.at_exchange() => a.due,
            Some(_) => return None,
        };
        (t <= now).then_some(t)
    }

    pub(super) fn amend_rejected(
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
    pub(super) fn amended(&self, o: &Order, req: &AmendRequest, time: EventTime) -> Result<Order, Rejection> {
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
    pub(super) fn apply_amend(&mut self, aid: u64, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(a) = self.desk.amends.remove(&aid) else { return };
        let req = a.req;
        let id = req.order_id;
        let Some(o) = self.desk.orders.get(&id).cloned() else {
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
        if let Err(v) = self.markets.pair_mut(&pair).rate.try_add(time, tier, pen) {
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
        if let Some(m) = self.desk.orders.get_mut(&id) {
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
                if let Some(last) = self.markets.pairs.get(&pair).and_then(|s| s.last_trade) {
                    self.check_trigger(id, last, time, out);
                }
            }
            _ => {}
        }
    }
}
