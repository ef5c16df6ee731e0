//! The sampling the performance statistics are computed on: an equity curve (a step function
//! of snapshots) read on a fixed event-time grid `t0 + k·period`, the period chosen from the
//! run's span. Built point by point, so the report (from the journal) and PositionBook (live,
//! for the dashboard) sample the same curve the same way: one sampling, one Sharpe. Pure.
//!
//! - The period is the longest of 1 d, 1 h, 5 min, 1 min that gives at least
//!   [`MIN_RETURNS`] returns over the span (1 min when none does).
//! - The value at a grid time is the last point at or before it; a partial last period is
//!   dropped.
//! - A year is 365 days of every period (crypto trades 24/7).
//!
//! Memory stays small however long the run: a period can only get longer as the span grows,
//! so a grid finer than one that already qualifies is dropped (at most ~720 hourly values are
//! kept before the daily grid takes over).

use crate::core::time::{EventTime, MICROS_PER_SEC};

/// Seconds in the year used for annualisation (365 days; crypto trades every day).
pub const SECONDS_PER_YEAR: i64 = 365 * 86_400;
/// Resampling periods tried, longest first (seconds).
pub const CANDIDATE_PERIODS_S: [i64; 4] = [86_400, 3_600, 300, 60];
/// Returns a period must yield over the run to be chosen.
pub const MIN_RETURNS: i64 = 30;

/// The resampling period (seconds) for a run spanning `span_us` microseconds of event time.
pub fn choose_period_secs(span_us: i64) -> i64 {
    for p in CANDIDATE_PERIODS_S {
        if span_us / (p * MICROS_PER_SEC) >= MIN_RETURNS {
            return p;
        }
    }
    CANDIDATE_PERIODS_S[CANDIDATE_PERIODS_S.len() - 1]
}

/// Periods per year for a period of `period_s` seconds (8 760 for hourly).
pub fn periods_per_year(period_s: i64) -> f64 {
    SECONDS_PER_YEAR as f64 / period_s.max(1) as f64
}

/// The curve read on the chosen grid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampled {
    /// First grid time (the first point's time).
    pub start: EventTime,
    /// Grid step in seconds.
    pub period_s: i64,
    /// Equity at `start + k·period_s` for k = 0, 1, ….
    pub values: Vec<f64>,
    /// Event time from the first point to the latest time seen (µs): what chose the period.
    pub span_us: i64,
}

/// One candidate grid: its finished values (grid times before the latest point).
#[derive(Clone, Debug)]
struct Grid {
    period_s: i64,
    values: Vec<f64>,
}

/// An equity curve sampled on every candidate grid at once, fed in time order.
#[derive(Clone, Debug)]
pub struct ReturnGrid {
    /// First point's time and the latest point's time and value.
    first: Option<EventTime>,
    last: Option<(EventTime, f64)>,
    /// Latest event time seen (at or after the last point).
    end: Option<EventTime>,
    /// Candidate grids still possible, longest period first.
    grids: Vec<Grid>,
}

impl Default for ReturnGrid {
    fn default() -> Self {
        ReturnGrid::new()
    }
}

impl ReturnGrid {
    /// An empty curve.
    pub fn new() -> ReturnGrid {
        ReturnGrid {
            first: None,
            last: None,
            end: None,
            grids: CANDIDATE_PERIODS_S
                .iter()
                .map(|&period_s| Grid { period_s, values: Vec::new() })
                .collect(),
        }
    }

    /// Adds the point `(time, equity)`; points come in time order (an earlier time is taken
    /// as the latest one's). Of points at the same time the last one counts.
    pub fn push(&mut self, time: EventTime, equity: f64) {
        let (Some(first), Some((last_t, last_v))) = (self.first, self.last) else {
            self.first = Some(time);
            self.last = Some((time, equity));
            self.extend_to(time);
            return;
        };
        let time = time.max(last_t);
        if time > last_t {
            // Every grid time before `time` now has its value: the previous point's.
            for g in &mut self.grids {
                let step = g.period_s * MICROS_PER_SEC;
                while first.plus_micros(g.values.len() as i64 * step) < time {
                    g.values.push(last_v);
                }
            }
        }
        self.last = Some((time, equity));
        self.extend_to(time);
    }

    /// The run has reached event time `t` (it may be after the last point): the span the
    /// period is chosen from grows to it.
    #[inline]
    pub fn extend_to(&mut self, t: EventTime) {
        if self.end.is_some_and(|e| e >= t) {
            return;
        }
        self.end = Some(t);
        // Grids finer than the first qualifying one can never be chosen again.
        let span = self.span_us();
        if let Some(i) = self.grids.iter().position(|g| span / (g.period_s * MICROS_PER_SEC) >= MIN_RETURNS) {
            self.grids.truncate(i + 1);
        }
    }

    /// Event time from the first point to the latest time seen (µs; 0 when empty).
    pub fn span_us(&self) -> i64 {
        match (self.first, self.end) {
            (Some(a), Some(b)) => b.micros_since(a).max(0),
            _ => 0,
        }
    }

    /// The curve on the grid of the period chosen for the span so far (empty without points).
    pub fn sampled(&self) -> Sampled {
        let span_us = self.span_us();
        let period_s = choose_period_secs(span_us);
        let (Some(first), Some((last_t, last_v))) = (self.first, self.last) else {
            return Sampled { period_s, span_us, ..Sampled::default() };
        };
        let mut values =
            self.grids.iter().find(|g| g.period_s == period_s).map_or_else(Vec::new, |g| g.values.clone());
        // Grid times from the latest point to it hold its value.
        let n = last_t.micros_since(first) / (period_s * MICROS_PER_SEC);
        while (values.len() as i64) <= n {
            values.push(last_v);
        }
        Sampled { start: first, period_s, values, span_us }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600 * MICROS_PER_SEC;

    fn at(h: f64) -> EventTime {
        EventTime::from_micros((h * H as f64) as i64)
    }

    /// The definition: for each grid time, the last point at or before it.
    fn by_definition(points: &[(EventTime, f64)], step_us: i64) -> Vec<f64> {
        let (first, last) = (points[0].0, points[points.len() - 1].0);
        (0..=last.micros_since(first) / step_us)
            .map(|k| {
                let t = first.plus_micros(k * step_us);
                points.iter().rev().find(|p| p.0 <= t).map_or(f64::NAN, |p| p.1)
            })
            .collect()
    }

    #[test]
    fn period_is_the_longest_giving_thirty_returns() {
        // 72 h: 3 daily returns (too few), 72 hourly (enough).
        assert_eq!(choose_period_secs(72 * H), 3_600);
        // 40 days: 40 daily returns.
        assert_eq!(choose_period_secs(40 * 24 * H), 86_400);
        // 1 h: 12 five-minute returns (too few), 60 one-minute ones.
        assert_eq!(choose_period_secs(H), 60);
        // 10 min: nothing reaches 30; falls back to 1 min.
        assert_eq!(choose_period_secs(H / 6), 60);
        assert_eq!(periods_per_year(3_600), 8_760.0);
    }

    #[test]
    fn holds_the_last_point_before_each_grid_time() {
        // Points at 0 h (100), 0.5 h (110), 2.2 h (90), 3 h (95) over a 40-hour span: hourly
        // grid 0, 1, 2, 3 h.
        let mut g = ReturnGrid::new();
        for (h, v) in [(0.0, 100.0), (0.5, 110.0), (2.2, 90.0), (3.0, 95.0)] {
            g.push(at(h), v);
        }
        g.extend_to(at(40.0));
        let s = g.sampled();
        assert_eq!((s.period_s, s.span_us), (3_600, 40 * H));
        assert_eq!(s.values, vec![100.0, 110.0, 110.0, 95.0]);
        // Two points at the same time: the later one counts.
        let mut g = ReturnGrid::new();
        for (h, v) in [(0.0, 1.0), (0.0, 2.0), (1.0, 3.0), (1.0, 4.0)] {
            g.push(at(h), v);
        }
        assert_eq!(g.sampled().values[..2], [2.0, 2.0]);
        assert_eq!(g.sampled().values.len(), 61);
        assert!(ReturnGrid::new().sampled().values.is_empty());
    }

    #[test]
    fn matches_the_definition_on_uneven_points_and_spans() {
        // Points every 37 s to 83 s with a drifting value, over spans that pick each period;
        // the grid must equal "last point at or before each grid time".
        for span_h in [0.3, 2.0, 40.0, 800.0] {
            let mut pts = Vec::new();
            let (mut t, mut v, mut k) = (1_000 * MICROS_PER_SEC, 100.0, 0i64);
            while t < 1_000 * MICROS_PER_SEC + (span_h * H as f64) as i64 {
                pts.push((EventTime::from_micros(t), v));
                k += 1;
                t += (37 + (k * 17) % 47) * MICROS_PER_SEC * if span_h > 100.0 { 30 } else { 1 };
                v += ((k * 7919) % 13) as f64 - 6.0;
            }
            let mut g = ReturnGrid::new();
            for &(t, v) in &pts {
                g.push(t, v);
            }
            let s = g.sampled();
            assert_eq!(s.values, by_definition(&pts, s.period_s * MICROS_PER_SEC), "span {span_h} h");
        }
    }

    #[test]
    fn finer_grids_are_dropped_once_a_longer_period_qualifies() {
        let mut g = ReturnGrid::new();
        g.push(at(0.0), 1.0);
        g.extend_to(at(31.0));
        // Hourly qualifies (31 returns): the 5-minute and 1-minute grids are gone.
        assert_eq!(g.grids.iter().map(|x| x.period_s).collect::<Vec<_>>(), vec![86_400, 3_600]);
        g.push(at(31.0), 2.0);
        assert_eq!(g.sampled().values.len(), 32);
    }
}
