//! The L2 order book and Kraken's CRC32 book checksum.
//!
//! Both sides are sorted vectors, best level first, so the top ten levels the checksum
//! covers are a slice. Each level keeps the checksum digits of its price and quantity,
//! computed once when the level is written; the checksum then only concatenates cached
//! digits and runs CRC32 over them, with no allocation after warm-up; the CRC of the asks'
//! half (first in the string) is kept while the asks are unchanged, so an update of bids
//! only runs the CRC over the bids, and the bids' digits are kept while the bids are. Books that never
//! verify a checksum (the paper exchange's copies) skip the cache.
//!
//! Checksum rule (docs: Kraken "Spot Websockets (v2) Book Checksum", see
//! shared/kraken/book-checksum.md): asks ascending then bids descending, the ten best of
//! each; for each level the price then the quantity, each written with exactly the pair's
//! precision, the `.` removed and leading zeros stripped; CRC-32 (IEEE) of the ASCII string.
//! With no precision given, the value's own scale is used (v1 sends fixed-width strings).

use rust_decimal::Decimal;

use super::market::{Level, Side, TopOfBook};
use super::money::{Price, Qty};

/// Levels the checksum covers on each side.
pub const CHECKSUM_LEVELS: usize = 10;

/// Most digits one value can have (a `Decimal` mantissa has at most 29).
const DIGITS_MAX: usize = 30;

/// Scratch bytes for one side's half of a checksum: the digits of 10 levels × 2 values,
/// plus the spare room the last fixed-size copy writes past its digits.
const CHECKSUM_SCRATCH: usize = (2 * CHECKSUM_LEVELS + 1) * DIGITS_MAX;

/// `"00" "01" … "99"`: the two ASCII digits of each number below 100.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        t[2 * n] = b'0' + (n / 10) as u8;
        t[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    t
};

/// The digits of a decimal as the checksum writes them (no dot, no leading zeros).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Digits {
    len: u8,
    bytes: [u8; DIGITS_MAX],
}

impl Digits {
    const EMPTY: Digits = Digits { len: 0, bytes: [0; DIGITS_MAX] };

    /// Digits of `value` written with `precision` decimals (or its own scale).
    fn of(value: Decimal, precision: Option<u32>) -> Digits {
        let mut v = value;
        if let Some(p) = precision
            && v.scale() < p
        {
            v.rescale(p);
        }
        let m = v.mantissa().unsigned_abs();
        let mut out = Digits::EMPTY;
        if let Ok(mut small) = u64::try_from(m) {
            // Written in place from the last digit back, two digits per division.
            let mut i = decimal_len(small);
            out.len = i as u8;
            while small >= 100 {
                let pair = (small % 100) as usize * 2;
                small /= 100;
                i -= 2;
                out.bytes[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
            }
            if small >= 10 {
                let pair = small as usize * 2;
                out.bytes[..2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
            } else if small > 0 {
                out.bytes[0] = b'0' + small as u8;
            }
            return out;
        }
        let mut tmp = [0u8; 40];
        let mut i = tmp.len();
        let mut big = m;
        while big > 0 {
            i -= 1;
            tmp[i] = b'0' + (big % 10) as u8;
            big /= 10;
        }
        let n = (tmp.len() - i).min(out.bytes.len());
        out.bytes[..n].copy_from_slice(&tmp[i..i + n]);
        out.len = n as u8;
        out
    }
}

/// How many decimal digits `n` has (none for 0).
#[inline]
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(0, |l| l as usize + 1)
}

/// One level as the book stores it.
#[derive(Copy, Clone, Debug)]
struct BookLevel {
    price: Price,
    qty: Qty,
    price_digits: Digits,
    qty_digits: Digits,
}

/// An L2 book for one pair: both sides sorted best first, cut to a depth.
#[derive(Clone, Debug)]
pub struct L2Book {
    depth: usize,
    price_precision: Option<u32>,
    qty_precision: Option<u32>,
    bids: Vec<BookLevel>,
    asks: Vec<BookLevel>,
    /// Checksum digits of the ten best asks and of the ten best bids (scratch buffers).
    ask_digits: Vec<u8>,
    bid_digits: Vec<u8>,
    /// Whether levels cache their checksum digits (false for books that never verify a
    /// checksum, such as the paper exchange's copy: [`Self::checksum`] then writes them).
    cache_digits: bool,
    /// CRC32 of the ask half of the checksum string while the asks are unchanged (the asks
    /// come first, so an update of bids only runs the CRC over the bids).
    asks_crc: Option<u32>,
    /// Length of the bids' digits in `bid_digits` while the bids are unchanged.
    bids_written: Option<usize>,
}

impl L2Book {
    /// An empty book holding at most `depth` levels per side; checksum digits are written
    /// with the given precisions (None: each value's own scale, as for v1 strings).
    pub fn new(depth: usize, price_precision: Option<u32>, qty_precision: Option<u32>) -> Self {
        L2Book {
            depth: depth.max(1),
            price_precision,
            qty_precision,
            bids: Vec::with_capacity(depth.min(1024) + 4),
            asks: Vec::with_capacity(depth.min(1024) + 4),
            ask_digits: vec![0; CHECKSUM_SCRATCH],
            bid_digits: vec![0; CHECKSUM_SCRATCH],
            bids_written: None,
            cache_digits: true,
            asks_crc: None,
        }
    }

    /// A book that keeps no checksum digits per level, for copies that never verify a
    /// checksum (the paper exchange's books): cheaper updates, [`Self::checksum`] still right.
    pub fn without_digit_cache(depth: usize) -> Self {
        L2Book { cache_digits: false, ..L2Book::new(depth, None, None) }
    }

    /// Maximum levels per side.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Changes the precisions used for checksum digits (recomputes cached digits).
    pub fn set_precision(&mut self, price_precision: Option<u32>, qty_precision: Option<u32>) {
        if (price_precision, qty_precision) == (self.price_precision, self.qty_precision) {
            return;
        }
        self.price_precision = price_precision;
        self.qty_precision = qty_precision;
        self.asks_crc = None;
        self.bids_written = None;
        if !self.cache_digits {
            return;
        }
        for l in self.bids.iter_mut().chain(self.asks.iter_mut()) {
            l.price_digits = Digits::of(l.price, price_precision);
            l.qty_digits = Digits::of(l.qty, qty_precision);
        }
    }

    /// Removes every level.
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.asks_crc = None;
        self.bids_written = None;
    }

    /// Applies one level: qty 0 deletes the price (a delete for an absent price is ignored),
    /// otherwise the qty becomes the level's total. Does not truncate; call [`Self::truncate`]
    /// after the whole message.
    pub fn apply(&mut self, side: Side, price: Price, qty: Qty) {
        let (levels, pp, qp) = match side {
            Side::Buy => {
                self.bids_written = None;
                (&mut self.bids, self.price_precision, self.qty_precision)
            }
            Side::Sell => {
                self.asks_crc = None;
                (&mut self.asks, self.price_precision, self.qty_precision)
            }
        };
        let cache = self.cache_digits;
        // Bids are sorted descending, asks ascending: search with the matching order.
        let found = match side {
            Side::Buy => levels.binary_search_by(|l| cmp_price(price, l.price)),
            Side::Sell => levels.binary_search_by(|l| cmp_price(l.price, price)),
        };
        match (found, qty.is_zero()) {
            (Ok(i), true) => {
                levels.remove(i);
            }
            (Err(_), true) => {}
            (Ok(i), false) => {
                let l = &mut levels[i];
                // Same bits: same value written with the same scale (neither is zero here).
                if l.qty.serialize() != qty.serialize() {
                    l.qty = qty;
                    if cache {
                        l.qty_digits = Digits::of(qty, qp);
                    }
                }
            }
            (Err(i), false) => {
                levels.insert(
                    i,
                    BookLevel {
                        price,
                        qty,
                        price_digits: if cache { Digits::of(price, pp) } else { Digits::EMPTY },
                        qty_digits: if cache { Digits::of(qty, qp) } else { Digits::EMPTY },
                    },
                );
            }
        }
    }

    /// Cuts both sides to the book's depth (Kraken sends no delete for levels pushed out).
    pub fn truncate(&mut self) {
        if self.bids.len() > self.depth {
            self.bids.truncate(self.depth);
            self.bids_written = None;
        }
        if self.asks.len() > self.depth {
            self.asks.truncate(self.depth);
            self.asks_crc = None;
        }
    }

    /// Kraken's CRC32 over the ten best asks then the ten best bids.
    pub fn checksum(&mut self) -> u32 {
        let (pp, qp, cache) = (self.price_precision, self.qty_precision, self.cache_digits);
        let asks_crc = match self.asks_crc {
            Some(crc) => crc,
            None => {
                let n = write_digits(&self.asks, cache, pp, qp, &mut self.ask_digits);
                let crc = crc32fast::hash(self.ask_digits.get(..n).unwrap_or_default());
                self.asks_crc = Some(crc);
                crc
            }
        };
        let n = match self.bids_written {
            Some(n) => n,
            None => {
                let n = write_digits(&self.bids, cache, pp, qp, &mut self.bid_digits);
                self.bids_written = Some(n);
                n
            }
        };
        let mut crc = crc32fast::Hasher::new_with_initial(asks_crc);
        crc.update(self.bid_digits.get(..n).unwrap_or_default());
        crc.finalize()
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.first().map(|l| Level { price: l.price, qty: l.qty })
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.first().map(|l| Level { price: l.price, qty: l.qty })
    }

    /// Top of book with the summed quantity of the ten best levels per side.
    pub fn top(&self) -> TopOfBook {
        let sum = |v: &[BookLevel]| {
            let top = v.get(..CHECKSUM_LEVELS).unwrap_or(v);
            exact_sum(top).unwrap_or_else(|| top.iter().map(|l| l.qty).sum::<Decimal>())
        };
        TopOfBook {
            bid: self.best_bid(),
            ask: self.best_ask(),
            bid_depth: sum(&self.bids),
            ask_depth: sum(&self.asks),
        }
    }

    /// Levels of one side, best first.
    pub fn levels(&self, side: Side) -> impl ExactSizeIterator<Item = Level> + '_ {
        let v = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        v.iter().map(|l| Level { price: l.price, qty: l.qty })
    }

    /// Displayed quantity at exactly `price` on `side` (0 if no level).
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        let found = match side {
            Side::Buy => self.bids.binary_search_by(|l| price.cmp(&l.price)),
            Side::Sell => self.asks.binary_search_by(|l| l.price.cmp(&price)),
        };
        match (found, side) {
            (Ok(i), Side::Buy) => self.bids[i].qty,
            (Ok(i), Side::Sell) => self.asks[i].qty,
            _ => Decimal::ZERO,
        }
    }

    /// True when best bid ≥ best ask (a book that cannot be right).
    pub fn is_crossed(&self) -> bool {
        matches!((self.bids.first(), self.asks.first()), (Some(b), Some(a)) if b.price >= a.price)
    }

    /// Number of levels on each side `(bids, asks)`.
    pub fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// True when both sides are empty.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }
}

/// Writes the checksum digits of one side's ten best levels to `out`; returns their length.
fn write_digits(
    levels: &[BookLevel],
    cached: bool,
    pp: Option<u32>,
    qp: Option<u32>,
    out: &mut Vec<u8>,
) -> usize {
    // Each value's whole 30-byte digit array is copied (a fixed-size copy, no call) and the
    // write position advances by its length: room for 20 values plus one spare.
    if out.len() != CHECKSUM_SCRATCH {
        out.resize(CHECKSUM_SCRATCH, 0);
    }
    let mut at = 0;
    let mut put = |out: &mut [u8], d: &Digits| {
        if let Some(dst) = out.get_mut(at..at + DIGITS_MAX) {
            dst.copy_from_slice(&d.bytes);
            at += usize::from(d.len);
        }
    };
    for l in levels.iter().take(CHECKSUM_LEVELS) {
        if cached {
            put(out, &l.price_digits);
            put(out, &l.qty_digits);
        } else {
            put(out, &Digits::of(l.price, pp));
            put(out, &Digits::of(l.qty, qp));
        }
    }
    at
}

/// The sign bit of a `Decimal`'s flags word.
const SIGN_BIT: u32 = 1 << 31;

/// `a.cmp(&b)` for prices, comparing mantissas when both are positive with the same scale
/// (the usual case in one book: every price has the pair's precision).
#[inline]
fn cmp_price(a: Price, b: Price) -> std::cmp::Ordering {
    let ((flags_a, mantissa_a), (flags_b, mantissa_b)) = (bit_pattern(a), bit_pattern(b));
    if flags_a == flags_b && flags_a & SIGN_BIT == 0 { mantissa_a.cmp(&mantissa_b) } else { a.cmp(&b) }
}

/// A decimal's bit pattern: its flags word (scale and sign) and its 96-bit mantissa.
#[inline]
fn bit_pattern(d: Decimal) -> (u32, u128) {
    let bits = u128::from_le_bytes(d.serialize());
    (bits as u32, bits >> 32)
}

/// The quantities' sum exactly as `Decimal`'s `Sum` gives it (a fold from zero whose result
/// has the largest scale of its terms), computed on the mantissas: None when a term would
/// not fit (the caller then folds).
fn exact_sum(levels: &[BookLevel]) -> Option<Decimal> {
    // Usually every quantity is positive with the same scale: one pass over their bit
    // patterns (a saturated total is above 2^96 and left to the paths below).
    let flags = levels.first().map_or(0, |l| bit_pattern(l.qty).0);
    if flags & SIGN_BIT == 0 {
        let mut total: u128 = 0;
        if levels.iter().all(|l| {
            let (f, mantissa) = bit_pattern(l.qty);
            total = total.saturating_add(mantissa);
            f == flags
        }) && total < 1u128 << 96
        {
            let scale = (flags >> 16) & 0xFF;
            let word = |shift: u32| (total >> shift) as u32;
            return Some(Decimal::from_parts(word(0), word(32), word(64), false, scale));
        }
    }
    // Same scale, any mantissa.
    let first = levels.first().map_or(0, |l| l.qty.scale());
    let mut same: i128 = 0;
    if levels.iter().all(|l| {
        same += l.qty.mantissa();
        l.qty.scale() == first
    }) {
        // Each term is below 2^96: an i128 holds the sum of any number of them a book holds.
        return (same.unsigned_abs() < 1u128 << 96)
            .then(|| Decimal::try_from_i128_with_scale(same, first).ok())?;
    }
    let scale = levels.iter().map(|l| l.qty.scale()).max().unwrap_or(0);
    let mut total: i128 = 0;
    for l in levels {
        let m = l.qty.mantissa();
        let m = if l.qty.scale() == scale {
            m
        } else {
            m.checked_mul(10i128.checked_pow(scale - l.qty.scale())?)?
        };
        total = total.checked_add(m)?;
    }
    // Within 96 bits no `Decimal` addition along the fold rounds.
    if total.unsigned_abs() >= 1u128 << 96 {
        return None;
    }
    Decimal::try_from_i128_with_scale(total, scale).ok()
}

#[doc(hidden)]
pub mod testdata;

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;
    use crate::core::money::parse_decimal;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    fn book_from(asks: &[(&str, &str)], bids: &[(&str, &str)], pp: Option<u32>, qp: Option<u32>) -> L2Book {
        let mut b = L2Book::new(1000, pp, qp);
        for (p, q) in asks {
            b.apply(Side::Sell, d(p), d(q));
        }
        for (p, q) in bids {
            b.apply(Side::Buy, d(p), d(q));
        }
        b.truncate();
        b
    }

    #[test]
    fn vector_a_kraken_v2_guide() {
        assert_eq!(book_from(A_ASKS, A_BIDS, Some(1), Some(8)).checksum(), A_CHECKSUM);
    }

    fn matic() -> L2Book {
        book_from(B_ASKS, B_BIDS, Some(4), Some(8))
    }

    #[test]
    fn vector_b_and_c_need_padding_to_precision() {
        let mut b = matic();
        assert_eq!(b.checksum(), B_CHECKSUM);
        b.apply(Side::Buy, d(C_BID.0), d(C_BID.1));
        b.truncate();
        assert_eq!(b.checksum(), C_CHECKSUM);
        let mut naive = matic();
        naive.set_precision(None, None);
        assert_eq!(naive.checksum(), B_UNPADDED_CHECKSUM);
    }

    #[test]
    fn vector_d_kraken_v1_guide() {
        let a: Vec<(&str, &str)> = D_ASK_PRICES.iter().map(|p| (*p, D_QTY)).collect();
        let b: Vec<(&str, &str)> = D_BID_PRICES.iter().map(|p| (*p, D_QTY)).collect();
        assert_eq!(book_from(&a, &b, None, None).checksum(), D_CHECKSUM);
    }

    #[test]
    fn vector_e_truncates_to_depth_after_the_message() {
        let mut b = L2Book::new(10, Some(1), Some(8));
        for (p, q) in E_ASKS {
            b.apply(Side::Sell, d(p), d(q));
        }
        for (p, q) in E_BIDS {
            b.apply(Side::Buy, d(p), d(q));
        }
        b.truncate();
        assert_eq!(b.checksum(), E_SNAPSHOT_CHECKSUM);
        for (p, q) in E_UPDATE_ASKS {
            b.apply(Side::Sell, d(p), d(q));
        }
        assert_eq!(b.len().1, 11);
        b.truncate();
        assert_eq!(b.checksum(), E_UPDATE_CHECKSUM);
    }

    #[test]
    fn vector_f_real_v1_book_1000() {
        assert_eq!(book_from(F_ASKS, F_BIDS, None, None).checksum(), F_CHECKSUM);
    }

    #[test]
    fn digits_are_the_value_written_to_precision_without_dot_or_leading_zeros() {
        let mut rng = crate::core::rng::Rng::new(3);
        for _ in 0..20_000 {
            let m = match rng.next_u64() % 4 {
                0 => i128::from(rng.next_u64() % 1000),
                1 => i128::from(rng.next_u64()),
                2 => i128::from(rng.next_u64()) << (rng.next_u64() % 30),
                _ => i128::from(rng.next_u64() % 100_000_000),
            };
            let value = Decimal::from_i128_with_scale(m, (rng.next_u64() % 12) as u32);
            let precision = (!rng.next_u64().is_multiple_of(3)).then(|| (rng.next_u64() % 12) as u32);
            let mut padded = value;
            if let Some(p) = precision
                && padded.scale() < p
            {
                padded.rescale(p);
            }
            let want: String = padded.to_string().chars().filter(|c| *c != '.').collect();
            let want = want.trim_start_matches('0');
            let d = Digits::of(value, precision);
            assert_eq!(&d.bytes[..usize::from(d.len)], want.as_bytes(), "{value} {precision:?}");
        }
    }

    #[test]
    fn price_order_is_decimal_order() {
        let mut rng = crate::core::rng::Rng::new(9);
        let mut value = || {
            let m = i128::from(rng.next_u64() % 2000) - i128::from(rng.next_u64() % 2 * 1000);
            let m = if rng.next_u64().is_multiple_of(10) { m << 70 } else { m };
            Decimal::from_i128_with_scale(m, (rng.next_u64() % 3) as u32)
        };
        for _ in 0..20_000 {
            let (a, b) = (value(), value());
            assert_eq!(cmp_price(a, b), a.cmp(&b), "{a} {b}");
        }
    }

    #[test]
    fn kept_ask_crc_gives_the_checksum_of_a_fresh_book() {
        let mut rng = crate::core::rng::Rng::new(5);
        let mut book = L2Book::new(10, Some(1), Some(8));
        for step in 0..20_000 {
            let side = if rng.next_u64().is_multiple_of(2) { Side::Buy } else { Side::Sell };
            let base = if side == Side::Buy { 1000 } else { 1010 };
            let offset = i64::try_from(rng.next_u64() % 15).unwrap();
            let price = Decimal::new(if side == Side::Buy { base - offset } else { base + offset } * 10, 1);
            let qty = Decimal::new(i64::try_from(rng.next_u64() % 4).unwrap() * 12_500_000, 8);
            book.apply(side, price, qty);
            book.truncate();
            match rng.next_u64() % 500 {
                0 => book.clear(),
                1 => book.set_precision(Some(2), Some(8)),
                2 => book.set_precision(Some(1), Some(8)),
                _ => {}
            }
            let mut fresh = L2Book::new(10, book.price_precision, book.qty_precision);
            for side in [Side::Buy, Side::Sell] {
                for l in book.levels(side) {
                    fresh.apply(side, l.price, l.qty);
                }
            }
            assert_eq!(book.checksum(), fresh.checksum(), "step {step}");
        }
    }

    #[test]
    fn depth_sums_equal_decimal_sums_scale_included() {
        // Mixed scales, zero-padded and huge values: the fast sum must give the same value
        // and the same scale (the scale reaches the journal's text) as folding `Decimal`s.
        let mut rng = crate::core::rng::Rng::new(7);
        let mut fast_sums = 0;
        for _ in 0..4000 {
            let n = (rng.next_u64() % 12) as usize;
            // Half the books have one scale throughout (as a real book does).
            let common = rng.next_u64().is_multiple_of(2).then(|| (rng.next_u64() % 10) as u32);
            let levels: Vec<BookLevel> = (0..n)
                .map(|i| {
                    let scale = common.unwrap_or_else(|| (rng.next_u64() % 10) as u32);
                    let big = rng.next_u64().is_multiple_of(50);
                    let m = if big {
                        i128::from(rng.next_u64()) << 30
                    } else {
                        i128::from(rng.next_u64() % 10_000_000)
                    };
                    let qty = Decimal::from_i128_with_scale(m, scale);
                    let price = Decimal::from(i as u64 + 1);
                    BookLevel { price, qty, price_digits: Digits::EMPTY, qty_digits: Digits::EMPTY }
                })
                .collect();
            let folded = levels.iter().map(|l| l.qty).sum::<Decimal>();
            if let Some(fast) = exact_sum(&levels) {
                assert_eq!((fast, fast.scale()), (folded, folded.scale()), "{levels:?}");
                assert_eq!(fast.to_string(), folded.to_string());
                fast_sums += 1;
            }
        }
        assert!(fast_sums > 3000, "{fast_sums}");
        assert_eq!(exact_sum(&[]), Some(Decimal::ZERO));
    }

    #[test]
    fn book_without_digit_cache_gives_the_same_checksum() {
        // Vector F again (v1 strings, own scale), updated level by level without cached digits.
        let cached =
            book_from(&[("354.80000000", "1.40000000"), ("354.84000000", "6.88212752")], &[], None, None);
        let mut plain = L2Book::without_digit_cache(1000);
        plain.apply(Side::Sell, d("354.84000000"), d("1.00000000"));
        plain.apply(Side::Sell, d("354.80000000"), d("1.40000000"));
        plain.apply(Side::Sell, d("354.84000000"), d("6.88212752"));
        plain.apply(Side::Sell, d("354.90000000"), d("2.00000000"));
        plain.apply(Side::Sell, d("354.90000000"), d("0"));
        let mut cached = cached;
        assert_eq!(plain.checksum(), cached.checksum());
        assert_ne!(plain.checksum(), crc32fast::hash(b""));
    }

    #[test]
    fn empty_book_checksum_is_crc_of_empty_string() {
        assert_eq!(L2Book::new(10, Some(1), Some(8)).checksum(), 0);
    }

    #[test]
    fn delete_of_absent_level_is_harmless_and_order_is_kept() {
        let mut b = L2Book::new(10, Some(1), Some(8));
        b.apply(Side::Buy, d("100.0"), d("1"));
        b.apply(Side::Buy, d("101.0"), d("2"));
        b.apply(Side::Buy, d("99.0"), d("0"));
        assert_eq!(b.levels(Side::Buy).map(|l| l.price).collect::<Vec<_>>(), vec![d("101.0"), d("100.0")]);
        assert_eq!(b.qty_at(Side::Buy, d("100.0")), d("1"));
        assert!(!b.is_crossed());
        b.apply(Side::Sell, d("101.5"), d("1"));
        assert!(!b.is_crossed());
        b.apply(Side::Sell, d("101.0"), d("1"));
        assert!(b.is_crossed());
    }
}
