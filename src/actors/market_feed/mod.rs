//! MarketFeed actor: one WebSocket connection to Kraken's v2 API — or to the embedded
//! simulated exchange, through exactly the same client — decoded into verified market events
//! and driven through the trading pipeline one batch at a time.
//!
//! - In: frames from [`run_connection`]; [`Shutdown`] (write `feed_stats`); [`EmergencyStop`]
//!   (logged: data keeps flowing so marks, logs and the dashboard stay live); [`StopFeed`].
//! - Out: [`MarketData`](crate::messages::MarketData) to PositionBook, RiskManager, the
//!   signal actors and the aggregator, then [`Barrier`](crate::messages::Barrier)s and a
//!   journal [`Flush`](crate::messages::Flush) — each awaited, so exactly one batch is in
//!   flight and the order of everything is fixed by the data.
//! - Fails: a dead, silent or refused connection ends the connection future; the actor then
//!   stops itself and its `actix::Supervisor` restarts it. `restarting()` computes the
//!   exponential backoff with jitter (`feed_backoff`) and the next `started()` connects after
//!   it. A live feed first fills the gap (`gap`: the trades missed while disconnected, over
//!   REST, through the pipeline while the old books stand); then books are invalidated
//!   (`BookInvalid: disconnected`) and rebuilt from the snapshots of the restored
//!   subscriptions. A panic while reading or driving frames is caught and handled like a
//!   lost connection (`supervision::Policy::Restart`). A checksum mismatch resubscribes that
//!   pair's book
//!   (`book_resync`); trading on it pauses until the new snapshot.
//! - Live runs: what the start-up REST fetch brings ([`MarketFeed::with_rest_startup`]:
//!   fee schedules, warm-up candles) is recorded as `fees` / `ohlc` lines and driven through
//!   the pipeline as one-event batches at that point of the stream (re-executed in line on
//!   resume); the warm-up is awaited before the first connection, bounded by its timeout.
//!
//! Here: the actor (connection, supervision, handlers). Beside it: `drive` (decoded frames
//! through the [`Pipeline`], pass by pass; the REST lines), `replay` (playing a recording),
//! `live_resume` (continuing a live run after a restart of the process, catching up after a
//! reconnect), `gap` (filling a live feed's gap over REST), `frames` (decoding
//! frames into batches), `settings` and `state` (what survives restarts), `error` (why the
//! frame consumer stops: [`FeedError`]).

mod drive;
mod error;
mod frames;
mod gap;
mod live_resume;
mod replay;
mod settings;
mod state;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::actors::journal::{Append, RecordFrames};
use crate::core::journal::Entry;
use crate::core::kraken::decode::FeedCounters;
use crate::core::rng::Rng;
use crate::core::time::EventTime;
use crate::messages::{EmergencyStop, Shutdown};
use crate::sources::kraken_ws::{ConnectionSettings, Flow, run_connection};
use crate::sources::rest_startup::RestStartup;
use crate::supervision::{ActorName, Watch};

use crate::pipeline::Pipeline;
pub use error::FeedError;
pub use settings::{FeedSettings, GapFetch, LiveResume, ReplayInput};

use drive::{
    apply_rest_lines, process_frames, record_frames, record_rest_lines, take_rest_fees, wait_for_warmup,
};
use live_resume::{catch_up_reconnect, resume_live};
use replay::replay_file;
use state::FeedState;

/// Stops reading: the current connection closes after the batch in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopFeed;

/// Asks for the feed's health (dashboard, `/health`).
#[derive(Message)]
#[rtype(result = "FeedHealth")]
pub struct GetFeedHealth;

/// The MarketFeed actor.
pub struct MarketFeed {
    settings: FeedSettings,
    pipeline: Pipeline,
    state: Rc<RefCell<FeedState>>,
    ended: mpsc::UnboundedSender<FeedEnded>,
    attempt: u32,
    next_delay: Duration,
    jitter: Rng,
    connected_since: Option<tokio::time::Instant>,
    last_error: String,
    /// The kind of the last failure, without addresses: what the journal may hold.
    last_error_kind: &'static str,
    /// Reports a panic that escaped the catch around the connection (the run then ends).
    _supervision: Watch,
}

impl Actor for MarketFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "market_feed", url = %self.settings.endpoint.url, attempt = self.attempt, "market feed started");
        if self.next_delay.is_zero() {
            self.connect(ctx);
        } else {
            ctx.run_later(self.next_delay, |act, ctx| act.connect(ctx));
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "market_feed", reason = %self.last_error, "market feed stopped");
    }
}

impl Supervised for MarketFeed {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let reconnect = &self.settings.endpoint.reconnect;
        let healthy = self.connected_since.is_some_and(|t| t.elapsed() >= reconnect.healthy_after);
        self.attempt = if healthy { 1 } else { self.attempt + 1 };
        self.next_delay = reconnect.delay(self.attempt, self.jitter.uniform());
        let mut st = self.state.borrow_mut();
        st.restarts += 1;
        st.decoder.reset_books();
        st.book.distrust(&self.settings.endpoint.pairs);
        // The next connection first fills the gap, then invalidates the books.
        st.reconnected = Some((self.attempt, self.last_error_kind));
        drop(st);
        tracing::warn!(
            event = "actor_restarted",
            actor = "market_feed",
            attempt = self.attempt,
            reason = %self.last_error,
            "market feed restarted by its supervisor"
        );
        tracing::warn!(
            event = "feed_backoff",
            actor = "market_feed",
            attempt = self.attempt,
            backoff_ms = self.next_delay.as_millis() as u64,
            "waiting before reconnecting"
        );
    }
}

impl MarketFeed {
    /// A feed that reports its end on `ended`.
    pub fn new(settings: FeedSettings, pipeline: Pipeline, ended: mpsc::UnboundedSender<FeedEnded>) -> Self {
        let state = FeedState::new(&settings);
        let jitter = Rng::new(settings.jitter_seed);
        MarketFeed {
            settings,
            pipeline,
            state: Rc::new(RefCell::new(state)),
            ended,
            attempt: 0,
            next_delay: Duration::ZERO,
            jitter,
            connected_since: None,
            last_error: String::new(),
            last_error_kind: "",
            _supervision: Watch::inert(ActorName::MarketFeed),
        }
    }

    /// Reports a panic that escapes its restart, and takes the test hook (a panic once n
    /// frames are decoded), through `watch` (the engine's supervision).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.state.borrow_mut().test_panic_at = watch.panic_at();
        self._supervision = watch;
        self
    }

    /// Resume: after the batch that ends with decoded frame number `frames[i]`, stop as the
    /// earlier session did — send a [`ReplayedStop`] to `to` and wait for its answer.
    pub fn with_replayed_stops(self, frames: Vec<u64>, to: mpsc::UnboundedSender<ReplayedStop>) -> Self {
        {
            let mut st = self.state.borrow_mut();
            st.replayed_stops = frames.into();
            st.stop_replayer = Some(to);
        }
        self
    }

    /// Live runs: record every frame received and every request sent to `to` (the journal,
    /// which writes `feed.jsonl` and keeps it ahead of the journal).
    pub fn with_recording(self, to: Recipient<RecordFrames>) -> Self {
        self.state.borrow_mut().recorder = Some(to);
        self
    }

    /// Live resume: before connecting, re-execute the run's recording, then fill the gap
    /// while the process was down (see [`resume_live`]).
    pub fn with_live_resume(self, resume: LiveResume) -> Self {
        self.state.borrow_mut().live_resume = Some(resume);
        self
    }

    /// Live runs: after every reconnect (and on resume), the trades missed while
    /// disconnected are fetched over REST and applied before the new snapshot; PositionBook
    /// reviews the orders whose fate in the gap cannot be known (see [`GapFetch`]).
    pub fn with_gap_fetch(self, gap: GapFetch) -> Self {
        self.state.borrow_mut().gap_fetch = Some(Rc::new(gap));
        self
    }

    /// Live runs: what the start-up REST fetch finds (`sources::rest_startup`) enters the
    /// pipeline as recorded lines: the warm-up candles before the first connection (waiting
    /// at most their timeout), fee schedules before the next frame after they arrive.
    pub fn with_rest_startup(self, startup: RestStartup) -> Self {
        {
            let mut st = self.state.borrow_mut();
            st.rest_fees = Some(startup.fees);
            st.warmup = startup.warmup.map(|w| (w, startup.warmup_timeout));
        }
        self
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.state.borrow().finished {
            return;
        }
        let settings = self.settings.clone();
        let state = self.state.clone();
        let pipeline = self.pipeline.clone();
        let ended = self.ended.clone();
        self.connected_since = Some(tokio::time::Instant::now());
        let (live_resume, recorder, reconnected, gap, warmup) = {
            let mut st = self.state.borrow_mut();
            let gap = st.gap_fetch.clone();
            (st.live_resume.take(), st.recorder.clone(), st.reconnected.take(), gap, st.warmup.take())
        };
        let fut = async move {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            let conn = ConnectionSettings::subscribing(&settings.endpoint, 1);
            if let Some(replay) = settings.replay.clone() {
                return replay_file(&replay, &state, &settings, &pipeline, &tx, &ended).await;
            }
            // Before a frame of this connection: a resume's re-execution and gap, or a
            // reconnect's gap and book invalidation.
            let caught_up = async {
                if let Some(resume) = live_resume {
                    return resume_live(&resume, gap.as_deref(), &state, &settings, &pipeline, &ended).await;
                }
                match reconnected {
                    Some((attempt, reason)) => {
                        let at = (attempt, reason);
                        catch_up_reconnect(gap.as_deref(), &state, &settings, &pipeline, &ended, at).await
                    }
                    None => Ok(Flow::Continue),
                }
            };
            match caught_up.await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Ok(()),
                Err(e) => {
                    tracing::error!(actor = "market_feed", error = %e, "catching up after a downtime failed; ending the run");
                    state.borrow_mut().finished = true;
                    let _ = ended.send(FeedEnded::Failed(e));
                    return Ok(());
                }
            }
            // Start-up REST: the warm-up candles (bounded wait), then any fee schedule already
            // there, before the first frame of the connection.
            let mut startup = match warmup {
                Some((rx, timeout)) => wait_for_warmup(rx, timeout).await,
                None => Vec::new(),
            };
            startup.splice(0..0, take_rest_fees(&state));
            if !startup.is_empty() {
                record_rest_lines(&recorder, &startup);
                if apply_rest_lines(&state, &pipeline, &ended, &startup).await == Flow::Stop {
                    return Ok(());
                }
            }
            let consume = |frames: Vec<tokio_tungstenite::tungstenite::Utf8Bytes>| {
                // A fee schedule that arrived meanwhile goes first: recorded before the frame,
                // applied before it, as a re-execution of the recording does.
                let rest_lines = take_rest_fees(&state);
                record_rest_lines(&recorder, &rest_lines);
                record_frames(&recorder, "recv", frames.iter().map(|f| f.as_str()));
                let state = state.clone();
                let pipeline = pipeline.clone();
                let tx = tx.clone();
                let ended = ended.clone();
                let settings = settings.clone();
                async move {
                    if !rest_lines.is_empty()
                        && apply_rest_lines(&state, &pipeline, &ended, &rest_lines).await == Flow::Stop
                    {
                        return Ok(Flow::Stop);
                    }
                    process_frames(&state, &settings, &pipeline, &tx, &ended, frames).await
                }
            };
            let sent = |req: &str| record_frames(&recorder, "sent", std::iter::once(req));
            run_connection(&conn, rx, sent, consume).await
        };
        // A panic while reading or driving frames ends this connection like a lost one: the
        // supervisor restarts the feed after its backoff.
        let fut = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut));
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.state.borrow_mut().connected = false;
            let res = match res {
                Ok(res) => res,
                Err(payload) => {
                    act.last_error = format!("panic: {}", crate::supervision::panic_text(payload.as_ref()));
                    act.last_error_kind = "panic";
                    tracing::error!(
                        event = "actor_panicked",
                        actor = "market_feed",
                        reason = %act.last_error,
                        "market feed panicked; its supervisor restarts it"
                    );
                    act.state.borrow_mut().reconnects += 1;
                    ctx.stop();
                    return;
                }
            };
            match res {
                Ok(()) => {
                    tracing::info!(actor = "market_feed", "feed connection closed at the end of the run");
                }
                Err(e) => {
                    act.last_error = e.to_string();
                    act.last_error_kind = match e {
                        crate::sources::kraken_ws::ConnectionError::Connect { .. } => "connect_failed",
                        crate::sources::kraken_ws::ConnectionError::Closed(_) => "closed_by_server",
                        crate::sources::kraken_ws::ConnectionError::Silent(_) => "silent",
                        crate::sources::kraken_ws::ConnectionError::Transport(_) => "transport_error",
                        crate::sources::kraken_ws::ConnectionError::Consumer(_) => "consumer_stopped",
                    };
                    let attempt = act.attempt + 1;
                    let mut st = act.state.borrow_mut();
                    st.reconnects += 1;
                    let reconnects = st.reconnects;
                    drop(st);
                    tracing::warn!(
                        event = "feed_reconnect",
                        actor = "market_feed",
                        attempt,
                        reconnects,
                        reason = %act.last_error,
                        "feed connection lost; restarting the feed under its supervisor"
                    );
                    ctx.stop();
                }
            }
        }));
    }
}

impl Handler<StopFeed> for MarketFeed {
    type Result = ();

    fn handle(&mut self, _msg: StopFeed, _ctx: &mut Self::Context) {
        self.state.borrow_mut().stop_requested = true;
    }
}

impl Handler<EmergencyStop> for MarketFeed {
    type Result = ();

    fn handle(&mut self, msg: EmergencyStop, _ctx: &mut Self::Context) {
        tracing::info!(actor = "market_feed", reason = %msg.reason, "emergency stop: market data keeps flowing, trading is halted");
    }
}

impl Handler<Shutdown> for MarketFeed {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) {
        let st = self.state.borrow();
        let c = &st.passed;
        let record = Entry::new(
            msg.time,
            "feed_stats",
            &serde_json::json!({
                "frames": c.frames,
                "events": c.events,
                "checksums_verified": c.checksums_verified,
                "checksum_mismatches": c.checksum_mismatches,
                "resyncs": c.resyncs,
                "reconnects": st.reconnects,
                "malformed": c.malformed,
                "unknown": c.unknown,
            }),
        );
        self.pipeline.journal().do_send(Append { entries: vec![record] });
    }
}

impl Handler<GetFeedHealth> for MarketFeed {
    type Result = MessageResult<GetFeedHealth>;

    fn handle(&mut self, _msg: GetFeedHealth, _ctx: &mut Self::Context) -> Self::Result {
        let st = self.state.borrow();
        MessageResult(FeedHealth {
            connected: st.connected,
            counters: st.passed.clone(),
            reconnects: st.reconnects,
            restarts: st.restarts,
            last_event_time: st.book.last_time,
            untrusted_pairs: st.book.untrusted.iter().cloned().collect(),
            passes: st.passes,
        })
    }
}

/// The feed's health.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FeedHealth {
    /// Connected right now.
    pub connected: bool,
    /// Counters.
    pub counters: FeedCounters,
    /// Reconnects so far.
    pub reconnects: u64,
    /// Actor restarts so far.
    pub restarts: u64,
    /// Last event time seen.
    pub last_event_time: EventTime,
    /// Pairs whose book is not trusted right now.
    pub untrusted_pairs: Vec<String>,
    /// Pipeline passes so far (frames with events go through one at a time, or several in
    /// one pass while every stage is quiet).
    pub passes: u64,
}

/// Why the feed stopped for good.
#[derive(Debug)]
pub enum FeedEnded {
    /// Event time reached the end of the run's duration.
    DurationReached(EventTime),
    /// Asked to stop.
    Stopped(EventTime),
    /// The feed could not go on (a pass failed, a recording or REST line could not be
    /// applied): the run must end.
    Failed(FeedError),
    /// The feed's end channel closed without a word.
    Vanished,
}

/// Resume: the re-executed feed has reached the frame at which an earlier session was stopped
/// by a signal. The receiver writes that session's end-of-run block again (same records, same
/// state changes: the same handlers run at the same point) and answers on `done`; the feed
/// waits for it, then goes on with the next frame.
#[derive(Debug)]
pub struct ReplayedStop {
    /// Event time the session stopped at (its `Shutdown` time).
    pub time: EventTime,
    /// Answered once the block is written.
    pub done: tokio::sync::oneshot::Sender<()>,
}
