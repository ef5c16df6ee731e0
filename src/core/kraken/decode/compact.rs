//! Literal readers of Kraken's exact layout: a v2 book, trade or ticker data element written
//! as Kraken writes it (keys in its order, no whitespace, plain decimals) is matched byte for
//! byte, without the general key loop. Each reader gives the general reader's result or None
//! with the cursor unchanged, and the general reader in [`super::v2`] then reads the element.

use super::{FeedDecoder, ParsedBook, read_rfc3339};
use crate::core::instrument::Symbol;
use crate::core::kraken::scan::Scan;
use crate::core::market::{Level, Levels, Side, TickerEvent, TradeEvent};

impl FeedDecoder {
    /// A book data element written exactly as Kraken writes it:
    /// `{"symbol":"…","bids":[…],"asks":[…],"checksum":…}`, with `,"timestamp":"…"` before
    /// the closing brace in updates, levels as [`read_v2_level_compact`] reads them. The
    /// general loop's result; None (cursor unchanged) for anything else, which that loop
    /// then reads.
    #[inline]
    pub(super) fn read_book_element_compact(&mut self, s: &mut Scan<'_>) -> Option<ParsedBook> {
        s.attempt(|s| {
            let symbol = self.read_element_symbol(s)?;
            let bids = s.lit(b",\"bids\":[").then(|| read_v2_levels_compact(s)).flatten()?;
            let asks = s.lit(b",\"asks\":[").then(|| read_v2_levels_compact(s)).flatten()?;
            if !s.lit(b",\"checksum\":") {
                return None;
            }
            let checksum = u32::try_from(s.u64().ok()?).ok()?;
            let time = if s.lit(b",\"timestamp\":") {
                Some(read_rfc3339(s, &mut self.timestamps).ok()?)
            } else {
                None
            };
            if !s.lit(b"}") {
                return None;
            }
            Some(ParsedBook { symbol, bids, asks, checksum: Some(checksum), time })
        })
    }

    /// A ticker data element written exactly as Kraken writes it: `symbol`, `bid`, `bid_qty`,
    /// `ask`, `ask_qty`, `last`, `volume`, `vwap`, `low`, `high`, `change`, `change_pct` in
    /// this order, then an optional `timestamp`; the values kept are plain decimals, the others
    /// numbers. The general loop's result; None (cursor unchanged) for anything else.
    #[inline]
    pub(super) fn read_ticker_element_compact(&mut self, s: &mut Scan<'_>) -> Option<TickerEvent> {
        s.attempt(|s| {
            let symbol = self.read_element_symbol(s)?;
            let bid = keep(s, b",\"bid\":")?;
            pass(s, b",\"bid_qty\":")?;
            let ask = keep(s, b",\"ask\":")?;
            pass(s, b",\"ask_qty\":")?;
            let last = keep(s, b",\"last\":")?;
            let volume = keep(s, b",\"volume\":")?;
            let vwap = keep(s, b",\"vwap\":")?;
            pass(s, b",\"low\":")?;
            pass(s, b",\"high\":")?;
            pass(s, b",\"change\":")?;
            pass(s, b",\"change_pct\":")?;
            let time = if s.lit(b",\"timestamp\":") {
                read_rfc3339(s, &mut self.timestamps).ok()?
            } else {
                self.last_time
            };
            if !s.lit(b"}") {
                return None;
            }
            Some(TickerEvent { symbol, time, bid, ask, last, volume, vwap })
        })
    }

    /// A trade data element written exactly as Kraken writes it: `symbol`, `side`, `price`,
    /// `qty`, `ord_type`, `trade_id`, `timestamp` in this order, price and qty plain decimals.
    /// The general loop's result; None (cursor unchanged) for anything else.
    #[inline]
    pub(super) fn read_trade_element_compact(&mut self, s: &mut Scan<'_>) -> Option<TradeEvent> {
        s.attempt(|s| {
            let symbol = self.read_element_symbol(s)?;
            let side = if s.lit(b",\"side\":\"buy\"") {
                Side::Buy
            } else if s.lit(b",\"side\":\"sell\"") {
                Side::Sell
            } else {
                return None;
            };
            let price = keep(s, b",\"price\":")?;
            let qty = keep(s, b",\"qty\":")?;
            if !s.lit(b",\"ord_type\":") {
                return None;
            }
            let ord_type = s.str().ok().filter(|j| !j.escaped)?;
            if !s.lit(b",\"trade_id\":") {
                return None;
            }
            let trade_id = s.u64().ok()?;
            if !s.lit(b",\"timestamp\":") {
                return None;
            }
            let time = read_rfc3339(s, &mut self.timestamps).ok()?;
            if !s.lit(b"}") {
                return None;
            }
            Some(TradeEvent {
                symbol,
                time,
                side,
                price,
                qty,
                trade_id,
                market_order: ord_type.raw == "market",
            })
        })
    }

    /// A compact element's opening `{"symbol":` and its symbol (a string without escapes),
    /// interned: one of the first symbols is matched in place, any other read and looked up.
    #[inline]
    fn read_element_symbol(&mut self, s: &mut Scan<'_>) -> Option<Symbol> {
        if !s.lit(b"{\"symbol\":") {
            return None;
        }
        if let Some(sym) = self.first_symbols.iter().find(|sym| s.quoted(sym.as_bytes())) {
            return Some(sym.clone());
        }
        let symbol = s.str().ok().filter(|j| !j.escaped)?;
        Some(self.intern(symbol.raw))
    }
}

/// A level written exactly as Kraken writes it, `{"price":<number>,"qty":<number>}` with no
/// whitespace and non-negative values. Anything else leaves the cursor where it was (None)
/// for the general loop, which also names any error.
#[inline]
pub(super) fn read_v2_level_compact(s: &mut Scan<'_>) -> Option<Level> {
    s.attempt(|s| {
        let price = keep(s, b"{\"price\":")?;
        let qty = keep(s, b",\"qty\":")?;
        s.lit(b"}").then_some(Level { price, qty })
    })
}

/// The levels of one side after its `[`, up to and including the `]`, each as
/// [`read_v2_level_compact`] reads it; None for anything else (the caller restores the cursor).
#[inline]
fn read_v2_levels_compact(s: &mut Scan<'_>) -> Option<Levels> {
    let mut side = Levels::new();
    if s.lit(b"]") {
        return Some(side);
    }
    loop {
        side.push(read_v2_level_compact(s)?);
        if s.lit(b"]") {
            return Some(side);
        }
        if !s.lit(b",") {
            return None;
        }
    }
}

/// `key` then a plain decimal (a kept value of a compact element).
#[inline]
fn keep(s: &mut Scan<'_>, key: &[u8]) -> Option<rust_decimal::Decimal> {
    if s.lit(key) { s.plain_decimal() } else { None }
}

/// `key` then any number (a value a compact element does not keep).
#[inline]
fn pass(s: &mut Scan<'_>, key: &[u8]) -> Option<()> {
    (s.lit(key) && (s.skip_plain_number() || s.number().is_ok())).then_some(())
}
