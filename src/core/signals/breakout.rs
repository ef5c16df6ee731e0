//! `breakout`: volatility breakout out of a rolling band.
//!
//! On an event-time grid, the model keeps the log mids of the previous `lookback` samples
//! (not including the current one) and their mean `m` and standard deviation `s`. The current
//! sample's distance from the band centre is `z = (ln p − m) / s`. The price breaks out when
//! `|z| > k`: score = sign(z) (momentum: follow the break), confidence = min(1, |z| / (2k)),
//! so a fresh break has ≈ 0.5. One signal per excursion: the model re-arms once the price is
//! back inside the band (|z| ≤ k); a break straight through to the other side also signals.
//! Windows whose `s` is below `min_rel_vol` (a frozen price) are ignored.

use serde::{Deserialize, Serialize};

use super::super::time::Span;
use super::super::validate::Issues;
use super::common::{Call, PairModel, Sampled, Window, count_in, float_in, positive_span};

/// `signals.breakout.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakoutConfig {
    /// Event-time grid the mid is sampled on (default 10s).
    pub sample_interval: Span,
    /// Samples in the rolling band (default 60, i.e. 10 minutes).
    pub lookback: u32,
    /// Band half-width in standard deviations of the log mid (default 2.5).
    pub k: f64,
    /// Smallest band standard deviation (of ln price) worth trading (default 1e-5).
    pub min_rel_vol: f64,
    /// How long a signal stays valid (default 10m).
    pub horizon: Span,
}

impl Default for BreakoutConfig {
    fn default() -> Self {
        BreakoutConfig {
            sample_interval: Span::from_secs(10),
            lookback: 60,
            k: 2.5,
            min_rel_vol: 1e-5,
            horizon: Span::from_secs(600),
        }
    }
}

impl BreakoutConfig {
    /// Adds a problem for every out-of-range key (`signals.breakout.…`).
    pub fn validate(&self, is: &mut Issues) {
        positive_span(is, "signals.breakout.sample_interval", self.sample_interval);
        count_in(is, "signals.breakout.lookback", self.lookback, 3, 100_000);
        float_in(is, "signals.breakout.k", self.k, 0.1, 20.0);
        float_in(is, "signals.breakout.min_rel_vol", self.min_rel_vol, 0.0, 1.0);
        positive_span(is, "signals.breakout.horizon", self.horizon);
    }
}

/// The state of one pair: the band window and the side of the current excursion.
#[derive(Clone, Debug)]
pub struct PairState {
    window: Window,
    side: i8,
}

/// Warm-up: the closes fill the band window (and set the side) without emitting.
impl PairModel for BreakoutConfig {
    type State = PairState;
    const NAME: &'static str = "breakout";

    fn sample_interval(&self) -> Span {
        self.sample_interval
    }

    fn horizon(&self) -> Span {
        self.horizon
    }

    fn init(&self) -> PairState {
        PairState { window: Window::new(self.lookback as usize), side: 0 }
    }

    /// One grid sample: judges it against the band, then adds it; the call a live sample makes.
    fn step(&self, st: &mut PairState, mid: f64) -> Option<Call> {
        let cfg = self;
        let x = libm::log(mid);
        // The band comes from the samples before this one, so the current price is judged
        // against a band it did not help build.
        let band = if st.window.is_full() { st.window.mean_std() } else { None };
        st.window.push(x);
        let (m, s) = band?;
        if s < cfg.min_rel_vol || s <= 0.0 {
            return None;
        }
        let z = (x - m) / s;
        let side: i8 = if z > cfg.k {
            1
        } else if z < -cfg.k {
            -1
        } else {
            0
        };
        let fresh = side != 0 && side != st.side;
        st.side = side;
        if !fresh {
            return None;
        }
        let dir = if side > 0 { "above" } else { "below" };
        Some(Call {
            score: f64::from(side),
            confidence: (z.abs() / (2.0 * cfg.k)).min(1.0),
            explanation: format!(
                "mid broke {dir} its {}-sample band (z = {z:.2}, k = {})",
                cfg.lookback, cfg.k
            ),
        })
    }
}

/// The volatility-breakout model (state per pair).
pub type Breakout = Sampled<BreakoutConfig>;

impl Breakout {
    /// A model with the given parameters.
    pub fn new(cfg: &BreakoutConfig) -> Self {
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
        let (warm, cold) =
            testdata::first_signal_warm_and_cold(|| Box::new(Breakout::new(&BreakoutConfig::default())));
        let warm = warm.expect("no signal after the warm-up");
        // cold: needs a full `lookback` (60) band first; warmed up, the climb is called within a few samples.
        assert!(cold.is_none_or(|c| c >= 60), "cold start signalled at sample {cold:?}");
        assert!(warm < 12, "warmed up, the first signal came at sample {warm}");
    }

    #[test]
    fn breaks_upward_in_an_uptrend() {
        let stream = testdata::trend_then_revert("BTC/USD", 5);
        let mut m = Breakout::new(&BreakoutConfig::default());
        let sigs = testdata::run(&mut m, &stream.events);
        let trend: Vec<_> = sigs.iter().filter(|s| stream.phase_at(s.event_time) == Phase::Trend).collect();
        let ups = trend.iter().filter(|s| s.score > 0.0).count();
        assert!(trend.len() >= 5, "{} breakouts in a 3 h trend", trend.len());
        assert!(ups * 10 >= trend.len() * 8, "{ups} of {} upward", trend.len());
        for s in &sigs {
            assert!(s.validate().is_ok() && s.confidence >= 0.5 - 1e-9);
        }
    }

    #[test]
    fn one_signal_per_excursion_and_band_excludes_current_price() {
        let sym: crate::core::instrument::Symbol = Arc::from("X/USD");
        let cfg =
            BreakoutConfig { sample_interval: Span::from_secs(1), lookback: 4, k: 1.0, ..Default::default() };
        let mut m = Breakout::new(&cfg);
        // Window 100, 101, 100, 101: m = ln 100.5 (about), s ≈ 0.005. 110 is far above → signal;
        // 111 next: band now {101, 100, 101, 110}, still above → same excursion, no new signal.
        let prices = [100.0, 101.0, 100.0, 101.0, 110.0, 111.0];
        let mut out = vec![];
        for (i, p) in prices.iter().enumerate() {
            out.extend(m.on_event(i as u64, &testdata::book(&sym, testdata::at(i as i64), *p, 1.0, 1.0)));
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].event_seq, 4);
        assert_eq!(out[0].score, 1.0);
    }
}
