//! The fill model's market side: the paper exchange's own copy of each pair's L2 book, the
//! liquidity our own fills have already consumed, and the queue-position rules for resting
//! orders. docs/fill-model.md explains the model and what it leaves out.
//!
//! Part of the paper execution core (`core::execution`), which owns the orders and decides
//! fills; this file only answers "what is displayed and still available" and "how much of a
//! printed trade reaches an order with this much queue ahead".

use std::cell::Cell;
use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::core::book::L2Book;
use crate::core::market::{BookEvent, Side, TradeEvent};
use crate::core::money::{Price, Qty};
use crate::core::time::EventTime;

/// Depth used before the first snapshot says how deep the subscription is.
const DEFAULT_DEPTH: usize = 1000;

/// One pair's book as the paper exchange sees it.
///
/// `consumed` is what our own taker fills took from a displayed level: it stays consumed
/// until a book message changes that level (Kraken then tells us the level's new total,
/// which already reflects whatever really traded there).
#[derive(Clone, Debug)]
pub struct PairBook {
    book: L2Book,
    consumed: BTreeMap<(Side, Price), Qty>,
    /// False until the first snapshot and after `BookInvalid`, until the next snapshot.
    pub valid: bool,
    /// Event time of the snapshot that made the book valid.
    pub valid_since: EventTime,
    /// Sequence number of the last book event applied (cited by fills).
    pub seq: u64,
    /// The displayed touch (best bid, best ask), kept up to date by `apply`, and its mid,
    /// computed when first read after the touch changed: marks and equity read it again and
    /// again, most pairs' mids are never read between two changes.
    touch: Touch,
}

/// Best bid, best ask and their mid `(bid + ask) / 2` (when both exist).
#[derive(Clone, Debug, Default)]
struct Touch {
    bid: Option<Price>,
    ask: Option<Price>,
    /// `None` until computed for this touch.
    mid: Cell<Option<Option<Price>>>,
}

/// The same decimal bit for bit (value and scale): a mid computed from `100.0` prints
/// differently from one computed from `100.00`, so numeric equality is not enough.
fn same_bits(a: Option<Price>, b: Option<Price>) -> bool {
    a.map(|d| d.serialize()) == b.map(|d| d.serialize())
}

impl Default for PairBook {
    fn default() -> Self {
        PairBook {
            book: L2Book::without_digit_cache(DEFAULT_DEPTH),
            consumed: BTreeMap::new(),
            valid: false,
            valid_since: EventTime::ZERO,
            seq: 0,
            touch: Touch::default(),
        }
    }
}

impl PairBook {
    /// Applies a verified book message (snapshot replaces; update applies levels in order,
    /// qty 0 deletes, then cuts to depth). The levels an update touched are its own
    /// `bids` and `asks`. Returns whether the touch (best bid or ask price) changed.
    pub fn apply(&mut self, seq: u64, ev: &BookEvent) -> bool {
        if ev.snapshot {
            let depth = usize::from(ev.depth.max(1));
            if depth != self.book.depth() {
                self.book = L2Book::without_digit_cache(depth);
            } else {
                self.book.clear();
            }
            self.consumed.clear();
            self.valid = true;
            self.valid_since = ev.time;
        }
        for (side, levels) in [(Side::Buy, &ev.bids), (Side::Sell, &ev.asks)] {
            for l in levels {
                self.book.apply(side, l.price, l.qty);
                if !ev.snapshot && !self.consumed.is_empty() {
                    self.consumed.remove(&(side, l.price));
                }
            }
        }
        self.book.truncate();
        self.seq = seq;
        let (bid, ask) = (self.book.best_bid().map(|l| l.price), self.book.best_ask().map(|l| l.price));
        if same_bits(bid, self.touch.bid) && same_bits(ask, self.touch.ask) {
            return false;
        }
        self.touch = Touch { bid, ask, mid: Cell::new(None) };
        true
    }

    /// Marks the book untrusted until the next snapshot.
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    /// Levels of one book side (`Buy` = bids), best first: `(price, displayed, available)`,
    /// available = displayed minus what we consumed there.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = (Price, Qty, Qty)> + '_ {
        self.book.levels(side).map(move |l| {
            let used = self.consumed.get(&(side, l.price)).copied().unwrap_or_default();
            (l.price, l.qty, (l.qty - used).max(Decimal::ZERO))
        })
    }

    /// Records that our fills took `qty` from the displayed level `(side, price)`.
    pub fn consume(&mut self, side: Side, price: Price, qty: Qty) {
        *self.consumed.entry((side, price)).or_default() += qty;
    }

    /// Displayed quantity at `price` on `side` (0 when no level).
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        self.book.qty_at(side, price)
    }

    /// True when `price` lies within the displayed levels of `side` (between its best and
    /// worst level): an absent level there really is empty, beyond it we cannot know.
    pub fn covers(&self, side: Side, price: Price) -> bool {
        let mut it = self.book.levels(side);
        let Some(best) = it.next() else { return false };
        let worst = it.last().map(|l| l.price).unwrap_or(best.price);
        match side {
            Side::Buy => price <= best.price && price >= worst,
            Side::Sell => price >= best.price && price <= worst,
        }
    }

    /// Best displayed bid price.
    pub fn bid(&self) -> Option<Price> {
        self.touch.bid
    }

    /// Best displayed ask price.
    pub fn ask(&self) -> Option<Price> {
        self.touch.ask
    }

    /// Mid of the displayed touch.
    pub fn mid(&self) -> Option<Price> {
        if let Some(mid) = self.touch.mid.get() {
            return mid;
        }
        let mid = match (self.touch.bid, self.touch.ask) {
            (Some(b), Some(a)) => Some((b + a) / Decimal::TWO),
            _ => None,
        };
        self.touch.mid.set(Some(mid));
        mid
    }
}

/// How a printed trade relates to a resting order at `our_price`: `Some(true)` when it
/// printed strictly through our price, `Some(false)` when it printed at our price on our side
/// (a sell taker hitting bids for our buy), `None` when it cannot reach us.
pub fn trade_reaches(order_side: Side, our_price: Price, trade: &TradeEvent) -> Option<bool> {
    match order_side {
        Side::Buy if trade.price < our_price => Some(true),
        Side::Buy if trade.price == our_price && trade.side == Side::Sell => Some(false),
        Side::Sell if trade.price > our_price => Some(true),
        Side::Sell if trade.price == our_price && trade.side == Side::Buy => Some(false),
        _ => None,
    }
}

/// Splits the part of a trade not yet allocated (`left`) between the queue ahead of a resting
/// order and the order: returns `(eaten_from_queue, available_to_us)`. The queue ahead is
/// served first; with `fill_at_touch` the queue is ignored.
pub fn split_trade(left: Qty, queue_ahead: Qty, fill_at_touch: bool) -> (Qty, Qty) {
    if fill_at_touch {
        return (Decimal::ZERO, left);
    }
    let eaten = queue_ahead.min(left);
    (eaten, left - eaten)
}

/// Queue ahead after the displayed size at our level changed to `displayed`: size removed
/// from the level is assumed to have been ahead of us (cancels ahead, or trades already
/// counted), size added joins behind us, so the queue can only shrink to the displayed size.
pub fn queue_after_level_change(queue_ahead: Qty, displayed: Qty) -> Qty {
    queue_ahead.min(displayed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::market::{Level, TopOfBook};
    use rust_decimal_macros::dec;

    fn ev(snapshot: bool, bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) -> BookEvent {
        let lv = |v: &[(Decimal, Decimal)]| v.iter().map(|&(price, qty)| Level { price, qty }).collect();
        BookEvent {
            symbol: "BTC/USD".into(),
            time: EventTime::from_micros(1),
            snapshot,
            depth: 3,
            bids: lv(bids),
            asks: lv(asks),
            top: TopOfBook::default(),
        }
    }

    #[test]
    fn consumed_liquidity_stays_until_the_level_changes() {
        let mut b = PairBook::default();
        b.apply(1, &ev(true, &[(dec!(99), dec!(1))], &[(dec!(100), dec!(2)), (dec!(101), dec!(3))]));
        b.consume(Side::Sell, dec!(100), dec!(1.5));
        let first = b.levels(Side::Sell).next().unwrap();
        assert_eq!(first, (dec!(100), dec!(2), dec!(0.5)));
        // An update elsewhere keeps the consumption…
        b.apply(2, &ev(false, &[], &[(dec!(101), dec!(4))]));
        assert_eq!(b.levels(Side::Sell).next().unwrap().2, dec!(0.5));
        // …an update at that level resets it (the new total is the truth).
        b.apply(3, &ev(false, &[], &[(dec!(100), dec!(1.8))]));
        assert_eq!(b.levels(Side::Sell).next().unwrap(), (dec!(100), dec!(1.8), dec!(1.8)));
    }

    #[test]
    fn updates_cut_to_depth_and_delete_on_zero() {
        let mut b = PairBook::default();
        b.apply(1, &ev(true, &[(dec!(99), dec!(1)), (dec!(98), dec!(1)), (dec!(97), dec!(1))], &[]));
        // Insert 99.5 (pushes 97 out at depth 3), delete 98.
        b.apply(2, &ev(false, &[(dec!(99.5), dec!(2)), (dec!(98), dec!(0))], &[]));
        let prices: Vec<_> = b.levels(Side::Buy).map(|l| l.0).collect();
        assert_eq!(prices, vec![dec!(99.5), dec!(99), dec!(97)]);
        assert!(b.covers(Side::Buy, dec!(98)));
        assert!(!b.covers(Side::Buy, dec!(96)));
    }

    #[test]
    fn touch_and_mid_follow_the_book_digit_for_digit() {
        let mut b = PairBook::default();
        // What the mid must be: (best bid + best ask) / 2 of the levels, same digits.
        let expected = |b: &PairBook| {
            let best = |side| b.levels(side).next().map(|l| l.0);
            match (best(Side::Buy), best(Side::Sell)) {
                (Some(bid), Some(ask)) => Some(((bid + ask) / Decimal::TWO).to_string()),
                _ => None,
            }
        };
        assert!(b.apply(1, &ev(true, &[(dec!(99), dec!(1))], &[(dec!(100), dec!(2))])));
        assert_eq!(b.mid(), Some(dec!(99.5)));
        // A deeper level leaves the touch alone.
        assert!(!b.apply(2, &ev(false, &[(dec!(98), dec!(1))], &[])));
        // A better bid with more digits: a new touch, the mid carries the digits.
        assert!(b.apply(3, &ev(false, &[(dec!(99.10), dec!(1))], &[])));
        assert_eq!(b.mid().map(|m| m.to_string()), expected(&b));
        assert_eq!(b.mid().map(|m| m.to_string()), Some("99.55".to_string()));
        // One side emptied: no mid.
        assert!(b.apply(4, &ev(false, &[], &[(dec!(100), dec!(0))])));
        assert_eq!((b.bid(), b.ask(), b.mid()), (Some(dec!(99.10)), None, None));
        // A snapshot replaces everything.
        assert!(b.apply(5, &ev(true, &[(dec!(50), dec!(1))], &[(dec!(51.5), dec!(1))])));
        assert_eq!(b.mid().map(|m| m.to_string()), expected(&b));
    }

    #[test]
    fn queue_is_served_before_us() {
        assert_eq!(split_trade(dec!(3), dec!(2), false), (dec!(2), dec!(1)));
        assert_eq!(split_trade(dec!(1), dec!(2), false), (dec!(1), dec!(0)));
        assert_eq!(split_trade(dec!(1), dec!(2), true), (dec!(0), dec!(1)));
        assert_eq!(queue_after_level_change(dec!(5), dec!(3)), dec!(3));
        assert_eq!(queue_after_level_change(dec!(2), dec!(3)), dec!(2));
    }

    #[test]
    fn only_trades_through_or_at_our_side_reach_us() {
        let t = |price, side| TradeEvent {
            symbol: "BTC/USD".into(),
            time: EventTime::ZERO,
            side,
            price,
            qty: dec!(1),
            trade_id: 1,
            market_order: true,
        };
        assert_eq!(trade_reaches(Side::Buy, dec!(100), &t(dec!(99.9), Side::Buy)), Some(true));
        assert_eq!(trade_reaches(Side::Buy, dec!(100), &t(dec!(100), Side::Sell)), Some(false));
        assert_eq!(trade_reaches(Side::Buy, dec!(100), &t(dec!(100), Side::Buy)), None);
        assert_eq!(trade_reaches(Side::Sell, dec!(100), &t(dec!(100.1), Side::Sell)), Some(true));
        assert_eq!(trade_reaches(Side::Sell, dec!(100), &t(dec!(99), Side::Buy)), None);
    }
}
