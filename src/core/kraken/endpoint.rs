//! Where and how a session reaches a Kraken WS v2 feed: the URL, the pairs and book depth it
//! subscribes on every connect, the liveness rules, and the reconnect backoff. One value, read
//! from `feed.*` once, shared by the engine's feed and by `record`.

use std::time::Duration;

/// A WebSocket feed endpoint and the rules of its connections.
#[derive(Clone, Debug)]
pub struct WsEndpoint {
    /// `wss://ws.kraken.com/v2`, the simulator's `ws://127.0.0.1:PORT`, or a mock.
    pub url: String,
    /// Pairs (WS v2 symbols) subscribed on every connect.
    pub pairs: Vec<String>,
    /// Book depth subscribed.
    pub depth: u16,
    /// Send an application ping after this much silence.
    pub ping_interval: Duration,
    /// Declare the connection dead (reconnect) after this much silence.
    pub liveness_timeout: Duration,
    /// How reconnects are spaced.
    pub reconnect: Reconnect,
}

/// Exponential reconnect backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub struct Reconnect {
    /// First wait (ms).
    pub initial_backoff_ms: u64,
    /// Cap (ms).
    pub max_backoff_ms: u64,
    /// ± fraction drawn around the wait.
    pub jitter: f64,
    /// A connection up this long resets the backoff.
    pub healthy_after: Duration,
}

impl Reconnect {
    /// The wait before reconnect `attempt` (1 = the first): `initial × 2^(attempt−1)`,
    /// capped, then ±`jitter` drawn from `unit_random` in [0, 1] (the caller's seeded
    /// generator: jitter only spreads reconnects in wall time; it never reaches a journaled
    /// decision).
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let max_ms = self.max_backoff_ms;
        let base = self.initial_backoff_ms.saturating_mul(1u64 << exp).min(max_ms) as f64;
        let factor = 1.0 + self.jitter * (2.0 * unit_random - 1.0);
        Duration::from_millis((base * factor).max(0.0).min(max_ms as f64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconnect(jitter: f64) -> Reconnect {
        Reconnect { initial_backoff_ms: 500, max_backoff_ms: 60_000, jitter, healthy_after: Duration::ZERO }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let r = reconnect(0.0);
        assert_eq!(r.delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(r.delay(2, 0.5), Duration::from_millis(1000));
        assert_eq!(r.delay(4, 0.5), Duration::from_millis(4000));
        assert_eq!(r.delay(20, 0.5), Duration::from_millis(60_000));
        // ±20 % jitter: 1000 ms × (1 + 0.2 × (2 × 1.0 − 1)) = 1200 ms at the top of the range.
        assert_eq!(reconnect(0.2).delay(2, 1.0), Duration::from_millis(1200));
        assert_eq!(reconnect(0.2).delay(2, 0.0), Duration::from_millis(800));
    }
}
