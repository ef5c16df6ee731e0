//! Frame decoder: Kraken WS v2 frames (and v1 arrays, and the `record` wrapper) into
//! [`MarketEvent`]s, with every book checksum verified. OWNER: feed helper.
//!
//! Interface contract (used by the MarketFeed actor and `replay`); internals are free.

use serde::{Deserialize, Serialize};

use crate::core::market::{BookInvalidReason, MarketEvent};
use crate::core::time::EventTime;

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
}

/// Decoder state: one book per pair, instrument metadata, subscribed depth.
pub struct FeedDecoder {}

impl FeedDecoder {
    /// A decoder for books of `depth` levels (10, 25, 100, 500, 1000).
    pub fn new(_depth: u16) -> FeedDecoder {
        todo!()
    }
    /// Decodes one frame; appends market events and notices. Event time is the exchange's
    /// timestamp where the message has one, else the last event time seen.
    pub fn decode(&mut self, _frame: &str, _events: &mut Vec<MarketEvent>, _notices: &mut Vec<FeedNotice>) {
        todo!()
    }
    /// Forgets every book (after a disconnect; snapshots follow the resubscription).
    pub fn reset_books(&mut self) {
        todo!()
    }
    /// Counters so far.
    pub fn counters(&self) -> &FeedCounters {
        todo!()
    }
    /// Last event time seen.
    pub fn last_time(&self) -> EventTime {
        todo!()
    }
}

/// Subscription requests for `pairs`, in this order: instrument, ticker, trade, book (book
/// last: the simulator starts its clock on the book subscription).
pub fn subscribe_requests(_pairs: &[String], _depth: u16) -> Vec<String> {
    todo!()
}

/// Requests that rebuild one pair's book: unsubscribe then subscribe `book` (a fresh snapshot).
pub fn resubscribe_book(_pair: &str, _depth: u16, _req_id: u64) -> Vec<String> {
    todo!()
}
