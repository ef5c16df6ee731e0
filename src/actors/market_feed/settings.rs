//! What a [`super::MarketFeed`] is built from: connection and run settings, the recording to
//! play instead of connecting, and how a live run resumes.

use crate::core::kraken::endpoint::WsEndpoint;

use crate::core::kraken::decode::FeedDecoder;
use crate::core::time::EventTime;

/// Connection and run settings.
#[derive(Clone, Debug)]
pub struct FeedSettings {
    /// The WebSocket feed: URL (unused by a replay), pairs, depth, liveness, reconnects.
    pub endpoint: WsEndpoint,
    /// Market time to run, from the first event.
    pub duration_micros: i64,
    /// Seed for the jitter generator (wall-time spreading only; never journaled).
    pub jitter_seed: u64,
    /// Global sequence number of the first event (resume continues it).
    pub first_seq: u64,
    /// Event time the run ends at, if already known (resume).
    pub end_time: Option<EventTime>,
    /// Play this recording instead of connecting.
    pub replay: Option<ReplayInput>,
    /// Instrument metadata known before any `instrument` message (`replay --instruments`):
    /// its precisions pad v2 checksum digits (`FeedDecoder::preload_instruments`).
    pub instruments: Vec<crate::core::instrument::Instrument>,
}

impl FeedSettings {
    /// A decoder for these settings: their depth, their preloaded instrument metadata.
    pub(super) fn decoder(&self) -> FeedDecoder {
        let mut decoder = FeedDecoder::new(self.endpoint.depth);
        decoder.preload_instruments(self.instruments.iter().cloned());
        decoder
    }
}

/// A recording to play (`kraken-paper replay FILE`).
#[derive(Clone, Debug)]
pub struct ReplayInput {
    /// The file.
    pub path: std::path::PathBuf,
    /// Lines (frames) per pipeline batch.
    pub batch_lines: usize,
}

/// What fills a live feed's gaps (`gap.rs`), kept for the whole run (reconnects and resume).
pub struct GapFetch {
    /// Kraken REST (Trades `since`), through the RateLimiter; None: no gap can be fetched
    /// (every pair's open orders are then reviewed as unknown).
    pub rest: Option<crate::sources::kraken_rest::KrakenRest>,
    /// PositionBook: reports the orders whose fate in the gap cannot be known.
    pub gap_review: actix::Recipient<crate::actors::position_book::GapReview>,
}

/// How a live run continues after its process stopped (`run --resume`): re-execute the
/// run's recording of its feed, catch up on the trades missed while down (the feed's
/// [`super::GapFetch`]), then reconnect.
pub struct LiveResume {
    /// The run's `feed.jsonl`.
    pub recording: std::path::PathBuf,
}
