//! Kraken's REST limits as a model that tells a caller how long to wait, so that calls are
//! spaced to fit instead of being refused by the exchange (limits-and-fees.md §1).
//!
//! - Public endpoints: about one call per second per IP, and per IP+pair for `OHLC` and
//!   `Trades` (refusals show as `EGeneral:Too many requests` or HTTP 429).
//! - Private endpoints: a counter per API key that each call raises by its cost (1, or 2 for
//!   ledger/trade history) and that decays continuously; a call that would pass the tier's
//!   maximum is refused with `EAPI:Rate limit exceeded`.
//!
//! Time is passed in (seconds on a monotonic clock of the caller's choosing): the model is
//! pure and testable without a runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kraken verification tier: one setting (`execution.tier`) for the REST counter here and
/// the matching engine's trading counter in the fill model.
pub use super::fees::Tier;

impl Tier {
    /// (maximum counter, decay per second).
    pub fn counter(self) -> (f64, f64) {
        match self {
            Tier::Starter => (15.0, 0.33),
            Tier::Intermediate => (20.0, 0.5),
            Tier::Pro => (20.0, 1.0),
        }
    }
}

/// One REST call, as the limiter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestCall {
    /// A public endpoint (`Time`, `AssetPairs`, `Ticker`, `Depth`, …); `pair` set for the
    /// endpoints Kraken limits per pair (`OHLC`, `Trades`).
    Public {
        /// Endpoint name.
        endpoint: String,
        /// Pair for per-pair limited endpoints.
        pair: Option<String>,
    },
    /// A private endpoint with its counter cost.
    Private {
        /// Endpoint name.
        endpoint: String,
    },
}

impl RestCall {
    /// Counter cost of a private endpoint: 2 for ledger and trade history, 0 for order entry
    /// (governed by the matching engine's own limiter), else 1.
    pub fn private_cost(endpoint: &str) -> f64 {
        RestCall::private_cost_ticks(endpoint) as f64 / COUNTER_SCALE as f64
    }

    /// [`RestCall::private_cost`] in counter ticks ([`COUNTER_SCALE`]).
    pub fn private_cost_ticks(endpoint: &str) -> i64 {
        match endpoint {
            "Ledgers" | "QueryLedgers" | "TradesHistory" | "QueryTrades" | "ClosedOrders" => {
                2 * COUNTER_SCALE
            }
            "AddOrder" | "CancelOrder" | "AddOrderBatch" | "CancelOrderBatch" | "EditOrder" => 0,
            _ => COUNTER_SCALE,
        }
    }
}

/// Fixed-point scale of the private counter: one unit of cost is `COUNTER_SCALE` ticks, so
/// every tier's decay is a whole number of ticks per microsecond (0.33/s = 33 ticks/µs) and
/// the model computes exactly, without float drift between reservations.
pub const COUNTER_SCALE: i64 = 100_000_000;

const MICROS: f64 = 1_000_000.0;

impl Tier {
    /// (maximum counter, decay per microsecond), both in counter ticks ([`COUNTER_SCALE`]).
    pub fn counter_ticks(self) -> (i64, i64) {
        match self {
            Tier::Starter => (15 * COUNTER_SCALE, 33),
            Tier::Intermediate => (20 * COUNTER_SCALE, 50),
            Tier::Pro => (20 * COUNTER_SCALE, 100),
        }
    }
}

/// Usage figures (metrics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LimiterUsage {
    /// Public calls admitted.
    pub public_calls: u64,
    /// Private calls admitted.
    pub private_calls: u64,
    /// Total seconds callers were told to wait.
    pub waited_secs: f64,
    /// Private counter after the last call.
    pub private_counter: f64,
}

/// Both limits.
///
/// Internally all times are integer microseconds and the counter is fixed-point, so a
/// reservation is exact: the slot handed out is never a rounding error early, and the
/// counter at a slot is never above the maximum (waits are rounded *up* to the microsecond).
#[derive(Clone, Debug)]
pub struct RateLimitModel {
    public_interval_us: i64,
    next_public_us: BTreeMap<String, i64>,
    max: i64,
    decay_per_us: i64,
    counter: i64,
    counter_at_us: i64,
    usage: LimiterUsage,
}

impl RateLimitModel {
    /// A model with `public_interval` seconds between public calls and `tier`'s counter.
    /// A negative or non-finite interval counts as 0 (no public spacing).
    pub fn new(public_interval: f64, tier: Tier) -> Self {
        let (max, decay_per_us) = tier.counter_ticks();
        let public_interval_us = if public_interval.is_finite() && public_interval > 0.0 {
            (public_interval * MICROS).ceil() as i64
        } else {
            0
        };
        RateLimitModel {
            public_interval_us,
            next_public_us: BTreeMap::new(),
            max,
            decay_per_us,
            counter: 0,
            counter_at_us: 0,
            usage: LimiterUsage::default(),
        }
    }

    /// Reserves a slot for `call` at time `now` (seconds); returns the seconds to wait before
    /// sending. The reservation is made at once, so concurrent callers queue in order.
    pub fn reserve(&mut self, call: &RestCall, now: f64) -> f64 {
        let now_us = if now.is_finite() && now > 0.0 { (now * MICROS).floor() as i64 } else { 0 };
        self.reserve_micros(call, now_us) as f64 / MICROS
    }

    /// Exact form of [`RateLimitModel::reserve`]: `now_us` in microseconds on the caller's
    /// monotonic clock; returns the microseconds to wait (the slot is `now_us + wait`).
    pub fn reserve_micros(&mut self, call: &RestCall, now_us: i64) -> i64 {
        let at = match call {
            RestCall::Public { endpoint, pair } => {
                // Per-pair endpoints have their own slot; everything else shares the IP slot.
                let key = match pair {
                    Some(p) if endpoint == "OHLC" || endpoint == "Trades" => format!("{endpoint}:{p}"),
                    _ => "ip".to_string(),
                };
                let at = self.next_public_us.get(&key).copied().unwrap_or(i64::MIN).max(now_us);
                self.next_public_us.insert(key, at.saturating_add(self.public_interval_us));
                self.usage.public_calls += 1;
                at
            }
            RestCall::Private { endpoint } => {
                let cost = RestCall::private_cost_ticks(endpoint);
                // Counter as of the later of now and the last reservation (callers queue).
                let t0 = self.counter_at_us.max(now_us);
                let decayed = self.decayed_at(t0);
                let over = decayed + cost - self.max;
                // Wait until the decay has made room: ceil(over / decay) so that the counter
                // at the slot is at most max − cost, never a tick above.
                let at = if over > 0 { t0 + (over + self.decay_per_us - 1) / self.decay_per_us } else { t0 };
                self.counter = (decayed - self.decay_per_us * (at - t0)).max(0) + cost;
                self.counter_at_us = at;
                self.usage.private_calls += 1;
                self.usage.private_counter = self.counter as f64 / COUNTER_SCALE as f64;
                at
            }
        };
        let wait = (at - now_us).max(0);
        self.usage.waited_secs += wait as f64 / MICROS;
        wait
    }

    /// The private counter (in cost units) as it will be at `now` (seconds), counting every
    /// reservation made so far, including queued ones whose slot is still ahead.
    pub fn private_counter_at(&self, now: f64) -> f64 {
        let now_us = if now.is_finite() && now > 0.0 { (now * MICROS).floor() as i64 } else { 0 };
        if now_us < self.counter_at_us {
            return self.counter as f64 / COUNTER_SCALE as f64;
        }
        self.decayed_at(now_us) as f64 / COUNTER_SCALE as f64
    }

    fn decayed_at(&self, t_us: i64) -> i64 {
        let dt = (t_us - self.counter_at_us).max(0);
        (self.counter - self.decay_per_us.saturating_mul(dt)).max(0)
    }

    /// Usage so far.
    pub fn usage(&self) -> &LimiterUsage {
        &self.usage
    }

    /// The private counter's maximum.
    pub fn max_counter(&self) -> f64 {
        self.max as f64 / COUNTER_SCALE as f64
    }

    /// Seconds between public calls on one slot.
    pub fn public_interval(&self) -> f64 {
        self.public_interval_us as f64 / MICROS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(e: &str, pair: Option<&str>) -> RestCall {
        RestCall::Public { endpoint: e.into(), pair: pair.map(Into::into) }
    }

    #[test]
    fn public_calls_are_spaced_one_per_interval() {
        let mut m = RateLimitModel::new(1.0, Tier::Intermediate);
        let waits: Vec<f64> = (0..3).map(|_| m.reserve(&public("Ticker", None), 10.0)).collect();
        assert_eq!(waits, vec![0.0, 1.0, 2.0]);
        // OHLC on another pair has its own slot.
        assert_eq!(m.reserve(&public("OHLC", Some("BTC/USD")), 10.0), 0.0);
        assert_eq!(m.reserve(&public("OHLC", Some("ETH/USD")), 10.0), 0.0);
        assert_eq!(m.reserve(&public("OHLC", Some("BTC/USD")), 10.0), 1.0);
    }

    #[test]
    fn private_counter_never_passes_its_maximum() {
        // Intermediate: max 20, decay 0.5/s. 20 calls of cost 1 fit at once; the 21st must
        // wait until the counter decayed by 1: 1 / 0.5 = 2 s.
        let mut m = RateLimitModel::new(1.0, Tier::Intermediate);
        for _ in 0..20 {
            assert_eq!(m.reserve(&RestCall::Private { endpoint: "Balance".into() }, 0.0), 0.0);
        }
        let w = m.reserve(&RestCall::Private { endpoint: "Balance".into() }, 0.0);
        assert!((w - 2.0).abs() < 1e-9, "{w}");
        // Ledgers cost 2: waits 2 / 0.5 = 4 s more after the previous reservation.
        let w2 = m.reserve(&RestCall::Private { endpoint: "Ledgers".into() }, 0.0);
        assert!((w2 - 6.0).abs() < 1e-9, "{w2}");
        assert!(m.usage().private_counter <= m.max_counter() + 1e-9);
    }

    #[test]
    fn order_entry_costs_nothing_on_the_rest_counter() {
        let mut m = RateLimitModel::new(1.0, Tier::Starter);
        for _ in 0..100 {
            assert_eq!(m.reserve(&RestCall::Private { endpoint: "AddOrder".into() }, 0.0), 0.0);
        }
    }

    #[test]
    fn starter_waits_are_rounded_up_never_early() {
        // Starter: max 15, decay 0.33/s. After 15 calls at t=0 the 16th must wait until one
        // unit decayed: 1 / 0.33 = 3.030303… s → 3_030_304 µs (rounded up, never early).
        let mut m = RateLimitModel::new(1.0, Tier::Starter);
        let bal = RestCall::Private { endpoint: "Balance".into() };
        for _ in 0..15 {
            assert_eq!(m.reserve_micros(&bal, 0), 0);
        }
        assert_eq!(m.reserve_micros(&bal, 0), 3_030_304);
        // The counter at that slot is at most the maximum: 15 − 3_030_304 × 33e-8 + 1 ≤ 15.
        assert!(m.private_counter_at(3.030304) <= 15.0);
    }

    #[test]
    fn counter_decays_between_calls() {
        // Intermediate: 10 calls at t=0 → counter 10; at t=4 s it decayed by 2 → 8.
        let mut m = RateLimitModel::new(1.0, Tier::Intermediate);
        for _ in 0..10 {
            m.reserve(&RestCall::Private { endpoint: "Balance".into() }, 0.0);
        }
        assert!((m.private_counter_at(4.0) - 8.0).abs() < 1e-9);
        // 12 more calls at t=4: 8 + 12 = 20 fits; none waits.
        for _ in 0..12 {
            assert_eq!(m.reserve(&RestCall::Private { endpoint: "Balance".into() }, 4.0), 0.0);
        }
        // The 23rd waits 2 s (one unit at 0.5/s).
        assert_eq!(m.reserve(&RestCall::Private { endpoint: "Balance".into() }, 4.0), 2.0);
    }

    #[test]
    fn late_callers_do_not_wait_for_past_slots() {
        // A call long after the previous slot goes at once (slots are not "banked").
        let mut m = RateLimitModel::new(1.0, Tier::Intermediate);
        assert_eq!(m.reserve(&public("Time", None), 0.0), 0.0);
        assert_eq!(m.reserve(&public("Time", None), 50.0), 0.0);
        assert_eq!(m.reserve(&public("Time", None), 50.5), 0.5);
    }

    proptest::proptest! {
        /// Replays the granted slots against an independent exact counter (as Kraken keeps
        /// it): no call is ever refused, and public slots on one key are ≥ 1 s apart.
        #[test]
        fn granted_slots_always_fit_kraken_limits(
            calls in proptest::collection::vec((0u8..4, 0i64..3_000_000, 0usize..3), 1..120),
            tier in 0u8..3,
        ) {
            let tier = [Tier::Starter, Tier::Intermediate, Tier::Pro][tier as usize];
            let mut m = RateLimitModel::new(1.0, tier);
            let mut now = 0i64;
            let mut private_slots: Vec<(i64, i64)> = Vec::new();
            let mut public_slots: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for (kind, gap, pair) in calls {
                now += gap;
                let pair_name = ["BTC/USD", "ETH/USD", "SOL/USD"][pair].to_string();
                let call = match kind {
                    0 => RestCall::Private { endpoint: "Balance".into() },
                    1 => RestCall::Private { endpoint: "Ledgers".into() },
                    2 => public("Ticker", None),
                    _ => public("OHLC", Some(&pair_name)),
                };
                let slot = now + m.reserve_micros(&call, now);
                match &call {
                    RestCall::Private { endpoint } => private_slots.push((slot, RestCall::private_cost_ticks(endpoint))),
                    RestCall::Public { endpoint, .. } => {
                        let key = if endpoint == "OHLC" { pair_name.clone() } else { "ip".into() };
                        public_slots.entry(key).or_default().push(slot);
                    }
                }
            }
            let (max, decay) = tier.counter_ticks();
            private_slots.sort();
            let (mut counter, mut at) = (0i64, 0i64);
            for (slot, cost) in private_slots {
                counter = (counter - decay * (slot - at)).max(0) + cost;
                at = slot;
                proptest::prop_assert!(counter <= max, "counter {counter} > {max} at {slot}");
            }
            for slots in public_slots.values_mut() {
                slots.sort();
                for w in slots.windows(2) {
                    proptest::prop_assert!(w[1] - w[0] >= 1_000_000);
                }
            }
        }
    }
}
