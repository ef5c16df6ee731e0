//! Book updates of a simulated pair that no trade caused: the initial book, re-pricing when
//! the fair price leaves the band around the mid, one-level noise, and topping the window
//! up to its depth.

use super::pair::Pair;
use super::params::LEVEL_SIGMA;
use crate::core::market::Side;

pub(super) fn build_initial_book(p: &mut Pair, depth: usize) {
    let fair = p.fair_ticks();
    let bb = (fair - 0.5).floor().max(1.0) as i64;
    let (mut b, mut a) = (bb, bb + 1);
    for i in 0..depth {
        if i > 0 {
            b -= p.draw_gap();
            a += p.draw_gap();
        }
        if b > 0 {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Buy, b, lots);
        }
        let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
        p.apply(Side::Sell, a, lots);
    }
    p.bids.truncate(depth);
    p.asks.truncate(depth);
    p.book.truncate();
    p.checksum = p.book.checksum();
    p.upd_bids.clear();
    p.upd_asks.clear();
}

/// One book update that is not caused by a trade: a re-price when the fair price left the
/// band around the mid, else a noise change of one level.
pub(super) fn book_event(p: &mut Pair, depth: usize) {
    let (Some(&(bb, _)), Some(&(ba, _))) = (p.bids.first(), p.asks.first()) else {
        // A side is empty (cannot happen after the initial book, but never leave it so).
        top_up(p, depth);
        return;
    };
    let fair = p.fair_ticks();
    let mid = (bb + ba) as f64 / 2.0;
    let dev = fair - mid;
    if dev.abs() > p.gap_mean.max(1.0) {
        reprice(p, fair, dev > 0.0);
    } else {
        noise(p, bb, ba);
    }
    top_up(p, depth);
}

/// The fair price moved past the band: cancel the levels it passed on the side it moved
/// toward and join a new touch on the other side, with a spread of 1–4 ticks.
pub(super) fn reprice(p: &mut Pair, fair: f64, up: bool) {
    let s = p.spread_draw();
    let target_bid = ((fair - s as f64 / 2.0).floor() as i64).max(1);
    let target_ask = target_bid + s;
    if up {
        while let Some(&(a, _)) = p.asks.first() {
            if a >= target_ask {
                break;
            }
            p.apply(Side::Sell, a, 0);
        }
        if p.bids.first().is_none_or(|l| l.0 < target_bid) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Buy, target_bid, lots);
        }
        if p.asks.first().is_none_or(|l| l.0 as f64 > target_ask as f64 + 2.0 * p.gap_mean) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Sell, target_ask, lots);
        }
    } else {
        while let Some(&(b, _)) = p.bids.first() {
            if b <= target_bid {
                break;
            }
            p.apply(Side::Buy, b, 0);
        }
        if p.asks.first().is_none_or(|l| l.0 > target_ask) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Sell, target_ask, lots);
        }
        if p.bids.first().is_none_or(|l| (l.0 as f64) < target_bid as f64 - 2.0 * p.gap_mean) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Buy, target_bid, lots);
        }
    }
}

/// Adds one level at the deep end of `side` (what Kraken sends when a level re-enters the
/// window after one above it went). False when no price is left (a bid would reach 0).
#[inline]
pub(super) fn refill(p: &mut Pair, side: Side) -> bool {
    match p.deep_price(side) {
        Some(px) => {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(side, px, lots);
            true
        }
        None => false,
    }
}

/// Keeps both sides at `depth` levels: the exchange's book is deeper than the window, so a
/// level that leaves the window is replaced in the same message by the next one down.
#[inline]
pub(super) fn top_up(p: &mut Pair, depth: usize) {
    for side in [Side::Buy, Side::Sell] {
        while p.side(side).len() < depth {
            if !refill(p, side) {
                break;
            }
        }
    }
}

/// A one-level change: refill a short side, improve a wide spread, resize, insert between
/// two levels, or cancel a level.
pub(super) fn noise(p: &mut Pair, bb: i64, ba: i64) {
    let side = if p.rng.chance(0.5) { Side::Buy } else { Side::Sell };
    let spread = ba - bb;
    // Market makers close a wide spread quickly (Kraken's BTC/USD spread is one tick at
    // the 90th percentile): quote inside it, on the side the fair price leans toward.
    if spread > 1 && p.rng.chance(if spread > 4 { 0.9 } else { 0.3 }) {
        let s = p.spread_draw().min(spread - 1);
        let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
        if p.fair_ticks() > (bb + ba) as f64 / 2.0 {
            p.apply(Side::Buy, ba - s, lots);
        } else {
            p.apply(Side::Sell, bb + s, lots);
        }
        return;
    }
    let n = p.side(side).len();
    if n == 0 {
        return;
    }
    let rank = (p.rng.exponential(3.0).floor() as usize).min(n - 1);
    let (px, lots) = p.side(side)[rank];
    let u = p.rng.uniform();
    if u < 0.6 || (u >= 0.8 && n <= 2) {
        // Resize: orders added or cancelled at that price.
        let new = if p.rng.chance(0.3) {
            p.draw_lots(p.level_notional, LEVEL_SIGMA)
        } else {
            ((lots as f64) * p.rng.lognormal(1.0, 0.7)).round().clamp(1.0, 1e17) as i64
        };
        p.apply(side, px, if new == lots { lots + 1 } else { new });
    } else if u < 0.8 {
        // Insert between this level and the next one out (or beyond the last).
        let next = p.side(side).get(rank + 1).map(|l| l.0);
        let room = next.map_or(i64::MAX, |q| (q - px).abs() - 1);
        if room < 1 {
            let new = lots + 1 + p.rng.below(lots.unsigned_abs().max(1)) as i64;
            p.apply(side, px, new);
            return;
        }
        let off = if room == i64::MAX { p.draw_gap() } else { 1 + p.rng.below(room as u64) as i64 };
        let new_px = match side {
            Side::Buy => px - off,
            Side::Sell => px + off,
        };
        if new_px > 0 {
            let new = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(side, new_px, new);
        }
    } else {
        p.apply(side, px, 0);
    }
}
