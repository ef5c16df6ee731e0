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

/// Kraken verification tier (sets the private counter's maximum and decay).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Max 15, decay 0.33/s.
    Starter,
    /// Max 20, decay 0.5/s.
    #[default]
    Intermediate,
    /// Max 20, decay 1/s.
    Pro,
}

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
        match endpoint {
            "Ledgers" | "QueryLedgers" | "TradesHistory" | "QueryTrades" | "ClosedOrders" => 2.0,
            "AddOrder" | "CancelOrder" | "AddOrderBatch" | "CancelOrderBatch" | "EditOrder" => 0.0,
            _ => 1.0,
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
#[derive(Clone, Debug)]
pub struct RateLimitModel {
    public_interval: f64,
    next_public: BTreeMap<String, f64>,
    max: f64,
    decay: f64,
    counter: f64,
    counter_at: f64,
    usage: LimiterUsage,
}

impl RateLimitModel {
    /// A model with `public_interval` seconds between public calls and `tier`'s counter.
    pub fn new(public_interval: f64, tier: Tier) -> Self {
        let (max, decay) = tier.counter();
        RateLimitModel {
            public_interval,
            next_public: BTreeMap::new(),
            max,
            decay,
            counter: 0.0,
            counter_at: 0.0,
            usage: LimiterUsage::default(),
        }
    }

    /// Reserves a slot for `call` at time `now`; returns the seconds to wait before sending.
    /// The reservation is made at once, so concurrent callers queue in order.
    pub fn reserve(&mut self, call: &RestCall, now: f64) -> f64 {
        let wait = match call {
            RestCall::Public { endpoint, pair } => {
                // Per-pair endpoints have their own slot; everything else shares the IP slot.
                let key = match pair {
                    Some(p) if endpoint == "OHLC" || endpoint == "Trades" => format!("{endpoint}:{p}"),
                    _ => "ip".to_string(),
                };
                let at = self.next_public.get(&key).copied().unwrap_or(f64::MIN).max(now);
                self.next_public.insert(key, at + self.public_interval);
                self.usage.public_calls += 1;
                at - now
            }
            RestCall::Private { endpoint } => {
                let cost = RestCall::private_cost(endpoint);
                // Counter as of the later of now and the last reservation.
                let t0 = self.counter_at.max(now);
                let decayed = (self.counter - self.decay * (t0 - self.counter_at)).max(0.0);
                let over = decayed + cost - self.max;
                let at = if over > 0.0 { t0 + over / self.decay } else { t0 };
                self.counter = (decayed - self.decay * (at - t0)).max(0.0) + cost;
                self.counter_at = at;
                self.usage.private_calls += 1;
                self.usage.private_counter = self.counter;
                at - now
            }
        };
        let wait = wait.max(0.0);
        self.usage.waited_secs += wait;
        wait
    }

    /// Usage so far.
    pub fn usage(&self) -> &LimiterUsage {
        &self.usage
    }

    /// The private counter's maximum.
    pub fn max_counter(&self) -> f64 {
        self.max
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
}
