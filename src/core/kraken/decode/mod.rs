//! Frame decoder: Kraken WS v2 frames (and v1 arrays, and the `record` wrapper) into
//! [`MarketEvent`]s, with every book checksum verified.
//!
//! Interface contract (used by the MarketFeed actor and `replay`); internals are free.
//!
//! One road per concern:
//! - this module: [`FeedDecoder`], the dispatch of a frame (`decode_frame`), the fused
//!   record+frame pass, `decode_compact` (Kraken's exact layout, the hot path), applying books;
//! - [`compact`]: literal readers of a book / trade / ticker element in Kraken's exact layout;
//! - [`v2`]: the general v2 readers (any layout; they name the errors);
//! - [`v1`]: v1 arrays and events (old recordings);
//! - [`control`]: acks, pongs, the requests we sent, and the request builders.
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

use super::scan::{JStr, Scan, ScanError};
use super::symbols::v2_symbol;
use crate::core::book::L2Book;
use crate::core::instrument::{Instrument, Symbol};
use crate::core::market::{BookEvent, BookInvalidReason, Levels, MarketEvent, Side, SystemStatus};
use crate::core::money::parse_decimal_bytes;
use crate::core::time::{EventTime, Rfc3339Reader};

mod compact;
mod control;
mod v1;
mod v2;

use control::SentRequest;
pub use control::{resubscribe_book, subscribe_requests};

pub use super::instruments::load_instruments;
pub use super::symbols::{v2_asset, v2_symbol as v1_to_v2_symbol};

/// Kraken's book depth when a subscription names none.
const KRAKEN_DEFAULT_DEPTH: u16 = 10;
/// How many symbols [`FeedDecoder`] searches before its ordered set.
const FIRST_SYMBOLS: usize = 8;

// Keys in the order Kraken (and `record`) write them: the scanner tries the expected key
// first (`Scan::key_hint`) and reads any other layout the general way.
/// A `record` line's keys.
const RECORD_KEYS: [&str; 3] = ["ts", "dir", "msg"];
/// A v2 channel message's keys.
const FRAME_KEYS: [&str; 3] = ["channel", "type", "data"];

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

    // Called from every reader module (one codegen unit each): inline like the original.
    #[inline]
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

/// A v2 `status` / v1 `systemStatus` value (unknown values refuse trading).
fn system_status(s: &str) -> SystemStatus {
    match s {
        "online" => SystemStatus::Online,
        "cancel_only" => SystemStatus::CancelOnly,
        "post_only" => SystemStatus::PostOnly,
        // `maintenance` and anything unknown: refuse trading rather than guess.
        _ => SystemStatus::Maintenance,
    }
}

/// A number as a `Decimal` (plain decimals in place; any other number through its text).
#[inline]
fn read_decimal(s: &mut Scan<'_>, what: &str) -> Result<rust_decimal::Decimal, Skip> {
    if let Some(d) = s.plain_decimal() {
        return Ok(d);
    }
    let t = s.number()?;
    parse_decimal_bytes(t.as_bytes()).ok_or_else(|| malformed(format!("{what}: {t} is not a decimal")))
}

/// A timestamp: Kraken's 27-byte layout read in place, any other string parsed.
#[inline]
fn read_rfc3339(s: &mut Scan<'_>, reader: &mut Rfc3339Reader) -> Result<EventTime, Skip> {
    // Kraken's 27-byte layout in place; anything else as a string.
    if let Some(t) = s.fixed_str::<27, _>(|b| reader.parse(b)) {
        return Ok(t);
    }
    let t = s.str()?;
    reader.parse(t.raw.as_bytes()).ok_or_else(|| malformed(format!("bad timestamp {:?}", t.raw)))
}

#[cfg(test)]
mod layout_tests;
#[cfg(test)]
mod tests;
