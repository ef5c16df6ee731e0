//! Correlation and exposure: the correlation shrink of an entry's size, the signed notional
//! held per pair (positions plus approved entries not yet visible), exposure by asset, and
//! the correlation-weighted exposure of the report (docs/risk.md).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::RiskCore;
use crate::core::instrument::Symbol;
use crate::core::market::Side;
use crate::core::money::{Cash, to_f64};
use crate::core::portfolio::PortfolioView;

impl RiskCore {
    /// Correlation of two pairs: measured when enough common samples, else the prior.
    pub(super) fn rho(&self, a: &str, b: &str) -> f64 {
        self.sampler.correlation(a, b).unwrap_or(self.cfg.correlation_prior)
    }

    /// shrink = 1 / (1 + Σ_j max(0, ρ_ij·s_i·s_j) · min(1, |w_j| / |w_i|)) over held
    /// positions j ≠ i (docs/risk.md).
    pub(super) fn correlation_shrink(&self, view: &PortfolioView, pair: &str, side: Side, w_i: f64) -> f64 {
        if !(w_i.is_finite() && w_i > 0.0) {
            return 1.0;
        }
        let eq = to_f64(view.equity);
        if eq <= 0.0 {
            return 1.0;
        }
        let s_i = f64::from(side.sign());
        let mut c = 0.0;
        for (other, signed_notional) in self.held(view) {
            if &*other == pair || signed_notional.is_zero() {
                continue;
            }
            let w_j = to_f64(signed_notional) / eq;
            let overlap = (self.rho(pair, &other) * s_i * w_j.signum()).max(0.0);
            c += overlap * (w_j.abs() / w_i).min(1.0);
        }
        1.0 / (1.0 + c)
    }

    /// Signed notional per held pair: positions, plus approved entries not yet visible.
    fn held(&self, view: &PortfolioView) -> BTreeMap<Symbol, Cash> {
        let mut m: BTreeMap<Symbol, Cash> = BTreeMap::new();
        for p in view.positions.iter().filter(|p| !p.qty.is_zero()) {
            let signed = if p.qty > Decimal::ZERO { p.notional.abs() } else { -p.notional.abs() };
            *m.entry(p.pair.clone()).or_insert(Decimal::ZERO) += signed;
        }
        for (pair, pend) in &self.pending {
            let e = m.entry(pair.clone()).or_insert(Decimal::ZERO);
            if e.abs() < pend.notional {
                *e = if pend.short { -pend.notional } else { pend.notional };
            }
        }
        m
    }

    pub(super) fn exposures(&self, view: &PortfolioView) -> Exposures {
        let mut ex = Exposures::default();
        for (pair, n) in self.held(view) {
            let asset = match view.quote(&pair) {
                Some(q) => q.instrument.base.to_string(),
                None => pair.split('/').next().unwrap_or(&pair).to_string(),
            };
            *ex.by_asset.entry(asset).or_insert(Decimal::ZERO) += n.abs();
            ex.total += n.abs();
            ex.by_pair.insert(pair, n);
        }
        ex
    }

    /// (√(wᵀ ρ w), effective number of bets (Σ|w|)² / wᵀ ρ w) over held positions.
    pub(super) fn correlation_exposure(&self, exp: &Exposures, eq: f64) -> (f64, f64) {
        if eq <= 0.0 || exp.by_pair.is_empty() {
            return (0.0, 0.0);
        }
        let w: Vec<(&Symbol, f64)> = exp.by_pair.iter().map(|(p, n)| (p, to_f64(*n) / eq)).collect();
        let mut q = 0.0;
        for (a, wa) in &w {
            for (b, wb) in &w {
                let r = if a == b { 1.0 } else { self.rho(a, b) };
                q += wa * wb * r;
            }
        }
        let sum: f64 = w.iter().map(|(_, x)| x.abs()).sum();
        if q <= 0.0 {
            return (0.0, 0.0);
        }
        (q.sqrt(), sum * sum / q)
    }
}

/// Exposure of held positions (account currency).
#[derive(Default)]
pub(super) struct Exposures {
    pub(super) by_pair: BTreeMap<Symbol, Cash>,
    pub(super) by_asset: BTreeMap<String, Cash>,
    pub(super) total: Cash,
}
