//! Signal aggregation (pure): live signals per pair → trade intents, with confidence and
//! track-record weights. OWNER: signals helper.
//!
//! Flow (see docs/signals.md for the formulas):
//! 1. [`Aggregator::on_signal`] validates a signal and queues it for its pair.
//! 2. [`Aggregator::on_event`] for market event `seq` of a pair: queued signals computed at an
//!    event `≤ seq` become live (latest per source), expired ones (`now ≥ event_time +
//!    horizon`) are dropped, and — only if a new signal became live — the consensus
//!    `Σ w·c·score / Σ w` over the live signals is compared with `aggregator.threshold`.
//!    Waiting for `seq` makes the decision independent of how events were batched.
//! 3. [`Aggregator::on_trade_closed`] feeds the closed trade's P&L back to the sources that
//!    contributed to it (multiplicative weights) and returns the new weights to journal.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::decisions::{Contribution, Signal, SignalContractError, TradeIntent};
use super::execution::ClosedTrade;
use super::market::{MarketEvent, Side};
use super::money::to_f64;
use super::signals::common::{Ema, GridSampler, count_in, float_in, mid_of, positive_span};
use super::symbol_map::SymbolMap;
use super::time::{EventTime, Span};
use super::validate::Issues;

/// Why the aggregator refused a signal.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AggregatorError {
    /// The signal breaks the contract; `from` and `pair` name it.
    #[error("signal from {from:?} on {pair:?} refused: {reason}")]
    Refused {
        /// The signal's source.
        from: String,
        /// The signal's pair.
        pair: String,
        /// What is wrong with it.
        reason: RefusalReason,
    },
}

/// What is wrong with a refused signal.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RefusalReason {
    /// A field out of its range ([`Signal::validate`]).
    #[error(transparent)]
    Contract(#[from] SignalContractError),
    /// No pair named.
    #[error("pair must not be empty")]
    EmptyPair,
}

impl crate::core::error::Classified for AggregatorError {
    /// One refused signal: logged and counted, the run carries on
    /// ([`Disposition::Recoverable`]).
    ///
    /// [`Disposition::Recoverable`]: crate::core::error::Disposition::Recoverable
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            AggregatorError::Refused { .. } => crate::core::error::Disposition::Recoverable,
        }
    }
}

/// `aggregator.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Weighted, confidence-scaled consensus needed to trade (in [0, 1]).
    pub threshold: f64,
    /// Live signals with a non-zero score needed before an intent (default 1).
    pub min_sources: u32,
    /// η of the multiplicative weight update (default 0.1; 0 freezes the weights).
    pub learning_rate: f64,
    /// Smallest weight a source can fall to (default 0.1).
    pub weight_floor: f64,
    /// Largest weight a source can rise to (default 3.0).
    pub weight_cap: f64,
    /// Grid on which mids are sampled for the volatility estimate (default 1s).
    pub vol_sample_interval: Span,
    /// EWMA length, in samples, of the variance per second (default 300).
    pub vol_samples: u32,
    /// Closed trades in each source's rolling statistics (default 100).
    pub stats_window: u32,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            threshold: 0.3,
            min_sources: 1,
            learning_rate: 0.1,
            weight_floor: 0.1,
            weight_cap: 3.0,
            vol_sample_interval: Span::from_secs(1),
            vol_samples: 300,
            stats_window: 100,
        }
    }
}

impl AggregatorConfig {
    /// Adds a problem for every out-of-range key (`aggregator.…`).
    pub fn validate(&self, is: &mut Issues) {
        is.fraction_f64("aggregator.threshold", self.threshold, false);
        count_in(is, "aggregator.min_sources", self.min_sources, 1, 64);
        float_in(is, "aggregator.learning_rate", self.learning_rate, 0.0, 10.0);
        is.fraction_f64("aggregator.weight_floor", self.weight_floor, false);
        float_in(is, "aggregator.weight_cap", self.weight_cap, 1.0, 1000.0);
        positive_span(is, "aggregator.vol_sample_interval", self.vol_sample_interval);
        count_in(is, "aggregator.vol_samples", self.vol_samples, 2, 1_000_000);
        count_in(is, "aggregator.stats_window", self.stats_window, 1, 1_000_000);
    }
}

/// A decision (or non-decision) worth journaling (`type: signal_decision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The intent, when the consensus passed the threshold.
    pub intent: Option<TradeIntent>,
    /// Consensus score in [-1, 1].
    pub consensus: f64,
    /// Pair.
    pub pair: super::instrument::Symbol,
    /// Event time.
    pub time: super::time::EventTime,
}

/// Weights per source that survive a restart (journaled as `type: signal_weights`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceWeights {
    /// Weight per source name.
    pub weights: std::collections::BTreeMap<String, f64>,
}

/// Volatility of a pair's log mid per √second: EWMA of `r² / Δt` on a sampling grid.
#[derive(Clone, Debug)]
struct VolEstimate {
    sampler: GridSampler,
    last: Option<(EventTime, f64)>,
    var_per_sec: Ema,
    samples: u32,
}

impl VolEstimate {
    fn new(cfg: &AggregatorConfig) -> Self {
        VolEstimate {
            sampler: GridSampler::new(cfg.vol_sample_interval),
            last: None,
            var_per_sec: Ema::new(cfg.vol_samples),
            samples: 0,
        }
    }
    fn update(&mut self, t: EventTime, mid: f64) {
        if !self.sampler.offer(t) {
            return;
        }
        if let Some((t0, m0)) = self.last {
            let dt = t.micros_since(t0) as f64 / 1e6;
            if dt > 0.0 {
                let r = libm::log(mid / m0);
                self.var_per_sec.update(r * r / dt);
                self.samples = self.samples.saturating_add(1);
            }
        }
        self.last = Some((t, mid));
    }
    /// 0 until two returns were seen (the intent's "unknown").
    fn value(&self) -> f64 {
        match self.var_per_sec.value() {
            Some(v) if self.samples >= 2 && v.is_finite() => v.max(0.0).sqrt(),
            _ => 0.0,
        }
    }
}

#[derive(Clone, Debug)]
struct PairState {
    /// Signals not yet live: their event has not been reached by `on_event`.
    pending: Vec<Signal>,
    /// Live signals, latest per source.
    live: BTreeMap<Arc<str>, Signal>,
    /// A new signal became live since the last decision.
    fresh: bool,
    vol: VolEstimate,
}

/// One closed trade as seen by one source.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    hit: bool,
    /// The probability of being right the source implied: 0.5 + 0.5·confidence.
    p: f64,
}

/// Track record of one source.
#[derive(Clone, Debug, Default)]
struct SourceStats {
    signals: u64,
    trades: u64,
    hits: u64,
    pnl: f64,
    conf_sum: f64,
    brier_sum: f64,
    recent: VecDeque<Outcome>,
}

/// The aggregator core.
pub struct Aggregator {
    cfg: AggregatorConfig,
    pairs: SymbolMap<PairState>,
    weights: BTreeMap<String, f64>,
    stats: BTreeMap<String, SourceStats>,
    halted: bool,
    next_intent_id: u64,
    signals_in: u64,
    signals_refused: u64,
    intents: u64,
}

impl Aggregator {
    /// A new aggregator.
    pub fn new(cfg: &AggregatorConfig) -> Aggregator {
        Aggregator {
            cfg: cfg.clone(),
            pairs: SymbolMap::new(),
            weights: BTreeMap::new(),
            stats: BTreeMap::new(),
            halted: false,
            next_intent_id: 1,
            signals_in: 0,
            signals_refused: 0,
            intents: 0,
        }
    }

    /// Takes in one signal (validated; invalid ones are refused with the reason).
    pub fn on_signal(&mut self, s: Signal) -> Result<(), AggregatorError> {
        self.signals_in += 1;
        let checked = s
            .validate()
            .map_err(RefusalReason::Contract)
            .and_then(|()| if s.pair.is_empty() { Err(RefusalReason::EmptyPair) } else { Ok(()) });
        if let Err(reason) = checked {
            self.signals_refused += 1;
            return Err(AggregatorError::Refused {
                from: s.source.to_string(),
                pair: s.pair.to_string(),
                reason,
            });
        }
        // A source seen for the first time starts at weight 1, the mean after normalisation.
        self.weights.entry(s.source.to_string()).or_insert(1.0);
        self.stats.entry(s.source.to_string()).or_default().signals += 1;
        let cfg = &self.cfg;
        let st = self.pairs.get_or_insert_with(&s.pair, || PairState::new(cfg));
        st.pending.push(s);
        Ok(())
    }

    /// Whether a signal taken in waits for an event of its pair to become live (it can then
    /// decide at any such event).
    pub fn has_pending(&self) -> bool {
        self.pairs.values().any(|st| !st.pending.is_empty())
    }

    /// Market event `seq` happened: expire signals, and decide for the event's pair.
    /// Returns decisions that produced intents (and only those).
    pub fn on_event(&mut self, seq: u64, ev: &MarketEvent, out: &mut Vec<Decision>) {
        let Some(sym) = ev.symbol() else { return };
        let now = ev.time();
        let cfg = &self.cfg;
        let st = self.pairs.get_or_insert_with(sym, || PairState::new(cfg));
        // The mid is read only when the event opens a new volatility bucket: in any other
        // bucket `update` would take nothing from it.
        if st.vol.sampler.opens(now)
            && let Some((_, t, mid)) = mid_of(ev)
        {
            st.vol.update(t, mid);
        }
        // Signals computed at this event or earlier become live, in arrival order, so a later
        // signal of the same source replaces an earlier one.
        if st.pending.iter().any(|s| s.event_seq <= seq) {
            let mut keep = Vec::new();
            for s in std::mem::take(&mut st.pending) {
                if s.event_seq > seq {
                    keep.push(s);
                } else if now < s.expires_at() {
                    st.live.insert(s.source.clone(), s);
                    st.fresh = true;
                }
            }
            st.pending = keep;
        }
        // Looked at before retaining: most events expire nothing.
        if st.live.values().any(|s| now >= s.expires_at()) {
            st.live.retain(|_, s| now < s.expires_at());
        }
        if !std::mem::take(&mut st.fresh) || self.halted {
            return;
        }
        let Some(consensus) = consensus(&st.live, &self.weights) else { return };
        let voices = st.live.values().filter(|s| s.score != 0.0).count();
        if consensus.abs() < self.cfg.threshold || voices < self.cfg.min_sources as usize || consensus == 0.0
        {
            return;
        }
        let contributions = st
            .live
            .values()
            .map(|s| Contribution {
                source: s.source.clone(),
                score: s.score,
                confidence: s.confidence,
                weight: weight_of(&self.weights, &s.source),
            })
            .collect();
        let intent = TradeIntent {
            intent_id: self.next_intent_id,
            pair: sym.clone(),
            side: if consensus > 0.0 { Side::Buy } else { Side::Sell },
            confidence: consensus.abs().min(1.0),
            volatility: st.vol.value(),
            time: now,
            event_seq: seq,
            contributions,
            overrides: Default::default(),
        };
        self.next_intent_id += 1;
        self.intents += 1;
        out.push(Decision { intent: Some(intent), consensus, pair: sym.clone(), time: now });
    }

    /// Feedback: a closed trade, attributed to the signals in its contributions.
    ///
    /// For each contribution, `agreement = sign(score)·side` (+1 if the source called the
    /// trade's direction) and `w ← w·exp(η·sign(pnl)·agreement·confidence)`; then all weights
    /// are divided by their mean and clamped to `[weight_floor, weight_cap]`. Returns the new
    /// weights, or None when the trade carried no contributions (nothing changed).
    pub fn on_trade_closed(&mut self, t: &ClosedTrade) -> Option<SourceWeights> {
        if t.contributions.is_empty() {
            return None;
        }
        let pnl = to_f64(t.pnl);
        let outcome = sign(pnl);
        let side = f64::from(t.side.sign());
        let total: f64 = t.contributions.iter().map(share_raw).sum();
        let eta = self.cfg.learning_rate;
        let window = self.cfg.stats_window as usize;
        for c in &t.contributions {
            let agreement = sign(c.score) * side;
            let conf = if c.confidence.is_finite() { c.confidence.clamp(0.0, 1.0) } else { 0.0 };
            let w = self.weights.entry(c.source.to_string()).or_insert(1.0);
            *w *= libm::exp(eta * outcome * agreement * conf);
            let st = self.stats.entry(c.source.to_string()).or_default();
            if agreement == 0.0 || outcome == 0.0 {
                continue;
            }
            let share = if total > 0.0 { share_raw(c) / total } else { 0.0 };
            let hit = outcome * agreement > 0.0;
            let p = 0.5 + 0.5 * conf;
            st.trades += 1;
            st.hits += u64::from(hit);
            st.pnl += pnl * agreement * share;
            st.conf_sum += conf;
            st.brier_sum += libm::pow(p - f64::from(u8::from(hit)), 2.0);
            if st.recent.len() == window {
                st.recent.pop_front();
            }
            st.recent.push_back(Outcome { hit, p });
        }
        self.normalise();
        Some(self.weights())
    }

    /// Stops producing intents (emergency stop) or resumes.
    ///
    /// Signals keep arriving and expiring while halted, but a signal that arrived during the
    /// halt never fires an intent after the resume: only signals newer than the resume do.
    pub fn set_halted(&mut self, halted: bool) {
        self.halted = halted;
    }

    /// True while halted.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Current weights.
    pub fn weights(&self) -> SourceWeights {
        SourceWeights { weights: self.weights.clone() }
    }

    /// Restores weights (resume). Non-finite or non-positive values are ignored; the rest are
    /// clamped to `[weight_floor, weight_cap]`.
    pub fn restore_weights(&mut self, w: SourceWeights) {
        let (lo, hi) = (self.cfg.weight_floor, self.cfg.weight_cap.max(self.cfg.weight_floor));
        self.weights = w
            .weights
            .into_iter()
            .filter(|(_, v)| v.is_finite() && *v > 0.0)
            .map(|(k, v)| (k, v.clamp(lo, hi)))
            .collect();
    }

    /// The id the next intent will get (to journal and restore on resume).
    pub fn next_intent_id(&self) -> u64 {
        self.next_intent_id
    }

    /// Continues intent ids after a resume (ids never repeat within a run).
    pub fn set_next_intent_id(&mut self, next: u64) {
        self.next_intent_id = next.max(1);
    }

    /// Live signals of `pair`, by source (for status pages and tests).
    pub fn live_signals(&self, pair: &str) -> Vec<&Signal> {
        self.pairs.get(pair).map_or_else(Vec::new, |p| p.live.values().collect())
    }

    /// Per-source statistics for reports:
    /// `{"signals_received", "signals_refused", "intents", "halted", "sources": {name: {weight,
    /// signals, trades, hits, hit_rate, attributed_pnl, mean_confidence, brier, recent: {trades,
    /// hit_rate, brier, calibration_gap}}}}`. Rates are null before the first trade.
    /// `calibration_gap` = mean implied probability (0.5 + 0.5·c) − hit rate: > 0 means the
    /// source is over-confident.
    pub fn stats(&self) -> serde_json::Value {
        let mut sources = serde_json::Map::new();
        let names: std::collections::BTreeSet<&String> =
            self.weights.keys().chain(self.stats.keys()).collect();
        let ratio = |a: f64, n: usize| if n > 0 { Some(a / n as f64) } else { None };
        for name in names {
            let st = self.stats.get(name).cloned().unwrap_or_default();
            let n = st.trades as usize;
            let rn = st.recent.len();
            let r_hits = st.recent.iter().filter(|o| o.hit).count() as f64;
            let r_p: f64 = st.recent.iter().map(|o| o.p).sum();
            let r_brier: f64 =
                st.recent.iter().map(|o| libm::pow(o.p - f64::from(u8::from(o.hit)), 2.0)).sum();
            sources.insert(
                name.clone(),
                serde_json::json!({
                    "weight": self.weights.get(name).copied().unwrap_or(1.0),
                    "signals": st.signals,
                    "trades": st.trades,
                    "hits": st.hits,
                    "hit_rate": ratio(st.hits as f64, n),
                    "attributed_pnl": st.pnl,
                    "mean_confidence": ratio(st.conf_sum, n),
                    "brier": ratio(st.brier_sum, n),
                    "recent": {
                        "trades": rn,
                        "hit_rate": ratio(r_hits, rn),
                        "brier": ratio(r_brier, rn),
                        "calibration_gap": ratio(r_p - r_hits, rn),
                    },
                }),
            );
        }
        serde_json::json!({
            "signals_received": self.signals_in,
            "signals_refused": self.signals_refused,
            "intents": self.intents,
            "halted": self.halted,
            "sources": sources,
        })
    }

    /// Divides every weight by the mean weight, then clamps to `[floor, cap]`.
    fn normalise(&mut self) {
        let n = self.weights.len();
        if n == 0 {
            return;
        }
        let mean = self.weights.values().sum::<f64>() / n as f64;
        let (lo, hi) = (self.cfg.weight_floor, self.cfg.weight_cap.max(self.cfg.weight_floor));
        for w in self.weights.values_mut() {
            let v = if mean > 0.0 && mean.is_finite() { *w / mean } else { 1.0 };
            *w = if v.is_finite() { v.clamp(lo, hi) } else { 1.0 };
        }
    }
}

impl PairState {
    fn new(cfg: &AggregatorConfig) -> Self {
        PairState { pending: Vec::new(), live: BTreeMap::new(), fresh: false, vol: VolEstimate::new(cfg) }
    }
}

/// Weight of a source (1 when it has none yet).
fn weight_of(weights: &BTreeMap<String, f64>, source: &str) -> f64 {
    weights.get(source).copied().unwrap_or(1.0)
}

/// `Σ w·c·score / Σ w` over the live signals, None when there are none.
fn consensus(live: &BTreeMap<Arc<str>, Signal>, weights: &BTreeMap<String, f64>) -> Option<f64> {
    let (mut num, mut den) = (0.0, 0.0);
    for s in live.values() {
        let w = weight_of(weights, &s.source);
        num += w * s.confidence * s.score;
        den += w;
    }
    (den > 0.0).then(|| (num / den).clamp(-1.0, 1.0))
}

/// How much of a decision a contribution carried before normalising: `w·c·|score|`.
fn share_raw(c: &Contribution) -> f64 {
    let v = c.weight * c.confidence * c.score.abs();
    if v.is_finite() { v.max(0.0) } else { 0.0 }
}

/// −1, 0 or +1.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use rust_decimal_macros::dec;

    use super::super::rng::Rng;
    use super::super::signals::testdata::{at, book};
    use super::*;

    fn sig(source: &str, score: f64, confidence: f64, secs: i64, seq: u64, horizon_s: i64) -> Signal {
        Signal {
            source: Arc::from(source),
            pair: Arc::from("BTC/USD"),
            score,
            confidence,
            horizon: Span::from_secs(horizon_s),
            event_time: at(secs),
            event_seq: seq,
            explanation: None,
        }
    }

    fn ev(secs: i64, mid: f64) -> MarketEvent {
        book(&Arc::from("BTC/USD"), at(secs), mid, 1.0, 1.0)
    }

    fn weights(pairs: &[(&str, f64)]) -> SourceWeights {
        SourceWeights { weights: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
    }

    fn closed(side: Side, pnl: Decimal, contributions: Vec<Contribution>) -> ClosedTrade {
        ClosedTrade {
            trade_id: 1,
            pair: Arc::from("BTC/USD"),
            side,
            qty: dec!(1),
            entry_time: at(0),
            exit_time: at(60),
            entry_price: dec!(100),
            exit_price: dec!(101),
            fees: dec!(0),
            pnl,
            max_pnl: dec!(0),
            max_drawdown: dec!(0),
            contributions,
            tags: vec![],
            exit_reason: "signal".into(),
        }
    }

    fn contrib(source: &str, score: f64, confidence: f64) -> Contribution {
        Contribution { source: Arc::from(source), score, confidence, weight: 1.0 }
    }

    #[test]
    fn consensus_matches_hand_computation() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        a.restore_weights(weights(&[("a", 2.0), ("b", 1.0)]));
        a.on_signal(sig("a", 1.0, 0.8, 0, 0, 60)).unwrap();
        a.on_signal(sig("b", -0.5, 0.6, 0, 0, 60)).unwrap();
        let mut out = vec![];
        a.on_event(0, &ev(0, 100.0), &mut out);
        // (2·0.8·1 + 1·0.6·(−0.5)) / (2 + 1) = (1.6 − 0.3) / 3 = 0.43333 ≥ 0.3 → buy.
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert!((d.consensus - 1.3 / 3.0).abs() < 1e-12, "{}", d.consensus);
        let i = d.intent.as_ref().unwrap();
        assert_eq!((i.intent_id, i.side, i.event_seq), (1, Side::Buy, 0));
        assert!((i.confidence - 1.3 / 3.0).abs() < 1e-12);
        let c: Vec<_> =
            i.contributions.iter().map(|c| (&*c.source, c.score, c.confidence, c.weight)).collect();
        assert_eq!(c, [("a", 1.0, 0.8, 2.0), ("b", -0.5, 0.6, 1.0)]);
    }

    #[test]
    fn fires_once_per_new_signal_not_on_every_event() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 0.5, 0, 0, 600)).unwrap();
        for s in 0..10 {
            a.on_event(s, &ev(s as i64, 100.0), &mut out);
        }
        assert_eq!(out.len(), 1, "same live signals, no re-fire");
        a.on_signal(sig("a", -1.0, 0.5, 10, 10, 600)).unwrap();
        a.on_event(10, &ev(10, 100.0), &mut out);
        // The new signal replaces the old one of the same source: consensus −0.5 → sell, id 2.
        assert_eq!(out.len(), 2);
        let i = out[1].intent.as_ref().unwrap();
        assert_eq!((i.intent_id, i.side, i.contributions.len()), (2, Side::Sell, 1));
    }

    #[test]
    fn below_threshold_gives_nothing() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        // 1·0.25·1 / 1 = 0.25 < 0.3.
        a.on_signal(sig("a", 1.0, 0.25, 0, 0, 60)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn signals_expire_at_event_time_plus_horizon() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 0.9, 0, 0, 60)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        assert_eq!(out.len(), 1);
        // At 59 s `a` is live: b's −1·0.9 cancels it (0.9 − 0.9 = 0) → nothing.
        a.on_signal(sig("b", -1.0, 0.9, 59, 59, 60)).unwrap();
        a.on_event(59, &ev(59, 100.0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(a.live_signals("BTC/USD").len(), 2);
        // At 60 s `a` has expired (60 < 0 + 60 is false); c's +0.4·0.9 against b's −0.9:
        // (0.36 − 0.9) / 2 = −0.27 → below threshold. Without expiry it would be
        // (0.9 − 0.9 + 0.36) / 3 = +0.12.
        a.on_signal(sig("c", 0.4, 0.9, 60, 60, 60)).unwrap();
        a.on_event(60, &ev(60, 100.0), &mut out);
        assert_eq!(out.len(), 1);
        let live: Vec<_> = a.live_signals("BTC/USD").iter().map(|s| s.source.to_string()).collect();
        assert_eq!(live, ["b", "c"]);
        // A fresh d (−1·1) at 61 s: (−0.9 + 0.36 − 1) / 3 = −0.5133 → sell.
        a.on_signal(sig("d", -1.0, 1.0, 61, 61, 60)).unwrap();
        a.on_event(61, &ev(61, 100.0), &mut out);
        assert_eq!(out.len(), 2);
        assert!((out[1].consensus - (-0.9 + 0.36 - 1.0) / 3.0).abs() < 1e-12);
        // An already-expired signal never becomes live.
        a.on_signal(sig("e", 1.0, 1.0, 0, 0, 10)).unwrap();
        a.on_event(62, &ev(62, 100.0), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn opposite_signals_cancel() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 0.8, 0, 0, 60)).unwrap();
        a.on_signal(sig("b", -1.0, 0.8, 0, 0, 60)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        // (0.8 − 0.8) / 2 = 0.
        assert!(out.is_empty());
    }

    #[test]
    fn a_signal_waits_for_its_own_event() {
        // The signal host may deliver signals of a whole batch before the aggregator walks
        // the batch: a signal computed at seq 5 must not count at seq 4.
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 0.8, 5, 5, 60)).unwrap();
        a.on_event(4, &ev(4, 100.0), &mut out);
        assert!(out.is_empty());
        a.on_event(5, &ev(5, 100.0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].intent.as_ref().unwrap().event_seq, 5);
    }

    #[test]
    fn min_sources_needs_agreeing_voices() {
        let cfg = AggregatorConfig { min_sources: 2, ..Default::default() };
        let mut a = Aggregator::new(&cfg);
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 0.8, 0, 0, 60)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        assert!(out.is_empty(), "one voice is not enough");
        a.on_signal(sig("b", 1.0, 0.6, 1, 1, 60)).unwrap();
        a.on_event(1, &ev(1, 100.0), &mut out);
        // (0.8 + 0.6) / 2 = 0.7.
        assert_eq!(out.len(), 1);
        assert!((out[0].consensus - 0.7).abs() < 1e-12);
    }

    #[test]
    fn halted_makes_no_intents_and_does_not_replay_on_resume() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        a.set_halted(true);
        a.on_signal(sig("a", 1.0, 0.8, 0, 0, 600)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        assert!(out.is_empty());
        a.set_halted(false);
        a.on_event(1, &ev(1, 100.0), &mut out);
        assert!(out.is_empty(), "a signal from the halt does not fire later");
        a.on_signal(sig("b", 1.0, 0.8, 2, 2, 600)).unwrap();
        a.on_event(2, &ev(2, 100.0), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn refuses_invalid_signals_with_reason() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let err = a.on_signal(sig("a", 1.5, 0.5, 0, 0, 60)).unwrap_err().to_string();
        assert!(err.contains("score 1.5 is outside [-1, 1]"), "{err}");
        assert!(a.on_signal(sig("a", f64::NAN, 0.5, 0, 0, 60)).is_err());
        assert!(a.on_signal(sig("a", 0.5, 0.5, 0, 0, 0)).is_err());
        assert_eq!(a.stats()["signals_refused"], 3);
    }

    #[test]
    fn volatility_is_per_root_second_from_mids() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        // Mid alternates 100 / 101 every 4 s: r² = ln(1.01)² each sample, Δt = 4 s →
        // variance per second ln(1.01)²/4 → vol = ln(1.01)/2 ≈ 0.004975.
        for k in 0..50 {
            a.on_event(k, &ev(4 * k as i64, if k % 2 == 0 { 100.0 } else { 101.0 }), &mut out);
        }
        a.on_signal(sig("a", 1.0, 1.0, 196, 50, 60)).unwrap();
        a.on_event(50, &ev(200, 100.0), &mut out);
        let v = out[0].intent.as_ref().unwrap().volatility;
        assert!((v - libm::log(1.01) / 2.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn volatility_is_zero_when_unknown() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 1.0, 0, 0, 60)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        assert_eq!(out[0].intent.as_ref().unwrap().volatility, 0.0);
    }

    #[test]
    fn weight_update_matches_hand_computation() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        a.restore_weights(weights(&[("a", 1.0), ("b", 1.0)]));
        // A winning long; a called long (agrees), b called short; both c = 0.5, η = 0.1:
        // a: exp(0.1·1·1·0.5) = 1.051271, b: exp(−0.05) = 0.951229; mean 1.001250 →
        // a = 1.049959, b = 0.950041.
        let w = a.on_trade_closed(&closed(
            Side::Buy,
            dec!(5),
            vec![contrib("a", 1.0, 0.5), contrib("b", -1.0, 0.5)],
        ));
        let w = w.unwrap().weights;
        assert!((w["a"] - 1.049_959).abs() < 1e-6, "{}", w["a"]);
        assert!((w["b"] - 0.950_041).abs() < 1e-6, "{}", w["b"]);
        // Stats: a hit (+5 · share 0.5 = 2.5 attributed), b missed (−2.5).
        let s = a.stats();
        assert_eq!(s["sources"]["a"]["hit_rate"], 1.0);
        assert_eq!(s["sources"]["b"]["hit_rate"], 0.0);
        assert_eq!(s["sources"]["a"]["attributed_pnl"], 2.5);
        assert_eq!(s["sources"]["b"]["attributed_pnl"], -2.5);
        // Brier of b: implied p = 0.75 of being right, it was wrong → 0.5625.
        assert_eq!(s["sources"]["b"]["brier"], 0.5625);
        // A trade without contributions changes nothing.
        assert!(a.on_trade_closed(&closed(Side::Buy, dec!(5), vec![])).is_none());
    }

    #[test]
    fn weights_stay_within_floor_and_cap() {
        let mut a = Aggregator::new(&AggregatorConfig { learning_rate: 5.0, ..Default::default() });
        a.restore_weights(weights(&[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0), ("e", 1.0)]));
        for _ in 0..20 {
            a.on_trade_closed(&closed(
                Side::Buy,
                dec!(1),
                vec![contrib("a", 1.0, 1.0), contrib("b", -1.0, 1.0)],
            ));
        }
        let w = a.weights().weights;
        assert_eq!(w["a"], 3.0, "capped");
        assert_eq!(w["b"], 0.1, "floored");
    }

    #[test]
    fn informative_source_earns_at_least_twice_the_noise_weight() {
        let mut rng = Rng::new(42);
        let mut a = Aggregator::new(&AggregatorConfig::default());
        a.restore_weights(weights(&[("good", 1.0), ("noise", 1.0)]));
        let mut good_right = 0;
        for _ in 0..200 {
            let side = if rng.chance(0.5) { Side::Buy } else { Side::Sell };
            let win = rng.chance(0.5);
            let pnl = if win { dec!(10) } else { dec!(-10) };
            // The direction that would have won: the trade's side if it won, else the other.
            let right = if win { side } else { side.opposite() };
            let good_side = if rng.chance(0.7) { right } else { right.opposite() };
            good_right += usize::from(good_side == right);
            let noise_side = if rng.chance(0.5) { Side::Buy } else { Side::Sell };
            let w = a.weights().weights;
            let c = |src: &str, s: Side, conf: f64| Contribution {
                source: Arc::from(src),
                score: f64::from(s.sign()),
                confidence: conf,
                weight: w[src],
            };
            let contributions = vec![
                c("good", good_side, 0.3 + 0.6 * rng.uniform()),
                c("noise", noise_side, 0.3 + 0.6 * rng.uniform()),
            ];
            a.on_trade_closed(&closed(side, pnl, contributions));
        }
        assert!((125..=155).contains(&good_right), "the generator is 70 % informative: {good_right}");
        let w = a.weights().weights;
        assert!(w["good"] >= 2.0 * w["noise"], "good {} vs noise {}", w["good"], w["noise"]);
        let s = a.stats();
        let hr = s["sources"]["good"]["hit_rate"].as_f64().unwrap();
        assert!((0.6..0.8).contains(&hr), "{hr}");
    }

    #[test]
    fn restore_weights_sanitises() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        a.restore_weights(weights(&[("a", 50.0), ("b", f64::NAN), ("c", 0.5)]));
        let w = a.weights().weights;
        assert_eq!(w.len(), 2);
        assert_eq!((w["a"], w["c"]), (3.0, 0.5));
    }

    #[test]
    fn intent_ids_continue_after_resume() {
        let mut a = Aggregator::new(&AggregatorConfig::default());
        a.set_next_intent_id(41);
        let mut out = vec![];
        a.on_signal(sig("a", 1.0, 0.9, 0, 0, 60)).unwrap();
        a.on_event(0, &ev(0, 100.0), &mut out);
        assert_eq!(out[0].intent.as_ref().unwrap().intent_id, 41);
        assert_eq!(a.next_intent_id(), 42);
    }

    #[test]
    fn ema_cross_alone_makes_trades_in_six_hours_of_three_pairs() {
        use super::super::signals::SignalsConfig;
        use super::super::signals::testdata::random_walk;
        let events = random_walk(&["BTC/USD", "ETH/USD", "SOL/USD"], 6 * 3600, 5);
        let mut models = SignalsConfig::default().build(&Default::default()).unwrap();
        let mut a = Aggregator::new(&AggregatorConfig::default());
        let mut out = vec![];
        let mut signals = 0;
        for (i, e) in events.iter().enumerate() {
            for m in models.iter_mut() {
                if let Some(s) = m.on_event(i as u64, e) {
                    signals += 1;
                    a.on_signal(s).unwrap();
                }
            }
            a.on_event(i as u64, e, &mut out);
        }
        // A few dozen crosses per pair, and a fresh cross (confidence ≈ 0.5) passes 0.3.
        assert!((45..=240).contains(&signals), "{signals} signals");
        assert!(out.len() * 10 >= signals * 9, "{} intents from {signals} signals", out.len());
        for p in ["BTC/USD", "ETH/USD", "SOL/USD"] {
            assert!(out.iter().filter(|d| &*d.pair == p).count() >= 10, "{p}");
        }
    }

    #[test]
    fn validation_names_keys() {
        let cfg =
            AggregatorConfig { threshold: 0.0, weight_floor: 2.0, weight_cap: 0.5, ..Default::default() };
        let mut is = Issues::default();
        cfg.validate(&mut is);
        let keys: Vec<_> = is.list.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["aggregator.threshold", "aggregator.weight_floor", "aggregator.weight_cap"]);
        let mut ok = Issues::default();
        AggregatorConfig::default().validate(&mut ok);
        assert!(ok.is_empty());
    }
}
