//! Simulator settings ([`SimConfig`], `sim.*`), the depths and snapshot length Kraken uses,
//! and the model's calibrated constants (docs/simulator.md).

use serde::{Deserialize, Serialize};

use crate::core::time::{EventTime, MICROS_PER_SEC};
use crate::core::validate::Issues;

/// Book depths Kraken accepts on a `book` subscription.
pub const VALID_DEPTHS: [u16; 5] = [10, 25, 100, 500, 1000];

/// Trades kept per pair for a `trade` snapshot (Kraken sends the last 50).
pub const TRADE_SNAPSHOT_LEN: usize = 50;

/// `sim.*`: the embedded simulated exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of the market model (`--seed`).
    pub seed: u64,
    /// Event time the simulated clock starts at (never "now").
    pub start_time: EventTime,
    /// Fault injection for tests: the server drops the first connection after this many
    /// market frames (None: never).
    pub drop_connection_after_frames: Option<u64>,
    /// Mean rate of book updates per pair per second of event time that are not caused by
    /// a trade (each trade adds one more book update). Default 4.
    pub book_updates_per_sec: f64,
    /// Mean rate of taker orders (trade messages) per pair per second. Default 0.75
    /// (measured 0.74/s on BTC/USD). At most 0.4 × `book_updates_per_sec`, so that book
    /// updates stay ≥ 70 % of the events.
    pub trades_per_sec: f64,
    /// Multiplies every pair's volatility (1 = the built-in daily volatilities).
    pub volatility_scale: f64,
    /// Mean number of price jumps per hour of event time (market-wide shocks of about
    /// 0.15 daily standard deviations). Default 0.25.
    pub jumps_per_hour: f64,
    /// Strength of the shared, mean-reverting (1 h) trend, 0 = pure random walk. The
    /// diffusion is scaled down so that long-run volatility stays at the profile's. Default 0.3.
    pub trend_strength: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            start_time: EventTime::from_micros(1_735_689_600_000_000), // 2025-01-01T00:00:00Z
            drop_connection_after_frames: None,
            book_updates_per_sec: 4.0,
            trades_per_sec: 0.75,
            volatility_scale: 1.0,
            jumps_per_hour: 0.25,
            trend_strength: 0.3,
        }
    }
}

impl SimConfig {
    /// Adds a problem for every out-of-range key (`sim.…`).
    pub fn validate(&self, is: &mut Issues) {
        let b = self.book_updates_per_sec;
        is.check(b.is_finite() && b > 0.0 && b <= 1000.0, "sim.book_updates_per_sec", || {
            format!("must be in (0, 1000] updates per second, got {b}")
        });
        let t = self.trades_per_sec;
        is.check(t.is_finite() && t >= 0.0 && t <= 0.4 * b.max(0.0), "sim.trades_per_sec", || {
            format!("must be between 0 and 0.4 × sim.book_updates_per_sec ({}), got {t}", 0.4 * b)
        });
        let v = self.volatility_scale;
        is.check(v.is_finite() && v > 0.0 && v <= 20.0, "sim.volatility_scale", || {
            format!("must be in (0, 20], got {v}")
        });
        let j = self.jumps_per_hour;
        is.check(j.is_finite() && (0.0..=60.0).contains(&j), "sim.jumps_per_hour", || {
            format!("must be between 0 and 60, got {j}")
        });
        let s = self.trend_strength;
        is.check(s.is_finite() && (0.0..=3.0).contains(&s), "sim.trend_strength", || {
            format!("must be between 0 and 3, got {s}")
        });
        is.check(self.drop_connection_after_frames != Some(0), "sim.drop_connection_after_frames", || {
            "must be at least 1 (or null for never)".to_string()
        });
        is.check(self.start_time >= EventTime::ZERO, "sim.start_time", || {
            format!("must not be before 1970-01-01, got {}", self.start_time)
        });
    }
}

/// Mean-reversion time of the log-volatility factor (s).
pub(super) const VOL_TAU_S: f64 = 1_800.0;
/// Stationary standard deviation of the log-volatility factor.
pub(super) const VOL_SD: f64 = 0.35;
/// Mean-reversion time of the shared trend (s).
pub(super) const TREND_TAU_S: f64 = 3_600.0;
/// Jump size in daily standard deviations of the pair.
pub(super) const JUMP_SCALE: f64 = 0.15;
/// Mean gap between book levels, in one-second standard deviations of the price. It is
/// set so that the book is re-priced about once a second (see docs/simulator.md).
pub(super) const GAP_FACTOR: f64 = 0.8;
/// Log-space standard deviation of displayed level sizes.
pub(super) const LEVEL_SIGMA: f64 = 1.9;
/// Log-space standard deviation of taker order sizes (measured 2.37 on BTC/USD trades;
/// the caps at the touch bring the emitted trades' log-sd to about 2).
pub(super) const TRADE_SIGMA: f64 = 2.1;
/// Share of sizes rounded to two significant digits (people type round numbers).
pub(super) const ROUND_SHARE: f64 = 0.3;
/// Share of book updates that follow the previous one within a burst.
pub(super) const BURST_SHARE: f64 = 0.3;
/// Mean gap between updates inside a burst (s); measured median gap 6 ms.
pub(super) const BURST_MEAN_S: f64 = 0.015;
/// Heartbeat after this much event time without a frame (Kraken: about one per second).
pub(super) const HEARTBEAT_US: i64 = MICROS_PER_SEC;
