//! `risk.*` settings ([`RiskConfig`]): drawdown halt, per-trade risk, stop distances, sizing
//! caps and correlation sampling, with their defaults and start-up validation.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};

use crate::core::orders::EntryStyle;
use crate::core::time::Span;
use crate::core::validate::Issues;

/// How the stop-loss distance is chosen.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// `stop_loss_pct` / `take_profit_pct` of the entry price.
    #[default]
    Fixed,
    /// `stop_vol_k × σ × √vol_horizon` (ATR-style); falls back to `Fixed` while σ is unknown.
    Volatility,
}

/// `risk.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Max drawdown of equity from its peak before the emergency stop (fraction, 0.1 = 10 %).
    pub max_drawdown: rust_decimal::Decimal,
    /// Event time after a breach at which the halt lifts by itself (`1h`); `none` = only the
    /// operator lifts it. Default 1h.
    #[serde(with = "cooldown_serde")]
    pub halt_cooldown: Option<Span>,
    /// Fraction of equity risked per trade (loss at the stop). Default 0.01.
    pub risk_per_trade: rust_decimal::Decimal,
    /// `fixed` or `volatility` stop distances. Default fixed.
    pub stop_mode: StopMode,
    /// Stop-loss distance (fraction of price). Default 0.01.
    pub stop_loss_pct: rust_decimal::Decimal,
    /// Take-profit distance (fraction of price); 0 = none. Default 0.02.
    pub take_profit_pct: rust_decimal::Decimal,
    /// Volatility mode: stop distance = k × σ × √horizon. Default 2.
    pub stop_vol_k: f64,
    /// Volatility mode: take-profit distance = k × σ × √horizon; 0 = none. Default 4.
    pub take_profit_vol_k: f64,
    /// Volatility mode: the horizon of the stop. Default 1h.
    pub vol_horizon: Span,
    /// Trailing stop as a fraction of price (added to the protection); 0 = none. Default 0.
    pub trailing_stop_pct: rust_decimal::Decimal,
    /// Target volatility per day (fraction); size × min(vol_scale_max, target / realised).
    /// 0 = no volatility targeting. Default 0.03.
    pub target_volatility: f64,
    /// Cap of the volatility-targeting multiplier. Default 2.
    pub vol_scale_max: f64,
    /// Max position notional as a fraction of equity. Default 0.25.
    pub max_position_fraction: rust_decimal::Decimal,
    /// Multiplier of the Kelly estimate (0.5 = half Kelly). Default 0.5.
    pub kelly_fraction: f64,
    /// Closed trades (with non-zero P&L) needed before the Kelly cap applies. Default 20.
    pub kelly_min_trades: usize,
    /// Closed trades remembered for the Kelly estimate. Default 200.
    pub kelly_window: usize,
    /// Least position fraction the Kelly cap allows (keeps probing when the edge looks
    /// negative). Default 0.02.
    pub kelly_floor_fraction: rust_decimal::Decimal,
    /// Max notional of one order in the account currency. Default 5000.
    pub max_order_notional: rust_decimal::Decimal,
    /// Cash kept back for fees when sizing buys (fraction of the order). Default 0.005.
    pub fee_reserve: rust_decimal::Decimal,
    /// Max number of pairs with a position (or an approved, unfilled entry). Default 3.
    pub max_open_positions: usize,
    /// Max exposure to one base asset as a fraction of equity. Default 0.5.
    pub max_exposure_per_asset: rust_decimal::Decimal,
    /// Max total exposure as a fraction of equity. Default 0.9.
    pub max_total_exposure: rust_decimal::Decimal,
    /// Max total notional / equity. Default 1.
    pub max_leverage: rust_decimal::Decimal,
    /// Max loss since the day start as a fraction of the day-start equity. Default 0.05.
    pub daily_loss_limit: rust_decimal::Decimal,
    /// UTC hour (event time) at which the trading day starts. Default 0.
    pub daily_reset_hour_utc: u32,
    /// Least event time between two orders on the same pair. Default 60s.
    pub min_trade_interval: Span,
    /// Max open orders on a pair for a new entry to be allowed. Default 0.
    pub max_open_orders_per_pair: usize,
    /// Event-time grid of the mid/equity samples (correlation, volatility, VaR). Default 60s.
    pub correlation_sample_interval: Span,
    /// Returns kept for correlation and volatility. Default 120.
    pub correlation_window: usize,
    /// Returns needed before a measured correlation/volatility is used. Default 30.
    pub correlation_min_samples: usize,
    /// Correlation assumed between two pairs until it is measured. Default 0.5.
    pub correlation_prior: f64,
    /// Equity returns kept for VaR. Default 1440 (one day at 60 s).
    pub var_window: usize,
    /// Order type of signal exits (`{type: market}` or a limit style). Default market.
    pub exit_style: EntryStyle,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            max_drawdown: dec!(0.1),
            halt_cooldown: Some(Span::from_secs(3600)),
            risk_per_trade: dec!(0.01),
            stop_mode: StopMode::Fixed,
            stop_loss_pct: dec!(0.01),
            take_profit_pct: dec!(0.02),
            stop_vol_k: 2.0,
            take_profit_vol_k: 4.0,
            vol_horizon: Span::from_secs(3600),
            trailing_stop_pct: Decimal::ZERO,
            target_volatility: 0.03,
            vol_scale_max: 2.0,
            max_position_fraction: dec!(0.25),
            kelly_fraction: 0.5,
            kelly_min_trades: 20,
            kelly_window: 200,
            kelly_floor_fraction: dec!(0.02),
            max_order_notional: dec!(5000),
            fee_reserve: dec!(0.005),
            max_open_positions: 3,
            max_exposure_per_asset: dec!(0.5),
            max_total_exposure: dec!(0.9),
            max_leverage: Decimal::ONE,
            daily_loss_limit: dec!(0.05),
            daily_reset_hour_utc: 0,
            min_trade_interval: Span::from_secs(60),
            max_open_orders_per_pair: 0,
            correlation_sample_interval: Span::from_secs(60),
            correlation_window: 120,
            correlation_min_samples: 30,
            correlation_prior: 0.5,
            var_window: 1440,
            exit_style: EntryStyle::Market,
        }
    }
}

impl RiskConfig {
    /// Adds a problem for every out-of-range key (`risk.…`).
    pub fn validate(&self, is: &mut Issues) {
        is.fraction("risk.max_drawdown", self.max_drawdown, false);
        if let Some(c) = self.halt_cooldown {
            is.check(c.as_micros() > 0, "risk.halt_cooldown", || {
                format!("must be a positive duration (e.g. 1h) or none, got {c}")
            });
        }
        is.fraction("risk.risk_per_trade", self.risk_per_trade, false);
        is.check(
            self.stop_loss_pct > Decimal::ZERO && self.stop_loss_pct < Decimal::ONE,
            "risk.stop_loss_pct",
            || format!("must be a fraction in (0, 1) (0.01 = 1 %), got {}", self.stop_loss_pct),
        );
        is.non_negative("risk.take_profit_pct", self.take_profit_pct);
        is.positive_f64("risk.stop_vol_k", self.stop_vol_k);
        is.check(
            self.take_profit_vol_k.is_finite() && self.take_profit_vol_k >= 0.0,
            "risk.take_profit_vol_k",
            || format!("must not be negative, got {}", self.take_profit_vol_k),
        );
        is.check(self.vol_horizon.as_micros() > 0, "risk.vol_horizon", || {
            format!("must be a positive duration, got {}", self.vol_horizon)
        });
        is.check(
            self.trailing_stop_pct >= Decimal::ZERO && self.trailing_stop_pct < Decimal::ONE,
            "risk.trailing_stop_pct",
            || format!("must be a fraction in [0, 1), got {}", self.trailing_stop_pct),
        );
        is.check(
            self.target_volatility.is_finite() && self.target_volatility >= 0.0,
            "risk.target_volatility",
            || {
                format!(
                    "must be a daily volatility ≥ 0 (0.03 = 3 %/day; 0 = off), got {}",
                    self.target_volatility
                )
            },
        );
        is.check(self.vol_scale_max.is_finite() && self.vol_scale_max >= 1.0, "risk.vol_scale_max", || {
            format!("must be at least 1, got {}", self.vol_scale_max)
        });
        is.fraction("risk.max_position_fraction", self.max_position_fraction, false);
        is.fraction_f64("risk.kelly_fraction", self.kelly_fraction, false);
        is.in_range("risk.kelly_min_trades", self.kelly_min_trades as i64, 1, 1_000_000);
        is.check(self.kelly_window >= self.kelly_min_trades, "risk.kelly_window", || {
            format!(
                "must be at least risk.kelly_min_trades ({}), got {}",
                self.kelly_min_trades, self.kelly_window
            )
        });
        is.fraction("risk.kelly_floor_fraction", self.kelly_floor_fraction, true);
        is.positive("risk.max_order_notional", self.max_order_notional);
        is.check(
            self.fee_reserve >= Decimal::ZERO && self.fee_reserve <= dec!(0.1),
            "risk.fee_reserve",
            || format!("must be a fraction in [0, 0.1], got {}", self.fee_reserve),
        );
        is.in_range("risk.max_open_positions", self.max_open_positions as i64, 1, 10_000);
        is.positive("risk.max_leverage", self.max_leverage);
        for (key, v) in [
            ("risk.max_exposure_per_asset", self.max_exposure_per_asset),
            ("risk.max_total_exposure", self.max_total_exposure),
        ] {
            is.check(v > Decimal::ZERO && v <= self.max_leverage.max(Decimal::ONE), key, || {
                format!("must be a fraction of equity in (0, max(1, risk.max_leverage)], got {v}")
            });
        }
        is.fraction("risk.daily_loss_limit", self.daily_loss_limit, false);
        is.in_range("risk.daily_reset_hour_utc", i64::from(self.daily_reset_hour_utc), 0, 23);
        is.check(self.min_trade_interval.as_micros() >= 0, "risk.min_trade_interval", || {
            format!("must not be negative, got {}", self.min_trade_interval)
        });
        is.check(
            self.correlation_sample_interval.as_micros() > 0,
            "risk.correlation_sample_interval",
            || format!("must be a positive duration, got {}", self.correlation_sample_interval),
        );
        is.in_range("risk.correlation_window", self.correlation_window as i64, 3, 100_000);
        is.check(
            self.correlation_min_samples >= 3 && self.correlation_min_samples <= self.correlation_window,
            "risk.correlation_min_samples",
            || {
                format!(
                    "must be between 3 and risk.correlation_window ({}), got {}",
                    self.correlation_window, self.correlation_min_samples
                )
            },
        );
        is.check(
            self.correlation_prior.is_finite() && (0.0..=1.0).contains(&self.correlation_prior),
            "risk.correlation_prior",
            || format!("must be in [0, 1], got {}", self.correlation_prior),
        );
        is.in_range("risk.var_window", self.var_window as i64, 20, 1_000_000);
    }
}

/// `halt_cooldown`: a duration such as `1h`, or `none` / null for "operator only".
mod cooldown_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::core::time::Span;

    pub(super) fn serialize<S: Serializer>(v: &Option<Span>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(span) => s.serialize_str(&span.to_string()),
            None => s.serialize_str("none"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s.as_deref().map(str::trim) {
            None | Some("none") => Ok(None),
            Some(t) => Span::parse(t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}
