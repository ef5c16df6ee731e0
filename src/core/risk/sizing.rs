//! Entry sizing: the stop distance (fixed, volatility or the intent's override), the
//! fixed-fractional size scaled by confidence, volatility target and correlation shrink, and
//! the caps (fractional Kelly or position fraction, order notional, exposure rooms).

use rust_decimal::Decimal;

use super::limits::Rooms;
use super::stats;
use super::{Refuse, RiskCore, StopMode, reason};
use crate::core::decisions::TradeIntent;
use crate::core::money::{Cash, from_f64, to_f64};
use crate::core::portfolio::PortfolioView;

/// Stop and take-profit distances of an entry (fractions of the entry price).
pub(super) struct Stops {
    /// Volatility per √second used (0 = unknown).
    pub(super) vol: f64,
    /// Stop distance.
    pub(super) stop: Decimal,
    /// Take-profit distance.
    pub(super) take_profit: Decimal,
    /// `fixed`, `volatility`, `fixed_fallback` or `override`.
    pub(super) source: &'static str,
}

/// The size of an entry before rounding, with the multipliers that made it.
pub(super) struct Size {
    /// equity × risk_per_trade / stop distance.
    pub(super) risk_notional: Cash,
    /// Intent confidence (clamped to [0, 1]).
    pub(super) confidence: f64,
    /// Volatility-targeting multiplier.
    pub(super) vol_scale: f64,
    /// Correlation shrink multiplier.
    pub(super) shrink: f64,
    /// Notional before the caps.
    pub(super) wanted: Cash,
    /// Notional after the caps.
    pub(super) notional: Cash,
    /// Which cap bound (`risk` = none; otherwise a reason code).
    pub(super) binding: &'static str,
}

impl RiskCore {
    /// Stop distance: the intent's volatility (else the sampled one) in volatility mode, the
    /// configured distances otherwise; the intent's overrides win. Refuses a distance outside
    /// (0, 1).
    pub(super) fn stops(&self, intent: &TradeIntent) -> Result<Stops, Refuse> {
        let cfg = &self.cfg;
        let pair = &*intent.pair;
        let vol = if intent.volatility.is_finite() && intent.volatility > 0.0 {
            intent.volatility
        } else {
            self.sampler.vol_per_sqrt_sec(pair).unwrap_or(0.0)
        };
        let sqrt_h = cfg.vol_horizon.as_secs_f64().max(0.0).sqrt();
        let (stop_d, tp_d, stop_source) = match (cfg.stop_mode, vol > 0.0) {
            (StopMode::Volatility, true) => (
                from_f64(cfg.stop_vol_k * vol * sqrt_h).round_dp(8),
                from_f64(cfg.take_profit_vol_k * vol * sqrt_h).round_dp(8),
                "volatility",
            ),
            (StopMode::Volatility, false) => (cfg.stop_loss_pct, cfg.take_profit_pct, "fixed_fallback"),
            (StopMode::Fixed, _) => (cfg.stop_loss_pct, cfg.take_profit_pct, "fixed"),
        };
        // The order API's per-trade distances win over the config.
        let o = &intent.overrides;
        let stop_source = if o.stop_loss_pct.is_some() { "override" } else { stop_source };
        let stop_d = o.stop_loss_pct.unwrap_or(stop_d);
        let tp_d = o.take_profit_pct.unwrap_or(tp_d);
        if stop_d <= Decimal::ZERO || stop_d >= Decimal::ONE {
            return Err((
                reason::INVALID_STOP,
                format!("stop distance {stop_d} ({stop_source}) is not in (0, 1)"),
            ));
        }
        Ok(Stops { vol, stop: stop_d, take_profit: tp_d, source: stop_source })
    }

    /// Size: fixed-fractional × confidence × volatility target × correlation shrink, then the
    /// smallest cap binds.
    pub(super) fn size(
        &self,
        intent: &TradeIntent,
        view: &PortfolioView,
        equity: Cash,
        stops: &Stops,
        rooms: &Rooms,
    ) -> Size {
        let cfg = &self.cfg;
        let pair = &*intent.pair;
        let (vol, stop_d) = (stops.vol, stops.stop);
        let risk_notional = equity * cfg.risk_per_trade / stop_d;
        let confidence = if intent.confidence.is_finite() { intent.confidence.clamp(0.0, 1.0) } else { 0.0 };
        let vol_scale = if cfg.target_volatility > 0.0 && vol > 0.0 {
            (cfg.target_volatility / (vol * stats::SECS_PER_DAY.sqrt())).min(cfg.vol_scale_max)
        } else {
            1.0
        };
        let pre_shrink = risk_notional * from_f64(confidence * vol_scale).round_dp(10);
        let shrink = self.correlation_shrink(view, pair, intent.side, to_f64(pre_shrink) / to_f64(equity));
        // Statistical multipliers carry no more than 10 significant decimals.
        let wanted = risk_notional * from_f64(confidence * vol_scale * shrink).round_dp(10);

        let (pos_frac, pos_code) = match self.kelly() {
            Some(k) => {
                let kelly_cap = from_f64(cfg.kelly_fraction * k).round_dp(10).max(cfg.kelly_floor_fraction);
                if kelly_cap < cfg.max_position_fraction {
                    (kelly_cap, reason::KELLY_CAP)
                } else {
                    (cfg.max_position_fraction, reason::MAX_POSITION_FRACTION)
                }
            }
            None => (cfg.max_position_fraction, reason::MAX_POSITION_FRACTION),
        };
        let mut notional = wanted;
        let mut binding = "risk";
        for (code, cap) in [
            (pos_code, pos_frac * equity),
            (reason::MAX_ORDER_NOTIONAL, cfg.max_order_notional),
            (rooms.cash_code, rooms.cash),
            (reason::MAX_EXPOSURE_PER_ASSET, rooms.asset),
            (reason::MAX_TOTAL_EXPOSURE, rooms.total),
            (reason::MAX_LEVERAGE, rooms.leverage_room),
        ] {
            if cap < notional {
                notional = cap;
                binding = code;
            }
        }
        Size { risk_notional, confidence, vol_scale, shrink, wanted, notional, binding }
    }

    /// Kelly estimate f* = W − (1 − W) / R from the closed-trade window, once it holds
    /// `kelly_min_trades` non-zero results.
    pub(super) fn kelly(&self) -> Option<f64> {
        let (mut wins, mut losses, mut sw, mut sl) = (0u32, 0u32, 0.0, 0.0);
        for p in &self.pnls {
            let x = to_f64(*p);
            if x > 0.0 {
                wins += 1;
                sw += x;
            } else if x < 0.0 {
                losses += 1;
                sl -= x;
            }
        }
        let n = wins + losses;
        if (n as usize) < self.cfg.kelly_min_trades || n == 0 {
            return None;
        }
        let w = f64::from(wins) / f64::from(n);
        if losses == 0 {
            return Some(1.0);
        }
        if wins == 0 {
            return Some(-1.0);
        }
        let payoff = (sw / f64::from(wins)) / (sl / f64::from(losses));
        Some(w - (1.0 - w) / payoff)
    }
}
