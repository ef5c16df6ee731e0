//! `rsi`: RSI mean reversion on mids sampled on an event-time grid.
//!
//! Wilder's RSI over `period` samples: the first average gain/loss is the plain mean of the
//! first `period` changes, then `avg ← (avg·(period − 1) + x) / period`;
//! `RSI = 100 − 100 / (1 + avg_gain / avg_loss)` (100 when there were no losses, 50 when the
//! price did not move at all). When the RSI enters the oversold zone (< `oversold`) the model
//! calls a bounce: score +1; entering the overbought zone (> `overbought`) calls a pull-back:
//! score −1 (a short, or an exit for a long-only book). Confidence grows with how deep the RSI
//! is in the zone: `0.5 + 0.5·(oversold − RSI)/oversold` or
//! `0.5 + 0.5·(RSI − overbought)/(100 − overbought)`. One signal per visit to a zone (and,
//! with `repeat_every` > 0, every that many samples while it stays there).

use serde::{Deserialize, Serialize};

use super::super::time::Span;
use super::super::validate::Issues;
use super::common::{Call, PairModel, Sampled, count_in, float_in, positive_span};

/// `signals.rsi.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RsiConfig {
    /// Event-time grid the mid is sampled on (default 10s).
    pub sample_interval: Span,
    /// RSI length in samples (default 14).
    pub period: u32,
    /// RSI below this is oversold → long (default 30).
    pub oversold: f64,
    /// RSI above this is overbought → short / exit (default 70).
    pub overbought: f64,
    /// How long a signal stays valid (default 5m).
    pub horizon: Span,
    /// Re-emit every this many samples while the RSI stays in the zone (0 = once per visit).
    pub repeat_every: u32,
}

impl Default for RsiConfig {
    fn default() -> Self {
        RsiConfig {
            sample_interval: Span::from_secs(10),
            period: 14,
            oversold: 30.0,
            overbought: 70.0,
            horizon: Span::from_secs(300),
            repeat_every: 0,
        }
    }
}

impl RsiConfig {
    /// Adds a problem for every out-of-range key (`signals.rsi.…`).
    pub fn validate(&self, is: &mut Issues) {
        positive_span(is, "signals.rsi.sample_interval", self.sample_interval);
        count_in(is, "signals.rsi.period", self.period, 2, 10_000);
        float_in(is, "signals.rsi.oversold", self.oversold, 1.0, 50.0);
        float_in(is, "signals.rsi.overbought", self.overbought, 50.0, 99.0);
        is.check(self.overbought > self.oversold, "signals.rsi.overbought", || {
            format!("must be greater than signals.rsi.oversold ({}), got {}", self.oversold, self.overbought)
        });
        positive_span(is, "signals.rsi.horizon", self.horizon);
        count_in(is, "signals.rsi.repeat_every", self.repeat_every, 0, 1_000_000);
    }
}

/// Wilder's RSI, fed one price at a time.
#[derive(Clone, Debug)]
pub struct WilderRsi {
    period: u32,
    last: Option<f64>,
    seen: u32,
    gain: f64,
    loss: f64,
}

impl WilderRsi {
    /// An RSI over `period` changes.
    pub fn new(period: u32) -> Self {
        WilderRsi { period: period.max(1), last: None, seen: 0, gain: 0.0, loss: 0.0 }
    }
    /// Takes in a price; returns the RSI once `period` changes have been seen.
    pub fn update(&mut self, price: f64) -> Option<f64> {
        let prev = self.last.replace(price)?;
        let ch = price - prev;
        let (g, l) = (ch.max(0.0), (-ch).max(0.0));
        let n = f64::from(self.period);
        self.seen = self.seen.saturating_add(1);
        if self.seen <= self.period {
            // Seed with the plain mean of the first `period` changes.
            self.gain += g / n;
            self.loss += l / n;
        } else {
            self.gain = (self.gain * (n - 1.0) + g) / n;
            self.loss = (self.loss * (n - 1.0) + l) / n;
        }
        if self.seen < self.period {
            return None;
        }
        Some(if self.loss <= 0.0 {
            if self.gain <= 0.0 { 50.0 } else { 100.0 }
        } else {
            100.0 - 100.0 / (1.0 + self.gain / self.loss)
        })
    }
}

/// The state of one pair: its RSI, the zone it is in and the samples since the last signal.
#[derive(Clone, Debug)]
pub struct PairState {
    rsi: WilderRsi,
    zone: i8,
    since_emit: u32,
}

/// Warm-up: the closes seed Wilder's averages and the zone without emitting.
impl PairModel for RsiConfig {
    type State = PairState;
    const NAME: &'static str = "rsi";

    fn sample_interval(&self) -> Span {
        self.sample_interval
    }

    fn horizon(&self) -> Span {
        self.horizon
    }

    fn init(&self) -> PairState {
        PairState { rsi: WilderRsi::new(self.period), zone: 0, since_emit: 0 }
    }

    /// One grid sample: updates the RSI and the zone; the call a live sample makes.
    fn step(&self, st: &mut PairState, mid: f64) -> Option<Call> {
        let cfg = self;
        let rsi = st.rsi.update(mid)?;
        st.since_emit = st.since_emit.saturating_add(1);
        let zone: i8 = if rsi < cfg.oversold {
            -1
        } else if rsi > cfg.overbought {
            1
        } else {
            0
        };
        let entered = zone != 0 && zone != st.zone;
        let repeat =
            zone != 0 && zone == st.zone && cfg.repeat_every > 0 && st.since_emit >= cfg.repeat_every;
        st.zone = zone;
        if !(entered || repeat) {
            return None;
        }
        st.since_emit = 0;
        let (score, depth, word) = if zone < 0 {
            (1.0, (cfg.oversold - rsi) / cfg.oversold, "oversold")
        } else {
            (-1.0, (rsi - cfg.overbought) / (100.0 - cfg.overbought), "overbought")
        };
        Some(Call {
            score,
            confidence: 0.5 + 0.5 * depth.clamp(0.0, 1.0),
            explanation: format!("RSI{} {rsi:.1} {word}", cfg.period),
        })
    }
}

/// The RSI mean-reversion model (state per pair).
pub type Rsi = Sampled<RsiConfig>;

impl Rsi {
    /// A model with the given parameters.
    pub fn new(cfg: &RsiConfig) -> Self {
        Sampled::from_model(cfg.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::SignalModel;
    use super::super::testdata::{self, Phase};
    use super::*;

    #[test]
    fn warm_up_on_history_signals_earlier_than_a_cold_start() {
        let (warm, cold) = testdata::first_signal_warm_and_cold(|| Box::new(Rsi::new(&RsiConfig::default())));
        let warm = warm.expect("no signal after the warm-up");
        // cold: needs `period` (14) changes first; warmed up, the climb is called within a few samples.
        assert!(cold.is_none_or(|c| c >= 14), "cold start signalled at sample {cold:?}");
        assert!(warm < 12, "warmed up, the first signal came at sample {warm}");
    }

    #[test]
    fn wilder_rsi_matches_hand_computation() {
        // period 2: prices 10, 11, 10, 12.
        // changes +1, −1 → seed gain 0.5, loss 0.5 → RSI 50.
        // change +2 → gain (0.5·1 + 2)/2 = 1.25, loss (0.5·1 + 0)/2 = 0.25 → RS 5 → 100 − 100/6.
        let mut r = WilderRsi::new(2);
        assert_eq!(r.update(10.0), None);
        assert_eq!(r.update(11.0), None);
        assert_eq!(r.update(10.0), Some(50.0));
        let v = r.update(12.0).unwrap();
        assert!((v - (100.0 - 100.0 / 6.0)).abs() < 1e-9, "{v}");
    }

    #[test]
    fn fades_extremes_in_a_mean_reverting_market() {
        let stream = testdata::trend_then_revert("BTC/USD", 3);
        let mut m = Rsi::new(&RsiConfig::default());
        let sigs = testdata::run(&mut m, &stream.events);
        let revert: Vec<_> = sigs.iter().filter(|s| stream.phase_at(s.event_time) == Phase::Revert).collect();
        let longs = revert.iter().filter(|s| s.score > 0.0).count();
        assert!(longs > 0 && longs < revert.len(), "both zones are visited: {longs} of {}", revert.len());
        // In a reverting market fading the extremes pays over the next 5 minutes.
        let edge = testdata::mean_directional_return(&stream, &revert, 300);
        assert!(edge > 0.0, "mean directional return {edge}");
        for s in &sigs {
            assert!(s.validate().is_ok() && s.confidence >= 0.5);
        }
    }

    #[test]
    fn oversold_is_long_and_overbought_is_short() {
        let sym: crate::core::instrument::Symbol = Arc::from("X/USD");
        let cfg = RsiConfig { sample_interval: Span::from_secs(1), period: 3, ..RsiConfig::default() };
        let mut m = Rsi::new(&cfg);
        let mut out = vec![];
        // Falls for 4 s (RSI 0 → oversold), then rises for 6 s (RSI → 100, overbought).
        let prices = [100.0, 99.0, 98.0, 97.0, 96.0, 97.0, 98.0, 99.0, 100.0, 101.0, 102.0];
        for (i, p) in prices.iter().enumerate() {
            let e = testdata::book(&sym, testdata::at(i as i64), *p, 1.0, 1.0);
            out.extend(m.on_event(i as u64, &e));
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].score > 0.0 && out[1].score < 0.0);
        assert_eq!(out[0].confidence, 1.0, "RSI 0 is as oversold as it gets");
    }
}
