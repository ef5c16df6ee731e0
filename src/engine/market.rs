//! Where a session's market data comes from, chosen once: the embedded simulated exchange,
//! Kraken's live WebSocket feed, or a recording played back. Each source is a driver of the
//! one `MarketFeed`; the engine asks the chosen source for the feed's settings and for what
//! only a live feed needs (REST at start-up, the gap fetch after reconnects and on resume).

use std::collections::BTreeSet;

use actix::prelude::*;

use crate::actors::journal::RecordFrames;
use crate::actors::market_feed::{FeedSettings, GapFetch, LiveResume, MarketFeed, ReplayInput};
use crate::actors::position_book::GapReview;
use crate::actors::rate_limiter::Acquire;
use crate::config::{Config, FeedSource};
use crate::core::instrument::Instrument;
use crate::run_dir::{RunDir, files};
use crate::sources::kraken_rest::KrakenRest;
use crate::sources::rest_startup::RestStartup;
use crate::sources::simulated::SimServer;

/// The market a session trades on.
pub enum MarketSource {
    /// The embedded simulated exchange: a server on 127.0.0.1 the feed connects to (it stops
    /// when this is dropped).
    Sim(SimServer),
    /// Kraken's WebSocket API v2; the feed is recorded beside the journal (`feed.jsonl`).
    Live {
        /// The WebSocket URL.
        url: String,
    },
    /// A recording played through the feed (`kraken-paper replay`).
    Replay(ReplayInput),
}

impl MarketSource {
    /// Chooses the source: a replay when there is a recording to play, else `feed.source`
    /// (the simulated exchange is started here).
    pub fn select(config: &Config, replay: Option<ReplayInput>) -> Result<MarketSource, super::EngineError> {
        Ok(match (replay, config.feed.source) {
            (Some(input), _) => MarketSource::Replay(input),
            (None, FeedSource::Sim) => {
                let sim = SimServer::start(
                    &config.sim,
                    &config.feed.pairs,
                    config.feed.book_depth,
                    config.run.speed,
                )
                .map_err(super::EngineError::Sim)?;
                tracing::info!(actor = "engine", url = %sim.url(), "simulated Kraken exchange listening");
                MarketSource::Sim(sim)
            }
            (None, FeedSource::Kraken) => MarketSource::Live { url: config.feed.ws_url.clone() },
        })
    }

    /// The name journaled in `run_started.source` (what `run --resume` plans by).
    pub fn name(&self) -> &'static str {
        match self {
            MarketSource::Sim(_) => "sim",
            MarketSource::Live { .. } => "kraken",
            MarketSource::Replay(_) => "replay",
        }
    }

    /// Kraken's live feed: recorded, flushed every pass, with REST at start-up.
    pub fn is_live(&self) -> bool {
        matches!(self, MarketSource::Live { .. })
    }

    /// The feed's settings for this source.
    pub(super) fn feed_settings(&self, config: &Config, instruments: Vec<Instrument>) -> FeedSettings {
        let (url, replay) = match self {
            MarketSource::Sim(sim) => (sim.url(), None),
            MarketSource::Live { url } => (url.clone(), None),
            MarketSource::Replay(input) => (String::new(), Some(input.clone())),
        };
        let mut settings = feed_settings(config, url);
        settings.replay = replay;
        settings.instruments = instruments;
        settings
    }
}

/// What a live source adds to the feed: its recording beside the journal, Kraken REST at
/// start-up (fee schedules, and for a fresh run the warm-up history), the gap fetch (the
/// trades missed while disconnected, after every reconnect and on a resume), and on a
/// resume the recording to re-execute.
pub(super) struct LiveParts {
    recorder: Recipient<RecordFrames>,
    rest_startup: Option<RestStartup>,
    gap: GapFetch,
    resume: Option<LiveResume>,
}

/// What the live parts are wired to.
pub(super) struct LiveWiring {
    /// The journal, which writes the feed recording (`feed.jsonl`) before the records.
    pub recorder: Recipient<RecordFrames>,
    /// Every REST call goes through the RateLimiter.
    pub limiter: Recipient<Acquire>,
    /// PositionBook reviews the orders whose fate in the gap cannot be known.
    pub gap_review: Recipient<GapReview>,
    /// Kraken OHLC intervals the signal models want history at.
    pub warmup_intervals: BTreeSet<u32>,
}

impl MarketSource {
    /// The live parts of this source's feed: None but for Kraken's live feed.
    pub(super) fn live_parts(
        &self,
        config: &Config,
        run_dir: &RunDir,
        resuming: bool,
        wiring: LiveWiring,
    ) -> Option<LiveParts> {
        if !self.is_live() {
            return None;
        }
        let LiveWiring { recorder, limiter, gap_review, warmup_intervals } = wiring;
        let resume = resuming.then(|| LiveResume { recording: run_dir.file(files::FEED_RECORDING) });
        let gap = gap_fetch(config, limiter.clone(), gap_review);
        // Warm-up history only for a fresh run: a resume re-executes the signals' past.
        let warm = match (resuming, config.feed.warmup.enabled) {
            (false, true) => warmup_intervals,
            _ => BTreeSet::new(),
        };
        let rest_startup = spawn_rest_startup(config, limiter, warm);
        Some(LiveParts { recorder, rest_startup, gap, resume })
    }
}

impl LiveParts {
    /// `feed` with the live parts attached.
    pub(super) fn attach(self, mut feed: MarketFeed) -> MarketFeed {
        if let Some(s) = self.rest_startup {
            feed = feed.with_rest_startup(s);
        }
        feed = feed.with_recording(self.recorder).with_gap_fetch(self.gap);
        if let Some(r) = self.resume {
            feed = feed.with_live_resume(r);
        }
        feed
    }
}

/// What fetches and reviews the trades a live feed missed while disconnected (after every
/// reconnect, and on a resume while the process was down).
fn gap_fetch(config: &Config, limiter: Recipient<Acquire>, gap_review: Recipient<GapReview>) -> GapFetch {
    GapFetch {
        rest: KrakenRest::new(
            &config.feed.rest_url,
            limiter,
            config.feed.rest.clone(),
        )
        .map_err(|e| tracing::warn!(actor = "engine", error = %e, "REST client unavailable: the trades missed while disconnected cannot be fetched"))
        .ok(),
        gap_review,
    }
}

/// Live runs: what only REST has (system status, the fee schedule, ordermin/costmin as
/// AssetPairs publishes them, OHLC history for the warm-up at `warmup` intervals), fetched in
/// the background through the RateLimiter (`sources::rest_startup`). An unreachable REST API
/// is retried with backoff and never stops trading on the WS feed.
fn spawn_rest_startup(
    config: &Config,
    limiter: Recipient<Acquire>,
    warmup: BTreeSet<u32>,
) -> Option<RestStartup> {
    match KrakenRest::new(&config.feed.rest_url, limiter, config.feed.rest.clone()) {
        Ok(rest) => Some(crate::sources::rest_startup::spawn(
            rest,
            config.feed.pairs.clone(),
            warmup,
            std::time::Duration::from_millis(config.feed.warmup.timeout_ms),
        )),
        Err(e) => {
            tracing::warn!(actor = "engine", error = %e, "REST client unavailable; trading cold on the WS feed with the built-in fee schedule");
            None
        }
    }
}

fn feed_settings(config: &Config, url: String) -> FeedSettings {
    FeedSettings {
        endpoint: config.feed.endpoint(url),
        duration_micros: config.run.duration.as_micros(),
        jitter_seed: config.sim.seed,
        first_seq: 1,
        end_time: None,
        replay: None,
        instruments: Vec::new(),
    }
}
