//! Performance statistics (pure): returns, volatility, Sharpe, Sortino, Calmar, drawdown,
//! trade statistics and exposure, computed from the journal's equity snapshots and closed
//! trades. No I/O; the report module feeds these functions and writes the results.
//!
//! Conventions (see docs/reporting.md, "Statistics"):
//! - The equity curve is a step function: between two snapshots the equity is the earlier
//!   snapshot's value. It is resampled on a fixed event-time grid `t0 + k·period`.
//! - The period is the longest of 1 d, 1 h, 5 min, 1 min that gives at least
//!   [`MIN_RETURNS`] returns over the run (1 min when none does), so runs of different
//!   lengths still get meaningful ratios; the period used is stated in the report.
//! - Crypto trades 24/7: a year is 365 days of every period (8 760 hourly periods).
//! - Volatility uses the sample standard deviation (n − 1); the risk-free rate is annual
//!   and converted to a per-period rate by compounding.
//! - Anything undefined (too few returns, zero variance, no losing trade) is `None`, which
//!   the report writes as JSON `null`, never NaN or infinity.

use rust_decimal::Decimal;

pub use crate::core::return_grid::{
    CANDIDATE_PERIODS_S, MIN_RETURNS, ReturnGrid, SECONDS_PER_YEAR, Sampled, choose_period_secs,
    periods_per_year,
};
use crate::core::time::EventTime;

/// Standard deviations at or below this are treated as zero (constant equity gives exactly
/// zero, but float rounding of equal returns can leave ~1e-17).
const ZERO_SD: f64 = 1e-12;

/// One point of the equity curve.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct EquityPoint {
    /// Event time of the snapshot.
    pub time: EventTime,
    /// Equity in the account currency (a float: statistics only).
    pub equity: f64,
}

/// Simple returns `v[k] / v[k−1] − 1`. A return after a non-positive equity is undefined and
/// left out.
pub fn simple_returns(values: &[f64]) -> Vec<f64> {
    values.windows(2).filter(|w| w[0] > 0.0).map(|w| w[1] / w[0] - 1.0).collect()
}

/// Arithmetic mean; `None` when empty.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() { None } else { Some(xs.iter().sum::<f64>() / xs.len() as f64) }
}

/// Sample standard deviation (divides by n − 1); `None` with fewer than two values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// Downside deviation below `target`: √(Σ min(0, r − target)² / n); `None` when empty.
pub fn downside_deviation(xs: &[f64], target: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let ss: f64 = xs.iter().map(|r| libm::pow((r - target).min(0.0), 2.0)).sum();
    Some((ss / xs.len() as f64).sqrt())
}

/// The per-period rate equivalent to an annual rate: (1 + rf)^(1/ppy) − 1.
pub fn per_period_rate(annual: f64, ppy: f64) -> f64 {
    if ppy <= 0.0 || annual <= -1.0 { 0.0 } else { libm::pow(1.0 + annual, 1.0 / ppy) - 1.0 }
}

/// The Sharpe ratio of a sampled equity curve: [`sharpe`] of its grid returns, annualised by
/// its period. The one Sharpe the report (from the journal) and the dashboard (from
/// PositionBook's live [`ReturnGrid`]) show.
pub fn sampled_sharpe(s: &Sampled, rf_annual: f64) -> Option<f64> {
    sharpe(&simple_returns(&s.values), rf_annual, periods_per_year(s.period_s))
}

/// Runs spanning less than this (seconds of event time) get [`annualisation_warning`].
pub const ANNUALISATION_WARNING_BELOW_S: i64 = 30 * 86_400;

/// A sentence saying the annualised figures extrapolate too little data, for runs spanning
/// under 30 days (`None` from 30 days on).
pub fn annualisation_warning(s: &Sampled, returns: usize) -> Option<String> {
    let span_s = s.span_us as f64 / 1e6;
    if span_s >= ANNUALISATION_WARNING_BELOW_S as f64 {
        return None;
    }
    let span = if span_s < 2.0 * 86_400.0 {
        format!("{:.1} hours", span_s / 3_600.0)
    } else {
        format!("{:.1} days", span_s / 86_400.0)
    };
    let period = match s.period_s {
        86_400 => "1 day".to_string(),
        3_600 => "1 hour".to_string(),
        p if p % 60 == 0 => format!("{} minute{}", p / 60, if p == 60 { "" } else { "s" }),
        p => format!("{p} s"),
    };
    Some(format!(
        "the run spans {span} of market time (under 30 days): annualised figures (Sharpe, Sortino, \
         Calmar, annualised return and volatility) extrapolate {returns} returns of {period} to a \
         year and are mostly noise"
    ))
}

/// Annualised Sharpe ratio: (mean(r) − rf_p) / sd(r) × √ppy. `None` with fewer than two
/// returns or zero volatility.
pub fn sharpe(returns: &[f64], rf_annual: f64, ppy: f64) -> Option<f64> {
    let sd = sample_std(returns)?;
    if sd <= ZERO_SD {
        return None;
    }
    let excess = mean(returns)? - per_period_rate(rf_annual, ppy);
    finite(excess / sd * ppy.sqrt())
}

/// Annualised Sortino ratio: (mean(r) − rf_p) / DD × √ppy with DD the downside deviation
/// below rf_p. `None` with fewer than two returns or no return below rf_p.
pub fn sortino(returns: &[f64], rf_annual: f64, ppy: f64) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let rf = per_period_rate(rf_annual, ppy);
    let dd = downside_deviation(returns, rf)?;
    if dd <= ZERO_SD {
        return None;
    }
    finite((mean(returns)? - rf) / dd * ppy.sqrt())
}

/// Annualised (geometric) return of a resampled curve: (v_n / v_0)^(ppy / n) − 1.
/// `None` without a full period or when it overflows (very short, very good runs).
pub fn annualised_return(values: &[f64], ppy: f64) -> Option<f64> {
    let n = values.len().checked_sub(1).filter(|&n| n > 0)?;
    let (first, last) = (*values.first()?, *values.last()?);
    if first <= 0.0 {
        return None;
    }
    if last <= 0.0 {
        return Some(-1.0);
    }
    finite(libm::pow(last / first, ppy / n as f64) - 1.0)
}

/// Annualised volatility: sd(r) × √ppy; `None` with fewer than two returns.
pub fn annualised_volatility(returns: &[f64], ppy: f64) -> Option<f64> {
    finite(sample_std(returns)? * ppy.sqrt())
}

/// Calmar ratio: annualised return / max drawdown (fraction); `None` without a drawdown.
pub fn calmar(annual_return: Option<f64>, max_drawdown: f64) -> Option<f64> {
    if max_drawdown <= ZERO_SD {
        return None;
    }
    finite(annual_return? / max_drawdown)
}

/// Drawdown of an equity curve from its running peak.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DrawdownStats {
    /// Largest (peak − equity) / peak seen (fraction, 0 when equity never fell).
    pub max: f64,
    /// Peak before the largest drawdown.
    pub peak_time: Option<EventTime>,
    /// Trough of the largest drawdown.
    pub trough_time: Option<EventTime>,
    /// When equity first got back to that peak (`None` if it never did).
    pub recovery_time: Option<EventTime>,
    /// Longest time spent below a previous peak (µs), up to the last point if still below.
    pub max_duration_us: i64,
    /// Drawdown at the last point (fraction).
    pub current: f64,
}

/// Drawdown statistics over every point of the curve (not resampled, so no trough between
/// grid times is missed). Points must be sorted by time.
pub fn drawdown(points: &[EquityPoint]) -> DrawdownStats {
    let mut out = DrawdownStats::default();
    let Some(first) = points.first() else {
        return out;
    };
    let (mut peak, mut peak_time) = (first.equity, first.time);
    let mut underwater = false;
    for p in points {
        if p.equity >= peak {
            if underwater {
                out.max_duration_us = out.max_duration_us.max(p.time.micros_since(peak_time));
                // The episode that holds the max drawdown is identified by its peak time.
                if out.peak_time == Some(peak_time) && out.recovery_time.is_none() {
                    out.recovery_time = Some(p.time);
                }
            }
            peak = p.equity;
            peak_time = p.time;
            underwater = false;
        } else {
            underwater = true;
            let dd = if peak > 0.0 { (peak - p.equity) / peak } else { 0.0 };
            if dd > out.max {
                out.max = dd;
                out.peak_time = Some(peak_time);
                out.trough_time = Some(p.time);
                out.recovery_time = None;
            }
        }
    }
    if let Some(last) = points.last() {
        if underwater {
            out.max_duration_us = out.max_duration_us.max(last.time.micros_since(peak_time));
        }
        out.current = if peak > 0.0 { ((peak - last.equity) / peak).max(0.0) } else { 0.0 };
    }
    out
}

/// Statistics over the net P&L of closed trades (money stays Decimal).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TradeStats {
    /// Closed trades.
    pub trades: u64,
    /// Trades with pnl > 0.
    pub wins: u64,
    /// Trades with pnl < 0.
    pub losses: u64,
    /// Trades with pnl = 0.
    pub breakeven: u64,
    /// Σ pnl of winners.
    pub gross_profit: Decimal,
    /// Σ pnl of losers (≤ 0).
    pub gross_loss: Decimal,
    /// Σ pnl.
    pub net_pnl: Decimal,
    /// wins / trades.
    pub win_rate: Option<f64>,
    /// gross_profit / |gross_loss|; `None` without a losing trade.
    pub profit_factor: Option<f64>,
    /// net_pnl / trades (average P&L per trade).
    pub expectancy: Option<Decimal>,
    /// gross_profit / wins.
    pub avg_win: Option<Decimal>,
    /// gross_loss / losses (≤ 0).
    pub avg_loss: Option<Decimal>,
    /// Best trade.
    pub largest_win: Option<Decimal>,
    /// Worst trade.
    pub largest_loss: Option<Decimal>,
}

/// Decimal places averages are rounded to (the sums stay exact).
pub const AVG_DECIMALS: u32 = 8;

/// Trade statistics from the trades' net P&L.
pub fn trade_stats(pnls: &[Decimal]) -> TradeStats {
    let mut s = TradeStats::default();
    for &p in pnls {
        s.trades += 1;
        s.net_pnl += p;
        if p > Decimal::ZERO {
            s.wins += 1;
            s.gross_profit += p;
        } else if p < Decimal::ZERO {
            s.losses += 1;
            s.gross_loss += p;
        } else {
            s.breakeven += 1;
        }
    }
    let avg = |sum: Decimal, n: u64| (n > 0).then(|| (sum / Decimal::from(n)).round_dp(AVG_DECIMALS));
    s.win_rate = (s.trades > 0).then(|| s.wins as f64 / s.trades as f64);
    s.profit_factor = (s.gross_loss < Decimal::ZERO)
        .then(|| crate::core::money::to_f64(s.gross_profit) / crate::core::money::to_f64(-s.gross_loss));
    s.expectancy = avg(s.net_pnl, s.trades);
    s.avg_win = avg(s.gross_profit, s.wins);
    s.avg_loss = avg(s.gross_loss, s.losses);
    s.largest_win = pnls.iter().copied().filter(|p| *p > Decimal::ZERO).max();
    s.largest_loss = pnls.iter().copied().filter(|p| *p < Decimal::ZERO).min();
    s
}

/// Intervals during which at least one position was open, from position changes in time
/// order: `(time, pair, position is non-zero after the change)`. A position still open at
/// the end runs to `end`.
pub fn open_intervals(changes: &[(EventTime, &str, bool)], end: EventTime) -> Vec<(EventTime, EventTime)> {
    let mut open = std::collections::BTreeSet::new();
    let mut since = None;
    let mut out = Vec::new();
    for &(t, pair, nonzero) in changes {
        if nonzero {
            open.insert(pair);
        } else {
            open.remove(pair);
        }
        match (since, open.is_empty()) {
            (None, false) => since = Some(t),
            (Some(s), true) => {
                out.push((s, t));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        out.push((s, end.max(s)));
    }
    out
}

/// Fraction of `[start, end]` covered by the union of `intervals`; `None` for an empty span.
pub fn exposure_fraction(
    intervals: &[(EventTime, EventTime)],
    start: EventTime,
    end: EventTime,
) -> Option<f64> {
    let span = end.micros_since(start);
    if span <= 0 {
        return None;
    }
    let mut clipped: Vec<(i64, i64)> = intervals
        .iter()
        .map(|&(a, b)| (a.max(start).as_micros(), b.min(end).as_micros()))
        .filter(|(a, b)| b > a)
        .collect();
    clipped.sort_unstable();
    let mut covered = 0i64;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in clipped {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((a, b)) = cur {
        covered += b - a;
    }
    Some(covered as f64 / span as f64)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::time::MICROS_PER_SEC;
    use rust_decimal_macros::dec;

    const H: i64 = 3_600 * MICROS_PER_SEC;

    fn at(h: f64) -> EventTime {
        EventTime::from_micros((h * H as f64) as i64)
    }
    fn pts(v: &[(f64, f64)]) -> Vec<EquityPoint> {
        v.iter().map(|&(h, e)| EquityPoint { time: at(h), equity: e }).collect()
    }
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn returns_mean_and_sample_std_match_hand_values() {
        // 100 → 110 → 99 → 108.9: returns +10 %, −10 %, +10 %.
        let r = simple_returns(&[100.0, 110.0, 99.0, 108.9]);
        assert!(r.iter().zip([0.1, -0.1, 0.1]).all(|(a, b)| close(*a, b)), "{r:?}");
        // mean = 0.1/3 = 0.033333; deviations 0.066667, −0.133333, 0.066667;
        // Σ² = 0.004444 + 0.017778 + 0.004444 = 0.026667; / 2 = 0.013333; sd = 0.115470.
        assert!(close(mean(&r).unwrap(), 0.1 / 3.0));
        assert!(close(sample_std(&r).unwrap(), (0.08f64 / 6.0).sqrt()));
        assert_eq!(sample_std(&[0.1]), None);
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn sharpe_and_sortino_match_hand_values() {
        let r = [0.1, -0.1, 0.1];
        // rf = 0, ppy = 4: sharpe = 0.033333 / 0.115470 × 2 = 0.577350.
        assert!(close(sharpe(&r, 0.0, 4.0).unwrap(), 0.577_350_269_189_625_8));
        // Downside deviation: √(0.01 / 3) = 0.057735; sortino = 0.033333 / 0.057735 × 2 = 1.154701.
        assert!(close(sortino(&r, 0.0, 4.0).unwrap(), 1.154_700_538_379_251_7));
        // rf 21 % a year over 2 periods a year: per period (1.21)^(1/2) − 1 = 0.1.
        assert!(close(per_period_rate(0.21, 2.0), 0.1));
        // Excess mean = 0.033333 − 0.1 = −0.066667; sharpe = −0.066667 / 0.115470 × √2 = −0.816497.
        assert!(close(sharpe(&r, 0.21, 2.0).unwrap(), -0.816_496_580_927_726));
    }

    #[test]
    fn short_runs_get_an_annualisation_warning() {
        // 6 h on a 5-minute grid: 72 returns, warned.
        let six_h = Sampled { period_s: 300, span_us: 6 * H, ..Sampled::default() };
        let w = annualisation_warning(&six_h, 72).unwrap();
        assert!(w.contains("6.0 hours") && w.contains("72 returns of 5 minutes"), "{w}");
        let three_d = Sampled { period_s: 3_600, span_us: 72 * H, ..Sampled::default() };
        assert!(annualisation_warning(&three_d, 72).unwrap().contains("3.0 days"));
        // 30 days and more: none.
        let month = Sampled { period_s: 86_400, span_us: 30 * 24 * H, ..Sampled::default() };
        assert_eq!(annualisation_warning(&month, 30), None);
    }

    #[test]
    fn sampled_sharpe_is_sharpe_of_the_grid_returns() {
        // 100 → 110 → 99 → 108.9 on an hourly grid: returns +10 %, −10 %, +10 %, ppy 8 760.
        let s = Sampled { period_s: 3_600, values: vec![100.0, 110.0, 99.0, 108.9], ..Sampled::default() };
        let r = simple_returns(&s.values);
        assert_eq!(sampled_sharpe(&s, 0.05), sharpe(&r, 0.05, 8_760.0));
        assert!(sampled_sharpe(&s, 0.0).is_some());
    }

    #[test]
    fn zero_variance_and_short_series_give_none_not_nan() {
        assert_eq!(sharpe(&[0.0, 0.0, 0.0], 0.0, 8760.0), None);
        assert_eq!(sharpe(&[0.01], 0.0, 8760.0), None);
        // All returns above rf: no downside, Sortino undefined.
        assert_eq!(sortino(&[0.01, 0.02], 0.0, 8760.0), None);
        assert_eq!(annualised_volatility(&[], 8760.0), None);
        assert_eq!(annualised_return(&[100.0], 8760.0), None);
        assert_eq!(calmar(Some(0.5), 0.0), None);
        assert_eq!(calmar(None, 0.1), None);
    }

    #[test]
    fn annualised_return_volatility_and_calmar() {
        // 100 → 121 over 2 periods, 2 periods a year: (1.21)^(2/2) − 1 = 21 %.
        assert!(close(annualised_return(&[100.0, 105.0, 121.0], 2.0).unwrap(), 0.21));
        // 100 → 110 in 1 of 4 periods a year: 1.1^4 − 1 = 0.4641.
        assert!(close(annualised_return(&[100.0, 110.0], 4.0).unwrap(), 0.4641));
        // Wiped out: −100 %.
        assert_eq!(annualised_return(&[100.0, 0.0], 4.0), Some(-1.0));
        // sd of (0.1, −0.1, 0.1) = 0.115470 × √4 = 0.230940.
        assert!(close(annualised_volatility(&[0.1, -0.1, 0.1], 4.0).unwrap(), 0.230_940_107_675_850_3));
        // Calmar = 0.4641 / 0.2 = 2.3205.
        assert!(close(calmar(Some(0.4641), 0.2).unwrap(), 2.3205));
        // Overflow is undefined, not infinity: 2× per minute for a year.
        assert_eq!(annualised_return(&[1.0, 2.0], 525_600.0), None);
    }

    #[test]
    fn drawdown_finds_depth_duration_and_recovery() {
        // 100 (0 h) → 120 (1 h, peak) → 90 (2 h, trough: 30/120 = 25 %) → 110 (3 h)
        // → 125 (5 h, recovery after 4 h underwater) → 100 (6 h, 20 % below 125, to the end).
        let p = pts(&[(0.0, 100.0), (1.0, 120.0), (2.0, 90.0), (3.0, 110.0), (5.0, 125.0), (6.0, 100.0)]);
        let d = drawdown(&p);
        assert!(close(d.max, 0.25));
        assert_eq!(d.peak_time, Some(at(1.0)));
        assert_eq!(d.trough_time, Some(at(2.0)));
        assert_eq!(d.recovery_time, Some(at(5.0)));
        assert_eq!(d.max_duration_us, 4 * H);
        assert!(close(d.current, 0.2));
        // A curve that only rises has no drawdown.
        let d = drawdown(&pts(&[(0.0, 100.0), (1.0, 101.0)]));
        assert_eq!((d.max, d.max_duration_us, d.current, d.peak_time), (0.0, 0, 0.0, None));
    }

    #[test]
    fn drawdown_still_open_at_the_end_lasts_to_the_last_point() {
        let d = drawdown(&pts(&[(0.0, 100.0), (1.0, 80.0), (10.0, 90.0)]));
        assert!(close(d.max, 0.2));
        assert_eq!(d.recovery_time, None);
        assert_eq!(d.max_duration_us, 10 * H);
        assert!(close(d.current, 0.1));
    }

    #[test]
    fn trade_stats_match_hand_values() {
        // Wins 30 + 10 = 40, losses −20 − 5 = −25, one breakeven.
        let s = trade_stats(&[dec!(30), dec!(-20), dec!(10), dec!(0), dec!(-5)]);
        assert_eq!((s.trades, s.wins, s.losses, s.breakeven), (5, 2, 2, 1));
        assert_eq!((s.gross_profit, s.gross_loss, s.net_pnl), (dec!(40), dec!(-25), dec!(15)));
        assert_eq!(s.win_rate, Some(0.4));
        assert!(close(s.profit_factor.unwrap(), 1.6)); // 40 / 25
        assert_eq!(s.expectancy, Some(dec!(3))); // 15 / 5
        assert_eq!(s.avg_win, Some(dec!(20)));
        assert_eq!(s.avg_loss, Some(dec!(-12.5)));
        assert_eq!((s.largest_win, s.largest_loss), (Some(dec!(30)), Some(dec!(-20))));
        // 10 / 3 is rounded to 8 places.
        assert_eq!(trade_stats(&[dec!(10), dec!(0), dec!(0)]).expectancy, Some(dec!(3.33333333)));
    }

    #[test]
    fn trade_stats_without_losses_or_trades_leave_ratios_undefined() {
        let s = trade_stats(&[dec!(1)]);
        assert_eq!(s.profit_factor, None);
        assert_eq!(s.avg_loss, None);
        let s = trade_stats(&[]);
        assert_eq!((s.win_rate, s.expectancy), (None, None));
    }

    #[test]
    fn exposure_counts_the_union_of_open_time() {
        // BTC open 1–4 h, ETH open 3–6 h (overlap), everything flat 6–8 h, BTC again 8 h to
        // the end (10 h): open 1–6 and 8–10 = 7 h of 10 h.
        let ch = [
            (at(1.0), "BTC/USD", true),
            (at(3.0), "ETH/USD", true),
            (at(4.0), "BTC/USD", false),
            (at(6.0), "ETH/USD", false),
            (at(8.0), "BTC/USD", true),
        ];
        let iv = open_intervals(&ch, at(10.0));
        assert_eq!(iv, vec![(at(1.0), at(6.0)), (at(8.0), at(10.0))]);
        assert!(close(exposure_fraction(&iv, at(0.0), at(10.0)).unwrap(), 0.7));
        // Overlapping intervals given separately are not double counted: 1–5 of 0–10.
        let iv = [(at(1.0), at(4.0)), (at(2.0), at(5.0))];
        assert!(close(exposure_fraction(&iv, at(0.0), at(10.0)).unwrap(), 0.4));
        assert_eq!(exposure_fraction(&iv, at(1.0), at(1.0)), None);
    }
}
