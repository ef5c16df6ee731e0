//! Building blocks shared by the built-in signal models: reading mids and depths out of
//! market events, sampling on an event-time grid, exponential averages and rolling windows.
//!
//! Everything here only ever looks at the event it is given and at state built from earlier
//! events, so a model assembled from these parts cannot look ahead.

use std::collections::VecDeque;
use std::sync::Arc;

use super::super::decisions::Signal;
use super::super::instrument::Symbol;
use super::super::market::{BookEvent, MarketEvent, PriceHistory, TickerEvent};
use super::super::money::to_f64;
use super::super::symbol_map::SymbolMap;
use super::super::time::{EventTime, Span};
use super::super::validate::Issues;
use super::SignalModel;

/// Mid price carried by a book or ticker event, as a float (statistics only).
pub fn mid_of(ev: &MarketEvent) -> Option<(&Symbol, EventTime, f64)> {
    match ev {
        MarketEvent::Book(b) => {
            let m = to_f64(b.top.mid()?);
            (m > 0.0 && m.is_finite()).then_some((&b.symbol, b.time, m))
        }
        MarketEvent::Ticker(t) => {
            let m = (to_f64(t.bid) + to_f64(t.ask)) / 2.0;
            // A ticker with a crossed or empty side is not a usable quote.
            (t.bid > rust_decimal::Decimal::ZERO && t.ask >= t.bid && m.is_finite())
                .then_some((&t.symbol, t.time, m))
        }
        _ => None,
    }
}

/// Depth imbalance of the 10 best levels, `(bid − ask) / (bid + ask)` in [−1, 1], for a book
/// event whose sides are not both empty.
pub fn depth_imbalance(ev: &MarketEvent) -> Option<f64> {
    let MarketEvent::Book(b) = ev else { return None };
    let (bid, ask) = (to_f64(b.top.bid_depth), to_f64(b.top.ask_depth));
    let total = bid + ask;
    (total > 0.0 && total.is_finite()).then(|| ((bid - ask) / total).clamp(-1.0, 1.0))
}

/// Relative spread `(ask − bid) / mid` of a book event with both sides.
pub fn relative_spread(ev: &MarketEvent) -> Option<f64> {
    let MarketEvent::Book(b) = ev else { return None };
    let (spread, mid) = (to_f64(b.top.spread()?), to_f64(b.top.mid()?));
    (mid > 0.0).then(|| (spread / mid).max(0.0))
}

/// Samples a stream on an event-time grid: the first mid seen in each new grid bucket
/// `[k·interval, (k+1)·interval)` becomes the sample for that bucket.
///
/// Taking the first observation inside the bucket (rather than the last one before its
/// end) means a sample is known the moment it is taken: no waiting for the bucket to
/// close, no look-ahead. Empty buckets produce no sample (nothing is invented in gaps).
#[derive(Clone, Debug)]
pub struct GridSampler {
    interval_us: i64,
    last_bucket: Option<i64>,
}

impl GridSampler {
    /// A sampler with buckets of `interval` (must be positive; validated in config).
    pub fn new(interval: Span) -> Self {
        GridSampler { interval_us: interval.as_micros().max(1), last_bucket: None }
    }
    fn bucket(&self, t: EventTime) -> i64 {
        t.as_micros().div_euclid(self.interval_us)
    }
    /// True when `t` would open a new bucket: what `offer` would answer, recording nothing.
    pub fn opens(&self, t: EventTime) -> bool {
        let bucket = self.bucket(t);
        self.last_bucket.is_none_or(|b| bucket > b)
    }
    /// True when `t` opens a new bucket (and records it).
    pub fn offer(&mut self, t: EventTime) -> bool {
        let opens = self.opens(t);
        if opens {
            self.last_bucket = Some(self.bucket(t));
        }
        opens
    }
}

/// OHLC intervals Kraken accepts, in minutes (REST `OHLC` `interval`).
pub const OHLC_INTERVALS: [u32; 9] = [1, 5, 15, 30, 60, 240, 1440, 10080, 21600];

/// The Kraken OHLC interval (minutes) nearest to a model's sampling interval: the warm-up
/// history a live run fetches for it. Ties go to the shorter interval (more candles for the
/// same span, finer than the model samples). 10 s → 1, 4 m → 5, 2 h → 60 (vs 240).
pub fn ohlc_interval_for(sampling: Span) -> u32 {
    let target = sampling.as_micros().max(1) as f64 / 60e6;
    let mut best = OHLC_INTERVALS[0];
    for m in OHLC_INTERVALS {
        // Nearest on a log scale: 2 h is nearer to 1 h (× 2) than to 4 h (× 2) → the shorter.
        if libm::log(f64::from(m) / target).abs() < libm::log(f64::from(best) / target).abs() - 1e-12 {
            best = m;
        }
    }
    best
}

/// What a model would say on a sample: `score` and `confidence` of the signal, and why.
/// Warm-up runs the same step and throws it away.
pub struct Call {
    /// Signal score (−1 … 1).
    pub score: f64,
    /// Signal confidence (0 … 1).
    pub confidence: f64,
    /// Human-readable reason.
    pub explanation: String,
}

/// One sample of a pair's mid, handed to a model with that pair's state.
pub struct Sample<'a, S> {
    /// The pair.
    pub symbol: &'a Symbol,
    /// Event time of the sample.
    pub time: EventTime,
    /// The mid (float, statistics only).
    pub mid: f64,
    /// The model's state for this pair.
    pub state: &'a mut S,
}

/// Per-pair model state behind an event-time grid sampler: what every sampled model needs
/// before its own arithmetic (read the mid, find the pair's state, keep only grid samples).
#[derive(Clone, Debug)]
pub struct SampledPairs<S> {
    interval: Span,
    pairs: SymbolMap<(GridSampler, S)>,
}

impl<S> SampledPairs<S> {
    /// Pairs sampled every `interval` of event time.
    pub fn new(interval: Span) -> Self {
        SampledPairs { interval, pairs: SymbolMap::new() }
    }

    /// For a book or ticker event that opens a new grid bucket of its pair: the sample and the
    /// pair's state (made by `init` when the pair is first seen). Other events: `None`.
    pub fn sample<'a>(&'a mut self, ev: &'a MarketEvent, init: impl FnOnce() -> S) -> Option<Sample<'a, S>> {
        let (MarketEvent::Book(BookEvent { symbol, time, .. })
        | MarketEvent::Ticker(TickerEvent { symbol, time, .. })) = ev
        else {
            return None;
        };
        // Most events fall in a bucket already sampled: for them the mid (a decimal division
        // and a float conversion) would change nothing, so it is not read.
        if self.pairs.get(symbol).is_some_and(|(sampler, _)| !sampler.opens(*time)) {
            return None;
        }
        let (symbol, time, mid) = mid_of(ev)?;
        let interval = self.interval;
        let (sampler, state) = self.pairs.get_or_insert_with(symbol, || (GridSampler::new(interval), init()));
        sampler.offer(time).then_some(Sample { symbol, time, mid, state })
    }

    /// One event through a sampled model: at a grid sample of the event's pair, `step` turns
    /// the pair's state and the mid into a call, which becomes the model's signal (`source`,
    /// good for `horizon`, about event `seq`).
    pub fn signal(
        &mut self,
        source: &Arc<str>,
        horizon: Span,
        seq: u64,
        ev: &MarketEvent,
        init: impl FnOnce() -> S,
        step: impl FnOnce(&mut S, f64) -> Option<Call>,
    ) -> Option<Signal> {
        let Sample { symbol, time, mid, state } = self.sample(ev, init)?;
        let c = step(state, mid)?;
        Some(make_signal(source, symbol, c.score, c.confidence, horizon, time, seq, c.explanation))
    }

    /// Warm-up: hands the history's closes to `step` as grid samples of the pair (oldest
    /// first; a close that falls in an already sampled bucket is skipped, as a second mid in
    /// a bucket would be), so the first live sample continues where the history ends. A pair
    /// already sampled from live data is left alone (its state is newer than any history).
    /// Returns how many closes were used.
    pub fn warm_up(
        &mut self,
        symbol: &Symbol,
        history: &PriceHistory,
        init: impl FnOnce() -> S,
        mut step: impl FnMut(&mut S, EventTime, f64),
    ) -> usize {
        if self.pairs.contains_key(symbol) {
            return 0;
        }
        let interval = self.interval;
        let (sampler, state) = self.pairs.get_or_insert_with(symbol, || (GridSampler::new(interval), init()));
        let mut used = 0;
        for (t, close) in &history.closes {
            let c = to_f64(*close);
            if c > 0.0 && c.is_finite() && sampler.offer(*t) {
                step(state, *t, c);
                used += 1;
            }
        }
        used
    }
}

/// A model that works on grid samples of each pair's mid: its parameters, its per-pair state
/// and one step per sample. [`Sampled`] makes it a [`SignalModel`], so a sampled model is
/// written as its arithmetic only (`ema_cross`, `rsi`, `breakout`).
pub trait PairModel: Send {
    /// The model's state for one pair.
    type State: Send;
    /// Source name, used in the journal and for weights (e.g. `rsi`).
    const NAME: &'static str;
    /// Event-time grid the mid is sampled on (also the interval asked for warm-up history).
    fn sample_interval(&self) -> Span;
    /// How long a signal stays valid.
    fn horizon(&self) -> Span;
    /// The state of a pair seen for the first time.
    fn init(&self) -> Self::State;
    /// One grid sample of a pair: updates its state; the call a live sample makes. Warm-up
    /// runs the same step on the history's closes and throws the call away.
    fn step(&self, state: &mut Self::State, mid: f64) -> Option<Call>;
}

/// The [`SignalModel`] of a [`PairModel`]: the model's steps on the grid samples of every
/// pair ([`SampledPairs`]), warmed up on closes at its sampling interval.
pub struct Sampled<M: PairModel> {
    name: Arc<str>,
    model: M,
    pairs: SampledPairs<M::State>,
}

impl<M: PairModel> Sampled<M> {
    /// Runs `model` on grid samples of every pair it sees.
    pub fn from_model(model: M) -> Self {
        Sampled { name: Arc::from(M::NAME), pairs: SampledPairs::new(model.sample_interval()), model }
    }
}

impl<M: PairModel> SignalModel for Sampled<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_event(&mut self, seq: u64, ev: &MarketEvent) -> Option<Signal> {
        let m = &self.model;
        self.pairs.signal(&self.name, m.horizon(), seq, ev, || m.init(), |st, mid| m.step(st, mid))
    }

    fn warm_up_interval(&self) -> Option<Span> {
        Some(self.model.sample_interval())
    }

    /// The closes go through the same step as live samples, without emitting: whatever the
    /// step keeps (averages, bands, zones, regimes) continues from the history, and a call
    /// made in the history is not signalled again live.
    fn warm_up(&mut self, symbol: &Symbol, history: &PriceHistory) {
        let m = &self.model;
        self.pairs.warm_up(
            symbol,
            history,
            || m.init(),
            |st, _, mid| {
                let _ = m.step(st, mid);
            },
        );
    }
}

/// Exponential moving average with `α = 2 / (n + 1)`, seeded with its first input.
#[derive(Clone, Debug)]
pub struct Ema {
    alpha: f64,
    value: Option<f64>,
}

impl Ema {
    /// An EMA over `n` samples (n ≥ 1).
    pub fn new(n: u32) -> Self {
        Ema { alpha: alpha_for(n), value: None }
    }
    /// The smoothing factor α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    /// Takes in `x`, returns the new average.
    pub fn update(&mut self, x: f64) -> f64 {
        let v = match self.value {
            None => x,
            Some(v) => v + self.alpha * (x - v),
        };
        self.value = Some(v);
        v
    }
    /// The current average, once it has seen a value.
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

/// `α = 2 / (n + 1)`, the usual "n-period" EMA factor.
pub fn alpha_for(n: u32) -> f64 {
    2.0 / (f64::from(n.max(1)) + 1.0)
}

/// A fixed-length window of the most recent values.
#[derive(Clone, Debug)]
pub struct Window {
    cap: usize,
    values: VecDeque<f64>,
}

impl Window {
    /// A window of at most `cap` values (cap ≥ 1).
    pub fn new(cap: usize) -> Self {
        Window { cap: cap.max(1), values: VecDeque::with_capacity(cap.max(1) + 1) }
    }
    /// Appends `x`, dropping the oldest value when full.
    pub fn push(&mut self, x: f64) {
        if self.values.len() == self.cap {
            self.values.pop_front();
        }
        self.values.push_back(x);
    }
    /// True when the window holds `cap` values.
    pub fn is_full(&self) -> bool {
        self.values.len() == self.cap
    }
    /// Number of values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The value `lag` steps back (0 = newest).
    pub fn back(&self, lag: usize) -> Option<f64> {
        let n = self.values.len();
        if lag < n { self.values.get(n - 1 - lag).copied() } else { None }
    }
    /// Mean and population standard deviation (None when empty).
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        let n = self.values.len();
        if n == 0 {
            return None;
        }
        let mean = self.values.iter().sum::<f64>() / n as f64;
        let var = self.values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        Some((mean, var.max(0.0).sqrt()))
    }
    /// Root mean square of the values (None when empty).
    pub fn rms(&self) -> Option<f64> {
        let n = self.values.len();
        (n > 0).then(|| (self.values.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt())
    }
}

/// Builds a signal with the fields every model fills the same way.
#[allow(clippy::too_many_arguments)]
pub fn make_signal(
    source: &Arc<str>,
    pair: &Symbol,
    score: f64,
    confidence: f64,
    horizon: Span,
    time: EventTime,
    seq: u64,
    explanation: String,
) -> Signal {
    Signal {
        source: source.clone(),
        pair: pair.clone(),
        score: if score.is_finite() { score.clamp(-1.0, 1.0) } else { 0.0 },
        confidence: if confidence.is_finite() { confidence.clamp(0.0, 1.0) } else { 0.0 },
        horizon,
        event_time: time,
        event_seq: seq,
        explanation: Some(explanation),
    }
}

/// The side a probability model takes after a new `score = 2p − 1`, given the side it held
/// (1 long, −1 short, 0 none). Hysteresis: a side opens at `|score| ≥ min_confidence` and
/// closes below half of it (or when the score changes sign), so a prediction hovering at the
/// threshold does not flicker into a stream of signals.
pub fn hysteresis_side(score: f64, min_confidence: f64, held: i8) -> i8 {
    if score.abs() >= min_confidence {
        if score > 0.0 { 1 } else { -1 }
    } else if score.abs() < min_confidence / 2.0 || score.signum() != f64::from(held) {
        0
    } else {
        held
    }
}

/// Config check shared by the models: a span key must be positive.
pub fn positive_span(is: &mut Issues, key: &str, s: Span) {
    is.check(s.as_micros() > 0, key, || format!("must be a positive duration such as 10s, got {s}"));
}

/// Config check: an integer count in `[lo, hi]`.
pub fn count_in(is: &mut Issues, key: &str, v: u32, lo: u32, hi: u32) {
    is.in_range(key, i64::from(v), i64::from(lo), i64::from(hi));
}

/// Config check: a finite float in `[lo, hi]`.
pub fn float_in(is: &mut Issues, key: &str, v: f64, lo: f64, hi: f64) {
    is.check(v.is_finite() && (lo..=hi).contains(&v), key, || {
        format!("must be between {lo} and {hi}, got {v}")
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_sampler_takes_first_event_of_each_bucket() {
        let mut g = GridSampler::new(Span::from_secs(10));
        let t = |s: i64| EventTime::from_micros(s * 1_000_000);
        // Buckets of 10 s: 3 s opens [0,10), 9 s does not, 10 s opens [10,20), 35 s opens [30,40).
        // `opens` answers what `offer` will, without recording.
        for (s, opens) in [(3, true), (9, false), (10, true), (19, false), (35, true), (31, false)] {
            assert_eq!(g.opens(t(s)), opens, "{s} s");
            assert_eq!(g.opens(t(s)), opens, "{s} s asked twice");
            assert_eq!(g.offer(t(s)), opens, "{s} s");
        }
        // Time going backwards (31 s above) never opens a bucket again.
    }

    #[test]
    fn ema_matches_hand_computation() {
        // n = 3 → α = 0.5: 10, then 10 + 0.5·(20 − 10) = 15, then 15 + 0.5·(0 − 15) = 7.5.
        let mut e = Ema::new(3);
        assert_eq!(e.update(10.0), 10.0);
        assert_eq!(e.update(20.0), 15.0);
        assert_eq!(e.update(0.0), 7.5);
    }

    #[test]
    fn hysteresis_opens_at_the_threshold_and_closes_below_half_of_it() {
        // (score, side held) → side: 0.4 opens, 0.25 keeps, 0.15 (< 0.2) closes, a sign
        // change below the threshold closes, −0.5 flips straight to short.
        let cases = [(0.4, 0, 1), (0.3, 0, 0), (0.25, 1, 1), (0.15, 1, 0), (-0.3, 1, 0), (-0.5, 1, -1)];
        for (score, held, want) in cases {
            assert_eq!(hysteresis_side(score, 0.4, held), want, "score {score}, held {held}");
        }
    }

    #[test]
    fn window_keeps_latest_values() {
        let mut w = Window::new(3);
        for x in [1.0, 2.0, 3.0, 4.0] {
            w.push(x);
        }
        // Holds 2, 3, 4: mean 3, population std sqrt(2/3).
        let (m, s) = w.mean_std().unwrap();
        assert!((m - 3.0).abs() < 1e-12);
        assert!((s - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(w.back(0), Some(4.0));
        assert_eq!(w.back(2), Some(2.0));
        assert_eq!(w.back(3), None);
    }
}
