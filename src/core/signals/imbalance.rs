//! `imbalance`: order-book pressure from the depth of the 10 best levels.
//!
//! On every book event, `I = (bid_depth − ask_depth) / (bid_depth + ask_depth)` in [−1, 1]
//! (more resting bids than asks → buyers are waiting → the price tends to rise). `I` is
//! smoothed with an event-time EMA whose weight depends on the time since the previous book
//! event: `Ī ← Ī + (1 − 2^(−Δt / half_life))·(I − Ī)`, so bursts of updates count no more than
//! a quiet stretch of the same length. A signal is emitted when |Ī| reaches `threshold` on a
//! side that is not already signalled, at least `cooldown` after the previous signal of that
//! pair: score = sign(Ī), confidence = min(1, |Ī| / `full_confidence`). The side re-arms
//! when |Ī| falls below `rearm`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::super::decisions::Signal;
use super::super::instrument::Symbol;
use super::super::market::MarketEvent;
use super::super::time::{EventTime, Span};
use super::super::validate::Issues;
use super::SignalModel;
use super::common::{depth_imbalance, float_in, make_signal, positive_span};

/// `signals.imbalance.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImbalanceConfig {
    /// Half-life of the event-time EMA of the imbalance (default 30s).
    pub half_life: Span,
    /// |Ī| that triggers a signal (default 0.3).
    pub threshold: f64,
    /// |Ī| below which the signalled side re-arms (default 0.15; must be < threshold).
    pub rearm: f64,
    /// |Ī| at which confidence reaches 1 (default 0.6).
    pub full_confidence: f64,
    /// Least event time between two signals of one pair (default 60s).
    pub cooldown: Span,
    /// How long a signal stays valid (default 2m).
    pub horizon: Span,
}

impl Default for ImbalanceConfig {
    fn default() -> Self {
        ImbalanceConfig {
            half_life: Span::from_secs(30),
            threshold: 0.3,
            rearm: 0.15,
            full_confidence: 0.6,
            cooldown: Span::from_secs(60),
            horizon: Span::from_secs(120),
        }
    }
}

impl ImbalanceConfig {
    /// Adds a problem for every out-of-range key (`signals.imbalance.…`).
    pub fn validate(&self, is: &mut Issues) {
        positive_span(is, "signals.imbalance.half_life", self.half_life);
        is.fraction_f64("signals.imbalance.threshold", self.threshold, false);
        float_in(is, "signals.imbalance.rearm", self.rearm, 0.0, 1.0);
        is.check(self.rearm < self.threshold, "signals.imbalance.rearm", || {
            format!("must be below signals.imbalance.threshold ({}), got {}", self.threshold, self.rearm)
        });
        is.fraction_f64("signals.imbalance.full_confidence", self.full_confidence, false);
        is.check(self.cooldown.as_micros() >= 0, "signals.imbalance.cooldown", || {
            "must not be negative".into()
        });
        positive_span(is, "signals.imbalance.horizon", self.horizon);
    }
}

#[derive(Clone, Debug, Default)]
struct PairState {
    smooth: Option<f64>,
    last_time: EventTime,
    side: i8,
    last_emit: Option<EventTime>,
}

/// The order-book imbalance model (state per pair).
pub struct Imbalance {
    name: Arc<str>,
    cfg: ImbalanceConfig,
    pairs: BTreeMap<Symbol, PairState>,
}

impl Imbalance {
    /// A model with the given parameters.
    pub fn new(cfg: &ImbalanceConfig) -> Self {
        Imbalance { name: Arc::from("imbalance"), cfg: cfg.clone(), pairs: BTreeMap::new() }
    }
}

impl SignalModel for Imbalance {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_event(&mut self, seq: u64, ev: &MarketEvent) -> Option<Signal> {
        let MarketEvent::Book(b) = ev else { return None };
        let raw = depth_imbalance(ev)?;
        let cfg = &self.cfg;
        let st = self.pairs.entry(b.symbol.clone()).or_default();
        let t = b.time;
        let smooth = match st.smooth {
            None => raw,
            Some(prev) => {
                let dt = t.micros_since(st.last_time).max(0) as f64;
                let w = 1.0 - (-dt / cfg.half_life.as_micros() as f64).exp2();
                prev + w * (raw - prev)
            }
        };
        st.smooth = Some(smooth);
        st.last_time = t;
        if smooth.abs() < cfg.rearm {
            st.side = 0;
        }
        let side: i8 = if smooth >= cfg.threshold {
            1
        } else if smooth <= -cfg.threshold {
            -1
        } else {
            return None;
        };
        let cooled = st.last_emit.is_none_or(|e| t.micros_since(e) >= cfg.cooldown.as_micros());
        if side == st.side || !cooled {
            return None;
        }
        st.side = side;
        st.last_emit = Some(t);
        Some(make_signal(
            &self.name,
            &b.symbol,
            f64::from(side),
            (smooth.abs() / cfg.full_confidence).min(1.0),
            cfg.horizon,
            t,
            seq,
            format!("smoothed depth imbalance {smooth:.3} (raw {raw:.3})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{self, Phase};
    use super::*;

    fn feed(m: &mut Imbalance, depths: &[(i64, f64, f64)]) -> Vec<Signal> {
        let sym: Symbol = Arc::from("X/USD");
        depths
            .iter()
            .enumerate()
            .filter_map(|(i, (s, b, a))| {
                m.on_event(i as u64, &testdata::book(&sym, testdata::at(*s), 100.0, *b, *a))
            })
            .collect()
    }

    #[test]
    fn smoothing_follows_event_time_half_life() {
        // half-life 30 s: first I = 0 (10 vs 10); 30 s later raw I = (15 − 5)/20 = 0.5 and the
        // weight is 1 − 2^−1 = 0.5 → Ī = 0.25 (< 0.3, silent); 30 s later again → 0.375 → long,
        // confidence 0.375 / 0.6 = 0.625.
        let mut m = Imbalance::new(&ImbalanceConfig::default());
        let out = feed(&mut m, &[(0, 10.0, 10.0), (30, 15.0, 5.0), (60, 15.0, 5.0)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event_seq, 2);
        assert_eq!(out[0].score, 1.0);
        assert!((out[0].confidence - 0.625).abs() < 1e-9, "{}", out[0].confidence);
    }

    #[test]
    fn one_signal_per_side_until_rearmed_and_cooldown_holds() {
        let mut m =
            Imbalance::new(&ImbalanceConfig { half_life: Span::from_millis(1), ..Default::default() });
        // With a 1 ms half-life Ī ≈ raw. Long at 0 s; still long at 10 s (no repeat); flips short
        // at 20 s but the 60 s cooldown blocks it; short again at 70 s → signal.
        let out = feed(&mut m, &[(0, 15.0, 5.0), (10, 15.0, 5.0), (20, 5.0, 15.0), (70, 5.0, 15.0)]);
        let seqs: Vec<_> = out.iter().map(|s| (s.event_seq, s.score)).collect();
        assert_eq!(seqs, [(0, 1.0), (3, -1.0)]);
    }

    #[test]
    fn leans_with_the_book_in_the_synthetic_market() {
        let stream = testdata::trend_then_revert("BTC/USD", 9);
        let mut m = Imbalance::new(&ImbalanceConfig::default());
        let sigs = testdata::run(&mut m, &stream.events);
        let trend: Vec<_> = sigs.iter().filter(|s| stream.phase_at(s.event_time) == Phase::Trend).collect();
        assert!(!trend.is_empty() && trend.iter().all(|s| s.score > 0.0), "bids outweigh asks all trend");
        let revert: Vec<_> = sigs.iter().filter(|s| stream.phase_at(s.event_time) == Phase::Revert).collect();
        assert!(revert.len() >= 5);
        assert!(testdata::mean_directional_return(&stream, &revert, 120) > 0.0);
    }
}
