//! Market events: what MarketFeed publishes after decoding frames and maintaining books.
//!
//! Every consumer (signal actors, RiskManager, PositionBook) sees the same ordered stream.
//! Events travel in [`MarketBatch`]es: the `n`-th event of a batch has the global sequence
//! number `first_seq + n`, which signals and decisions refer to, so that results do not
//! depend on how events were grouped into batches.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::fees::PairFees;
use super::instrument::{Instrument, Symbol};
use super::money::{Price, Qty};
use super::time::EventTime;

/// Buy or sell. On a trade event it is the taker's side.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy (bid side of the book).
    Buy,
    /// Sell (ask side of the book).
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    /// +1 for buy, −1 for sell.
    pub fn sign(self) -> i32 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
    /// Kraken's spelling (`buy` / `sell`).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// One price level of an L2 book (`qty` 0 in an update deletes the level).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// Price of the level.
    pub price: Price,
    /// Total displayed quantity at that price.
    pub qty: Qty,
}

/// Best levels after a book message was applied (and the book cut to its depth).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopOfBook {
    /// Best bid, if any.
    pub bid: Option<Level>,
    /// Best ask, if any.
    pub ask: Option<Level>,
    /// Sum of quantity over the (up to) 10 best bids.
    pub bid_depth: Qty,
    /// Sum of quantity over the (up to) 10 best asks.
    pub ask_depth: Qty,
}

impl TopOfBook {
    /// Mid price, if both sides exist.
    pub fn mid(&self) -> Option<Price> {
        match (self.bid, self.ask) {
            (Some(b), Some(a)) => Some((b.price + a.price) / rust_decimal::Decimal::TWO),
            _ => None,
        }
    }
    /// Ask minus bid, if both sides exist.
    pub fn spread(&self) -> Option<Price> {
        match (self.bid, self.ask) {
            (Some(b), Some(a)) => Some(a.price - b.price),
            _ => None,
        }
    }
}

/// The levels a book message changed on one side: inline up to one (most updates change
/// one level), so a book event usually needs no allocation.
pub type Levels = smallvec::SmallVec<[Level; 1]>;

/// A verified book message: the levels it changed, in wire order, and the top of book after.
///
/// Consumers that keep their own copy of the book apply `bids`/`asks` in order (qty 0 deletes,
/// otherwise the qty replaces the level's), then cut each side to `depth`; a `snapshot`
/// replaces the whole book. Only books whose checksum matched are published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookEvent {
    /// Pair.
    pub symbol: Symbol,
    /// Exchange timestamp (or the last event time seen when the message had none).
    pub time: EventTime,
    /// True for a snapshot (replace the book), false for an incremental update.
    pub snapshot: bool,
    /// Subscribed depth: each side holds at most this many levels.
    pub depth: u16,
    /// Bid levels changed by this message, in wire order.
    pub bids: Levels,
    /// Ask levels changed by this message, in wire order.
    pub asks: Levels,
    /// Top of book after applying the message.
    pub top: TopOfBook,
}

/// One trade printed by the exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeEvent {
    /// Pair.
    pub symbol: Symbol,
    /// Exchange timestamp of the trade.
    pub time: EventTime,
    /// The taker's side: `Buy` lifted asks, `Sell` hit bids.
    pub side: Side,
    /// Trade price.
    pub price: Price,
    /// Traded quantity (base units).
    pub qty: Qty,
    /// Kraken's per-pair trade id (0 when the source has none, e.g. v1).
    pub trade_id: u64,
    /// True when the taker was a market order.
    pub market_order: bool,
}

/// Level-1 summary from the `ticker` channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerEvent {
    /// Pair.
    pub symbol: Symbol,
    /// Exchange timestamp, or the last event time seen.
    pub time: EventTime,
    /// Best bid.
    pub bid: Price,
    /// Best ask.
    pub ask: Price,
    /// Last trade price.
    pub last: Price,
    /// 24 h volume in base units.
    pub volume: Qty,
    /// 24 h VWAP.
    pub vwap: Price,
}

/// Why a book can no longer be trusted (trading on the pair pauses until a new snapshot).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookInvalidReason {
    /// The CRC32 of the local book differed from the exchange's checksum.
    ChecksumMismatch,
    /// The connection dropped; the book will be rebuilt from a fresh snapshot.
    Disconnected,
    /// The book crossed (best bid ≥ best ask) after an update.
    Crossed,
    /// No update for longer than the configured staleness limit.
    Stale,
}

/// Exchange-wide trading state from the `status` channel.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemStatus {
    /// Normal operation.
    Online,
    /// No new orders, no cancels.
    Maintenance,
    /// Cancels only.
    CancelOnly,
    /// Only post-only limit orders.
    PostOnly,
}

/// Everything MarketFeed publishes, in exchange order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MarketEvent {
    /// A verified book snapshot or update.
    Book(BookEvent),
    /// A trade.
    Trade(TradeEvent),
    /// A ticker update.
    Ticker(TickerEvent),
    /// A book became untrusted (checksum mismatch, disconnect, staleness).
    BookInvalid {
        /// Pair.
        symbol: Symbol,
        /// Last event time seen.
        time: EventTime,
        /// Why.
        reason: BookInvalidReason,
    },
    /// Reference data for a pair arrived or changed.
    Instrument {
        /// The pair's metadata.
        instrument: Arc<Instrument>,
        /// Last event time seen.
        time: EventTime,
    },
    /// Exchange status changed.
    Status {
        /// Last event time seen.
        time: EventTime,
        /// New state.
        system: SystemStatus,
    },
    /// Kraken's fee schedule for a pair, from REST AssetPairs (live runs; a `fees` line of
    /// `feed.jsonl`): from here on it replaces the built-in table for the pair.
    FeeSchedule {
        /// Pair.
        symbol: Symbol,
        /// Last event time seen.
        time: EventTime,
        /// The schedule (checked).
        fees: Arc<PairFees>,
    },
    /// Closed candles of a pair from before the run, from REST OHLC (live runs; an `ohlc`
    /// line of `feed.jsonl`): what signal models warm up on. Trading state ignores it.
    History {
        /// Pair.
        symbol: Symbol,
        /// Last event time seen.
        time: EventTime,
        /// The candles.
        history: Arc<PriceHistory>,
    },
}

/// Closing prices of consecutive candles of one interval, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceHistory {
    /// Candle length, minutes (a Kraken OHLC interval).
    pub interval_minutes: u32,
    /// `(close time, close)`: the close time is the candle's last microsecond (open time +
    /// interval − 1 µs), so a sample taken at the next candle's open is on a later grid
    /// bucket.
    pub closes: Vec<(EventTime, Decimal)>,
}

impl MarketEvent {
    /// Event time of this event.
    pub fn time(&self) -> EventTime {
        match self {
            MarketEvent::Book(b) => b.time,
            MarketEvent::Trade(t) => t.time,
            MarketEvent::Ticker(t) => t.time,
            MarketEvent::BookInvalid { time, .. }
            | MarketEvent::Instrument { time, .. }
            | MarketEvent::Status { time, .. }
            | MarketEvent::FeeSchedule { time, .. }
            | MarketEvent::History { time, .. } => *time,
        }
    }

    /// Pair this event is about, if any.
    pub fn symbol(&self) -> Option<&Symbol> {
        match self {
            MarketEvent::Book(b) => Some(&b.symbol),
            MarketEvent::Trade(t) => Some(&t.symbol),
            MarketEvent::Ticker(t) => Some(&t.symbol),
            MarketEvent::BookInvalid { symbol, .. } => Some(symbol),
            MarketEvent::Instrument { instrument, .. } => Some(&instrument.symbol),
            MarketEvent::Status { .. } => None,
            MarketEvent::FeeSchedule { symbol, .. } | MarketEvent::History { symbol, .. } => Some(symbol),
        }
    }

    /// True for the events counted as "events" in feed statistics (book updates and trades).
    pub fn is_counted(&self) -> bool {
        matches!(self, MarketEvent::Book(_) | MarketEvent::Trade(_))
    }
}

/// A run of consecutive market events; event `i` has sequence number `first_seq + i`.
///
/// The events come from whole frames (one WebSocket message or recording line each, in
/// order); `frames` says where each frame's events end, so the pipeline can cut a batch
/// between any two frames (see `actors::market_feed`: passes are planned frame by frame).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketBatch {
    /// Sequence number of `events[0]`.
    pub first_seq: u64,
    /// The events, in exchange order.
    pub events: Vec<MarketEvent>,
    /// The frames the events came from, in order (frames without events included).
    pub frames: Vec<FrameMark>,
}

/// Where one frame of a [`MarketBatch`] ends, and what the feed knew after it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameMark {
    /// Index one past the frame's last event in `MarketBatch::events`.
    pub end: usize,
    /// Event time after the frame: its last event's time, else the last event time seen.
    pub time: EventTime,
}

impl MarketBatch {
    /// A batch of `events` treated as one frame.
    pub fn one_frame(first_seq: u64, events: Vec<MarketEvent>, time: EventTime) -> MarketBatch {
        let end = events.len();
        MarketBatch { first_seq, events, frames: vec![FrameMark { end, time }] }
    }
    /// Sequence number one past the last event.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
    /// Iterates `(seq, event)`.
    pub fn iter_seq(&self) -> impl Iterator<Item = (u64, &MarketEvent)> {
        self.events.iter().enumerate().map(move |(i, e)| (self.first_seq + i as u64, e))
    }
    /// The event with global sequence number `seq`, if it is in this batch.
    pub fn get(&self, seq: u64) -> Option<&MarketEvent> {
        seq.checked_sub(self.first_seq).and_then(|i| self.events.get(i as usize))
    }
    /// Index of the first event of frame `f` (frames are indexed from 0 within the batch).
    pub fn frame_start(&self, f: usize) -> usize {
        if f == 0 { 0 } else { self.frames.get(f - 1).map_or(self.events.len(), |m| m.end) }
    }
    /// The frame holding the event with sequence number `seq` (the last frame if `seq` is
    /// past the batch, the first if before it).
    pub fn frame_of_seq(&self, seq: u64) -> usize {
        let i = seq.saturating_sub(self.first_seq) as usize;
        self.frames.partition_point(|m| m.end <= i).min(self.frames.len().saturating_sub(1))
    }
}
