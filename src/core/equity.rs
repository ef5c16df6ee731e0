//! PositionBook's equity bookkeeping: the event-time grid its `equity` snapshots are taken on,
//! the highest equity seen and the drawdown from it (the formulas of [`crate::core::risk`]:
//! one drawdown rule in the crate), the equity curve kept for the dashboard's chart, thinned
//! so it never exceeds [`CURVE_POINTS`] points, and the same curve on the statistics' grid
//! ([`ReturnGrid`], unthinned), so the dashboard's Sharpe is report.json's. Pure.

use rust_decimal::Decimal;

use crate::core::money::to_f64;
use crate::core::return_grid::{ReturnGrid, Sampled};
use crate::core::risk::{drawdown, next_peak};
use crate::core::time::{EventTime, Span};

/// Points kept of the equity curve for the dashboard (older points are thinned 2:1).
pub const CURVE_POINTS: usize = 2000;

/// The equity snapshot grid, the peak and the curve.
#[derive(Clone, Debug)]
pub struct EquityTracker {
    /// Grid step.
    interval: Span,
    /// Next grid point (None until the first event with exchange time).
    next_at: Option<EventTime>,
    /// Highest equity seen at a snapshot.
    peak: Decimal,
    /// Equity when the run started.
    starting: Decimal,
    /// (event time, equity) of the snapshots, thinned.
    curve: Vec<(EventTime, Decimal)>,
    /// The starting equity at the first event with exchange time, then every snapshot: the
    /// points report.json's curve has, on the statistics' grid.
    returns: ReturnGrid,
}

impl EquityTracker {
    /// A tracker starting at `starting_equity` (also the first peak), with snapshots every
    /// `interval` of event time.
    pub fn new(starting_equity: Decimal, interval: Span) -> EquityTracker {
        EquityTracker {
            interval,
            next_at: None,
            peak: starting_equity,
            starting: starting_equity,
            curve: Vec::new(),
            returns: ReturnGrid::new(),
        }
    }

    /// Called before the event at `t` is applied: the grid point whose snapshot is due now, if
    /// any (the grid then moves past `t`). The grid starts at the first event with exchange
    /// time, so snapshots do not depend on how events are batched; events without exchange
    /// time (instrument, status) are no point of it: a snapshot at time zero would stretch
    /// the curve back to 1970.
    #[inline]
    pub fn due(&mut self, t: EventTime) -> Option<EventTime> {
        if t == EventTime::ZERO {
            return None;
        }
        self.returns.extend_to(t);
        match self.next_at {
            None => {
                self.next_at = Some(t);
                // The run's first point: the starting equity, as report.json's curve has it.
                self.returns.push(t, to_f64(self.starting));
                None
            }
            Some(at) if t >= at => {
                let step = self.interval.as_micros().max(1);
                let mut next = at.plus_micros(step);
                while next <= t {
                    next = next.plus_micros(step);
                }
                self.next_at = Some(next);
                Some(at)
            }
            Some(_) => None,
        }
    }

    /// Takes a snapshot of `equity` at `time`: the peak moves up to it, the curve gets the
    /// point; returns the drawdown from the peak (a fraction; 0 without a positive peak).
    pub fn snapshot(&mut self, time: EventTime, equity: Decimal) -> f64 {
        self.peak = next_peak(self.peak, equity);
        let drawdown = to_f64(drawdown(self.peak, equity));
        self.curve.push((time, equity));
        // A snapshot before the first market event (time zero) is the starting equity dated
        // 1970: report.json leaves it out of the curve, and so does the grid.
        if time > EventTime::ZERO {
            self.returns.push(time, to_f64(equity));
        }
        if self.curve.len() > CURVE_POINTS {
            // Keep the shape: drop every second point of the older half.
            let half = self.curve.len() / 2;
            let mut i = 0;
            self.curve.retain(|_| {
                i += 1;
                i > half || i % 2 == 0
            });
        }
        drawdown
    }

    /// Highest equity seen.
    pub fn peak(&self) -> Decimal {
        self.peak
    }

    /// Equity when the run started.
    pub fn starting(&self) -> Decimal {
        self.starting
    }

    /// The curve, oldest first.
    pub fn curve(&self) -> &[(EventTime, Decimal)] {
        &self.curve
    }

    /// The curve so far on the statistics' grid (what report.json's ratios are computed on).
    pub fn sampled(&self) -> Sampled {
        self.returns.sampled()
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn at(s: i64) -> EventTime {
        EventTime::ZERO.plus_micros(s * 1_000_000)
    }

    #[test]
    fn the_grid_starts_at_the_first_timed_event_and_skips_ahead() {
        let mut e = EquityTracker::new(dec!(100), Span(10_000_000));
        assert_eq!(e.due(EventTime::ZERO), None);
        assert_eq!(e.due(at(5)), None); // the grid starts here
        assert_eq!(e.due(at(5)), Some(at(5)));
        assert_eq!(e.due(at(14)), None);
        assert_eq!(e.due(at(37)), Some(at(15))); // next: 45, past 37
        assert_eq!(e.due(at(44)), None);
        assert_eq!(e.due(at(45)), Some(at(45)));
    }

    #[test]
    fn drawdown_is_measured_from_the_highest_snapshot() {
        let mut e = EquityTracker::new(dec!(100), Span(1));
        assert_eq!(e.snapshot(at(1), dec!(120)), 0.0);
        assert_eq!(e.peak(), dec!(120));
        assert_eq!(e.snapshot(at(2), dec!(90)), 0.25);
        assert_eq!(e.peak(), dec!(120));
        assert_eq!(e.starting(), dec!(100));
    }

    #[test]
    fn the_curve_is_thinned_to_its_limit() {
        let mut e = EquityTracker::new(dec!(1), Span(1));
        for i in 0..(3 * CURVE_POINTS as i64) {
            e.snapshot(at(i), dec!(1));
            assert!(e.curve().len() <= CURVE_POINTS);
        }
        let last = e.curve().last().unwrap().0;
        assert_eq!(last, at(3 * CURVE_POINTS as i64 - 1));
    }
}
