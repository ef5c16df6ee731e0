//! The general v2 readers: `book`, `trade`, `ticker`, `status` and `instrument` messages in
//! any key order and layout. Each data element is first offered to the compact reader of
//! [`super::compact`] (Kraken's exact layout); anything else is read key by key here, which
//! also names the error of a malformed element.

use std::sync::Arc;

use serde_json::Value;

use super::compact::read_v2_level_compact;
use super::{
    FeedDecoder, FeedNotice, Fields, ParsedBook, Skip, malformed, read_decimal, read_rfc3339, system_status,
};
use crate::core::instrument::Instrument;
use crate::core::kraken::instruments::instrument_from_v2;
use crate::core::kraken::scan::{JStr, Scan};
use crate::core::market::{Level, Levels, MarketEvent, Side, TickerEvent, TradeEvent};
use crate::core::time::EventTime;

// Keys in the order Kraken (and `record`) write them: the scanner tries the expected key
// first (`Scan::key_hint`) and reads any other layout the general way.
/// A v2 book data element's keys.
const BOOK_KEYS: [&str; 5] = ["symbol", "bids", "asks", "checksum", "timestamp"];
/// A v2 trade's keys.
const TRADE_KEYS: [&str; 7] = ["symbol", "side", "price", "qty", "ord_type", "trade_id", "timestamp"];
/// A v2 ticker's keys.
const TICKER_KEYS: [&str; 13] = [
    "symbol",
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
    "last",
    "volume",
    "vwap",
    "low",
    "high",
    "change",
    "change_pct",
    "timestamp",
];

impl FeedDecoder {
    pub(super) fn decode_v2_book(
        &mut self,
        f: &Fields<'_>,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let snapshot = match f.str("type") {
            Some("snapshot") => true,
            Some("update") => false,
            Some(t) => return Err(malformed(format!("book: unknown type {t:?}"))),
            None => return Err(malformed("book: message without `type`")),
        };
        let data = f.get("data").ok_or_else(|| malformed("book: message without `data`"))?;
        let mut s = Scan::new(data);
        self.parse_v2_book_data(&mut s)?;
        self.apply_pending_books(snapshot, events, notices);
        Ok(())
    }

    /// Parses a v2 book `data` array into `self.pending` (nothing applied yet).
    pub(super) fn parse_v2_book_data(&mut self, s: &mut Scan<'_>) -> Result<(), Skip> {
        self.pending.clear();
        let mut first = true;
        while s.item(&mut first)? {
            if let Some(book) = self.read_book_element_compact(s) {
                self.pending.push(book);
                continue;
            }
            let mut symbol: Option<JStr<'_>> = None;
            let mut bids = Levels::new();
            let mut asks = Levels::new();
            let mut checksum = None;
            let mut time = None;
            let mut k_first = true;
            let mut n = 0;
            while let Some(k) = s.key_hint(&mut k_first, BOOK_KEYS.get(n).copied())? {
                n += 1;
                match k.raw {
                    "symbol" => symbol = Some(s.str()?),
                    "bids" => read_v2_levels(s, &mut bids)?,
                    "asks" => read_v2_levels(s, &mut asks)?,
                    "checksum" => {
                        let c = s.u64()?;
                        checksum = Some(
                            u32::try_from(c)
                                .map_err(|_| malformed(format!("book: checksum {c} above u32")))?,
                        );
                    }
                    "timestamp" => time = Some(read_rfc3339(s, &mut self.timestamps)?),
                    _ => {
                        s.skip()?;
                    }
                }
            }
            let symbol = symbol.ok_or_else(|| malformed("book: data element without `symbol`"))?;
            let symbol = self.intern(&symbol.text());
            self.pending.push(ParsedBook { symbol, bids, asks, checksum, time });
        }
        Ok(())
    }

    /// Applies the parsed elements of a well-formed frame.
    pub(super) fn apply_pending_books(
        &mut self,
        snapshot: bool,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) {
        let mut pending = std::mem::take(&mut self.pending);
        for p in pending.drain(..) {
            self.apply_book(&p.symbol, snapshot, p.bids, p.asks, p.checksum, p.time, false, events, notices);
        }
        // Keep the buffer's capacity for the next frame.
        self.pending = pending;
    }

    pub(super) fn decode_v2_trade(
        &mut self,
        f: &Fields<'_>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let data = f.get("data").ok_or_else(|| malformed("trade: message without `data`"))?;
        let mark = events.len();
        let latest = self.parse_v2_trade_data(&mut Scan::new(data), events)?;
        self.finish_trades(events.len() - mark, latest);
        Ok(())
    }

    /// Counts the trades of a well-formed frame and advances the clock to the latest.
    #[inline]
    pub(super) fn finish_trades(&mut self, n: usize, latest: EventTime) {
        self.counters.events += n as u64;
        self.advance(latest);
    }

    /// Parses a v2 trade `data` array, pushing one event per trade; returns the latest time.
    /// On error the caller (`decode`) drops the events pushed so far.
    pub(super) fn parse_v2_trade_data(
        &mut self,
        s: &mut Scan<'_>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<EventTime, Skip> {
        let mut latest = EventTime::ZERO;
        let mut first = true;
        while s.item(&mut first)? {
            if let Some(trade) = self.read_trade_element_compact(s) {
                latest = latest.max(trade.time);
                events.push(MarketEvent::Trade(trade));
                continue;
            }
            let (mut symbol, mut side, mut price, mut qty, mut id, mut time, mut market) =
                (None, None, None, None, 0u64, None, false);
            let mut k_first = true;
            let mut n = 0;
            while let Some(k) = s.key_hint(&mut k_first, TRADE_KEYS.get(n).copied())? {
                n += 1;
                match k.raw {
                    "symbol" => symbol = Some(s.str()?),
                    "side" => {
                        side = Some(match s.str()?.raw {
                            "buy" => Side::Buy,
                            "sell" => Side::Sell,
                            other => return Err(malformed(format!("trade: unknown side {other:?}"))),
                        })
                    }
                    "price" => price = Some(read_decimal(s, "trade price")?),
                    "qty" => qty = Some(read_decimal(s, "trade qty")?),
                    "ord_type" => market = s.str()?.is("market"),
                    "trade_id" => id = s.u64()?,
                    "timestamp" => time = Some(read_rfc3339(s, &mut self.timestamps)?),
                    _ => {
                        s.skip()?;
                    }
                }
            }
            let (Some(symbol), Some(side), Some(price), Some(qty)) = (symbol, side, price, qty) else {
                return Err(malformed("trade: element needs symbol, side, price and qty"));
            };
            let time = time.unwrap_or(self.last_time);
            latest = latest.max(time);
            let symbol = self.intern(&symbol.text());
            events.push(MarketEvent::Trade(TradeEvent {
                symbol,
                time,
                side,
                price,
                qty,
                trade_id: id,
                market_order: market,
            }));
        }
        Ok(latest)
    }

    pub(super) fn decode_v2_ticker(
        &mut self,
        f: &Fields<'_>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let data = f.get("data").ok_or_else(|| malformed("ticker: message without `data`"))?;
        let latest = self.parse_v2_ticker_data(&mut Scan::new(data), events)?;
        self.advance(latest);
        Ok(())
    }

    /// Parses a v2 ticker `data` array, pushing one event per element; returns the latest
    /// time (the caller advances the clock once the frame has proved well-formed).
    pub(super) fn parse_v2_ticker_data(
        &mut self,
        s: &mut Scan<'_>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<EventTime, Skip> {
        let mut latest = EventTime::ZERO;
        let mut first = true;
        while s.item(&mut first)? {
            if let Some(ticker) = self.read_ticker_element_compact(s) {
                latest = latest.max(ticker.time);
                events.push(MarketEvent::Ticker(ticker));
                continue;
            }
            let (mut symbol, mut bid, mut ask, mut last, mut volume, mut vwap, mut time) =
                (None, None, None, None, None, None, None);
            let mut k_first = true;
            let mut n = 0;
            while let Some(k) = s.key_hint(&mut k_first, TICKER_KEYS.get(n).copied())? {
                n += 1;
                match k.raw {
                    "symbol" => symbol = Some(s.str()?),
                    "bid" => bid = Some(read_decimal(s, "ticker bid")?),
                    "ask" => ask = Some(read_decimal(s, "ticker ask")?),
                    "last" => last = Some(read_decimal(s, "ticker last")?),
                    "volume" => volume = Some(read_decimal(s, "ticker volume")?),
                    "vwap" => vwap = Some(read_decimal(s, "ticker vwap")?),
                    "timestamp" => time = Some(read_rfc3339(s, &mut self.timestamps)?),
                    _ => {
                        s.skip()?;
                    }
                }
            }
            let (Some(symbol), Some(bid), Some(ask), Some(last), Some(volume), Some(vwap)) =
                (symbol, bid, ask, last, volume, vwap)
            else {
                return Err(malformed("ticker: element needs symbol, bid, ask, last, volume and vwap"));
            };
            let time = time.unwrap_or(self.last_time);
            latest = latest.max(time);
            let symbol = self.intern(&symbol.text());
            events.push(MarketEvent::Ticker(TickerEvent { symbol, time, bid, ask, last, volume, vwap }));
        }
        Ok(latest)
    }

    pub(super) fn decode_v2_status(
        &mut self,
        f: &Fields<'_>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let data: Value = serde_json::from_str(f.get("data").unwrap_or("[]"))
            .map_err(|e| malformed(format!("status: {e}")))?;
        let items = data.as_array().ok_or_else(|| malformed("status: `data` must be an array"))?;
        for item in items {
            let system =
                item.get("system").and_then(Value::as_str).ok_or_else(|| malformed("status: no `system`"))?;
            events.push(MarketEvent::Status { time: self.last_time, system: system_status(system) });
        }
        Ok(())
    }

    pub(super) fn decode_v2_instrument(
        &mut self,
        f: &Fields<'_>,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let data: Value =
            serde_json::from_str(f.get("data").ok_or_else(|| malformed("instrument: no `data`"))?)
                .map_err(|e| malformed(format!("instrument: {e}")))?;
        let pairs = data.get("pairs").and_then(Value::as_array);
        let mut first_error = None;
        for p in pairs.into_iter().flatten() {
            match instrument_from_v2(p) {
                Ok(i) => {
                    let i = Arc::new(i);
                    self.store_instrument(i.clone());
                    events.push(MarketEvent::Instrument { instrument: i, time: self.last_time });
                }
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        // Good pairs are kept; a bad pair is reported (and counted) without dropping them.
        if let Some(reason) = first_error {
            self.counters.malformed += 1;
            notices.push(FeedNotice::Malformed { reason });
        }
        Ok(())
    }

    pub(super) fn store_instrument(&mut self, i: Arc<Instrument>) {
        let sym = self.intern(&i.symbol);
        if let Some(pb) = self.books.get_mut(&sym)
            && !pb.v1
        {
            pb.book.set_precision(Some(i.price_precision), Some(i.qty_precision));
        }
        self.instruments.insert(sym, i);
    }
}

/// v2 levels: `[{"price":29430.2,"qty":0.18967538}, …]`.
fn read_v2_levels(s: &mut Scan<'_>, out: &mut Levels) -> Result<(), Skip> {
    let mut first = true;
    while s.item(&mut first)? {
        if let Some(level) = read_v2_level_compact(s) {
            out.push(level);
            continue;
        }
        let (mut price, mut qty) = (None, None);
        let mut k_first = true;
        while let Some(k) = s.key(&mut k_first)? {
            match k.raw {
                "price" => price = Some(read_decimal(s, "book price")?),
                "qty" => qty = Some(read_decimal(s, "book qty")?),
                _ => {
                    s.skip()?;
                }
            }
        }
        match (price, qty) {
            (Some(price), Some(qty)) if price.is_sign_positive() && qty.is_sign_positive() => {
                out.push(Level { price, qty })
            }
            (Some(_), Some(_)) => return Err(malformed("book: negative price or qty")),
            _ => return Err(malformed("book: level needs price and qty")),
        }
    }
    Ok(())
}
