//! The feature vector of the ML signals, shared by `online_ml` (which learns on it), `onnx`
//! (which feeds it to a model trained elsewhere) and `examples/export_features.rs` (which
//! writes it, with labels, for training). One implementation, so a model trained on exported
//! features sees exactly the numbers it will get at run time.
//!
//! Per pair, on an event-time grid (`sample_interval`, see [`GridSampler`]), in this order:
//!
//! | # | feature | definition (before standardisation) |
//! |---|---|---|
//! | 0 … k−1 | `ret_L` for each L in `lags` | `ln(p_t / p_{t−L})`, L in samples, p = mid |
//! | k | `vol` | RMS of the last `vol_samples` one-sample log returns |
//! | k+1 | `spread` | `(ask − bid) / mid` of the latest book |
//! | k+2 | `imbalance` | `(bid_depth − ask_depth) / (bid_depth + ask_depth)`, 10 best levels, latest book |
//! | k+3 | `flow` | `Σ side·qty / Σ qty` of the trades since the previous sample (0 without trades) |
//!
//! Each feature is then standardised with its running (Welford) mean and sample variance,
//! which include the current sample and nothing later, and clipped to ±[`CLIP`]; a feature
//! with fewer than two values or no spread is 0. The first vector of a pair comes once
//! `max(lags) + 1` samples have been seen.
//!
//! [`HorizonLabels`] turns samples into training labels the way `online_ml` learns: the
//! sample taken at t is labelled by the first later sample at t' ≥ t + horizon,
//! `y = 1[p_{t'} > p_t]` (ties dropped). A label is only ever known at t', never earlier.

use std::collections::{BTreeMap, VecDeque};

use super::super::instrument::Symbol;
use super::super::market::{MarketEvent, Side};
use super::super::money::to_f64;
use super::super::time::{EventTime, Span};
use super::super::validate::Issues;
use super::common::{GridSampler, Window, count_in, depth_imbalance, mid_of, positive_span, relative_spread};

/// Standardised features are clipped to this many standard deviations.
pub const CLIP: f64 = 5.0;

/// The keys that define the feature vector (`sample_interval`, `lags`, `vol_samples` of the
/// `online_ml` and `onnx` sections).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSpec {
    /// Event-time grid.
    pub sample_interval: Span,
    /// Return lags in samples.
    pub lags: Vec<u32>,
    /// Samples in the realised-volatility window.
    pub vol_samples: u32,
}

impl FeatureSpec {
    /// Adds a problem for every out-of-range key, named `{section}.sample_interval` etc.
    pub fn validate(&self, is: &mut Issues, section: &str) {
        positive_span(is, &format!("{section}.sample_interval"), self.sample_interval);
        is.check(!self.lags.is_empty() && self.lags.len() <= 16, &format!("{section}.lags"), || {
            format!("list 1 to 16 lags in samples, e.g. [1, 6, 30], got {} lags", self.lags.len())
        });
        for (i, l) in self.lags.iter().enumerate() {
            count_in(is, &format!("{section}.lags[{i}]"), *l, 1, 10_000);
        }
        count_in(is, &format!("{section}.vol_samples"), self.vol_samples, 2, 100_000);
    }

    /// Number of features: one per lag plus vol, spread, imbalance, flow.
    pub fn n_features(&self) -> usize {
        self.lags.len() + 4
    }

    /// Feature names in vector order (`ret_1`, `ret_6`, `ret_30`, `vol`, `spread`,
    /// `imbalance`, `flow` with the default lags).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lags.iter().map(|l| format!("ret_{l}")).collect();
        names.extend(["vol", "spread", "imbalance", "flow"].map(String::from));
        names
    }
}

/// One grid sample of one pair.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The pair.
    pub pair: Symbol,
    /// Event time of the event that opened the grid bucket.
    pub time: EventTime,
    /// Its mid.
    pub mid: f64,
    /// The standardised feature vector, once the pair has `max(lags) + 1` samples.
    pub x: Option<Vec<f64>>,
}

/// Running mean and variance (Welford).
#[derive(Clone, Debug, Default)]
struct Welford {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn update(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }
    fn standardise(&self, x: f64) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        let sd = (self.m2 / (self.n - 1.0)).sqrt();
        if sd > 1e-12 { ((x - self.mean) / sd).clamp(-CLIP, CLIP) } else { 0.0 }
    }
}

#[derive(Clone, Debug)]
struct PairFeatures {
    sampler: GridSampler,
    prices: Window,
    rets: Window,
    spread: f64,
    imbalance: f64,
    flow_signed: f64,
    flow_total: f64,
    scalers: Vec<Welford>,
}

/// Computes the feature vector for every pair from the events seen so far.
#[derive(Clone, Debug)]
pub struct Features {
    spec: FeatureSpec,
    max_lag: usize,
    pairs: BTreeMap<Symbol, PairFeatures>,
}

impl Features {
    /// Feature state for `spec` (validated beforehand).
    pub fn new(spec: FeatureSpec) -> Self {
        let max_lag = spec.lags.iter().copied().max().unwrap_or(1) as usize;
        Features { spec, max_lag, pairs: BTreeMap::new() }
    }

    /// The spec the features follow.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Takes in one event; returns the pair's sample when the event opens a grid bucket.
    /// Book and trade state is updated first, so the sample includes this event.
    pub fn on_event(&mut self, ev: &MarketEvent) -> Option<Sample> {
        let sym = ev.symbol()?;
        let spec = &self.spec;
        let cap = self.max_lag + 1;
        let st = self.pairs.entry(sym.clone()).or_insert_with(|| PairFeatures {
            sampler: GridSampler::new(spec.sample_interval),
            prices: Window::new(cap),
            rets: Window::new(spec.vol_samples as usize),
            spread: 0.0,
            imbalance: 0.0,
            flow_signed: 0.0,
            flow_total: 0.0,
            scalers: vec![Welford::default(); spec.n_features()],
        });
        if let MarketEvent::Trade(tr) = ev {
            let q = to_f64(tr.qty).max(0.0);
            st.flow_signed += if tr.side == Side::Buy { q } else { -q };
            st.flow_total += q;
        }
        if let Some(s) = relative_spread(ev) {
            st.spread = s;
        }
        if let Some(i) = depth_imbalance(ev) {
            st.imbalance = i;
        }
        let (_, time, mid) = mid_of(ev)?;
        if !st.sampler.offer(time) {
            return None;
        }
        if let Some(prev) = st.prices.back(0) {
            st.rets.push(libm::log(mid / prev));
        }
        st.prices.push(mid);
        let flow = if st.flow_total > 0.0 { st.flow_signed / st.flow_total } else { 0.0 };
        st.flow_signed = 0.0;
        st.flow_total = 0.0;
        let x = st.prices.is_full().then(|| {
            let mut raw = Vec::with_capacity(spec.n_features());
            for &l in &spec.lags {
                let past = st.prices.back(l as usize).unwrap_or(mid);
                raw.push(libm::log(mid / past));
            }
            raw.extend([st.rets.rms().unwrap_or(0.0), st.spread, st.imbalance, flow]);
            raw.iter()
                .zip(st.scalers.iter_mut())
                .map(|(v, sc)| {
                    sc.update(*v);
                    sc.standardise(*v)
                })
                .collect()
        });
        Some(Sample { pair: sym.clone(), time, mid, x })
    }
}

/// A sample waiting for its label; `x` is what the caller keeps with it (the feature vector,
/// or the vector and its row number).
#[derive(Clone, Debug, PartialEq)]
pub struct Pending<T = Vec<f64>> {
    /// When it was taken.
    pub time: EventTime,
    /// Mid at that time.
    pub mid: f64,
    /// The caller's payload.
    pub x: T,
}

/// Labels samples of one pair with the sign of their next-`horizon` return, without
/// looking ahead: a sample's label is produced when the sample that decides it arrives.
#[derive(Clone, Debug)]
pub struct HorizonLabels<T = Vec<f64>> {
    horizon_us: i64,
    pending: VecDeque<Pending<T>>,
}

impl<T> HorizonLabels<T> {
    /// Labels over `horizon`.
    pub fn new(horizon: Span) -> Self {
        HorizonLabels { horizon_us: horizon.as_micros(), pending: VecDeque::new() }
    }

    /// A new sample at `time` with `mid`: every queued sample with `time ≥ its time + horizon`
    /// is labelled with this mid and handed to `labelled(sample, y)` (y = 1.0 up, 0.0 down;
    /// unchanged mids are dropped unlabelled), oldest first.
    pub fn resolve(&mut self, time: EventTime, mid: f64, mut labelled: impl FnMut(Pending<T>, f64)) {
        while self.pending.front().is_some_and(|p| time.micros_since(p.time) >= self.horizon_us) {
            let Some(p) = self.pending.pop_front() else { break };
            if mid != p.mid {
                let y = if mid > p.mid { 1.0 } else { 0.0 };
                labelled(p, y);
            }
        }
    }

    /// Queues a sample for labelling.
    pub fn push(&mut self, p: Pending<T>) {
        self.pending.push_back(p);
    }

    /// Event times of the queued samples.
    pub fn pending_times(&self) -> Vec<EventTime> {
        self.pending.iter().map(|p| p.time).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    fn spec() -> FeatureSpec {
        FeatureSpec { sample_interval: Span::from_secs(10), lags: vec![1, 3], vol_samples: 4 }
    }

    #[test]
    fn names_follow_vector_order() {
        assert_eq!(spec().names(), ["ret_1", "ret_3", "vol", "spread", "imbalance", "flow"]);
        assert_eq!(spec().n_features(), 6);
    }

    #[test]
    fn first_vector_comes_after_max_lag_plus_one_samples() {
        let events = testdata::trend_then_revert("BTC/USD", 3).events;
        let mut f = Features::new(spec());
        let samples: Vec<Sample> = events.iter().filter_map(|e| f.on_event(e)).take(6).collect();
        // lags [1, 3] → 4 prices needed: samples 0–2 have no vector, sample 3 on do.
        let has: Vec<bool> = samples.iter().map(|s| s.x.is_some()).collect();
        assert_eq!(has, [false, false, false, true, true, true]);
        // One sample per 10 s bucket, at the first mid of the bucket.
        assert_eq!(samples[1].time.micros_since(samples[0].time), 10_000_000);
        for s in &samples[3..] {
            let x = s.x.as_ref().unwrap();
            assert_eq!(x.len(), 6);
            assert!(x.iter().all(|v| v.abs() <= CLIP));
        }
    }

    #[test]
    fn welford_standardises_with_moments_that_include_the_current_value() {
        // Sample values of one feature after standardisation: the first vector is 0 (one
        // value), later ones are (x − mean)/sd over the values so far, current one included.
        let mut w = Welford::default();
        w.update(1.0);
        assert_eq!(w.standardise(1.0), 0.0);
        w.update(3.0);
        // mean 2, sample sd √2 → (3 − 2)/√2.
        assert!((w.standardise(3.0) - 1.0 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(w.standardise(1e9), CLIP);
    }

    #[test]
    fn labels_only_once_the_horizon_has_passed() {
        let t = |s: i64| testdata::at(s);
        let mut l = HorizonLabels::<()>::new(Span::from_secs(60));
        let mut got = Vec::new();
        for (s, mid) in [(0, 100.0), (30, 101.0), (59, 99.0), (60, 101.0), (90, 101.0), (200, 100.5)] {
            l.resolve(t(s), mid, |p, y| got.push((p.time, s, y)));
            l.push(Pending { time: t(s), mid, x: () });
        }
        // 0 s labelled at 60 s (101 > 100 → 1); 30 s reaches its horizon at 90 s (101 = 101:
        // dropped); 59 s is not due at 90 s (31 s later) and waits for 200 s with 60 s and
        // 90 s (100.5 > 99 → 1, 100.5 < 101 → 0 twice).
        assert_eq!(got, [(t(0), 60, 1.0), (t(59), 200, 1.0), (t(60), 200, 0.0), (t(90), 200, 0.0)]);
        assert_eq!(l.pending_times(), [t(200)]);
    }
}
