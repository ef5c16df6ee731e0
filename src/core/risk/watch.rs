//! The drawdown formula ([`next_peak`], [`drawdown`]) and [`RiskWatch`], the view of
//! RiskManager's drawdown state that lets PositionBook pass several frames at once.

use rust_decimal::Decimal;

use crate::core::money::to_f64;
use crate::core::time::EventTime;

/// The peak rule of [`RiskCore::on_portfolio`](super::RiskCore::on_portfolio): the first
/// equity, then every new high.
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
