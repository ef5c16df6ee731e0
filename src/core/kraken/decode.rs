//! Frame decoder: Kraken WS v2 frames (and v1 arrays, and the `record` wrapper) into
//! [`MarketEvent`]s, with every book checksum verified. OWNER: feed helper.
//!
//! Interface contract (used by the MarketFeed actor and `replay`); internals are free.
//!
//! One [`FeedDecoder`] per connection or recording. It keeps one [`L2Book`] per pair, the
//! instruments it has seen (their precisions pad the checksum digits), the subscribed book
//! depth per pair, and the last event time. Rules in detail: docs/market-data.md.
//!
//! Hot path: `book` and `trade` frames (v2 objects and v1 arrays) are read with the
//! zero-allocation scanner in [`super::scan`]; numbers go from their JSON text straight into
//! `Decimal` (`parse_decimal_bytes`), never through `f64`. Cold messages (acks, status,
//! instruments, v1 events) go through `serde_json::Value` with `arbitrary_precision`.
//!
//! Real v2 book update (shared/kraken/websocket-v2.md §4.5):
//! ```json
//! {"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":66786.5,
//!  "qty":0.00000000}],"asks":[],"checksum":902440905,"timestamp":"2024-05-19T16:45:24.204654Z"}]}
//! ```
//! Real v1 book update (checksum in the last object, `"r"` = republished level):
//! ```json
//! [336,{"b":[["27117.40000","0.00000000","1693415330.886651"],
//!  ["27116.80000","0.14741986","1693415325.036931","r"]],"c":"3139033408"},"book-10","XBT/USD"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::instruments::instrument_from_v2;
use super::scan::{JStr, Scan, ScanError};
use super::symbols::v2_symbol;
use crate::core::book::L2Book;
use crate::core::instrument::{Instrument, Symbol};
use crate::core::market::{
    BookEvent, BookInvalidReason, Level, Levels, MarketEvent, Side, SystemStatus, TickerEvent, TradeEvent,
};
use crate::core::money::parse_decimal_bytes;
use crate::core::time::{EventTime, Rfc3339Reader};

pub use super::instruments::load_instruments;
pub use super::symbols::{v2_asset, v2_symbol as v1_to_v2_symbol};

/// Kraken's book depth when a subscription names none.
const KRAKEN_DEFAULT_DEPTH: u16 = 10;
/// How many sent requests are remembered to name failed acks (oldest forgotten first).
const MAX_REMEMBERED_REQUESTS: usize = 1024;

// Keys in the order Kraken (and `record`) write them: the scanner tries the expected key
// first (`Scan::key_hint`) and reads any other layout the general way.
/// A `record` line's keys.
const RECORD_KEYS: [&str; 3] = ["ts", "dir", "msg"];
/// A v2 channel message's keys.
const FRAME_KEYS: [&str; 3] = ["channel", "type", "data"];
/// A v2 book data element's keys.
/// How many symbols [`FeedDecoder`] searches before its ordered set.
const FIRST_SYMBOLS: usize = 8;

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

/// Something the feed must act on or log (not a market event).
#[derive(Clone, Debug, PartialEq)]
pub enum FeedNotice {
    /// A subscription was acknowledged.
    Subscribed {
        /// Channel.
        channel: String,
        /// Pair, if any.
        symbol: Option<String>,
    },
    /// A subscription failed: a clear error naming the pair.
    SubscribeFailed {
        /// Channel.
        channel: String,
        /// Pair, if known.
        symbol: Option<String>,
        /// Kraken's error text.
        error: String,
    },
    /// The book of `symbol` can no longer be trusted: resubscribe it.
    Resync {
        /// Pair.
        symbol: String,
        /// Why.
        reason: BookInvalidReason,
    },
    /// Answer to our application ping.
    Pong {
        /// Request id.
        req_id: Option<u64>,
    },
    /// A frame that could not be parsed (logged and skipped).
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// A well-formed frame of a type we do not handle (logged and skipped).
    Unknown {
        /// Channel or method.
        what: String,
    },
}

/// Counters the report's `feed` section is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCounters {
    /// Frames decoded.
    pub frames: u64,
    /// Book updates and trades (one element of a `book` or `trade` message's data).
    pub events: u64,
    /// Checksums compared.
    pub checksums_verified: u64,
    /// Checksums that did not match.
    pub checksum_mismatches: u64,
    /// Book resyncs requested.
    pub resyncs: u64,
    /// Malformed frames skipped.
    pub malformed: u64,
    /// Frames of unknown type skipped.
    pub unknown: u64,
    /// Book updates dropped because the pair's book awaits a snapshot (after a mismatch,
    /// an unsubscribe or `reset_books`, or before the pair's first snapshot).
    #[serde(default)]
    pub book_updates_ignored: u64,
}

/// One pair's book and whether it can be trusted.
struct PairBook {
    book: L2Book,
    /// False after a mismatch / reset / unsubscribe: updates are ignored until a snapshot.
    live: bool,
    /// Built from v1 strings: checksum digits use the strings as sent (no precision).
    v1: bool,
}

/// A request we sent, remembered by `req_id` to name the pair of a failed ack.
#[derive(Clone, Debug)]
struct SentRequest {
    method: String,
    channel: String,
    symbols: Vec<String>,
}

/// Why a frame was skipped.
enum Skip {
    Malformed(String),
    Unknown(String),
}

impl From<ScanError> for Skip {
    fn from(e: ScanError) -> Self {
        Skip::Malformed(format!("invalid JSON: {e}"))
    }
}

fn malformed(what: impl Into<String>) -> Skip {
    Skip::Malformed(what.into())
}

/// Keys and raw value texts of one object's top level (no allocation; extra keys dropped).
struct Fields<'a> {
    n: usize,
    kv: [(&'a str, &'a str); 16],
}

impl<'a> Fields<'a> {
    fn new() -> Self {
        Fields { n: 0, kv: [("", ""); 16] }
    }
    fn push(&mut self, k: JStr<'a>, v: &'a str) {
        if self.n < self.kv.len() && !k.escaped {
            self.kv[self.n] = (k.raw, v);
            self.n += 1;
        }
    }
    fn has_room(&self) -> bool {
        self.n < self.kv.len()
    }
    fn get(&self, key: &str) -> Option<&'a str> {
        self.kv[..self.n].iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
    /// The raw text (escapes not decoded) of `key`'s value if it is a string. Values are
    /// whole JSON values the scanner has validated, so a string is exactly `"…"`.
    fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| v.strip_prefix('"')?.strip_suffix('"'))
    }
}

/// Book or trade data parsed during the first pass over a frame.
enum InPlace {
    No,
    Book { snapshot: bool },
    Trade { latest: EventTime },
    Ticker { latest: EventTime },
}

/// What one pass over an object frame found: the frame's text and top-level fields, and
/// the book or trade data already parsed from it.
struct ObjectPass<'a> {
    text: &'a str,
    fields: Fields<'a>,
    in_place: InPlace,
    /// The frame came out of a `record` wrapper.
    in_record: bool,
}

impl<'a> ObjectPass<'a> {
    fn new(text: &'a str, in_record: bool) -> Self {
        ObjectPass { text, fields: Fields::new(), in_place: InPlace::No, in_record }
    }
}

/// One element of a v2 book message's data, parsed but not yet applied.
struct ParsedBook {
    symbol: Symbol,
    bids: Levels,
    asks: Levels,
    checksum: Option<u32>,
    time: Option<EventTime>,
}

/// Decoder state: one book per pair, instrument metadata, subscribed depth.
pub struct FeedDecoder {
    default_depth: u16,
    counters: FeedCounters,
    last_time: EventTime,
    books: BTreeMap<Symbol, PairBook>,
    instruments: BTreeMap<Symbol, Arc<Instrument>>,
    /// Subscribed depth per pair (from acks, sent requests, v1 channel names, snapshots).
    depths: BTreeMap<Symbol, u16>,
    /// Interned symbols, so events share one `Arc<str>` per pair.
    symbols: BTreeSet<Symbol>,
    /// The first [`FIRST_SYMBOLS`] of them, searched first.
    first_symbols: Vec<Symbol>,
    /// v1 pair name → v2 symbol (the mapping itself is [`v2_symbol`]).
    v1_names: BTreeMap<Box<str>, Symbol>,
    requests: BTreeMap<u64, SentRequest>,
    /// Book elements of the frame being decoded (reused buffer).
    pending: Vec<ParsedBook>,
    /// Reads the messages' timestamps (remembers the day of the last one).
    timestamps: Rfc3339Reader,
}

impl FeedDecoder {
    /// A decoder for books of `depth` levels (10, 25, 100, 500, 1000).
    pub fn new(depth: u16) -> FeedDecoder {
        FeedDecoder {
            default_depth: depth.max(1),
            counters: FeedCounters::default(),
            last_time: EventTime::ZERO,
            books: BTreeMap::new(),
            instruments: BTreeMap::new(),
            depths: BTreeMap::new(),
            symbols: BTreeSet::new(),
            first_symbols: Vec::new(),
            v1_names: BTreeMap::new(),
            requests: BTreeMap::new(),
            pending: Vec::new(),
            timestamps: Rfc3339Reader::default(),
        }
    }

    /// Decodes one frame; appends market events and notices. Event time is the exchange's
    /// timestamp where the message has one, else the last event time seen.
    pub fn decode(&mut self, frame: &str, events: &mut Vec<MarketEvent>, notices: &mut Vec<FeedNotice>) {
        self.counters.frames += 1;
        let mark = events.len();
        if let Err(skip) = self.decode_frame(frame, false, events, notices) {
            // A frame is all or nothing: drop events of a partly decoded frame.
            events.truncate(mark);
            match skip {
                Skip::Malformed(reason) => {
                    self.counters.malformed += 1;
                    notices.push(FeedNotice::Malformed { reason });
                }
                Skip::Unknown(what) => {
                    self.counters.unknown += 1;
                    notices.push(FeedNotice::Unknown { what });
                }
            }
        }
    }

    /// Forgets every book (after a disconnect; snapshots follow the resubscription).
    pub fn reset_books(&mut self) {
        for pb in self.books.values_mut() {
            pb.book.clear();
            pb.live = false;
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &FeedCounters {
        &self.counters
    }

    /// Last event time seen.
    pub fn last_time(&self) -> EventTime {
        self.last_time
    }

    /// Stores instruments (e.g. from [`load_instruments`]) before any `instrument` message:
    /// their precisions pad the checksum digits of v2 books. Emits no events.
    pub fn preload_instruments(&mut self, instruments: impl IntoIterator<Item = Instrument>) {
        for i in instruments {
            self.store_instrument(Arc::new(i));
        }
    }

    /// Tells the decoder about a request sent to Kraken (a text from [`subscribe_requests`]
    /// or [`resubscribe_book`], or a v1 subscribe): book requests set the pair's depth, and
    /// failed acks carrying only a `req_id` can then name the channel and pair.
    pub fn note_sent(&mut self, request: &str) {
        if let Ok(v) = serde_json::from_str::<Value>(request) {
            self.note_sent_value(&v);
        }
    }

    /// The verified book of `symbol` (None while it awaits a snapshot).
    pub fn book(&self, symbol: &str) -> Option<&L2Book> {
        self.books.get(symbol).filter(|b| b.live).map(|b| &b.book)
    }

    /// Instrument metadata of `symbol`, if seen.
    pub fn instrument(&self, symbol: &str) -> Option<&Arc<Instrument>> {
        self.instruments.get(symbol)
    }

    /// Book depth used for `symbol`'s next snapshot.
    pub fn depth(&self, symbol: &str) -> u16 {
        self.depths.get(symbol).copied().unwrap_or(self.default_depth)
    }

    // ---- dispatch -------------------------------------------------------------------

    fn decode_frame(
        &mut self,
        frame: &str,
        in_record: bool,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        match Scan::new(frame).peek() {
            Some(b'{') if !in_record && self.decode_compact(frame, events, notices) => Ok(()),
            Some(b'{') => {
                let mark = events.len();
                let before = self.last_time;
                let mut pass = ObjectPass::new(frame, in_record);
                match self.scan_frame(frame, in_record, !in_record, &mut pass, events) {
                    Ok(()) => {}
                    Err(_) if !in_record => {
                        // The fast path may have parsed a record's frame before finding the
                        // wrapper broken: undo that and let the plain pass name the error.
                        events.truncate(mark);
                        self.last_time = before;
                        pass = ObjectPass::new(frame, in_record);
                        self.scan_frame(frame, in_record, false, &mut pass, events)?;
                    }
                    Err(e) => return Err(e),
                }
                match pass.in_place {
                    InPlace::Book { snapshot } => {
                        self.apply_pending_books(snapshot, events, notices);
                        Ok(())
                    }
                    InPlace::Trade { latest } => {
                        self.finish_trades(events.len() - mark, latest);
                        Ok(())
                    }
                    InPlace::Ticker { latest } => {
                        let f = &pass.fields;
                        let record = !pass.in_record && f.get("msg").is_some() && f.get("dir").is_some();
                        if record || f.str("method").is_some() {
                            // Not a ticker after all (`decode_object` decides in this order).
                            events.truncate(mark);
                            return self.decode_object(pass.text, f, pass.in_record, events, notices);
                        }
                        self.advance(latest);
                        Ok(())
                    }
                    InPlace::No => {
                        self.decode_object(pass.text, &pass.fields, pass.in_record, events, notices)
                    }
                }
            }
            Some(b'[') => self.decode_v1_array(frame, events, notices),
            Some(_) => Err(malformed("frame is neither a JSON object nor an array")),
            None => Err(malformed("empty frame")),
        }
    }

    /// The layout nearly every frame of a recording has, decoded without the general scan:
    /// a v2 `book`, `trade` or `ticker` message written as Kraken writes it (`channel`,
    /// `type`, then `data` last, no whitespace), bare or in a `record` line as `record`
    /// writes it (`{"ts":…,"dir":"recv","msg":…}`). The data is parsed by the same functions
    /// as on the general path, so the result is the same; false — nothing decoded, nothing
    /// changed — for any other text, which the general path then decodes (and names the
    /// error of, if any).
    fn decode_compact(
        &mut self,
        frame: &str,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> bool {
        #[derive(Clone, Copy)]
        enum Channel {
            Book,
            Trade,
            Ticker,
        }
        let mut s = Scan::new(frame);
        let wrapped = s.lit(b"{\"ts\":");
        // The first record's `ts` seeds the clock: left to the general path.
        if wrapped
            && (self.last_time == EventTime::ZERO
                || !s.skip_plain_number()
                || !s.lit(b",\"dir\":\"recv\",\"msg\":"))
        {
            return false;
        }
        if !s.lit(b"{\"channel\":\"") {
            return false;
        }
        let channel = if s.lit(b"book\",\"type\":\"") {
            Channel::Book
        } else if s.lit(b"trade\",\"type\":\"") {
            Channel::Trade
        } else if s.lit(b"ticker\",\"type\":\"") {
            Channel::Ticker
        } else {
            return false;
        };
        let snapshot = if s.lit(b"update\",\"data\":") {
            false
        } else if s.lit(b"snapshot\",\"data\":") {
            true
        } else {
            return false;
        };
        let mark = events.len();
        let parsed = match channel {
            Channel::Book => self.parse_v2_book_data(&mut s).map(|()| EventTime::ZERO),
            Channel::Trade => self.parse_v2_trade_data(&mut s, events),
            Channel::Ticker => self.parse_v2_ticker_data(&mut s, events),
        };
        let latest = match parsed {
            Ok(latest) if s.lit(b"}") && (!wrapped || s.lit(b"}")) && s.end().is_ok() => latest,
            _ => {
                events.truncate(mark);
                self.pending.clear();
                return false;
            }
        };
        match channel {
            Channel::Book => self.apply_pending_books(snapshot, events, notices),
            Channel::Trade => self.finish_trades(events.len() - mark, latest),
            Channel::Ticker => self.advance(latest),
        }
        true
    }

    /// [`Self::scan_object`] over a whole frame (trailing text is an error).
    fn scan_frame<'a>(
        &mut self,
        frame: &'a str,
        in_record: bool,
        records: bool,
        out: &mut ObjectPass<'a>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let mut s = Scan::new(frame);
        self.scan_object(&mut s, frame, in_record, records, out, events)?;
        s.end()?;
        Ok(())
    }

    /// One pass over a JSON object (to its end: trailing text is an error). Kraken
    /// writes `channel` and `type` before `data`: book and trade data are then parsed in place
    /// and applied by the caller only once the whole frame has proved well-formed.
    ///
    /// With `records`, a `record` wrapper whose `ts` and `"dir":"recv"` come before an object
    /// `msg` (as `record` writes them) has its frame parsed in the same pass, and the pass
    /// returned is the frame's. The result is what decoding the wrapper and then the frame
    /// separately gives (docs/market-data.md); on an error the caller retries without it.
    /// The pass is written to `out` (it is large: moving it would cost more than the scan).
    fn scan_object<'a>(
        &mut self,
        s: &mut Scan<'a>,
        text: &'a str,
        in_record: bool,
        records: bool,
        out: &mut ObjectPass<'a>,
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let mut f = Fields::new();
        let mut in_place = InPlace::No;
        let mut inner = false;
        let mut first = true;
        let mut n = 0;
        let mut order = if records { RECORD_KEYS.as_slice() } else { FRAME_KEYS.as_slice() };
        while let Some(k) = s.key_hint(&mut first, order.get(n).copied())? {
            if n == 0 && k.is("channel") {
                order = FRAME_KEYS.as_slice();
            }
            n += 1;
            if k.is("data")
                && matches!(in_place, InPlace::No)
                && f.get("method").is_none()
                && f.get("msg").is_none()
            {
                match (f.str("channel"), f.str("type")) {
                    (Some("book"), Some(t @ ("snapshot" | "update"))) => {
                        self.parse_v2_book_data(s)?;
                        in_place = InPlace::Book { snapshot: t == "snapshot" };
                        continue;
                    }
                    (Some("trade"), _) => {
                        let latest = self.parse_v2_trade_data(s, events)?;
                        in_place = InPlace::Trade { latest };
                        continue;
                    }
                    (Some("ticker"), _) if f.has_room() => {
                        let latest = self.parse_v2_ticker_data(s, events)?;
                        in_place = InPlace::Ticker { latest };
                        continue;
                    }
                    _ => {}
                }
            }
            if records
                && k.is("msg")
                && matches!(in_place, InPlace::No)
                && f.has_room()
                && f.get("msg").is_none()
                && f.str("dir") == Some("recv")
                && s.peek() == Some(b'{')
            {
                // `decode_record` seeds the clock from `ts` before decoding the frame; a `ts`
                // after `msg` is left to the two-step path.
                let ts = f.get("ts");
                if self.last_time != EventTime::ZERO || ts.is_some() {
                    if self.last_time == EventTime::ZERO
                        && let Some(t) = ts.and_then(|t| EventTime::parse_unix_seconds(t).ok())
                    {
                        self.last_time = t;
                    }
                    let start = s.pos();
                    self.scan_object(s, "", true, false, out, events)?;
                    out.text = s.text_since(start);
                    f.push(k, out.text);
                    inner = true;
                    continue;
                }
            }
            let v = s.skip()?;
            f.push(k, v);
        }
        if !inner {
            *out = ObjectPass { text, fields: f, in_place, in_record };
        }
        Ok(())
    }

    fn decode_object(
        &mut self,
        frame: &str,
        f: &Fields<'_>,
        in_record: bool,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        if let (Some(msg), Some(dir), false) = (f.get("msg"), f.get("dir"), in_record) {
            return self.decode_record(f, msg, dir, events, notices);
        }
        if let Some(method) = f.str("method") {
            return self.decode_response(frame, method, notices);
        }
        if let Some(channel) = f.str("channel") {
            return match channel {
                "book" => self.decode_v2_book(f, events, notices),
                "trade" => self.decode_v2_trade(f, events),
                "ticker" => self.decode_v2_ticker(f, events),
                "heartbeat" => Ok(()),
                "status" => self.decode_v2_status(f, events),
                "instrument" => self.decode_v2_instrument(f, events, notices),
                other => Err(Skip::Unknown(format!("channel {other}"))),
            };
        }
        if let Some(event) = f.str("event") {
            return self.decode_v1_event(frame, event, events, notices);
        }
        // `{"Error": "Exceeded msg rate"}` (rate limit) and similar bare errors.
        if let Some(e) = f.get("Error").or_else(|| f.get("error")) {
            return Err(Skip::Unknown(format!("error frame: {e}")));
        }
        Err(Skip::Unknown("object without method, channel or event".into()))
    }

    /// `{"ts": <unix secs>, "dir": "sent"|"recv", "msg": <frame>}`.
    fn decode_record(
        &mut self,
        f: &Fields<'_>,
        msg: &str,
        dir: &str,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let dir = Scan::new(dir).str().map_err(|_| malformed("record `dir` must be a string"))?;
        // A frame stored as a JSON string is unwrapped first.
        let text;
        let msg = if msg.starts_with('"') {
            text = Scan::new(msg).str()?.text();
            &*text
        } else {
            msg
        };
        if dir.is("sent") {
            match serde_json::from_str::<Value>(msg) {
                Ok(v) => self.note_sent_value(&v),
                Err(e) => return Err(malformed(format!("record: sent message is not JSON: {e}"))),
            }
            return Ok(());
        }
        if !dir.is("recv") {
            return Err(Skip::Unknown(format!("record dir {:?}", dir.raw)));
        }
        // The receive time only seeds the clock: exchange timestamps take over as soon as
        // one is seen (docs/market-data.md, "Event time").
        if self.last_time == EventTime::ZERO
            && let Some(ts) = f.get("ts").and_then(|t| EventTime::parse_unix_seconds(t).ok())
        {
            self.last_time = ts;
        }
        self.decode_frame(msg, true, events, notices)
    }

    // ---- responses (v2 `method`) -----------------------------------------------------

    fn decode_response(
        &mut self,
        frame: &str,
        method: &str,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let v: Value = serde_json::from_str(frame).map_err(|e| malformed(format!("response: {e}")))?;
        let req_id = v.get("req_id").and_then(Value::as_u64);
        // time_out is the exchange's clock: it may seed or advance event time.
        if let Some(t) =
            v.get("time_out").and_then(Value::as_str).and_then(|t| EventTime::parse_rfc3339(t).ok())
        {
            self.advance(t);
        }
        let success = v.get("success").and_then(Value::as_bool);
        match method {
            "pong" => {
                notices.push(FeedNotice::Pong { req_id });
                Ok(())
            }
            "subscribe" | "unsubscribe" if success == Some(true) => {
                let result = v.get("result");
                let field = |k: &str| result.and_then(|r| r.get(k));
                let channel = field("channel").and_then(Value::as_str).unwrap_or("").to_string();
                let symbol = field("symbol").and_then(Value::as_str).map(str::to_string);
                if channel == "book"
                    && let Some(sym) = &symbol
                {
                    let sym = self.intern(sym);
                    if method == "subscribe" {
                        let depth = field("depth").and_then(Value::as_u64);
                        let depth = depth.and_then(|d| u16::try_from(d).ok()).unwrap_or(KRAKEN_DEFAULT_DEPTH);
                        self.depths.insert(sym, depth);
                    } else if let Some(pb) = self.books.get_mut(&sym) {
                        // Updates still in flight after an unsubscribe must not be applied.
                        pb.book.clear();
                        pb.live = false;
                    }
                }
                if method == "subscribe" {
                    notices.push(FeedNotice::Subscribed { channel, symbol });
                }
                Ok(())
            }
            "subscribe" | "unsubscribe" => {
                let error = v.get("error").and_then(Value::as_str).unwrap_or("no error text").to_string();
                self.subscribe_failed(&v, req_id, error, notices);
                Ok(())
            }
            other => {
                let err = v.get("error").and_then(Value::as_str);
                Err(Skip::Unknown(match err {
                    Some(e) => format!("method {other} failed: {e}"),
                    None => format!("method {other}"),
                }))
            }
        }
    }

    /// A failed ack: one notice per pair (the ack's `symbol`, else the pairs of the request
    /// with that `req_id`; Kraken answers a failed unsubscribe with `method: subscribe`).
    fn subscribe_failed(&self, v: &Value, req_id: Option<u64>, error: String, notices: &mut Vec<FeedNotice>) {
        let sent = req_id.and_then(|id| self.requests.get(&id));
        let error = match sent {
            Some(r) if r.method == "unsubscribe" => format!("unsubscribe: {error}"),
            _ => error,
        };
        let channel = v
            .get("result")
            .and_then(|r| r.get("channel"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| sent.map(|r| r.channel.clone()))
            .unwrap_or_else(|| "unknown".into());
        let symbol = v.get("symbol").and_then(Value::as_str).map(str::to_string);
        let symbols: Vec<Option<String>> = match (symbol, sent) {
            (Some(s), _) => vec![Some(s)],
            (None, Some(r)) if !r.symbols.is_empty() => r.symbols.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for symbol in symbols {
            notices.push(FeedNotice::SubscribeFailed {
                channel: channel.clone(),
                symbol,
                error: error.clone(),
            });
        }
    }

    fn note_sent_value(&mut self, v: &Value) {
        let strs = |a: Option<&Value>| -> Vec<String> {
            a.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        let depth_of = |d: Option<&Value>| {
            d.and_then(Value::as_u64).and_then(|d| u16::try_from(d).ok()).unwrap_or(KRAKEN_DEFAULT_DEPTH)
        };
        if let Some(method) = v.get("method").and_then(Value::as_str) {
            // v2: {"method":"subscribe","params":{"channel":"book","symbol":[…],"depth":10},"req_id":4}
            let params = v.get("params");
            let channel =
                params.and_then(|p| p.get("channel")).and_then(Value::as_str).unwrap_or("").to_string();
            let symbols = strs(params.and_then(|p| p.get("symbol")));
            if method == "subscribe" && channel == "book" {
                let depth = depth_of(params.and_then(|p| p.get("depth")));
                for s in &symbols {
                    let sym = self.intern(s);
                    self.depths.insert(sym, depth);
                }
            }
            if let Some(id) = v.get("req_id").and_then(Value::as_u64) {
                self.remember(id, SentRequest { method: method.to_string(), channel, symbols });
            }
        } else if let Some(event) = v.get("event").and_then(Value::as_str) {
            // v1: {"event":"subscribe","pair":[…],"subscription":{"name":"book","depth":1000}}
            let sub = v.get("subscription");
            let name = sub.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
            let symbols: Vec<String> = strs(v.get("pair")).iter().map(|p| v2_symbol(p)).collect();
            if event == "subscribe" && name == "book" {
                let depth = depth_of(sub.and_then(|s| s.get("depth")));
                for s in &symbols {
                    let sym = self.intern(s);
                    self.depths.insert(sym, depth);
                }
            }
            if let Some(id) = v.get("reqid").and_then(Value::as_u64) {
                self.remember(id, SentRequest { method: event.to_string(), channel: name, symbols });
            }
        }
    }

    fn remember(&mut self, id: u64, r: SentRequest) {
        self.requests.insert(id, r);
        while self.requests.len() > MAX_REMEMBERED_REQUESTS {
            self.requests.pop_first();
        }
    }

    // ---- v2 channels ------------------------------------------------------------------

    fn decode_v2_book(
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
    fn parse_v2_book_data(&mut self, s: &mut Scan<'_>) -> Result<(), Skip> {
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

    /// A book data element written exactly as Kraken writes it:
    /// `{"symbol":"…","bids":[…],"asks":[…],"checksum":…}`, with `,"timestamp":"…"` before
    /// the closing brace in updates, levels as [`read_v2_level_compact`] reads them. The
    /// general loop's result; None (cursor unchanged) for anything else, which that loop
    /// then reads.
    fn read_book_element_compact(&mut self, s: &mut Scan<'_>) -> Option<ParsedBook> {
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
    fn read_ticker_element_compact(&mut self, s: &mut Scan<'_>) -> Option<TickerEvent> {
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
    fn read_trade_element_compact(&mut self, s: &mut Scan<'_>) -> Option<TradeEvent> {
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

    /// Applies the parsed elements of a well-formed frame.
    fn apply_pending_books(
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

    fn decode_v2_trade(&mut self, f: &Fields<'_>, events: &mut Vec<MarketEvent>) -> Result<(), Skip> {
        let data = f.get("data").ok_or_else(|| malformed("trade: message without `data`"))?;
        let mark = events.len();
        let latest = self.parse_v2_trade_data(&mut Scan::new(data), events)?;
        self.finish_trades(events.len() - mark, latest);
        Ok(())
    }

    /// Counts the trades of a well-formed frame and advances the clock to the latest.
    fn finish_trades(&mut self, n: usize, latest: EventTime) {
        self.counters.events += n as u64;
        self.advance(latest);
    }

    /// Parses a v2 trade `data` array, pushing one event per trade; returns the latest time.
    /// On error the caller (`decode`) drops the events pushed so far.
    fn parse_v2_trade_data(
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

    fn decode_v2_ticker(&mut self, f: &Fields<'_>, events: &mut Vec<MarketEvent>) -> Result<(), Skip> {
        let data = f.get("data").ok_or_else(|| malformed("ticker: message without `data`"))?;
        let latest = self.parse_v2_ticker_data(&mut Scan::new(data), events)?;
        self.advance(latest);
        Ok(())
    }

    /// Parses a v2 ticker `data` array, pushing one event per element; returns the latest
    /// time (the caller advances the clock once the frame has proved well-formed).
    fn parse_v2_ticker_data(
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

    fn decode_v2_status(&mut self, f: &Fields<'_>, events: &mut Vec<MarketEvent>) -> Result<(), Skip> {
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

    fn decode_v2_instrument(
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
                    first_error.get_or_insert(e);
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

    fn store_instrument(&mut self, i: Arc<Instrument>) {
        let sym = self.intern(&i.symbol);
        if let Some(pb) = self.books.get_mut(&sym)
            && !pb.v1
        {
            pb.book.set_precision(Some(i.price_precision), Some(i.qty_precision));
        }
        self.instruments.insert(sym, i);
    }

    // ---- v1 ---------------------------------------------------------------------------

    /// v1 data arrays: `[channelID, payload…, channelName, pair]`.
    fn decode_v1_array(
        &mut self,
        frame: &str,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let mut s = Scan::new(frame);
        let mut parts: [&str; 8] = [""; 8];
        let mut n = 0;
        let mut first = true;
        while s.item(&mut first)? {
            let v = s.skip()?;
            if n == parts.len() {
                return Err(Skip::Unknown("v1 array with more than 8 elements".into()));
            }
            parts[n] = v;
            n += 1;
        }
        s.end()?;
        if n < 3 {
            return Err(Skip::Unknown("v1 array without channel name and pair".into()));
        }
        let (Ok(name), Ok(pair)) = (Scan::new(parts[n - 2]).str(), Scan::new(parts[n - 1]).str()) else {
            return Err(Skip::Unknown("v1 array without channel name and pair".into()));
        };
        let symbol = self.v1_symbol(&pair.text());
        let payloads = &parts[1..n - 2];
        if let Some(depth) = name.raw.strip_prefix("book") {
            let depth = match depth.strip_prefix('-') {
                Some(d) => {
                    d.parse::<u16>().map_err(|_| malformed(format!("v1 channel name {:?}", name.raw)))?
                }
                None => self.depth(&symbol),
            };
            return self.decode_v1_book(&symbol, depth, payloads, events, notices);
        }
        match name.raw {
            "trade" => self.decode_v1_trade(&symbol, payloads, events),
            "ticker" => self.decode_v1_ticker(&symbol, payloads, events),
            other => Err(Skip::Unknown(format!("v1 channel {other}"))),
        }
    }

    fn decode_v1_book(
        &mut self,
        symbol: &Symbol,
        depth: u16,
        payloads: &[&str],
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let (mut bids, mut asks) = (Levels::new(), Levels::new());
        let (mut snapshot, mut checksum) = (false, None);
        let mut latest = EventTime::ZERO;
        for p in payloads {
            let mut s = Scan::new(p);
            let mut first = true;
            while let Some(k) = s.key(&mut first)? {
                match k.raw {
                    "as" | "bs" | "a" | "b" => {
                        snapshot |= k.raw.len() == 2;
                        let out = if k.raw.starts_with('a') { &mut asks } else { &mut bids };
                        read_v1_levels(&mut s, out, &mut latest)?;
                    }
                    "c" => {
                        let c = s.str()?;
                        checksum = Some(
                            c.raw
                                .parse::<u32>()
                                .map_err(|_| malformed(format!("v1 book: checksum {:?}", c.raw)))?,
                        );
                    }
                    _ => {
                        s.skip()?;
                    }
                }
            }
        }
        if snapshot || self.depths.get(symbol) != Some(&depth) {
            self.depths.insert(symbol.clone(), depth);
        }
        let time = (latest != EventTime::ZERO).then_some(latest);
        self.apply_book(symbol, snapshot, bids, asks, checksum, time, true, events, notices);
        Ok(())
    }

    fn decode_v1_trade(
        &mut self,
        symbol: &Symbol,
        payloads: &[&str],
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let [p] = payloads else { return Err(malformed("v1 trade: expected one payload")) };
        let mark = events.len();
        let mut latest = EventTime::ZERO;
        let mut s = Scan::new(p);
        let mut first = true;
        while s.item(&mut first)? {
            // [price, volume, time, side b/s, type l/m, misc]
            let f: [Option<JStr<'_>>; 5] = read_str_fields(&mut s)?;
            let [Some(price), Some(qty), Some(time), Some(side), Some(kind)] = f else {
                return Err(malformed("v1 trade: expected [price, volume, time, side, type, misc]"));
            };
            let price =
                parse_decimal_bytes(price.raw.as_bytes()).ok_or_else(|| malformed("v1 trade: bad price"))?;
            let qty =
                parse_decimal_bytes(qty.raw.as_bytes()).ok_or_else(|| malformed("v1 trade: bad volume"))?;
            let time =
                EventTime::parse_unix_seconds(time.raw).map_err(|e| malformed(format!("v1 trade: {e}")))?;
            let side = match side.raw {
                "b" => Side::Buy,
                "s" => Side::Sell,
                other => return Err(malformed(format!("v1 trade: unknown side {other:?}"))),
            };
            latest = latest.max(time);
            events.push(MarketEvent::Trade(TradeEvent {
                symbol: symbol.clone(),
                time,
                side,
                price,
                qty,
                trade_id: 0,
                market_order: kind.is("m"),
            }));
        }
        self.counters.events += (events.len() - mark) as u64;
        self.advance(latest);
        Ok(())
    }

    fn decode_v1_ticker(
        &mut self,
        symbol: &Symbol,
        payloads: &[&str],
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let [p] = payloads else { return Err(malformed("v1 ticker: expected one payload")) };
        // a/b = [price, whole lot volume, lot volume]; c = [price, volume];
        // v/p = [today, last 24 h].
        let (mut ask, mut bid, mut last, mut volume, mut vwap) = (None, None, None, None, None);
        let mut s = Scan::new(p);
        let mut first = true;
        while let Some(k) = s.key(&mut first)? {
            let (slot, index) = match k.raw {
                "a" => (&mut ask, 0),
                "b" => (&mut bid, 0),
                "c" => (&mut last, 0),
                "v" => (&mut volume, 1),
                "p" => (&mut vwap, 1),
                _ => {
                    s.skip()?;
                    continue;
                }
            };
            let mut i = 0;
            let mut e_first = true;
            while s.item(&mut e_first)? {
                let v = s.skip()?;
                if i == index {
                    let text = v.trim_matches('"');
                    *slot = Some(
                        parse_decimal_bytes(text.as_bytes())
                            .ok_or_else(|| malformed(format!("v1 ticker: bad number {v} in {:?}", k.raw)))?,
                    );
                }
                i += 1;
            }
        }
        let (Some(bid), Some(ask), Some(last), Some(volume), Some(vwap)) = (bid, ask, last, volume, vwap)
        else {
            return Err(malformed("v1 ticker: needs a, b, c, v and p"));
        };
        events.push(MarketEvent::Ticker(TickerEvent {
            symbol: symbol.clone(),
            time: self.last_time,
            bid,
            ask,
            last,
            volume,
            vwap,
        }));
        Ok(())
    }

    /// v1 event objects: heartbeat, systemStatus, subscriptionStatus, pong, error.
    fn decode_v1_event(
        &mut self,
        frame: &str,
        event: &str,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        if event == "heartbeat" {
            return Ok(());
        }
        let v: Value = serde_json::from_str(frame).map_err(|e| malformed(format!("v1 {event}: {e}")))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str);
        match event {
            "systemStatus" => {
                let status = text("status").ok_or_else(|| malformed("v1 systemStatus without status"))?;
                events.push(MarketEvent::Status { time: self.last_time, system: system_status(status) });
                Ok(())
            }
            "pong" => {
                notices.push(FeedNotice::Pong { req_id: v.get("reqid").and_then(Value::as_u64) });
                Ok(())
            }
            "subscriptionStatus" => {
                let sub = v.get("subscription");
                let name =
                    sub.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("unknown").to_string();
                let symbol = text("pair").map(v2_symbol);
                match text("status") {
                    Some("subscribed") => {
                        if let (Some(sym), "book") = (&symbol, name.as_str()) {
                            let depth = sub
                                .and_then(|s| s.get("depth"))
                                .and_then(Value::as_u64)
                                .and_then(|d| u16::try_from(d).ok())
                                .unwrap_or(KRAKEN_DEFAULT_DEPTH);
                            let sym = self.intern(sym);
                            self.depths.insert(sym, depth);
                        }
                        notices.push(FeedNotice::Subscribed { channel: name, symbol });
                    }
                    Some("unsubscribed") => {
                        if let (Some(sym), "book") = (&symbol, name.as_str())
                            && let Some(pb) = self.books.get_mut(sym.as_str())
                        {
                            pb.book.clear();
                            pb.live = false;
                        }
                    }
                    _ => {
                        let error = text("errorMessage").unwrap_or("subscription error").to_string();
                        notices.push(FeedNotice::SubscribeFailed { channel: name, symbol, error });
                    }
                }
                Ok(())
            }
            "error" => Err(Skip::Unknown(format!("v1 error: {}", text("errorMessage").unwrap_or("?")))),
            other => Err(Skip::Unknown(format!("v1 event {other}"))),
        }
    }

    // ---- books ------------------------------------------------------------------------

    /// Applies one parsed book message to `symbol`'s book, verifies the checksum, and
    /// publishes the event (or invalidates the book).
    #[allow(clippy::too_many_arguments)]
    fn apply_book(
        &mut self,
        symbol: &Symbol,
        snapshot: bool,
        bids: Levels,
        asks: Levels,
        checksum: Option<u32>,
        time: Option<EventTime>,
        v1: bool,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) {
        let time = time.unwrap_or(self.last_time);
        self.advance(time);
        // Checksum precisions: only a new or resized book takes them (looked up then).
        let precisions = |instruments: &BTreeMap<Symbol, Arc<Instrument>>| match (v1, instruments.get(symbol))
        {
            (false, Some(i)) => (Some(i.price_precision), Some(i.qty_precision)),
            _ => (None, None),
        };
        let mut depth = self.depth(symbol);
        if snapshot {
            // A snapshot longer than the subscribed depth shows the real depth.
            let len = u16::try_from(bids.len().max(asks.len())).unwrap_or(u16::MAX);
            if len > depth {
                depth = len;
                self.depths.insert(symbol.clone(), depth);
            }
        }
        let pb = match self.books.get_mut(symbol) {
            Some(pb) => pb,
            None if snapshot => {
                let (pp, qp) = precisions(&self.instruments);
                self.books.entry(symbol.clone()).or_insert(PairBook {
                    book: L2Book::new(usize::from(depth), pp, qp),
                    live: false,
                    v1,
                })
            }
            None => {
                self.counters.book_updates_ignored += 1;
                return;
            }
        };
        if snapshot {
            let (pp, qp) = precisions(&self.instruments);
            if pb.book.depth() != usize::from(depth) {
                pb.book = L2Book::new(usize::from(depth), pp, qp);
            } else {
                pb.book.clear();
                pb.book.set_precision(pp, qp);
            }
            pb.live = true;
            pb.v1 = v1;
        } else if !pb.live {
            self.counters.book_updates_ignored += 1;
            return;
        } else if pb.book.depth() != usize::from(depth) {
            // The v1 channel name changed the depth mid-stream: keep the levels.
            let (pp, qp) = precisions(&self.instruments);
            pb.book = resized(&pb.book, usize::from(depth), pp, qp);
        }
        for l in &bids {
            pb.book.apply(Side::Buy, l.price, l.qty);
        }
        for l in &asks {
            pb.book.apply(Side::Sell, l.price, l.qty);
        }
        pb.book.truncate();
        if let Some(expected) = checksum {
            self.counters.checksums_verified += 1;
            if pb.book.checksum() != expected {
                self.counters.checksum_mismatches += 1;
                self.counters.resyncs += 1;
                pb.book.clear();
                pb.live = false;
                let reason = BookInvalidReason::ChecksumMismatch;
                events.push(MarketEvent::BookInvalid { symbol: symbol.clone(), time, reason });
                notices.push(FeedNotice::Resync { symbol: symbol.to_string(), reason });
                return;
            }
        }
        let top = pb.book.top();
        let depth = u16::try_from(pb.book.depth()).unwrap_or(u16::MAX);
        self.counters.events += 1;
        events.push(MarketEvent::Book(BookEvent {
            symbol: symbol.clone(),
            time,
            snapshot,
            depth,
            bids,
            asks,
            top,
        }));
    }

    // ---- helpers ----------------------------------------------------------------------

    fn advance(&mut self, t: EventTime) {
        if t > self.last_time {
            self.last_time = t;
        }
    }

    fn intern(&mut self, s: &str) -> Symbol {
        // A feed carries a few pairs: the first ones interned are searched before the
        // ordered set.
        if let Some(sym) = self.first_symbols.iter().find(|sym| sym.as_bytes() == s.as_bytes()) {
            return sym.clone();
        }
        if let Some(sym) = self.symbols.get(s) {
            return sym.clone();
        }
        let sym: Symbol = Arc::from(s);
        self.symbols.insert(sym.clone());
        // Only symbols written the same raw and unescaped, so matching their text in place
        // (`read_element_symbol`) reads what the scanner would.
        let plain = !sym.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        if plain && self.first_symbols.len() < FIRST_SYMBOLS {
            self.first_symbols.push(sym.clone());
        }
        sym
    }

    fn v1_symbol(&mut self, v1: &str) -> Symbol {
        if let Some(sym) = self.v1_names.get(v1) {
            return sym.clone();
        }
        let sym = self.intern(&v2_symbol(v1));
        self.v1_names.insert(v1.into(), sym.clone());
        sym
    }
}

/// A copy of `book` with another depth (levels kept, then cut to the new depth).
fn resized(book: &L2Book, depth: usize, pp: Option<u32>, qp: Option<u32>) -> L2Book {
    let mut b = L2Book::new(depth, pp, qp);
    for side in [Side::Buy, Side::Sell] {
        for l in book.levels(side) {
            b.apply(side, l.price, l.qty);
        }
    }
    b.truncate();
    b
}

fn system_status(s: &str) -> SystemStatus {
    match s {
        "online" => SystemStatus::Online,
        "cancel_only" => SystemStatus::CancelOnly,
        "post_only" => SystemStatus::PostOnly,
        // `maintenance` and anything unknown: refuse trading rather than guess.
        _ => SystemStatus::Maintenance,
    }
}

fn read_decimal(s: &mut Scan<'_>, what: &str) -> Result<rust_decimal::Decimal, Skip> {
    if let Some(d) = s.plain_decimal() {
        return Ok(d);
    }
    let t = s.number()?;
    parse_decimal_bytes(t.as_bytes()).ok_or_else(|| malformed(format!("{what}: {t} is not a decimal")))
}

fn read_rfc3339(s: &mut Scan<'_>, reader: &mut Rfc3339Reader) -> Result<EventTime, Skip> {
    // Kraken's 27-byte layout in place; anything else as a string.
    if let Some(t) = s.fixed_str::<27, _>(|b| reader.parse(b)) {
        return Ok(t);
    }
    let t = s.str()?;
    reader.parse(t.raw.as_bytes()).ok_or_else(|| malformed(format!("bad timestamp {:?}", t.raw)))
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

/// A level written exactly as Kraken writes it, `{"price":<number>,"qty":<number>}` with no
/// whitespace and non-negative values. Anything else leaves the cursor where it was (None)
/// for the general loop, which also names any error.
#[inline]
fn read_v2_level_compact(s: &mut Scan<'_>) -> Option<Level> {
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

/// Reads one JSON array of strings, keeping its first `N` elements (later ones are skipped).
fn read_str_fields<'a, const N: usize>(s: &mut Scan<'a>) -> Result<[Option<JStr<'a>>; N], Skip> {
    let mut f = [None; N];
    let mut i = 0;
    let mut first = true;
    while s.item(&mut first)? {
        if i < N {
            f[i] = Some(s.str()?);
        } else {
            s.skip()?;
        }
        i += 1;
    }
    Ok(f)
}

/// v1 levels: `[["354.15000000","5.00000000","1618678133.365913"(,"r")], …]`.
fn read_v1_levels(s: &mut Scan<'_>, out: &mut Levels, latest: &mut EventTime) -> Result<(), Skip> {
    let mut first = true;
    while s.item(&mut first)? {
        // A 4th element "r" (republished level) is an ordinary upsert: skipped.
        let f: [Option<JStr<'_>>; 3] = read_str_fields(s)?;
        let [Some(p), Some(q), t] = f else { return Err(malformed("v1 book: level needs price and volume")) };
        let price = parse_decimal_bytes(p.raw.as_bytes())
            .ok_or_else(|| malformed(format!("v1 book: price {:?}", p.raw)))?;
        let qty = parse_decimal_bytes(q.raw.as_bytes())
            .ok_or_else(|| malformed(format!("v1 book: volume {:?}", q.raw)))?;
        if price.is_sign_negative() || qty.is_sign_negative() {
            return Err(malformed("v1 book: negative price or volume"));
        }
        if let Some(t) = t {
            let t = EventTime::parse_unix_seconds(t.raw).map_err(|e| malformed(format!("v1 book: {e}")))?;
            *latest = (*latest).max(t);
        }
        out.push(Level { price, qty });
    }
    Ok(())
}

/// Subscription requests for `pairs`, in this order: instrument, ticker, trade, book (book
/// last: the simulator starts its clock on the book subscription).
pub fn subscribe_requests(pairs: &[String], depth: u16) -> Vec<String> {
    let mut out = vec![r#"{"method":"subscribe","params":{"channel":"instrument"},"req_id":1}"#.to_string()];
    if pairs.is_empty() {
        return out;
    }
    let symbols = symbols_json(pairs);
    out.push(format!(
        r#"{{"method":"subscribe","params":{{"channel":"ticker","symbol":{symbols}}},"req_id":2}}"#
    ));
    // The trade snapshot (last 50 trades) is history, not market flow: ask for none.
    out.push(format!(
        r#"{{"method":"subscribe","params":{{"channel":"trade","symbol":{symbols},"snapshot":false}},"req_id":3}}"#
    ));
    out.push(book_request("subscribe", &symbols, depth, 4));
    out
}

/// Requests that rebuild one pair's book: unsubscribe then subscribe `book` (a fresh snapshot).
///
/// The unsubscribe carries `req_id`, the subscribe `req_id + 1`: Kraken answers a failed
/// unsubscribe with `"method":"subscribe"`, so only distinct ids tell the two apart.
pub fn resubscribe_book(pair: &str, depth: u16, req_id: u64) -> Vec<String> {
    let symbols = symbols_json(std::slice::from_ref(&pair));
    vec![
        book_request("unsubscribe", &symbols, depth, req_id),
        book_request("subscribe", &symbols, depth, req_id.saturating_add(1)),
    ]
}

fn book_request(method: &str, symbols: &str, depth: u16, req_id: u64) -> String {
    format!(
        r#"{{"method":"{method}","params":{{"channel":"book","symbol":{symbols},"depth":{depth}}},"req_id":{req_id}}}"#
    )
}

fn symbols_json<S: AsRef<str>>(pairs: &[S]) -> String {
    let list: Vec<&str> = pairs.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
