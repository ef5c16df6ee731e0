//! The market feed's own bookkeeping, apart from decoding and connections: which pairs' books
//! are not trusted (until their next snapshot), the run's clock (the last event time, and the
//! end of the run once its first timed event is known), the global event sequence numbers,
//! the request ids of book resubscriptions and the last trade seen per pair (where the REST
//! catch-up of a live resume starts). Pure: `actors::market_feed` owns one.

use std::collections::BTreeSet;

use crate::core::journal::Entry;
use crate::core::market::{BookInvalidReason, MarketBatch, MarketEvent};
use crate::core::symbol_map::SymbolMap;
use crate::core::time::EventTime;

/// What the feed knows about the stream so far.
#[derive(Clone, Debug)]
pub struct FeedBook {
    /// Last event time decoded (by the feed's decoder, or by the replay reader's).
    pub last_time: EventTime,
    /// Global sequence number of the next event.
    pub next_seq: u64,
    /// Event time the run ends at (None until the first event with exchange time, unless
    /// known from the start: resume).
    pub end_time: Option<EventTime>,
    /// Pairs whose book is not trusted right now.
    pub untrusted: BTreeSet<String>,
    /// Last request id used (book resubscriptions take two each).
    req_id: u64,
    /// Last trade (time, id) seen per pair.
    last_trades: SymbolMap<(EventTime, u64)>,
}

impl FeedBook {
    /// A feed whose first event is numbered `first_seq`, ending at `end_time` if known.
    pub fn new(first_seq: u64, end_time: Option<EventTime>) -> FeedBook {
        FeedBook {
            last_time: EventTime::ZERO,
            next_seq: first_seq,
            end_time,
            untrusted: BTreeSet::new(),
            req_id: 1000,
            last_trades: SymbolMap::default(),
        }
    }

    /// A checksum mismatch on `symbol`: its book is untrusted until the snapshot of the
    /// resubscription; returns the request id the resubscription uses.
    pub fn resync(&mut self, symbol: String) -> u64 {
        self.req_id += 2;
        self.untrusted.insert(symbol);
        self.req_id
    }

    /// A disconnect: every pair's book is untrusted until its new snapshot.
    pub fn distrust(&mut self, pairs: &[String]) {
        self.untrusted.extend(pairs.iter().cloned());
    }

    /// Takes a batch's decoded events into account: a book snapshot makes its pair trusted
    /// again, trades update the last trade per pair, the first event with exchange time
    /// starts the run's clock (the run lasts `duration_micros`). Returns the sequence number
    /// of the batch's first event (the events are numbered on).
    #[inline]
    pub fn admit(&mut self, events: &[MarketEvent], duration_micros: i64) -> u64 {
        for e in events {
            if let MarketEvent::Book(b) = e
                && b.snapshot
            {
                self.untrusted.remove(&*b.symbol);
            }
            if let MarketEvent::Trade(t) = e {
                // Updated in place: no symbol copied per trade.
                *self.last_trades.get_or_insert_with(&t.symbol, || (t.time, t.trade_id)) =
                    (t.time, t.trade_id);
            }
        }
        if self.end_time.is_none() {
            // The run's clock starts at the first event that carries exchange time (reference
            // data before it carries none).
            if let Some(first) = events.iter().find(|e| e.time() > EventTime::ZERO) {
                self.end_time = Some(first.time().plus_micros(duration_micros));
            }
        }
        let first_seq = self.next_seq;
        self.next_seq += events.len() as u64;
        first_seq
    }

    /// Whether event time `t` is at or past the run's end.
    #[inline]
    pub fn ended_at(&self, t: EventTime) -> bool {
        self.end_time.is_some_and(|end| t >= end)
    }

    /// The last trade (time, id) seen per pair.
    pub fn last_trades(&self) -> &SymbolMap<(EventTime, u64)> {
        &self.last_trades
    }

    /// After a disconnect (reconnect attempt `attempt`, for `reason`): the `BookInvalid`
    /// batch telling the pipeline every pair's book is untrusted, stamped with the last event
    /// time and numbered on, and the `feed_reconnect` record.
    pub fn invalidation(&mut self, pairs: &[String], attempt: u32, reason: &str) -> (MarketBatch, Entry) {
        let time = self.last_time;
        let events: Vec<MarketEvent> = pairs
            .iter()
            .map(|p| MarketEvent::BookInvalid {
                symbol: p.as_str().into(),
                time,
                reason: BookInvalidReason::Disconnected,
            })
            .collect();
        let first_seq = self.next_seq;
        self.next_seq += events.len() as u64;
        let record =
            Entry::new(time, "feed_reconnect", &serde_json::json!({ "attempt": attempt, "reason": reason }));
        (MarketBatch::one_frame(first_seq, events, time), record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<String> {
        vec!["BTC/USD".into(), "ETH/USD".into()]
    }

    #[test]
    fn events_are_numbered_on_across_batches_and_invalidations() {
        let mut f = FeedBook::new(7, None);
        f.last_time = EventTime::ZERO.plus_micros(5);
        let (batch, record) = f.invalidation(&pairs(), 3, "silent");
        assert_eq!((batch.first_seq, batch.events.len(), batch.frames.len()), (7, 2, 1));
        assert_eq!(record.kind, "feed_reconnect");
        assert_eq!(record.body["attempt"], 3);
        assert_eq!(record.body["reason"], "silent");
        assert_eq!(f.admit(&batch.events, 1_000), 9);
        assert_eq!(f.next_seq, 11);
    }

    #[test]
    fn the_clock_starts_at_the_first_timed_event() {
        let mut f = FeedBook::new(0, None);
        let untimed = FeedBook::new(0, None).invalidation(&pairs(), 1, "x").0.events;
        f.admit(&untimed, 1_000);
        assert_eq!(f.end_time, None);
        let mut g = FeedBook::new(0, None);
        g.last_time = EventTime::ZERO.plus_micros(500);
        let timed = g.invalidation(&pairs(), 1, "x").0.events;
        f.admit(&timed, 1_000);
        assert_eq!(f.end_time, Some(EventTime::ZERO.plus_micros(1_500)));
        assert!(!f.ended_at(EventTime::ZERO.plus_micros(1_499)));
        assert!(f.ended_at(EventTime::ZERO.plus_micros(1_500)));
        // A known end (resume) is kept.
        let mut r = FeedBook::new(0, Some(EventTime::ZERO.plus_micros(9)));
        r.admit(&timed, 1_000);
        assert_eq!(r.end_time, Some(EventTime::ZERO.plus_micros(9)));
    }

    #[test]
    fn resyncs_distrust_a_pair_and_take_two_request_ids() {
        let mut f = FeedBook::new(0, None);
        assert_eq!(f.resync("BTC/USD".into()), 1002);
        assert_eq!(f.resync("BTC/USD".into()), 1004);
        assert_eq!(f.untrusted.iter().collect::<Vec<_>>(), ["BTC/USD"]);
        f.distrust(&pairs());
        assert_eq!(f.untrusted.len(), 2);
    }
}
