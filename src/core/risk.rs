//! Risk (pure): sizing, pre-trade limits, correlation, drawdown halt. OWNER: risk helper.
//!
//! The RiskManager actor owns one [`RiskCore`]. It feeds every [`PortfolioView`] to
//! [`RiskCore::on_portfolio`] (equity drawdown is checked there, unrealised P&L included, on
//! every call), every closed trade to [`RiskCore::on_trade_closed`] (Kelly statistics), and
//! asks [`RiskCore::evaluate`] about every [`TradeIntent`]. The answer is an approved opening
//! order (the only place a [`RiskApproval`] is made), a reduce-only exit of the position the
//! intent opposes, or a refusal with a reason code. Only event time is read; money is
//! `Decimal`, statistics `f64`. Every formula is in docs/risk.md.

use std::collections::{BTreeMap, VecDeque};

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};

use super::decisions::TradeIntent;
use super::execution::ClosedTrade;
use super::instrument::{Instrument, PairStatus, Symbol};
use super::market::Side;
use super::money::{Cash, Price, Qty, ceil_to_step, floor_to_step, from_f64, to_f64};
use super::orders::{
    EntryStyle, OrderOrigin, OrderRequest, OrderSpec, Protection, RiskApproval, Sealed, TrailingOffset,
};
use super::portfolio::{PortfolioView, Quote};
use super::time::{EventTime, Span};
use super::validate::Issues;

#[path = "risk/stats.rs"]
mod stats;

#[cfg(test)]
#[path = "risk/tests.rs"]
mod tests;

/// Refusal reason codes (the `reason` of a [`Refusal`], keys of `refused_by_reason`).
pub mod reason {
    /// The drawdown halt is active.
    pub const HALTED: &str = "halted";
    /// No portfolio view has arrived yet.
    pub const NO_PORTFOLIO: &str = "no_portfolio";
    /// No quote for the pair, the book is untrusted/stale, crossed, or the pair's status
    /// does not allow the order.
    pub const PAIR_NOT_TRADABLE: &str = "pair_not_tradable";
    /// A sell intent without a position while shorts are off (`execution.margin.enabled`
    /// false) or on a pair that is not marginable.
    pub const NO_POSITION: &str = "no_position";
    /// A position on the pair already exists in the intent's direction.
    pub const ALREADY_IN_POSITION: &str = "already_in_position";
    /// Orders are open on the pair (or an approved entry is not yet visible).
    pub const OPEN_ORDERS_ON_PAIR: &str = "open_orders_on_pair";
    /// `risk.max_open_positions` reached.
    pub const MAX_OPEN_POSITIONS: &str = "max_open_positions";
    /// `risk.min_trade_interval` since the last order on the pair has not elapsed.
    pub const MIN_TRADE_INTERVAL: &str = "min_trade_interval";
    /// `risk.daily_loss_limit` reached for the current day.
    pub const DAILY_LOSS_LIMIT: &str = "daily_loss_limit";
    /// Equity is zero or negative.
    pub const NO_EQUITY: &str = "no_equity";
    /// `risk.max_exposure_per_asset` leaves no room.
    pub const MAX_EXPOSURE_PER_ASSET: &str = "max_exposure_per_asset";
    /// `risk.max_total_exposure` leaves no room.
    pub const MAX_TOTAL_EXPOSURE: &str = "max_total_exposure";
    /// `risk.max_leverage` leaves no room.
    pub const MAX_LEVERAGE: &str = "max_leverage";
    /// `risk.max_order_notional` made the order too small to trade.
    pub const MAX_ORDER_NOTIONAL: &str = "max_order_notional";
    /// `risk.max_position_fraction` made the order too small to trade.
    pub const MAX_POSITION_FRACTION: &str = "max_position_fraction";
    /// The fractional-Kelly cap made the order too small to trade.
    pub const KELLY_CAP: &str = "kelly_cap";
    /// Not enough free cash.
    pub const INSUFFICIENT_CASH: &str = "insufficient_cash";
    /// Not enough free margin for a short (free margin × leverage).
    pub const INSUFFICIENT_MARGIN: &str = "insufficient_margin";
    /// The stop distance is not in (0, 1).
    pub const INVALID_STOP: &str = "invalid_stop";
    /// Below the pair's `qty_min` / `cost_min` after rounding.
    pub const BELOW_MINIMUM: &str = "below_minimum";
}

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

/// A refused intent (journaled as `type: risk_refusal`, logged with `reason`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Intent id.
    pub intent_id: u64,
    /// Pair.
    pub pair: super::instrument::Symbol,
    /// Reason code, one of [`reason`] (`halted`, `max_open_positions`, `below_minimum`, …).
    pub reason: String,
    /// Human detail with the numbers.
    pub detail: String,
    /// Event time.
    pub time: EventTime,
}

/// A drawdown breach (journaled as `type: emergency_stop`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Event time.
    pub time: EventTime,
    /// Drawdown from the peak (fraction).
    pub drawdown: f64,
    /// Configured limit (fraction).
    pub limit: f64,
    /// Equity at the breach.
    pub equity: rust_decimal::Decimal,
    /// Equity peak.
    pub peak: rust_decimal::Decimal,
}

/// What the risk core decided about an intent.
#[derive(Debug)]
pub enum Verdict {
    /// Approved: the entry order (with its protective children in `protection`).
    Approved(Box<OrderRequest>),
    /// The intent opposes an open position: a reduce-only order closing it (a signal exit;
    /// `origin` is the intent). PositionBook should cancel the position's protective orders.
    Exit(Box<OrderRequest>),
    /// Refused.
    Refused(Refusal),
}

/// How an approved entry was sized (for the journal and for explaining a size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// Intent id.
    pub intent_id: u64,
    /// Pair.
    pub pair: Symbol,
    /// Equity used.
    pub equity: Cash,
    /// Stop distance (fraction of the entry price).
    pub stop_distance: Decimal,
    /// `fixed`, `volatility`, or `fixed_fallback` (volatility mode without a σ).
    pub stop_source: String,
    /// Volatility per √second used (0 = unknown).
    pub volatility: f64,
    /// equity × risk_per_trade / stop_distance.
    pub risk_notional: Cash,
    /// Intent confidence used (clamped to [0, 1]).
    pub confidence: f64,
    /// Volatility-targeting multiplier.
    pub vol_scale: f64,
    /// Correlation shrink multiplier.
    pub correlation_shrink: f64,
    /// Notional before the caps.
    pub wanted_notional: Cash,
    /// Notional after the caps (before rounding the quantity).
    pub notional: Cash,
    /// Which cap bound (`risk` = none; otherwise a reason code).
    pub binding: String,
    /// Reference price (entry limit price, or the touch for market orders).
    pub price: Price,
    /// Rounded quantity.
    pub qty: Qty,
}

/// Everything the risk core must remember across a restart (the correlation samples are
/// rebuilt from data; see docs/risk.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskState {
    /// Equity peak of the drawdown.
    pub peak: Cash,
    /// Since when the halt is active (None = not halted).
    pub halted_since: Option<EventTime>,
    /// Start of the current trading day.
    pub day: Option<EventTime>,
    /// Equity at the start of the current trading day.
    pub day_start_equity: Cash,
    /// Last order time per pair (for `min_trade_interval`).
    pub last_trade: BTreeMap<Symbol, EventTime>,
    /// Refusals by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Drawdown breaches so far.
    pub emergency_stops: u64,
    /// Worst drawdown seen (fraction).
    pub max_drawdown_seen: f64,
    /// Approved entries.
    pub approved: u64,
    /// Approved signal exits.
    pub exits: u64,
    /// P&L of the last closed trades (Kelly window), oldest first.
    pub closed_trade_pnls: Vec<Cash>,
}

/// An approved entry that the portfolio view may not show yet.
#[derive(Clone, Debug)]
struct Pending {
    notional: Cash,
    at: EventTime,
    short: bool,
}

/// What `decide` found (applied to the state by `evaluate`).
enum Decision {
    Entry(Box<OrderRequest>, Box<Sizing>),
    Exit(Box<OrderRequest>),
}

type Refuse = (&'static str, String);

/// Risk state: equity peak, halt, daily loss, counters.
pub struct RiskCore {
    cfg: RiskConfig,
    entry: EntryStyle,
    view: Option<PortfolioView>,
    peak: Cash,
    current_drawdown: f64,
    max_drawdown_seen: f64,
    halted_since: Option<EventTime>,
    day: Option<EventTime>,
    day_start_equity: Cash,
    last_trade: BTreeMap<Symbol, EventTime>,
    pending: BTreeMap<Symbol, Pending>,
    refusals: BTreeMap<String, u64>,
    approved: u64,
    exits: u64,
    emergency_stops: u64,
    pnls: VecDeque<Cash>,
    sampler: stats::Sampler,
    last_sizing: Option<Sizing>,
}

/// The peak rule of [`RiskCore::on_portfolio`]: the first equity, then every new high.
pub fn next_peak(peak: Decimal, equity: Decimal) -> Decimal {
    if peak <= Decimal::ZERO || equity > peak { equity } else { peak }
}

/// Drawdown of `equity` from `peak` (a fraction; 0 without a peak).
pub fn drawdown(peak: Decimal, equity: Decimal) -> Decimal {
    if peak > Decimal::ZERO { (peak - equity) / peak } else { Decimal::ZERO }
}

/// The part of RiskManager's state a portfolio view can change (RiskManager → MarketFeed →
/// PositionBook, between passes). With it PositionBook knows, frame by frame, whether a view
/// would change what RiskManager holds — a new peak, a deeper drawdown, a new trading day —
/// or could breach the drawdown limit, and sends or stops accordingly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RiskWatch {
    /// Halted: every frame's view matters (a cool-down lifts at the first past its end).
    pub halted: bool,
    /// Equity peak the drawdown is measured from.
    pub peak: Decimal,
    /// Deepest drawdown seen (fraction).
    pub max_drawdown_seen: f64,
    /// `risk.max_drawdown`.
    pub limit: Decimal,
    /// Start of the trading day of the last view.
    pub day: Option<EventTime>,
    /// `risk.daily_reset_hour_utc`.
    pub daily_reset_hour_utc: u32,
}

impl RiskWatch {
    /// Whether a view at `time` with `equity` changes RiskManager's peak, deepest drawdown or
    /// day, or breaches the limit; `breach` tells the last apart.
    pub fn needs_view(&self, time: EventTime, equity: Decimal) -> (bool, bool) {
        let peak = next_peak(self.peak, equity);
        let dd = drawdown(peak, equity);
        let breach = !self.halted && dd > self.limit;
        let day = time.last_daily_boundary(self.daily_reset_hour_utc);
        let changes = peak != self.peak || to_f64(dd) > self.max_drawdown_seen || self.day != Some(day);
        (changes || breach || self.halted, breach)
    }

    /// Applies a view, as RiskManager will.
    pub fn see(&mut self, time: EventTime, equity: Decimal) {
        self.peak = next_peak(self.peak, equity);
        let dd = drawdown(self.peak, equity);
        self.halted |= dd > self.limit;
        self.max_drawdown_seen = self.max_drawdown_seen.max(to_f64(dd));
        self.day = Some(time.last_daily_boundary(self.daily_reset_hour_utc));
    }
}

impl RiskCore {
    /// A new risk core.
    pub fn new(cfg: &RiskConfig, execution_entry: super::orders::EntryStyle) -> RiskCore {
        RiskCore {
            sampler: stats::Sampler::new(
                cfg.correlation_sample_interval.as_micros(),
                cfg.correlation_window,
                cfg.correlation_min_samples,
                cfg.var_window,
            ),
            cfg: cfg.clone(),
            entry: execution_entry,
            view: None,
            peak: Decimal::ZERO,
            current_drawdown: 0.0,
            max_drawdown_seen: 0.0,
            halted_since: None,
            day: None,
            day_start_equity: Decimal::ZERO,
            last_trade: BTreeMap::new(),
            pending: BTreeMap::new(),
            refusals: BTreeMap::new(),
            approved: 0,
            exits: 0,
            emergency_stops: 0,
            pnls: VecDeque::new(),
            last_sizing: None,
        }
    }

    /// What PositionBook must watch to pass several frames at once and still give RiskManager
    /// every view a frame-by-frame run would make it act on ([`RiskWatch`]).
    pub fn watch(&self) -> RiskWatch {
        RiskWatch {
            halted: self.halted(),
            peak: self.peak,
            max_drawdown_seen: self.max_drawdown_seen,
            limit: self.cfg.max_drawdown,
            day: self.day,
            daily_reset_hour_utc: self.cfg.daily_reset_hour_utc,
        }
    }

    /// Portfolio update (every view PositionBook sends: after each pass, and within one
    /// whenever a frame-by-frame run would change this state, see [`RiskWatch`]): returns a
    /// breach when the drawdown passed the limit; the core is halted from then on.
    pub fn on_portfolio(&mut self, view: &PortfolioView) -> Option<Breach> {
        let now = view.time;
        self.sampler.observe(view);
        let day = now.last_daily_boundary(self.cfg.daily_reset_hour_utc);
        if self.day != Some(day) {
            self.day = Some(day);
            self.day_start_equity = view.equity;
        }
        // An approved entry is counted until the view shows it resolved: no order left on
        // the pair at a later event time (its fill, if any, is then in `positions`).
        self.pending.retain(|pair, p| !(now > p.at && view.open_orders_on(pair) == 0));
        self.view = Some(view.clone());
        self.maybe_lift(now);

        let equity = view.equity;
        self.peak = next_peak(self.peak, equity);
        let dd = drawdown(self.peak, equity);
        self.current_drawdown = to_f64(dd);
        self.max_drawdown_seen = self.max_drawdown_seen.max(self.current_drawdown);
        if self.halted_since.is_none() && dd > self.cfg.max_drawdown {
            self.halted_since = Some(now);
            self.emergency_stops += 1;
            return Some(Breach {
                time: now,
                drawdown: self.current_drawdown,
                limit: to_f64(self.cfg.max_drawdown),
                equity,
                peak: self.peak,
            });
        }
        None
    }

    /// A round trip closed: its P&L feeds the Kelly estimate.
    pub fn on_trade_closed(&mut self, trade: &ClosedTrade) {
        self.pnls.push_back(trade.pnl);
        while self.pnls.len() > self.cfg.kelly_window.max(1) {
            self.pnls.pop_front();
        }
    }

    /// Sizes and checks an intent against the latest portfolio.
    pub fn evaluate(&mut self, intent: &TradeIntent) -> Verdict {
        let now = intent.time;
        self.maybe_lift(now);
        match self.decide(intent) {
            Ok(Decision::Entry(order, sizing)) => {
                self.approved += 1;
                self.last_trade.insert(intent.pair.clone(), now);
                let short = intent.side == Side::Sell;
                self.pending
                    .insert(intent.pair.clone(), Pending { notional: sizing.notional, at: now, short });
                self.last_sizing = Some(*sizing);
                Verdict::Approved(order)
            }
            Ok(Decision::Exit(order)) => {
                self.exits += 1;
                self.last_trade.insert(intent.pair.clone(), now);
                Verdict::Exit(order)
            }
            Err((code, detail)) => {
                *self.refusals.entry(code.to_string()).or_insert(0) += 1;
                Verdict::Refused(Refusal {
                    intent_id: intent.intent_id,
                    pair: intent.pair.clone(),
                    reason: code.to_string(),
                    detail,
                    time: now,
                })
            }
        }
    }

    /// Operator halt (`POST /api/emergency-stop`): a breach at `now` with the current
    /// figures; None when already halted.
    pub fn halt_now(&mut self, now: EventTime) -> Option<Breach> {
        if self.halted_since.is_some() {
            return None;
        }
        self.halted_since = Some(now);
        self.emergency_stops += 1;
        let equity = self.view.as_ref().map(|v| v.equity).unwrap_or(Decimal::ZERO);
        Some(Breach {
            time: now,
            drawdown: self.current_drawdown,
            limit: to_f64(self.cfg.max_drawdown),
            equity,
            peak: self.peak,
        })
    }

    /// True while halted.
    pub fn halted(&self) -> bool {
        self.halted_since.is_some()
    }

    /// Lifts a halt (operator); the drawdown peak resets to the current equity.
    pub fn lift_halt(&mut self, _now: EventTime) {
        self.halted_since = None;
        self.peak = self.view.as_ref().map(|v| v.equity).unwrap_or(Decimal::ZERO);
        self.current_drawdown = 0.0;
    }

    /// How the last approved entry was sized.
    pub fn last_sizing(&self) -> Option<&Sizing> {
        self.last_sizing.as_ref()
    }

    /// State for crash recovery (journal it; feed it to [`RiskCore::restore`]).
    pub fn state(&self) -> RiskState {
        RiskState {
            peak: self.peak,
            halted_since: self.halted_since,
            day: self.day,
            day_start_equity: self.day_start_equity,
            last_trade: self.last_trade.clone(),
            refusals: self.refusals.clone(),
            emergency_stops: self.emergency_stops,
            max_drawdown_seen: self.max_drawdown_seen,
            approved: self.approved,
            exits: self.exits,
            closed_trade_pnls: self.pnls.iter().copied().collect(),
        }
    }

    /// Restores a saved state (before the first `on_portfolio` after a restart).
    pub fn restore(&mut self, s: RiskState) {
        self.peak = s.peak;
        self.halted_since = s.halted_since;
        self.day = s.day;
        self.day_start_equity = s.day_start_equity;
        self.last_trade = s.last_trade;
        self.refusals = s.refusals;
        self.emergency_stops = s.emergency_stops;
        self.max_drawdown_seen = s.max_drawdown_seen;
        self.approved = s.approved;
        self.exits = s.exits;
        self.pnls = s.closed_trade_pnls.into_iter().collect();
        while self.pnls.len() > self.cfg.kelly_window.max(1) {
            self.pnls.pop_front();
        }
    }

    /// Report figures (`risk` section of report.json).
    pub fn metrics(&self) -> serde_json::Value {
        use serde_json::json;
        let equity = self.view.as_ref().map(|v| v.equity).unwrap_or(Decimal::ZERO);
        let exp = self.view.as_ref().map(|v| self.exposures(v)).unwrap_or_default();
        let eq = to_f64(equity);
        let frac = |c: Cash| if eq > 0.0 { to_f64(c) / eq } else { 0.0 };
        let by_asset: BTreeMap<&str, f64> =
            exp.by_asset.iter().map(|(a, c)| (a.as_str(), frac(*c))).collect();
        let by_asset_cash: BTreeMap<&str, String> =
            exp.by_asset.iter().map(|(a, c)| (a.as_str(), c.to_string())).collect();
        let (var_i, var_1d, var_n) = match self.sampler.var95() {
            Some((a, b, n)) => (Some(a), Some(b), n),
            None => (None, None, 0),
        };
        let mut corr = BTreeMap::new();
        let pairs = self.sampler.pairs();
        for (i, a) in pairs.iter().enumerate() {
            for b in &pairs[i + 1..] {
                if let Some(r) = self.sampler.correlation(a, b) {
                    corr.insert(format!("{a}|{b}"), r);
                }
            }
        }
        let (corr_exposure, eff_bets) = self.correlation_exposure(&exp, eq);
        let kelly = self.kelly();
        json!({
            "equity": equity.to_string(),
            "peak_equity": self.peak.to_string(),
            "current_drawdown": self.current_drawdown,
            "current_drawdown_pct": self.current_drawdown * 100.0,
            "max_drawdown": self.max_drawdown_seen,
            "max_drawdown_pct": self.max_drawdown_seen * 100.0,
            "max_drawdown_limit": to_f64(self.cfg.max_drawdown),
            "halted": self.halted(),
            "halted_since": self.halted_since.map(|t| t.to_rfc3339()),
            "exposure_by_asset": by_asset,
            "exposure_by_asset_cash": by_asset_cash,
            "total_exposure": frac(exp.total),
            "leverage": frac(exp.total),
            "var_method": "historical, 95 %, equity returns on the sample grid, scaled to 1 day by sqrt(86400 s / interval)",
            "var_95_interval": var_i,
            "var_95_1d": var_1d,
            "var_95_1d_cash": var_1d.map(|v| v * eq),
            "var_samples": var_n,
            "correlation": corr,
            "correlation_exposure": corr_exposure,
            "effective_bets": eff_bets,
            "emergency_stops": self.emergency_stops,
            "approved_intents": self.approved,
            "exit_intents": self.exits,
            "refused_intents": self.refusals.values().sum::<u64>(),
            "refused_by_reason": self.refusals,
            "kelly": {
                "trades": self.pnls.len(),
                "estimate": kelly,
                "cap_fraction": kelly.map(|k| (self.cfg.kelly_fraction * k).max(to_f64(self.cfg.kelly_floor_fraction))),
            },
        })
    }

    // ---- internals -------------------------------------------------------------------

    fn maybe_lift(&mut self, now: EventTime) {
        if let (Some(since), Some(cd)) = (self.halted_since, self.cfg.halt_cooldown)
            && now.micros_since(since) >= cd.as_micros()
        {
            self.lift_halt(now);
        }
    }

    fn decide(&self, intent: &TradeIntent) -> Result<Decision, Refuse> {
        if let Some(since) = self.halted_since {
            return Err((
                reason::HALTED,
                format!(
                    "halted since {since} (drawdown limit {}); lifts {}",
                    self.cfg.max_drawdown,
                    match self.cfg.halt_cooldown {
                        Some(c) => format!("after {c}"),
                        None => "only by the operator".into(),
                    }
                ),
            ));
        }
        let view = self.view.as_ref().ok_or((reason::NO_PORTFOLIO, "no portfolio view yet".to_string()))?;
        let pair = &*intent.pair;
        let quote =
            view.quote(pair).ok_or_else(|| (reason::PAIR_NOT_TRADABLE, format!("no quote for {pair}")))?;
        if !quote.tradable {
            return Err((reason::PAIR_NOT_TRADABLE, format!("{pair}: book untrusted or stale")));
        }
        if quote.bid <= Decimal::ZERO || quote.ask <= quote.bid {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{pair}: no sane touch (bid {}, ask {})", quote.bid, quote.ask),
            ));
        }
        let position = view.position(pair).filter(|p| !p.qty.is_zero());
        match (intent.side, position) {
            // With margin on, a sell on a marginable pair without a position opens a short.
            (Side::Sell, None) if view.margin.is_some() && quote.instrument.margin.is_some() => {
                self.entry(intent, view, quote)
            }
            (Side::Sell, None) if view.margin.is_some() => Err((
                reason::NO_POSITION,
                format!("sell {pair} without a position ({pair} is not marginable)"),
            )),
            (Side::Sell, None) => {
                Err((reason::NO_POSITION, format!("sell {pair} without a position (spot: shorts are off)")))
            }
            (side, Some(p)) if (p.qty > Decimal::ZERO) != (side == Side::Buy) => {
                self.exit(intent, quote, p.qty).map(Decision::Exit)
            }
            (_, Some(p)) => Err((reason::ALREADY_IN_POSITION, format!("{pair}: already holding {}", p.qty))),
            (Side::Buy, None) => self.entry(intent, view, quote),
        }
    }

    fn status_allows(status: PairStatus, style: EntryStyle, reducing: bool) -> bool {
        match status {
            PairStatus::Online => true,
            PairStatus::LimitOnly => !matches!(style, EntryStyle::Market),
            PairStatus::PostOnly => matches!(style, EntryStyle::PostOnly { .. }),
            PairStatus::ReduceOnly => reducing,
            _ => false,
        }
    }

    /// The order spec for `style` at the touch, and its reference price.
    fn priced_spec(
        style: EntryStyle,
        inst: &Instrument,
        quote: &Quote,
        side: Side,
        qty: Qty,
    ) -> Result<(OrderSpec, Price), Refuse> {
        let (offset, post) = match style {
            EntryStyle::Market => {
                let reference = if side == Side::Buy { quote.ask } else { quote.bid };
                return Ok((OrderSpec::market(inst.symbol.clone(), side, qty), reference));
            }
            EntryStyle::Limit { offset_ticks } => (offset_ticks, false),
            EntryStyle::PostOnly { offset_ticks } => (offset_ticks, true),
        };
        let price = Self::touch_price(inst, quote, side, offset)?;
        let mut spec = OrderSpec::limit(inst.symbol.clone(), side, qty, price);
        spec.post_only = post;
        Ok((spec, price))
    }

    /// Touch price moved `offset` ticks toward the other side, never crossing, rounded to the
    /// tick on the passive side.
    fn touch_price(inst: &Instrument, quote: &Quote, side: Side, offset: i32) -> Result<Price, Refuse> {
        let tick = inst.price_increment;
        let shift = tick * Decimal::from(offset);
        let p = match side {
            Side::Buy => {
                let p = quote.bid + shift;
                if p >= quote.ask { quote.ask - tick } else { p }
            }
            Side::Sell => {
                let p = quote.ask - shift;
                if p <= quote.bid { quote.bid + tick } else { p }
            }
        };
        let p = inst.round_price_passive(p, side == Side::Buy);
        if p <= Decimal::ZERO {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{}: no positive limit price ({p})", inst.symbol),
            ));
        }
        Ok(p)
    }

    fn exit(&self, intent: &TradeIntent, quote: &Quote, pos_qty: Qty) -> Result<Box<OrderRequest>, Refuse> {
        let inst = &*quote.instrument;
        let style = self.cfg.exit_style;
        if !Self::status_allows(inst.status, style, true) {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{}: status {} does not allow a {style:?} exit", inst.symbol, inst.status.as_str()),
            ));
        }
        let qty = inst.round_qty_down(pos_qty.abs());
        if qty <= Decimal::ZERO {
            return Err((reason::BELOW_MINIMUM, format!("position {pos_qty} rounds to zero lots")));
        }
        let (spec, _) = Self::priced_spec(style, inst, quote, intent.side, qty)?;
        Ok(Box::new(OrderRequest::reducing(
            spec,
            OrderOrigin::Intent { intent_id: intent.intent_id },
            intent.time,
        )))
    }

    fn entry(&self, intent: &TradeIntent, view: &PortfolioView, quote: &Quote) -> Result<Decision, Refuse> {
        let cfg = &self.cfg;
        let inst = &*quote.instrument;
        let pair = &*intent.pair;
        let now = intent.time;
        if !Self::status_allows(inst.status, self.entry, false) {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{pair}: status {} does not allow a {:?} entry", inst.status.as_str(), self.entry),
            ));
        }
        let open_positions = view.positions.iter().filter(|p| !p.qty.is_zero()).count()
            + self.pending.keys().filter(|k| view.position(k).is_none_or(|p| p.qty.is_zero())).count();
        if open_positions >= cfg.max_open_positions {
            return Err((
                reason::MAX_OPEN_POSITIONS,
                format!(
                    "{open_positions} open positions, limit risk.max_open_positions = {}",
                    cfg.max_open_positions
                ),
            ));
        }
        let orders = view.open_orders_on(pair);
        if orders > cfg.max_open_orders_per_pair {
            return Err((
                reason::OPEN_ORDERS_ON_PAIR,
                format!("{orders} open orders on {pair}, limit {}", cfg.max_open_orders_per_pair),
            ));
        }
        if let Some(p) = self.pending.get(pair) {
            return Err((
                reason::OPEN_ORDERS_ON_PAIR,
                format!("entry on {pair} approved at {} still pending", p.at),
            ));
        }
        if let Some(last) = self.last_trade.get(pair) {
            let since = now.micros_since(*last);
            if since < cfg.min_trade_interval.as_micros() {
                return Err((
                    reason::MIN_TRADE_INTERVAL,
                    format!(
                        "last order on {pair} at {last}, {:.3}s ago < risk.min_trade_interval {}",
                        since as f64 / 1e6,
                        cfg.min_trade_interval
                    ),
                ));
            }
        }
        let equity = view.equity;
        if self.day_start_equity > Decimal::ZERO {
            let loss = (self.day_start_equity - equity) / self.day_start_equity;
            if loss >= cfg.daily_loss_limit {
                return Err((
                    reason::DAILY_LOSS_LIMIT,
                    format!(
                        "day loss {:.4} (equity {equity} vs {} at day start) ≥ risk.daily_loss_limit {}",
                        to_f64(loss),
                        self.day_start_equity,
                        cfg.daily_loss_limit
                    ),
                ));
            }
        }
        if equity <= Decimal::ZERO {
            return Err((reason::NO_EQUITY, format!("equity {equity}")));
        }

        // Headrooms of the exposure limits (account currency).
        let exp = self.exposures(view);
        let asset = inst.base.to_string();
        let asset_now = exp.by_asset.get(&asset).copied().unwrap_or(Decimal::ZERO);
        let room_asset = cfg.max_exposure_per_asset * equity - asset_now;
        let room_total = cfg.max_total_exposure * equity - exp.total;
        let room_lev = cfg.max_leverage * equity - exp.total;
        // A long spends cash; a short needs margin: free margin × the order's leverage.
        let short = intent.side == Side::Sell;
        let leverage = match (&view.margin, &inst.margin) {
            (Some(m), Some(t)) if short => m.leverage.min(t.max_leverage_sell),
            _ => 0,
        };
        let (cash_code, cash_room, cash_what) = match &view.margin {
            Some(m) if short => (
                reason::INSUFFICIENT_MARGIN,
                m.free_margin * Decimal::from(leverage) / (Decimal::ONE + cfg.fee_reserve),
                format!("free margin {} at {leverage}×", m.free_margin),
            ),
            _ => (
                reason::INSUFFICIENT_CASH,
                view.available_cash / (Decimal::ONE + cfg.fee_reserve),
                format!("available cash {}", view.available_cash),
            ),
        };
        for (code, room, what) in [
            (reason::MAX_EXPOSURE_PER_ASSET, room_asset, format!("{asset} exposure {asset_now}")),
            (reason::MAX_TOTAL_EXPOSURE, room_total, format!("total exposure {}", exp.total)),
            (reason::MAX_LEVERAGE, room_lev, format!("total notional {}", exp.total)),
            (cash_code, cash_room, cash_what),
        ] {
            if room <= Decimal::ZERO {
                return Err((code, format!("{what} leaves no room (equity {equity})")));
            }
        }

        // Stop distance.
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

        // Size: fixed-fractional × confidence × volatility target × correlation shrink.
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
            (cash_code, cash_room),
            (reason::MAX_EXPOSURE_PER_ASSET, room_asset),
            (reason::MAX_TOTAL_EXPOSURE, room_total),
            (reason::MAX_LEVERAGE, room_lev),
        ] {
            if cap < notional {
                notional = cap;
                binding = code;
            }
        }

        // Quantity, rounded down to the lot; minimums after rounding.
        let (_, ref_price) = Self::priced_spec(self.entry, inst, quote, intent.side, Decimal::ZERO)?;
        let per_unit = ref_price * quote.quote_to_account;
        if per_unit <= Decimal::ZERO {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{pair}: no positive price in account currency"),
            ));
        }
        let qty = inst.round_qty_down(notional / per_unit);
        let cost = qty * ref_price;
        if qty <= Decimal::ZERO || qty < inst.qty_min || cost < inst.cost_min {
            let code = if binding == "risk" { reason::BELOW_MINIMUM } else { binding };
            return Err((
                code,
                format!(
                    "size {notional:.8} {} (wanted {wanted:.8}, bound by {binding}) gives qty {qty} cost {cost} at {ref_price}; \
                     pair minimums qty_min {} cost_min {}",
                    view.currency, inst.qty_min, inst.cost_min
                ),
            ));
        }
        let (mut spec, _) = Self::priced_spec(self.entry, inst, quote, intent.side, qty)?;
        if short {
            spec.leverage = Some(leverage); // a margin order: Kraken's `leverage`
        }

        // Protective prices, rounded toward the entry (the loss at the stop never exceeds
        // the budget through rounding).
        let tick = inst.price_increment;
        let dp = inst.price_precision;
        let (stop, tp) = match intent.side {
            Side::Buy => (
                ceil_to_step(ref_price * (Decimal::ONE - stop_d), tick).round_dp(dp),
                floor_to_step(ref_price * (Decimal::ONE + tp_d), tick).round_dp(dp),
            ),
            Side::Sell => (
                floor_to_step(ref_price * (Decimal::ONE + stop_d), tick).round_dp(dp),
                ceil_to_step(ref_price * (Decimal::ONE - tp_d), tick).round_dp(dp),
            ),
        };
        let protection = Protection {
            stop_loss: (stop > Decimal::ZERO).then_some(stop),
            take_profit: (tp_d > Decimal::ZERO && tp > Decimal::ZERO).then_some(tp),
            trailing: (cfg.trailing_stop_pct > Decimal::ZERO)
                .then(|| TrailingOffset::Percent(cfg.trailing_stop_pct * Decimal::ONE_HUNDRED)),
        };
        let sizing = Sizing {
            intent_id: intent.intent_id,
            pair: intent.pair.clone(),
            equity,
            stop_distance: stop_d,
            stop_source: stop_source.into(),
            volatility: vol,
            risk_notional,
            confidence,
            vol_scale,
            correlation_shrink: shrink,
            wanted_notional: wanted,
            notional,
            binding: binding.into(),
            price: ref_price,
            qty,
        };
        let order = OrderRequest::opening(
            spec,
            protection,
            OrderOrigin::Intent { intent_id: intent.intent_id },
            now,
            intent.contributions.clone(),
            intent.overrides.tags.clone(),
            RiskApproval { _sealed: Sealed::new_for_risk() },
        );
        Ok(Decision::Entry(Box::new(order), Box::new(sizing)))
    }

    /// Correlation of two pairs: measured when enough common samples, else the prior.
    fn rho(&self, a: &str, b: &str) -> f64 {
        self.sampler.correlation(a, b).unwrap_or(self.cfg.correlation_prior)
    }

    /// shrink = 1 / (1 + Σ_j max(0, ρ_ij·s_i·s_j) · min(1, |w_j| / |w_i|)) over held
    /// positions j ≠ i (docs/risk.md).
    fn correlation_shrink(&self, view: &PortfolioView, pair: &str, side: Side, w_i: f64) -> f64 {
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

    fn exposures(&self, view: &PortfolioView) -> Exposures {
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

    /// Kelly estimate f* = W − (1 − W) / R from the closed-trade window, once it holds
    /// `kelly_min_trades` non-zero results.
    fn kelly(&self) -> Option<f64> {
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

    /// (√(wᵀ ρ w), effective number of bets (Σ|w|)² / wᵀ ρ w) over held positions.
    fn correlation_exposure(&self, exp: &Exposures, eq: f64) -> (f64, f64) {
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
struct Exposures {
    by_pair: BTreeMap<Symbol, Cash>,
    by_asset: BTreeMap<String, Cash>,
    total: Cash,
}
