//! Orders and timers of the paper exchange: an order's creation, its arrival at the book
//! after the modelled latency (rate counter, then Kraken's rules), requested cancels, GTD
//! expiry and the entry chase, all run in time order from one timer scan.
//!
//! The scan is skipped on most events: `Memo::timers` remembers the earliest timer as of
//! the orders' change counter (the invariant is in `memo`).

use rust_decimal::Decimal;

use super::events::ExecEvent;
use super::{Order, PaperExchange, Stage, reject};
use crate::core::decisions::Contribution;
use crate::core::fees;
use crate::core::market::Side;
use crate::core::orders::{AmendRequest, OrderId, OrderOrigin, OrderSpec, OrderType, TimeInForce};
use crate::core::time::EventTime;

/// What a due timer does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    Arrive,
    Cancel,
    Expire,
    Chase,
    Amend,
}

impl PaperExchange {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_order(
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
        let id = self.desk.take_order_id();
        out.push(ExecEvent::OrderAccepted { time, order_id: id, spec: spec.clone(), origin: origin.clone() });
        let is_child = matches!(origin, OrderOrigin::Protective { .. });
        self.desk.orders.insert(
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
    pub(super) fn drop_order(
        &mut self,
        id: OrderId,
        time: EventTime,
        reason: &str,
        out: &mut Vec<ExecEvent>,
    ) {
        if self.desk.orders.remove(&id).is_some() {
            out.push(ExecEvent::OrderCanceled { time, order_id: id, reason: reason.to_string() });
        }
    }

    /// Every timer of one order: `f(time it falls due, what it does)`. With `floor`, a
    /// pending arrival is given at `arrive_at`, before any wait for the pair's book: then
    /// every time given is at or before the time the timer can fall due, whatever the book
    /// does meanwhile.
    pub(super) fn each_timer(&self, o: &Order, floor: bool, mut f: impl FnMut(EventTime, Due)) {
        if o.stage == Stage::Pending {
            // A known pair whose book is untrusted holds arrivals until its next snapshot;
            // an unknown pair arrives at once (and is refused by validation).
            match self.markets.pairs.get(&o.spec.pair) {
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
    pub(super) fn due_of(&self, o: &Order, now: EventTime) -> Option<(EventTime, Due)> {
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
    pub(super) fn timer_floor(&self) -> Option<EventTime> {
        let mut floor: Option<EventTime> = None;
        for o in self.desk.orders.values() {
            self.each_timer(o, true, |t, _| floor = Some(floor.map_or(t, |f| f.min(t))));
        }
        floor
    }

    /// Whether no timer can be due by `now`: no amend travelling, and the orders unchanged
    /// since their earliest timer was found to lie after `now`.
    #[inline(always)]
    pub(super) fn no_timer_due(&self, now: EventTime) -> bool {
        self.desk.amends.is_empty()
            && self
                .memo
                .timers
                .is_some_and(|(v, floor)| v == self.desk.orders.version() && floor.is_none_or(|f| now < f))
    }

    /// Runs every due arrival, cancel, expiry and chase in time order.
    #[inline(always)] // twice per event: the check without a call
    pub(super) fn run_timers(&mut self, out: &mut Vec<ExecEvent>) {
        if !self.no_timer_due(self.now) {
            self.scan_timers(out); // most events: nothing changed and nothing falls due yet
        }
    }

    /// `run_timers` when a timer may be due.
    pub(super) fn scan_timers(&mut self, out: &mut Vec<ExecEvent>) {
        let now = self.now;
        loop {
            let mut best: Option<(EventTime, Due, OrderId)> = None;
            for o in self.desk.orders.values() {
                if let Some((t, d)) = self.due_of(o, now)
                    && best.is_none_or(|b| (t, d, o.id) < b)
                {
                    best = Some((t, d, o.id));
                }
            }
            for (aid, a) in &self.desk.amends {
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
        self.memo.timers = Some((self.desk.orders.version(), self.timer_floor()));
    }

    pub(super) fn requested_cancel(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.desk.orders.get_mut(&id) else { return };
        let Some((_, reason)) = o.cancel_due.take() else { return };
        if o.at_exchange() {
            let pen = fees::cancel_penalty(o.rest_age(time));
            let (pair, spec) = (o.spec.pair.clone(), o.spec.clone());
            let tier = self.cfg.tier;
            let rate = &mut self.markets.pair_mut(&pair).rate;
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
    pub(super) fn chase(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.desk.orders.get(&id).cloned() else { return };
        let pair = o.spec.pair.clone();
        if o.reprices < self.cfg.chase_reprices {
            let touch = self.markets.pairs.get(&pair).and_then(|s| match o.spec.side {
                Side::Buy => s.book.bid(),
                Side::Sell => s.book.ask(),
            });
            if let Some(m) = self.desk.orders.get_mut(&id) {
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
        self.markets.pair_mut(&pair).rate.force_add(time, tier, pen);
        let rem = o.remaining();
        self.drop_order(id, time, "chase", out);
        let Some(inst) = self.markets.inst(&pair) else { return };
        let ref_price =
            self.markets.pairs.get(&pair).and_then(|s| s.book.mid()).or(o.spec.price).unwrap_or_default();
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
        if let Some(n) = self.desk.orders.get_mut(&nid) {
            n.chased = true;
        }
    }

    /// The order reaches the exchange: rate counter, Kraken's checks, then execution.
    pub(super) fn arrive(&mut self, id: OrderId, time: EventTime, out: &mut Vec<ExecEvent>) {
        let Some(o) = self.desk.orders.get(&id).cloned() else { return };
        let pair = o.spec.pair.clone();
        let tier = self.cfg.tier;
        // Every add counts on receipt; our own safety orders are counted but never refused.
        let safety =
            o.is_child || o.chased || matches!(o.origin, OrderOrigin::Flatten | OrderOrigin::Liquidation);
        let rate = &mut self.markets.pair_mut(&pair).rate;
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
            self.desk.orders.remove(&id);
            self.stats.rejected_orders += 1;
            out.push(ExecEvent::OrderRejected { time, order_id: id, spec: o.spec, rejection });
            return;
        }
        let mid = self.markets.pairs.get(&pair).and_then(|s| s.book.mid());
        let last = self.markets.pairs.get(&pair).and_then(|s| s.last_trade);
        if let Some(o) = self.desk.orders.get_mut(&id) {
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

    pub(super) fn set_stage(&mut self, id: OrderId, stage: Stage) {
        if let Some(o) = self.desk.orders.get_mut(&id) {
            o.stage = stage;
        }
    }
}
