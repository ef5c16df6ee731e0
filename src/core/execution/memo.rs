//! The event path's shortcuts, kept together with the invariant that makes them safe.
//!
//! Most market events change nothing that equity, the order timers or a trade's excursion
//! read, so the paper exchange remembers those results instead of recomputing them:
//!
//! - `Memo::equity`: `equity()` as last computed. Cleared by every change to what it reads:
//!   a balance (fills, margin fees), an instrument, and a new touch or last trade of a pair
//!   whose `PairMemo::valued` is set (only pairs read by the last computation can change it).
//! - `Memo::timers`: `(orders.version(), timer_floor())` at the last timer scan. While the
//!   orders' change counter is unchanged, no timer falls due before the floor (the floor is
//!   at or before every order's timer, whatever the book does meanwhile).
//! - `Memo::positions_changed` and `PairMemo::excursion_at`: a pair's excursion was taken in
//!   at that count of position changes; while no position changed since and the pair's
//!   marks did not move, taking it in again changes no extreme.
//!
//! Invariant: a remembered value equals what a fresh computation would give at any moment
//! the event path reads it. `check_shortcuts` (tests) asserts it after every event of the
//! test rig and of the random sessions; the rig also compares the remembered equity with a
//! fresh one digit for digit.

use std::cell::Cell;

use crate::core::money::Cash;
use crate::core::time::EventTime;
#[cfg(test)]
use rust_decimal::Decimal;

#[cfg(test)]
use super::{PaperExchange, mark_of};

/// What the paper exchange remembers across events to skip work (module doc: the invariant).
#[derive(Default)]
pub(super) struct Memo {
    /// `equity()` as last computed, until what it reads changes: a balance, a pair's touch
    /// or last trade, an instrument (each of those places clears it). Read once per frame
    /// and per view, it changes far less often.
    pub(super) equity: Cell<Option<Cash>>,
    /// `(orders.version(), timer_floor())` as of the last timer scan: while the orders are
    /// unchanged, events before the floor need no scan.
    pub(super) timers: Option<(u64, Option<EventTime>)>,
    /// Bumped by every change to a position or its open trade.
    pub(super) positions_changed: u64,
}

/// What the paper exchange remembers of one pair (module doc: the invariant).
#[derive(Clone, Debug, Default)]
pub(super) struct PairMemo {
    /// Its mark or mid was read since the last computation of equity began: only then can
    /// a new touch or last trade of the pair change the remembered equity.
    pub(super) valued: Cell<bool>,
    /// `positions_changed` when the excursion of the pair's trade was last taken in: while
    /// no position changed since and the pair's marks did not move (every move takes it in
    /// again), taking it in again would change nothing.
    pub(super) excursion_at: Option<u64>,
}

#[cfg(test)]
impl PaperExchange {
    /// What the event path remembers to skip work agrees with what it would compute: the
    /// timer floor lies at or before every order's timer, and the excursion's mark is taken
    /// in already. (The remembered equity is checked against a fresh one by the rig.)
    pub(super) fn check_shortcuts(&self) {
        if let Some((v, floor)) = self.memo.timers
            && v == self.desk.orders.version()
        {
            for o in self.desk.orders.values() {
                self.each_timer(o, false, |t, d| {
                    assert!(
                        floor.is_some_and(|f| f <= t),
                        "order {} {d:?} at {t:?} before floor {floor:?}",
                        o.id
                    )
                });
            }
        }
        // Where the excursion counts as taken in, taking it in again changes no extreme.
        for (pair, st) in &self.markets.pairs {
            if st.memo.excursion_at != Some(self.memo.positions_changed) {
                continue;
            }
            let Some(p) = self.account.positions.get(pair) else { continue };
            let (Some(t), false) = (&p.trade, p.qty.is_zero()) else { continue };
            let Some(mark) = mark_of(st, self.cfg.mark, p.qty > Decimal::ZERO) else { continue };
            let running = t.realized - t.fees + (p.qty * mark - p.basis);
            assert_eq!(t.max_pnl.max(running).serialize(), t.max_pnl.serialize(), "{pair} max_pnl");
            assert_eq!(t.min_pnl.min(running).serialize(), t.min_pnl.serialize(), "{pair} min_pnl");
        }
    }
}
