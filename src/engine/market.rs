//! Where a session's market data comes from, chosen once: the embedded simulated exchange,
//! Kraken's live WebSocket feed, or a recording played back. Each source is a driver of the
//! one `MarketFeed`; the engine asks the chosen source for the feed's settings and for what
//! only a live feed needs (REST at start-up, the gap fetch of a live resume).

use actix::prelude::*;

use crate::actors::market_feed::{FeedSettings, LiveResume, ReplayInput};
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
    pub fn select(config: &Config, replay: Option<ReplayInput>) -> Result<MarketSource, String> {
        Ok(match (replay, config.feed.source) {
            (Some(input), _) => MarketSource::Replay(input),
            (None, FeedSource::Sim) => {
                let sim = SimServer::start(
                    &config.sim,
                    &config.feed.pairs,
                    config.feed.book_depth,
                    config.run.speed,
                )
                .map_err(|e| e.to_string())?;
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

/// A live resume: the run's recording and what fetches and reviews the trades missed while
/// the run was down.
pub(super) fn live_resume(
    config: &Config,
    run_dir: &RunDir,
    limiter: Recipient<Acquire>,
    gap_review: Recipient<GapReview>,
) -> LiveResume {
    LiveResume {
        recording: run_dir.file(files::FEED_RECORDING),
        rest: KrakenRest::new(
            &config.feed.rest_url,
            limiter,
            config.feed.rest.clone(),
        )
        .map_err(|e| tracing::warn!(actor = "engine", error = %e, "REST client unavailable: the trades missed while down cannot be fetched"))
        .ok(),
        gap_review,
    }
}

/// Live runs: what only REST has (system status, the fee schedule, ordermin/costmin as
/// AssetPairs publishes them, OHLC history for the warm-up at `warmup` intervals), fetched in
/// the background through the RateLimiter (`sources::rest_startup`). An unreachable REST API
/// is retried with backoff and never stops trading on the WS feed.
pub(super) fn spawn_rest_startup(
    config: &Config,
    limiter: Recipient<Acquire>,
    warmup: std::collections::BTreeSet<u32>,
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
    let f = &config.feed;
    FeedSettings {
        url,
        pairs: f.pairs.clone(),
        depth: f.book_depth,
        ping_interval: std::time::Duration::from_millis(f.ping_interval_ms),
        liveness_timeout: std::time::Duration::from_millis(f.liveness_timeout_ms),
        initial_backoff_ms: f.reconnect.initial_backoff_ms,
        max_backoff_ms: f.reconnect.max_backoff_ms,
        jitter: f.reconnect.jitter,
        healthy_after: std::time::Duration::from_millis(f.reconnect.healthy_after_ms),
        duration_micros: config.run.duration.as_micros(),
        jitter_seed: config.sim.seed,
        first_seq: 1,
        end_time: None,
        replay: None,
        instruments: Vec::new(),
    }
}
