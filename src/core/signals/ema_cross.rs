//! `ema_cross`: EMA-cross momentum on mids sampled on an event-time grid.
//!
//! Per pair, the mid is sampled every `sample_interval` of event time (first mid of each
//! grid bucket). Two EMAs (`fast`, `slow` samples) and the per-sample return variance are
//! updated on each sample. The EMA gap is normalised into a z-score:
//!
//! ```text
//! z = (EMA_fast − EMA_slow) / (EMA_slow · σ_r · g)
//! g² = a²/(1−a²) + b²/(1−b²) − 2ab/(1−ab),  a = 1 − α_slow,  b = 1 − α_fast
//! ```
//!
//! where σ_r is the EWMA root-mean-square of per-sample log returns. `g·σ_r` is the standard
//! deviation of the relative EMA gap under a driftless random walk, so z ≈ N(0, 1) when there
//! is no trend. A cross is a regime change with hysteresis: the regime becomes long when
//! z > `band`, short when z < −`band`, and stays as it was in between. A signal is emitted at
//! each regime change (and, with `repeat_every` > 0, every that many samples while the regime
//! holds with |z| > band): score = ±1, confidence = min(1, |z| / `full_confidence_z`).

use serde::{Deserialize, Serialize};

use super::super::time::Span;
use super::super::validate::Issues;
use super::common::{Call, Ema, PairModel, Sampled, alpha_for, count_in, float_in, positive_span};

/// `signals.ema_cross.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmaCrossConfig {
    /// Event-time grid the mid is sampled on (default 10s).
    pub sample_interval: Span,
    /// Fast EMA length in samples (default 12).
    pub fast: u32,
    /// Slow EMA length in samples (default 48); also the warm-up before the first signal.
    pub slow: u32,
    /// EWMA length in samples of the squared returns that give σ_r (default 48).
    pub vol_samples: u32,
    /// |z| the normalised gap must exceed to flip the regime (hysteresis; default 0.6).
    pub band: f64,
    /// |z| at which confidence reaches 1 (default 1.2, so a fresh cross has ≈ 0.5).
    pub full_confidence_z: f64,
    /// How long a signal stays valid (default 10m).
    pub horizon: Span,
    /// Re-emit every this many samples while the trend persists (0 = only on crosses).
    pub repeat_every: u32,
}

impl Default for EmaCrossConfig {
    fn default() -> Self {
        EmaCrossConfig {
            sample_interval: Span::from_secs(10),
            fast: 12,
            slow: 48,
            vol_samples: 48,
            band: 0.6,
            full_confidence_z: 1.2,
            horizon: Span::from_secs(600),
            repeat_every: 0,
        }
    }
}

impl EmaCrossConfig {
    /// Adds a problem for every out-of-range key (`signals.ema_cross.…`).
    pub fn validate(&self, is: &mut Issues) {
        positive_span(is, "signals.ema_cross.sample_interval", self.sample_interval);
        count_in(is, "signals.ema_cross.fast", self.fast, 1, 10_000);
        count_in(is, "signals.ema_cross.slow", self.slow, 2, 100_000);
        is.check(self.slow > self.fast, "signals.ema_cross.slow", || {
            format!("must be greater than signals.ema_cross.fast ({}), got {}", self.fast, self.slow)
        });
        count_in(is, "signals.ema_cross.vol_samples", self.vol_samples, 2, 100_000);
        float_in(is, "signals.ema_cross.band", self.band, 0.0, 10.0);
        is.positive_f64("signals.ema_cross.full_confidence_z", self.full_confidence_z);
        positive_span(is, "signals.ema_cross.horizon", self.horizon);
        count_in(is, "signals.ema_cross.repeat_every", self.repeat_every, 0, 1_000_000);
    }
}

/// The state of one pair: both averages, σ_r, the regime and the samples since the last signal.
#[derive(Clone, Debug)]
pub struct PairState {
    fast: Ema,
    slow: Ema,
    var: Ema,
    last_mid: Option<f64>,
    samples: u32,
    regime: i8,
    since_emit: u32,
}

/// The EMA-cross parameters with the gap scale they imply (computed once).
#[derive(Clone, Debug)]
pub struct EmaCrossParams {
    cfg: EmaCrossConfig,
    gap_scale: f64,
}

/// Warm-up: the closes go through the same sample step (averages, σ_r, regime) without
/// emitting: a cross that happened in the history is not signalled again live.
impl PairModel for EmaCrossParams {
    type State = PairState;
    const NAME: &'static str = "ema_cross";

    fn sample_interval(&self) -> Span {
        self.cfg.sample_interval
    }

    fn horizon(&self) -> Span {
        self.cfg.horizon
    }

    fn init(&self) -> PairState {
        let cfg = &self.cfg;
        PairState {
            fast: Ema::new(cfg.fast),
            slow: Ema::new(cfg.slow),
            var: Ema::new(cfg.vol_samples),
            last_mid: None,
            samples: 0,
            regime: 0,
            since_emit: 0,
        }
    }

    /// One grid sample: updates the averages and the regime; the call a live sample makes.
    fn step(&self, st: &mut PairState, mid: f64) -> Option<Call> {
        let (cfg, gap_scale) = (&self.cfg, self.gap_scale);
        if let Some(prev) = st.last_mid {
            let r = libm::log(mid / prev);
            st.var.update(r * r);
        }
        st.last_mid = Some(mid);
        let ef = st.fast.update(mid);
        let es = st.slow.update(mid);
        st.samples = st.samples.saturating_add(1);
        st.since_emit = st.since_emit.saturating_add(1);
        if st.samples < cfg.slow {
            return None;
        }
        let sigma = st.var.value()?.sqrt();
        if sigma <= 0.0 || es <= 0.0 {
            return None;
        }
        let z = (ef - es) / (es * sigma * gap_scale);
        let regime = if z > cfg.band {
            1
        } else if z < -cfg.band {
            -1
        } else {
            st.regime
        };
        let crossed = regime != st.regime && regime != 0;
        let repeat = cfg.repeat_every > 0
            && st.regime != 0
            && regime == st.regime
            && z.abs() > cfg.band
            && st.since_emit >= cfg.repeat_every;
        st.regime = regime;
        if !(crossed || repeat) {
            return None;
        }
        st.since_emit = 0;
        let what = if crossed { "crossed" } else { "still" };
        let rel = if regime > 0 { "above" } else { "below" };
        Some(Call {
            score: f64::from(regime),
            confidence: (z.abs() / cfg.full_confidence_z).min(1.0),
            explanation: format!("EMA{} {ef:.6} {what} {rel} EMA{} {es:.6} (z = {z:.2})", cfg.fast, cfg.slow),
        })
    }
}

/// The EMA-cross model (state per pair).
pub type EmaCross = Sampled<EmaCrossParams>;

/// Standard deviation of the relative gap EMA_fast − EMA_slow per unit of per-sample return
/// volatility, for a driftless random walk (see the module doc).
pub fn gap_scale(fast: u32, slow: u32) -> f64 {
    let a = 1.0 - alpha_for(slow);
    let b = 1.0 - alpha_for(fast);
    let g2 = a * a / (1.0 - a * a) + b * b / (1.0 - b * b) - 2.0 * a * b / (1.0 - a * b);
    g2.max(1e-12).sqrt()
}

impl EmaCross {
    /// A model with the given parameters.
    pub fn new(cfg: &EmaCrossConfig) -> Self {
        Sampled::from_model(EmaCrossParams { gap_scale: gap_scale(cfg.fast, cfg.slow), cfg: cfg.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{self, Phase};
    use super::*;

    #[test]
    fn warm_up_on_history_signals_earlier_than_a_cold_start() {
        let (warm, cold) =
            testdata::first_signal_warm_and_cold(|| Box::new(EmaCross::new(&EmaCrossConfig::default())));
        let warm = warm.expect("no signal after the warm-up");
        // cold: needs `slow` (48) samples first (index 47 is the 48th); warmed up, the climb is
        // called within a few samples.
        assert!(cold.is_none_or(|c| c >= 47), "cold start signalled at sample {cold:?}");
        assert!(warm < 12, "warmed up, the first signal came at sample {warm}");
    }

    #[test]
    fn gap_scale_matches_hand_computation_for_12_48() {
        // a = 47/49, b = 11/13: a²/(1−a²) = 11.51, b²/(1−b²) = 2.521, 2ab/(1−ab) = 8.618,
        // g² ≈ 5.41, g ≈ 2.33.
        let g = gap_scale(12, 48);
        assert!((g - 2.326).abs() < 0.01, "{g}");
    }

    #[test]
    fn goes_long_in_an_uptrend_and_signals_the_reversal() {
        let stream = testdata::trend_then_revert("BTC/USD", 7);
        let mut m = EmaCross::new(&EmaCrossConfig::default());
        let sigs = testdata::run(&mut m, &stream.events);
        let trend: Vec<_> = sigs.iter().filter(|s| stream.phase_at(s.event_time) == Phase::Trend).collect();
        assert!(!trend.is_empty(), "no signal during the trend");
        // The first call in an uptrend is long, and most calls in the trend are long.
        assert!(trend[0].score > 0.0);
        let longs = trend.iter().filter(|s| s.score > 0.0).count();
        assert!(longs * 10 >= trend.len() * 7, "{longs} of {} long in an uptrend", trend.len());
        for s in &sigs {
            assert!(s.validate().is_ok());
            assert!(s.confidence >= 0.5 - 1e-9, "a fresh cross has |z| > band → c ≥ 0.5");
        }
    }

    #[test]
    fn a_few_dozen_signals_per_pair_in_six_hours_of_random_walk() {
        let pairs = ["BTC/USD", "ETH/USD", "SOL/USD"];
        let events = testdata::random_walk(&pairs, 6 * 3600, 11);
        let mut m = EmaCross::new(&EmaCrossConfig::default());
        let sigs = testdata::run(&mut m, &events);
        for p in pairs {
            let n = sigs.iter().filter(|s| &*s.pair == p).count();
            assert!((15..=80).contains(&n), "{p}: {n} signals in 6 h");
        }
    }

    #[test]
    fn repeat_every_re_emits_while_trend_persists() {
        let stream = testdata::trend_then_revert("BTC/USD", 7);
        let base = testdata::run(&mut EmaCross::new(&EmaCrossConfig::default()), &stream.events).len();
        let cfg = EmaCrossConfig { repeat_every: 30, ..EmaCrossConfig::default() };
        let more = testdata::run(&mut EmaCross::new(&cfg), &stream.events).len();
        assert!(more > base, "{more} vs {base}");
    }

    #[test]
    fn validation_names_keys() {
        let cfg =
            EmaCrossConfig { fast: 50, slow: 48, band: -1.0, horizon: Span(0), ..EmaCrossConfig::default() };
        let mut is = Issues::default();
        cfg.validate(&mut is);
        let keys: Vec<_> = is.list.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["signals.ema_cross.slow", "signals.ema_cross.band", "signals.ema_cross.horizon"]);
    }
}
