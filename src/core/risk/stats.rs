//! Statistics the risk core needs (f64 only; never money): mid prices and equity sampled on
//! a fixed event-time grid, log returns per pair, rolling volatility and correlation, and
//! historical value-at-risk of the sampled equity returns. See docs/risk.md.

use std::collections::{BTreeMap, VecDeque};

use crate::core::instrument::Symbol;
use crate::core::money::to_f64;
use crate::core::portfolio::PortfolioView;
use crate::core::time::{EventTime, MICROS_PER_SEC};

/// Seconds in a day (VaR and target volatility are stated per day).
pub(super) const SECS_PER_DAY: f64 = 86_400.0;

/// Mids and equity sampled on the grid `k × interval` of event time.
#[derive(Clone, Debug)]
pub(super) struct Sampler {
    interval_us: i64,
    window: usize,
    min_samples: usize,
    var_window: usize,
    /// Earliest event time at which the next sample is taken (a grid point).
    next_at: Option<EventTime>,
    /// ln(mid) per pair at the previous sample.
    last_log_mid: BTreeMap<Symbol, f64>,
    /// One entry per sample step: the log return of every pair quoted at both samples.
    returns: VecDeque<BTreeMap<Symbol, f64>>,
    last_equity: Option<f64>,
    /// Simple returns of equity between consecutive samples.
    equity_returns: VecDeque<f64>,
}

impl Sampler {
    pub(super) fn new(interval_us: i64, window: usize, min_samples: usize, var_window: usize) -> Sampler {
        Sampler {
            interval_us: interval_us.max(1),
            window: window.max(2),
            min_samples: min_samples.max(2),
            var_window: var_window.max(2),
            next_at: None,
            last_log_mid: BTreeMap::new(),
            returns: VecDeque::new(),
            last_equity: None,
            equity_returns: VecDeque::new(),
        }
    }

    /// Grid interval in seconds.
    pub(super) fn interval_secs(&self) -> f64 {
        self.interval_us as f64 / MICROS_PER_SEC as f64
    }

    /// Takes a sample when `view.time` reached the next grid point. A gap of several
    /// intervals yields one sample (nothing is invented for the missing grid points), so
    /// that return spans the gap.
    pub(super) fn observe(&mut self, view: &PortfolioView) {
        let t = view.time;
        if let Some(next) = self.next_at
            && t < next
        {
            return;
        }
        let grid = t.as_micros().div_euclid(self.interval_us) * self.interval_us;
        self.next_at = Some(EventTime::from_micros(grid.saturating_add(self.interval_us)));

        let mut now = BTreeMap::new();
        for q in &view.quotes {
            if q.bid <= rust_decimal::Decimal::ZERO || q.ask <= q.bid {
                continue; // no sensible mid: skip the pair for this sample
            }
            let mid = to_f64((q.bid + q.ask) / rust_decimal::Decimal::TWO);
            if mid > 0.0 && mid.is_finite() {
                now.insert(q.instrument.symbol.clone(), libm::log(mid));
            }
        }
        let mut step = BTreeMap::new();
        for (pair, lm) in &now {
            if let Some(prev) = self.last_log_mid.get(pair) {
                step.insert(pair.clone(), lm - prev);
            }
        }
        if !self.last_log_mid.is_empty() {
            self.returns.push_back(step);
            while self.returns.len() > self.window {
                self.returns.pop_front();
            }
        }
        self.last_log_mid = now;

        let eq = to_f64(view.equity);
        if let Some(prev) = self.last_equity
            && prev > 0.0
        {
            self.equity_returns.push_back(eq / prev - 1.0);
            while self.equity_returns.len() > self.var_window {
                self.equity_returns.pop_front();
            }
        }
        self.last_equity = Some(eq);
    }

    /// Returns of `pair` in the window.
    fn series(&self, pair: &str) -> Vec<f64> {
        self.returns.iter().filter_map(|m| m.get(pair).copied()).collect()
    }

    /// Volatility of `pair` per √second (sample std of log returns / √interval), if there
    /// are at least `min_samples` returns.
    pub(super) fn vol_per_sqrt_sec(&self, pair: &str) -> Option<f64> {
        let r = self.series(pair);
        if r.len() < self.min_samples {
            return None;
        }
        let n = r.len() as f64;
        let mean = r.iter().sum::<f64>() / n;
        let var = r.iter().map(|x| libm::pow(x - mean, 2.0)).sum::<f64>() / (n - 1.0);
        let v = var.sqrt() / self.interval_secs().sqrt();
        v.is_finite().then_some(v)
    }

    /// Pearson correlation of the log returns of `a` and `b` over the sample steps where both
    /// were quoted; `None` below `min_samples` common steps or when either is flat.
    pub(super) fn correlation(&self, a: &str, b: &str) -> Option<f64> {
        let pairs: Vec<(f64, f64)> =
            self.returns.iter().filter_map(|m| Some((*m.get(a)?, *m.get(b)?))).collect();
        if pairs.len() < self.min_samples {
            return None;
        }
        let n = pairs.len() as f64;
        let (ma, mb) = pairs.iter().fold((0.0, 0.0), |(x, y), (p, q)| (x + p, y + q));
        let (ma, mb) = (ma / n, mb / n);
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (p, q) in &pairs {
            sab += (p - ma) * (q - mb);
            saa += libm::pow(p - ma, 2.0);
            sbb += libm::pow(q - mb, 2.0);
        }
        if saa <= 0.0 || sbb <= 0.0 {
            return None;
        }
        let rho = sab / (saa * sbb).sqrt();
        rho.is_finite().then(|| rho.clamp(-1.0, 1.0))
    }

    /// Pairs seen in the return window (sorted).
    pub(super) fn pairs(&self) -> Vec<Symbol> {
        let mut seen: BTreeMap<Symbol, ()> = BTreeMap::new();
        for m in &self.returns {
            for k in m.keys() {
                seen.insert(k.clone(), ());
            }
        }
        seen.into_keys().collect()
    }

    /// Historical VaR at 95 % of the sampled equity returns, as a positive fraction of
    /// equity, per sample interval and scaled to one day by √(86400 / interval); `None`
    /// with fewer than 20 returns. Returns (var_interval, var_1d, samples).
    pub(super) fn var95(&self) -> Option<(f64, f64, usize)> {
        let n = self.equity_returns.len();
        if n < 20 {
            return None;
        }
        let mut r: Vec<f64> = self.equity_returns.iter().copied().collect();
        r.sort_by(f64::total_cmp);
        // The ⌈0.05·n⌉-th worst return (1-based): 5 % of the samples are at or below it.
        let k = ((0.05 * n as f64).ceil() as usize).clamp(1, n);
        let var = (-r[k - 1]).max(0.0);
        let scale = (SECS_PER_DAY / self.interval_secs()).sqrt();
        Some((var, var * scale, n))
    }
}
