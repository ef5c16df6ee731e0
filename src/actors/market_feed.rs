//! MarketFeed actor: one WebSocket connection to Kraken's v2 API — or to the embedded
//! simulated exchange, through exactly the same client — decoded into verified market events
//! and driven through the trading pipeline one batch at a time.
//!
//! - In: frames from [`run_connection`]; [`Shutdown`] (write `feed_stats`); [`EmergencyStop`]
//!   (logged: data keeps flowing so marks, logs and the dashboard stay live); [`StopFeed`].
//! - Out: [`MarketData`] to PositionBook, RiskManager, the signal actors and the aggregator,
//!   then [`Barrier`]s and a journal [`Flush`] — each awaited, so exactly one batch is in
//!   flight and the order of everything is fixed by the data.
//! - Fails: a dead, silent or refused connection ends the connection future; the actor then
//!   stops itself and its `actix::Supervisor` restarts it. `restarting()` computes the
//!   exponential backoff with jitter (`feed_backoff`) and the next `started()` connects after
//!   it. Books are invalidated (`BookInvalid: disconnected`) and rebuilt from the snapshots
//!   of the restored subscriptions. A checksum mismatch resubscribes that pair's book
//!   (`book_resync`); trading on it pauses until the new snapshot.
//! - Live runs: what the start-up REST fetch brings ([`MarketFeed::with_rest_startup`]:
//!   fee schedules, warm-up candles) is recorded as `fees` / `ohlc` lines and driven through
//!   the pipeline as one-event batches at that point of the stream (re-executed in line on
//!   resume); the warm-up is awaited before the first connection, bounded by its timeout.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::actors::journal::{Append, Flush, JournalSink, RecordFrames};
use crate::core::journal::Entry;
use crate::core::kraken::decode::{self, FeedCounters, FeedDecoder, FeedNotice};
use crate::core::market::{BookInvalidReason, FrameMark, MarketBatch, MarketEvent};
use crate::core::risk::RiskWatch;
use crate::core::rng::Rng;
use crate::core::time::EventTime;
use crate::messages::{Barrier, BookPass, EmergencyStop, MarketData, NextDecision, Shutdown, WatchRequest};
use crate::sources::kraken_ws::{ConnectionSettings, Flow, backoff, run_connection};
use crate::sources::rest_startup::{RestLine, RestStartup};

/// Stops reading: the current connection closes after the batch in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopFeed;

/// Asks for the feed's health (dashboard, `/health`).
#[derive(Message)]
#[rtype(result = "FeedHealth")]
pub struct GetFeedHealth;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEnded {
    /// Event time reached the end of the run's duration.
    DurationReached(EventTime),
    /// Asked to stop.
    Stopped(EventTime),
    /// The pipeline failed (the journal could not write): the run must end.
    PipelineFailed(String),
}

/// The actors a batch goes through, in order.
#[derive(Clone)]
pub struct Pipeline {
    /// PositionBook first: fills and marks for this pass (it may end the pass early).
    pub position_book: Recipient<BookPass>,
    /// PositionBook barrier (orders placed by risk for this pass).
    pub position_book_barrier: Recipient<Barrier>,
    /// RiskManager: drawdown on the new portfolio (may broadcast EmergencyStop).
    pub risk: Recipient<MarketData>,
    /// RiskManager barrier (intents of this pass; answers what PositionBook must watch).
    pub risk_watch: Recipient<WatchRequest>,
    /// Signal actors (they get each batch whole, before its passes).
    pub signals: Vec<Recipient<MarketData>>,
    /// The aggregator, after the signal actors.
    pub aggregator: Recipient<MarketData>,
    /// The aggregator: from which event on it can decide (where a pass must end).
    pub next_decision: Recipient<NextDecision>,
    /// Journal durability barrier.
    pub journal_flush: Recipient<Flush>,
    /// Journal records.
    pub journal: JournalSink,
    /// `journal.appends_sent()` at the last Flush: a pass that appended nothing skips it.
    pub flushed_at: Arc<AtomicU64>,
    /// Flush after every pass even when it appended nothing (live runs: the feed recording
    /// `feed.jsonl` is written by the journal's Flush and must keep up with the frames).
    pub always_flush: bool,
    /// RiskManager's answer after the last pass (None before the first: frame by frame).
    pub watch: Arc<std::sync::Mutex<Option<RiskWatch>>>,
    /// The last pass's journal Flush, until the next pass awaits it ([`Pipeline::settle`]).
    pub pending_flush: Arc<std::sync::Mutex<Option<actix::dev::RecipientRequest<Flush>>>>,
}

impl Pipeline {
    /// Drives a batch through every stage as one pass (a disconnect's book invalidation).
    pub async fn run(&self, batch: MarketBatch) -> Result<(), String> {
        let data = MarketData::whole(Arc::new(batch));
        self.signals(&data).await;
        self.pass(data).await.map(|_| ())
    }

    /// The signal actors see a batch whole, ahead of its passes: they depend on market data
    /// only, and the aggregator holds their signals until their events come.
    pub async fn signals(&self, data: &MarketData) {
        for s in &self.signals {
            // A signal actor being restarted misses this batch; trading goes on.
            let _ = s.send(data.clone()).await;
        }
    }

    /// The lowest event sequence number at which the aggregator can decide.
    pub async fn next_decision(&self) -> Result<Option<u64>, String> {
        self.next_decision.send(NextDecision).await.map_err(|e| format!("pipeline stage stopped: {e}"))
    }

    /// One pass over `data.range` (whole frames) through every stage but the signal actors,
    /// awaiting each. PositionBook may end it early: returns the index one past the last
    /// event passed.
    pub async fn pass(&self, data: MarketData) -> Result<usize, String> {
        let closed = |e: MailboxError| format!("pipeline stage stopped: {e}");
        let watch = self.last_watch().unwrap_or_default();
        let (start, end) = (data.range.start, data.range.end);
        let applied =
            self.position_book.send(BookPass { data: data.clone(), watch }).await.map_err(closed)?;
        let data = MarketData { range: start..applied.clamp(start, end), ..data };
        self.risk.send(data.clone()).await.map_err(closed)?;
        self.aggregator.send(data.clone()).await.map_err(closed)?;
        let watch = self.risk_watch.send(WatchRequest).await.map_err(closed)?;
        if let Ok(mut w) = self.watch.lock() {
            *w = Some(watch);
        }
        self.position_book_barrier.send(Barrier).await.map_err(closed)?;
        let sent = self.journal.appends_sent();
        if self.flushed_at.swap(sent, Ordering::Relaxed) != sent || self.always_flush {
            // Group commit beside the data path: this pass's Flush is queued now (behind its
            // records) and awaited before the next one, so the journal's thread syncs while
            // the next pass is computed. At most one pass is unsynced; a failed write or sync
            // ends the run at the next pass (and `Close` reports it again).
            self.settle().await?;
            let flush = self.journal_flush.send(Flush);
            if let Ok(mut pending) = self.pending_flush.lock() {
                *pending = Some(flush);
            }
        }
        Ok(data.range.end)
    }

    /// Awaits the journal Flush still in flight, if any (see [`Self::pass`]).
    async fn settle(&self) -> Result<(), String> {
        let pending = self.pending_flush.lock().ok().and_then(|mut p| p.take());
        if let Some(flush) = pending {
            flush
                .await
                .map_err(|e| format!("pipeline stage stopped: {e}"))?
                .map_err(|e| format!("journal: {e}"))?;
        }
        Ok(())
    }

    /// RiskManager's answer after the last pass.
    fn last_watch(&self) -> Option<RiskWatch> {
        self.watch.lock().ok().and_then(|w| w.clone())
    }

    /// Whether the next pass must be a single frame (before the first pass, and while
    /// RiskManager is halted: a cool-down lifts at the first view past its end).
    pub fn frame_by_frame(&self) -> bool {
        self.last_watch().is_none_or(|w| w.halted)
    }
}

/// Connection and run settings.
#[derive(Clone, Debug)]
pub struct FeedSettings {
    /// `wss://ws.kraken.com/v2` or the simulator's `ws://127.0.0.1:PORT`.
    pub url: String,
    /// Pairs (WS v2 symbols).
    pub pairs: Vec<String>,
    /// Book depth.
    pub depth: u16,
    /// Ping after this much silence.
    pub ping_interval: Duration,
    /// Reconnect after this much silence.
    pub liveness_timeout: Duration,
    /// Backoff: first wait.
    pub initial_backoff_ms: u64,
    /// Backoff cap.
    pub max_backoff_ms: u64,
    /// Jitter fraction.
    pub jitter: f64,
    /// A connection up this long resets the backoff.
    pub healthy_after: Duration,
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
    fn decoder(&self) -> FeedDecoder {
        let mut decoder = FeedDecoder::new(self.depth);
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

/// What survives restarts of the actor (the supervisor reuses the struct).
struct FeedState {
    decoder: FeedDecoder,
    /// Last event time decoded (by `decoder`, or by the reader thread's decoder in `replay`).
    last_time: EventTime,
    /// The decoder's counters after the last frame passed through the pipeline (frames
    /// decoded past a stop are not counted).
    passed: FeedCounters,
    /// Pipeline passes so far.
    passes: u64,
    next_seq: u64,
    end_time: Option<EventTime>,
    stop_requested: bool,
    finished: bool,
    connected: bool,
    reconnects: u64,
    restarts: u64,
    untrusted: std::collections::BTreeSet<String>,
    req_id: u64,
    /// One-line progress on stderr, only when stderr is a terminal (never in logs/journal).
    progress: Option<Progress>,
    /// Resume: frame counts at which earlier sessions were stopped by a signal, and where to
    /// ask for their end-of-run block to be written again (see [`MarketFeed::with_replayed_stops`]).
    replayed_stops: std::collections::VecDeque<u64>,
    stop_replayer: Option<mpsc::UnboundedSender<ReplayedStop>>,
    /// Live runs: where received and sent frames are recorded (the journal's `RecordFrames`).
    recorder: Option<Recipient<RecordFrames>>,
    /// Live resume: done once, before the first connection.
    live_resume: Option<LiveResume>,
    /// Last trade (time, id) seen per pair: where the REST catch-up of a live resume starts.
    last_trades: crate::core::symbol_map::SymbolMap<(EventTime, u64)>,
    /// The book invalidation after a disconnect; the next connection waits for it, so its
    /// frames never overtake it (a re-execution of the recording runs them in this order).
    invalidation: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Live runs: `fees` lines from the start-up REST fetch, applied before the next frame.
    rest_fees: Option<mpsc::UnboundedReceiver<Vec<RestLine>>>,
    /// Live runs: the warm-up candles, awaited (bounded) before the first connection.
    warmup: Option<(tokio::sync::oneshot::Receiver<Vec<RestLine>>, Duration)>,
}

/// How a live run continues after its process stopped (`run --resume`): re-execute the
/// run's recording of its feed, catch up on the trades missed while down, then reconnect.
pub struct LiveResume {
    /// The run's `feed.jsonl`.
    pub recording: std::path::PathBuf,
    /// Kraken REST (Trades `since`), through the RateLimiter; None: the gap cannot be fetched.
    pub rest: Option<crate::sources::kraken_rest::KrakenRest>,
    /// PositionBook: reports the orders whose fate in the gap cannot be known.
    pub gap_review: Recipient<crate::actors::position_book::GapReview>,
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
}

impl MarketFeed {
    /// A feed that reports its end on `ended`.
    pub fn new(settings: FeedSettings, pipeline: Pipeline, ended: mpsc::UnboundedSender<FeedEnded>) -> Self {
        let state = FeedState {
            decoder: settings.decoder(),
            last_time: EventTime::ZERO,
            passed: FeedCounters::default(),
            passes: 0,
            next_seq: settings.first_seq,
            end_time: settings.end_time,
            stop_requested: false,
            finished: false,
            connected: false,
            reconnects: 0,
            restarts: 0,
            untrusted: Default::default(),
            req_id: 1000,
            progress: Progress::for_terminal(settings.duration_micros),
            replayed_stops: Default::default(),
            stop_replayer: None,
            recorder: None,
            live_resume: None,
            last_trades: Default::default(),
            invalidation: None,
            rest_fees: None,
            warmup: None,
        };
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
        }
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

    /// Live resume: before connecting, re-execute the run's recording, fetch the missed
    /// trades and review the orders they touched (see [`resume_live`]).
    pub fn with_live_resume(self, resume: LiveResume) -> Self {
        self.state.borrow_mut().live_resume = Some(resume);
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
        let (live_resume, recorder, invalidation, warmup) = {
            let mut st = self.state.borrow_mut();
            (st.live_resume.take(), st.recorder.clone(), st.invalidation.take(), st.warmup.take())
        };
        let fut = async move {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            let conn = ConnectionSettings {
                url: settings.url.clone(),
                on_connect: decode::subscribe_requests(&settings.pairs, settings.depth),
                ping_interval: settings.ping_interval,
                liveness_timeout: settings.liveness_timeout,
                max_batch: 1,
            };
            if let Some(replay) = settings.replay.clone() {
                return replay_file(&replay, &state, &settings, &pipeline, &tx, &ended).await;
            }
            if let Some(wait) = invalidation {
                let _ = wait.await;
            }
            if let Some(resume) = live_resume {
                match resume_live(&resume, &state, &settings, &pipeline, &ended).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => return Ok(()),
                    Err(e) => {
                        tracing::error!(actor = "market_feed", error = %e, "live resume failed; ending the run");
                        state.borrow_mut().finished = true;
                        let _ = ended.send(FeedEnded::PipelineFailed(e));
                        return Ok(());
                    }
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
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.state.borrow_mut().connected = false;
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

/// Decodes frames and drives them through the pipeline; says whether to go on.
///
/// The signal actors get the decoded frames whole; the other stages get them in passes of
/// whole frames. A pass is a single frame while a stage is engaged (orders open, holdings
/// that move with the market, a halt); otherwise it runs up to the frame at which the
/// aggregator can next decide (or the run's end, or a replayed stop). Both give exactly the
/// journal of frame-by-frame passes, so results do not depend on how frames are grouped.
async fn process_frames(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    tx: &mpsc::UnboundedSender<String>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    frames: Vec<tokio_tungstenite::tungstenite::Utf8Bytes>,
) -> Result<Flow, String> {
    let decoded = decode_lines(&mut state.borrow_mut().decoder, &frames, Spent::default());
    process_decoded(state, settings, pipeline, tx, ended, decoded, None).await
}

/// [`process_frames`] for frames already decoded (`replay` decodes on the reader thread).
async fn process_decoded(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    tx: &mpsc::UnboundedSender<String>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    decoded: DecodedFrames,
    spent: Option<&std::sync::mpsc::Sender<Spent>>,
) -> Result<Flow, String> {
    let (batch, counters) = admit_frames(state, settings, tx, decoded);
    let batch = Arc::new(batch);
    let flow = drive_batch(state, pipeline, ended, &batch, &counters).await;
    // The batch's vectors go back to the reader thread, emptied here (the events are freed
    // where they always were), to be filled again: no fresh memory per batch.
    if let Some(spent) = spent
        && let Ok(MarketBatch { mut events, mut frames, .. }) = Arc::try_unwrap(batch)
    {
        let mut counters = counters;
        events.clear();
        frames.clear();
        counters.clear();
        let _ = spent.send(Spent { events, marks: frames, counters });
    }
    flow
}

/// Drives an admitted batch through the pipeline, pass by pass.
async fn drive_batch(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    batch: &Arc<MarketBatch>,
    counters: &[FeedCounters],
) -> Result<Flow, String> {
    if !batch.events.is_empty() {
        pipeline.signals(&MarketData::whole(batch.clone())).await;
    }
    let mut first = 0;
    while first < batch.frames.len() {
        let last = match pass_end(state, pipeline, batch, counters, first).await {
            Ok(last) => last,
            Err(e) => return Ok(pipeline_failed(state, ended, e)),
        };
        let mut last = last;
        let range = batch.frame_start(first)..batch.frames[last].end;
        if !range.is_empty() {
            state.borrow_mut().passes += 1;
            match pipeline.pass(MarketData { batch: batch.clone(), range: range.clone() }).await {
                // PositionBook ended the pass after the frame holding event `end - 1`.
                Ok(end) if end < range.end => last = batch.frame_of_seq(batch.first_seq + end as u64 - 1),
                Ok(_) => {}
                Err(e) => return Ok(pipeline_failed(state, ended, e)),
            }
        }
        first = last + 1;
        let FrameMark { time: t, .. } = batch.frames[last];
        state.borrow_mut().passed = counters[last].clone();
        replay_stop_if_due(state, counters[last].frames, t).await;
        let mut st = state.borrow_mut();
        st.connected = true;
        if let (Some(end), Some(p)) = (st.end_time, st.progress.as_mut()) {
            p.show(t, end);
        }
        if st.end_time.is_some_and(|end| t >= end) {
            st.finished = true;
            st.progress = None; // clears the progress line
            let _ = ended.send(FeedEnded::DurationReached(t));
            return Ok(Flow::Stop);
        }
        if st.stop_requested {
            st.finished = true;
            st.progress = None;
            let _ = ended.send(FeedEnded::Stopped(t));
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// The last frame of the pass starting at frame `first`.
async fn pass_end(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    batch: &MarketBatch,
    counters: &[FeedCounters],
    first: usize,
) -> Result<usize, String> {
    let n = batch.frames.len();
    if pipeline.frame_by_frame() || first + 1 >= n {
        return Ok(first);
    }
    let mut last = n - 1;
    if let Some(seq) = pipeline.next_decision().await?
        && seq < batch.end_seq()
    {
        last = batch.frame_of_seq(seq).max(first);
    }
    let st = state.borrow();
    // Where a frame-by-frame run stops: the run's end, a replayed stop, a stop request.
    if st.stop_requested {
        return Ok(first);
    }
    let stop_at = st.replayed_stops.front().copied();
    let stops = batch.frames[first..=last]
        .iter()
        .zip(&counters[first..=last])
        .position(|(m, c)| st.end_time.is_some_and(|end| m.time >= end) || Some(c.frames) == stop_at);
    Ok(stops.map_or(last, |i| first + i))
}

/// The pipeline failed: the run ends.
fn pipeline_failed(
    state: &Rc<RefCell<FeedState>>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    e: String,
) -> Flow {
    tracing::error!(actor = "market_feed", error = %e, "pipeline failed; ending the run");
    state.borrow_mut().finished = true;
    let _ = ended.send(FeedEnded::PipelineFailed(e));
    Flow::Stop
}

/// Resume: when the frames passed so far (`frames`) are where an earlier session was
/// stopped by a signal, has its end-of-run block written again (and waits for it).
async fn replay_stop_if_due(state: &Rc<RefCell<FeedState>>, frames: u64, time: EventTime) {
    let request = {
        let mut st = state.borrow_mut();
        if st.replayed_stops.front() != Some(&frames) {
            return;
        }
        st.replayed_stops.pop_front();
        st.stop_replayer.clone().map(|tx| (tx, time))
    };
    let Some((tx, time)) = request else { return };
    let (done, wait) = tokio::sync::oneshot::channel();
    tracing::info!(actor = "market_feed", event_time = %time.to_rfc3339(), "resume: writing again the end-of-run block of a session stopped by a signal here");
    if tx.send(ReplayedStop { time, done }).is_ok() {
        let _ = wait.await;
    }
}

/// Plays a recording through the same decoder and pipeline as a live connection; the file is
/// read on another thread (`sources::replay`), memory stays flat.
async fn replay_file(
    replay: &ReplayInput,
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    tx: &mpsc::UnboundedSender<String>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
) -> Result<(), crate::sources::kraken_ws::ConnectionError> {
    // The reader thread decodes too (its own decoder: a replay reads nothing else), so
    // decoding runs beside the pipeline. It hands over whole multiples of the batch size (at
    // least READ_CHUNK lines), decoded in pipeline batches: the same batches as reading
    // `batch_lines` at a time, without a cross-thread wake-up per batch when batches are small.
    const READ_CHUNK: usize = 2048;
    let batch_lines = replay.batch_lines.max(1);
    let chunk = batch_lines * READ_CHUNK.div_ceil(batch_lines);
    let mut decoder = settings.decoder();
    let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Spent>();
    let decode = move |lines: crate::sources::replay::LineBatch| -> Vec<DecodedFrames> {
        let reuse = || spent_rx.try_recv().unwrap_or_default();
        lines.lines.chunks(batch_lines).map(|frames| decode_lines(&mut decoder, frames, reuse())).collect()
    };
    let mut rx = crate::sources::replay::spawn_reader_with(&replay.path, chunk, 0, decode)
        .map_err(|e| crate::sources::kraken_ws::ConnectionError::Consumer(e.to_string()))?;
    while let Some(batches) = rx.recv().await {
        let batches = match batches {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(actor = "market_feed", error = %e, "recording unreadable; ending the replay");
                break;
            }
        };
        for decoded in batches {
            if let Ok(Flow::Stop) =
                process_decoded(state, settings, pipeline, tx, ended, decoded, Some(&spent_tx)).await
            {
                return Ok(());
            }
        }
    }
    let mut st = state.borrow_mut();
    st.finished = true;
    st.progress = None;
    let t = st.last_time;
    let _ = ended.send(FeedEnded::DurationReached(t));
    Ok(())
}

/// A frame as the decoder reads it: WebSocket text as received, or a replayed line.
trait FrameText {
    fn frame_text(&self) -> std::borrow::Cow<'_, str>;
}

impl FrameText for tokio_tungstenite::tungstenite::Utf8Bytes {
    fn frame_text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self.as_str())
    }
}

impl FrameText for crate::sources::replay::Line {
    fn frame_text(&self) -> std::borrow::Cow<'_, str> {
        self.text()
    }
}

/// Emptied vectors of a batch the pipeline is done with, for the replay reader to fill again.
#[derive(Default)]
struct Spent {
    events: Vec<MarketEvent>,
    marks: Vec<FrameMark>,
    counters: Vec<FeedCounters>,
}

/// Frames decoded into one batch, not yet admitted to the feed ([`admit_frames`]).
struct DecodedFrames {
    events: Vec<MarketEvent>,
    /// Where each frame's events end, and its event time.
    marks: Vec<FrameMark>,
    /// The decoder's counters after each frame.
    counters: Vec<FeedCounters>,
    notices: Vec<FeedNotice>,
    /// The decoder's last event time after the last frame.
    last_time: EventTime,
}

/// Decodes frames into one batch.
fn decode_lines<F: FrameText>(decoder: &mut FeedDecoder, frames: &[F], reuse: Spent) -> DecodedFrames {
    let Spent { mut events, mut marks, mut counters } = reuse;
    // Most frames carry one event: room for that and some more, so the vector rarely grows.
    events.reserve(frames.len() + frames.len() / 4);
    marks.reserve(frames.len());
    counters.reserve(frames.len());
    let mut notices = Vec::new();
    for f in frames {
        let before = events.len();
        decoder.decode(&f.frame_text(), &mut events, &mut notices);
        let time = match events.get(before..).and_then(|e| e.last()) {
            Some(e) => e.time(),
            None => decoder.last_time(),
        };
        marks.push(FrameMark { end: events.len(), time });
        counters.push(decoder.counters().clone());
    }
    DecodedFrames { events, marks, counters, notices, last_time: decoder.last_time() }
}

/// Takes decoded frames into the feed: handles notices (resync requests, subscription
/// errors), book trust, the run's clock and event numbering; returns the batch and the
/// feed's counters after each frame.
fn admit_frames(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    tx: &mpsc::UnboundedSender<String>,
    decoded: DecodedFrames,
) -> (MarketBatch, Vec<FeedCounters>) {
    let DecodedFrames { events, marks, counters, notices, last_time } = decoded;
    let mut st = state.borrow_mut();
    st.last_time = last_time;
    for n in notices {
        match n {
            FeedNotice::Resync { symbol, reason } => {
                st.req_id += 2;
                let req_id = st.req_id;
                tracing::warn!(event = "book_resync", actor = "market_feed", pair = %symbol, reason = ?reason, "book checksum mismatch: resubscribing the pair's book");
                for req in decode::resubscribe_book(&symbol, settings.depth, req_id) {
                    let _ = tx.send(req);
                }
                st.untrusted.insert(symbol);
            }
            FeedNotice::SubscribeFailed { channel, symbol, error } => {
                tracing::error!(actor = "market_feed", channel = %channel, pair = symbol.as_deref().unwrap_or("-"), error = %error, "subscription refused by the exchange");
            }
            FeedNotice::Subscribed { channel, symbol } => {
                tracing::debug!(actor = "market_feed", channel = %channel, pair = symbol.as_deref().unwrap_or("-"), "subscribed");
            }
            FeedNotice::Malformed { reason } => {
                tracing::warn!(actor = "market_feed", reason = %reason, "malformed frame skipped");
            }
            FeedNotice::Unknown { what } => {
                tracing::debug!(actor = "market_feed", what = %what, "unknown frame skipped");
            }
            FeedNotice::Pong { .. } => {}
        }
    }
    for e in &events {
        if let MarketEvent::Book(b) = e
            && b.snapshot
        {
            st.untrusted.remove(&*b.symbol);
        }
        if let MarketEvent::Trade(t) = e {
            // Updated in place: no symbol copied per trade.
            *st.last_trades.get_or_insert_with(&t.symbol, || (t.time, t.trade_id)) = (t.time, t.trade_id);
        }
    }
    if st.end_time.is_none() {
        // The run's clock starts at the first event that carries exchange time (reference
        // data before it carries none).
        if let Some(first) = events.iter().find(|e| e.time() > EventTime::ZERO) {
            st.end_time = Some(first.time().plus_micros(settings.duration_micros));
        }
    }
    let first_seq = st.next_seq;
    st.next_seq += events.len() as u64;
    (MarketBatch { first_seq, events, frames: marks }, counters)
}

impl Actor for MarketFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "market_feed", url = %self.settings.url, attempt = self.attempt, "market feed started");
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
        let healthy = self.connected_since.is_some_and(|t| t.elapsed() >= self.settings.healthy_after);
        self.attempt = if healthy { 1 } else { self.attempt + 1 };
        let s = &self.settings;
        self.next_delay =
            backoff(self.attempt, s.initial_backoff_ms, s.max_backoff_ms, s.jitter, self.jitter.uniform());
        let mut st = self.state.borrow_mut();
        st.restarts += 1;
        st.decoder.reset_books();
        let pairs: Vec<String> = self.settings.pairs.clone();
        st.untrusted.extend(pairs);
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
        self.invalidate_books();
    }
}

impl MarketFeed {
    /// Tells the pipeline every book is untrusted until its new snapshot (after a disconnect).
    fn invalidate_books(&mut self) {
        let (batch, record, recorder) = {
            let mut st = self.state.borrow_mut();
            let (batch, record) =
                book_invalidation(&mut st, &self.settings.pairs, self.attempt, self.last_error_kind);
            (batch, record, st.recorder.clone())
        };
        // The recording first (a re-execution replays this disconnect at this point), then
        // the journal record, then the invalidation; the next connection waits for it.
        let marker =
            serde_json::json!({ "attempt": self.attempt, "reason": self.last_error_kind }).to_string();
        record_frames(&recorder, "reconnect", std::iter::once(marker.as_str()));
        self.pipeline.journal.do_send(Append(vec![record]));
        let pipeline = self.pipeline.clone();
        let (done, wait) = tokio::sync::oneshot::channel();
        self.state.borrow_mut().invalidation = Some(wait);
        actix::spawn(async move {
            if let Err(e) = pipeline.run(batch).await {
                tracing::error!(actor = "market_feed", error = %e, "could not publish book invalidation");
            }
            let _ = done.send(());
        });
    }
}

/// After a disconnect: every pair's book is untrusted until its new snapshot. Returns the
/// `BookInvalid` batch and the `feed_reconnect` record.
fn book_invalidation(
    st: &mut FeedState,
    pairs: &[String],
    attempt: u32,
    reason: &str,
) -> (MarketBatch, Entry) {
    let time = st.last_time;
    let events: Vec<MarketEvent> = pairs
        .iter()
        .map(|p| MarketEvent::BookInvalid {
            symbol: p.as_str().into(),
            time,
            reason: BookInvalidReason::Disconnected,
        })
        .collect();
    let first_seq = st.next_seq;
    st.next_seq += events.len() as u64;
    let record =
        Entry::new(time, "feed_reconnect", &serde_json::json!({ "attempt": attempt, "reason": reason }));
    (MarketBatch::one_frame(first_seq, events, time), record)
}

/// The warm-up candles, if they come within `timeout` (wall time: a connection matter, the
/// candles themselves are recorded); else none, and the run trades cold.
async fn wait_for_warmup(
    rx: tokio::sync::oneshot::Receiver<Vec<RestLine>>,
    timeout: Duration,
) -> Vec<RestLine> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(lines)) => {
            tracing::info!(actor = "market_feed", histories = lines.len(), "warm-up: OHLC history received");
            lines
        }
        Ok(Err(_)) => {
            tracing::warn!(
                event = "warmup_skipped",
                actor = "market_feed",
                "warm-up: no OHLC history (REST unavailable); trading cold"
            );
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(
                event = "warmup_skipped",
                actor = "market_feed",
                timeout_ms = timeout.as_millis() as u64,
                "warm-up: Kraken REST did not answer within feed.warmup.timeout_ms; trading cold"
            );
            Vec::new()
        }
    }
}

/// The `fees` lines that arrived since the last look (never waits).
fn take_rest_fees(state: &Rc<RefCell<FeedState>>) -> Vec<RestLine> {
    let mut st = state.borrow_mut();
    let mut out = Vec::new();
    if let Some(rx) = st.rest_fees.as_mut() {
        while let Ok(lines) = rx.try_recv() {
            out.extend(lines);
        }
    }
    out
}

fn record_rest_lines(to: &Option<Recipient<RecordFrames>>, lines: &[RestLine]) {
    for l in lines {
        record_frames(to, l.dir, std::iter::once(l.msg.as_str()));
    }
}

/// Live: applies REST lines (already recorded); a failure ends the run like a pipeline
/// failure (the lines are our own, checked when made).
async fn apply_rest_lines(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    lines: &[RestLine],
) -> Flow {
    for l in lines {
        if let Err(e) = apply_rest_line(state, pipeline, l.dir, &l.msg).await {
            tracing::error!(actor = "market_feed", error = %e, "could not apply a REST line; ending the run");
            state.borrow_mut().finished = true;
            let _ = ended.send(FeedEnded::PipelineFailed(e));
            return Flow::Stop;
        }
    }
    Flow::Continue
}

/// A `fees` or `ohlc` line of the recording (live, or re-executed): its event, stamped with
/// the last event time and the next sequence number, through the pipeline as a batch of its
/// own; candles are journaled as `ohlc_warmup` first.
async fn apply_rest_line(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    dir: &str,
    msg: &str,
) -> Result<(), String> {
    let (batch, record) = {
        let mut st = state.borrow_mut();
        let time = st.last_time;
        let applied = crate::sources::rest_startup::parse_line(dir, msg, time)?;
        let first_seq = st.next_seq;
        st.next_seq += 1;
        let record = applied.warmup_record.map(|r| Entry::new(time, "ohlc_warmup", &r));
        (MarketBatch::one_frame(first_seq, vec![applied.event], time), record)
    };
    if let Some(r) = record {
        pipeline.journal.do_send(Append(vec![r]));
    }
    pipeline.run(batch).await
}

/// Live runs: hands frames to the journal for `feed.jsonl`, stamped with the wall time of
/// receipt (`ts`, [`crate::sources::recording::wall_micros`]).
fn record_frames<'a>(to: &Option<Recipient<RecordFrames>>, dir: &str, frames: impl Iterator<Item = &'a str>) {
    let Some(to) = to else { return };
    let ts = crate::sources::recording::wall_micros();
    let mut buf = Vec::new();
    for f in frames {
        let _ = crate::sources::recording::write_line(&mut buf, ts, dir, f, false);
    }
    to.do_send(RecordFrames(buf));
}

/// Live resume, before the first connection of the resumed process:
/// 1. re-executes the run's recording (`feed.jsonl`) through the same decoder and pipeline,
///    frames in the order they came (in batches: results do not depend on batching),
///    disconnects included — the journal checks every record it regenerates, so state is
///    exactly what it was;
/// 2. fetches, per pair, the trades after the last one seen (REST `Trades` `since`, through
///    the RateLimiter) and feeds them, in time order, as WS v2 trade frames: resting limits
///    fill from trades printed through them and stops trigger, as on a live feed;
/// 3. asks PositionBook to report the orders whose fate in the gap cannot be known;
/// 4. invalidates the books (they are stale) as after any disconnect.
///
/// Steps 2–4 are recorded (`rest`, `gap_end`, `reconnect` lines) before they are applied,
/// so a later resume re-executes them too. Returns `Stop` when the run ended meanwhile.
async fn resume_live(
    resume: &LiveResume,
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
) -> Result<Flow, String> {
    use crate::sources::recording;
    // Resubscriptions the re-execution asks for were sent (and recorded) long ago.
    let (scratch, _scratch_rx) = mpsc::unbounded_channel::<String>();
    let path = &resume.recording;
    let mut frames_replayed: u64 = 0;
    if path.exists() {
        let mut rx = crate::sources::replay::spawn_reader(path, 256, 0).map_err(|e| e.to_string())?;
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(|e| e.to_string())?;
            // Frames go through in batches (results do not depend on batching); a disconnect
            // or gap marker first has the frames before it passed.
            let mut frames = Vec::new();
            for (i, line) in batch.lines.iter().enumerate() {
                let line = line.text();
                let rec = recording::split_line(&line)
                    .map_err(|e| format!("{} line {}: {e}", path.display(), batch.first_line + i as u64))?;
                if rec.dir != "recv"
                    && rec.dir != "rest"
                    && !frames.is_empty()
                    && process_frames(state, settings, pipeline, &scratch, ended, std::mem::take(&mut frames))
                        .await?
                        == Flow::Stop
                {
                    return Ok(Flow::Stop);
                }
                match &*rec.dir {
                    "recv" | "rest" => {
                        frames_replayed += 1;
                        frames.push(tokio_tungstenite::tungstenite::Utf8Bytes::from(rec.msg.into_owned()));
                    }
                    "reconnect" => {
                        let v: serde_json::Value =
                            serde_json::from_str(&rec.msg).map_err(|e| e.to_string())?;
                        let attempt = v.get("attempt").and_then(|a| a.as_u64()).unwrap_or(0) as u32;
                        let reason = v.get("reason").and_then(|r| r.as_str()).unwrap_or("").to_string();
                        replay_reconnect(state, settings, pipeline, attempt, &reason).await?;
                    }
                    "fees" | "ohlc" => apply_rest_line(state, pipeline, &rec.dir, &rec.msg).await?,
                    "gap_end" => {
                        let review: GapEnd = serde_json::from_str(&rec.msg).map_err(|e| e.to_string())?;
                        send_gap_review(resume, review).await;
                    }
                    _ => {} // `sent`: requests; the decoder of a live run does not read them either
                }
            }
            if !frames.is_empty()
                && process_frames(state, settings, pipeline, &scratch, ended, frames).await? == Flow::Stop
            {
                return Ok(Flow::Stop);
            }
        }
    }
    tracing::info!(
        actor = "market_feed",
        frames = frames_replayed,
        "live resume: recording re-executed; fetching the trades missed while down"
    );

    // The gap: trades after the last one seen, per pair.
    let recorder = state.borrow().recorder.clone();
    let (since_all, last_trades) = {
        let st = state.borrow();
        (st.last_time, st.last_trades.clone())
    };
    let mut gap_trades = Vec::new();
    let mut unfetched = Vec::new();
    match &resume.rest {
        None => unfetched.extend(settings.pairs.iter().cloned()),
        Some(rest) => {
            if let Err(e) = rest.asset_pairs().await {
                tracing::warn!(actor = "market_feed", error = %e, "REST AssetPairs failed; querying Trades by WS names");
            }
            for pair in &settings.pairs {
                let last = last_trades.get(pair).copied();
                match fetch_trades_since(rest, pair, last.map_or(since_all, |l| l.0)).await {
                    Ok(trades) => gap_trades.extend(recording::trades_after(trades, last)),
                    Err(e) => {
                        tracing::warn!(actor = "market_feed", pair = %pair, error = %e, "could not fetch the trades missed while down");
                        unfetched.push(pair.clone());
                    }
                }
            }
        }
    }
    // In time order across pairs (stable: a pair's own order is kept).
    gap_trades.sort_by_key(|t| t.time);
    let until = gap_trades.last().map_or(since_all, |t| t.time);
    tracing::info!(actor = "market_feed", trades = gap_trades.len(), since = %since_all.to_rfc3339(), "live resume: applying the trades missed while down");
    for t in &gap_trades {
        let frame = recording::trades_frame(std::slice::from_ref(t));
        record_frames(&recorder, "rest", std::iter::once(frame.as_str()));
        let frame = vec![tokio_tungstenite::tungstenite::Utf8Bytes::from(frame)];
        if process_frames(state, settings, pipeline, &scratch, ended, frame).await? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    let review = GapEnd { since: since_all, until, pairs_unfetched: unfetched };
    let text = serde_json::to_string(&review).map_err(|e| e.to_string())?;
    record_frames(&recorder, "gap_end", std::iter::once(text.as_str()));
    send_gap_review(resume, review).await;
    let marker = serde_json::json!({ "attempt": 1, "reason": "resumed" }).to_string();
    record_frames(&recorder, "reconnect", std::iter::once(marker.as_str()));
    replay_reconnect(state, settings, pipeline, 1, "resumed").await?;
    Ok(Flow::Continue)
}

/// A `gap_end` line of a live run's recording.
#[derive(serde::Serialize, serde::Deserialize)]
struct GapEnd {
    since: EventTime,
    until: EventTime,
    pairs_unfetched: Vec<String>,
}

async fn send_gap_review(resume: &LiveResume, g: GapEnd) {
    let review = crate::actors::position_book::GapReview {
        since: g.since,
        until: g.until,
        pairs_unfetched: g.pairs_unfetched,
    };
    let _ = resume.gap_review.send(review).await;
}

/// A disconnect as the supervisor handles it (`restarting` + [`MarketFeed::invalidate_books`]),
/// applied in line when a recording is re-executed or a resumed process reconnects.
async fn replay_reconnect(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    attempt: u32,
    reason: &str,
) -> Result<(), String> {
    let (batch, record) = {
        let mut st = state.borrow_mut();
        st.reconnects += 1;
        st.restarts += 1;
        st.decoder.reset_books();
        st.untrusted.extend(settings.pairs.iter().cloned());
        book_invalidation(&mut st, &settings.pairs, attempt, reason)
    };
    pipeline.journal.do_send(Append(vec![record]));
    pipeline.run(batch).await
}

/// Kraken REST `Trades` after `since`, following the `last` cursor while pages are full
/// (Kraken returns at most 1000 trades a call), up to [`MAX_GAP_PAGES`] pages.
async fn fetch_trades_since(
    rest: &crate::sources::kraken_rest::KrakenRest,
    pair: &str,
    since: EventTime,
) -> Result<Vec<crate::core::market::TradeEvent>, String> {
    let mut cursor = crate::sources::kraken_rest::trades_since(since);
    let mut out = Vec::new();
    for _ in 0..MAX_GAP_PAGES {
        let page = rest.trades(pair, Some(&cursor)).await.map_err(|e| e.to_string())?;
        let full = page.trades.len() >= 1000;
        out.extend(page.trades);
        if !full || page.last == cursor {
            return Ok(out);
        }
        cursor = page.last;
    }
    Err(format!("more than {MAX_GAP_PAGES} pages of trades missed; the gap is too long to catch up"))
}

/// Most `Trades` pages fetched per pair after a downtime (1000 trades each).
const MAX_GAP_PAGES: usize = 50;

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
        self.pipeline.journal.do_send(Append(vec![record]));
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
            last_event_time: st.last_time,
            untrusted_pairs: st.untrusted.iter().cloned().collect(),
            passes: st.passes,
        })
    }
}

/// A dependency-free one-line progress indicator: event-time progress over the run's
/// duration, redrawn on stderr at most once per 0.1 % step. Exists only when stderr is a
/// terminal, so it never reaches log files, pipes or the journal.
struct Progress {
    duration_micros: i64,
    last_permille: i64,
}

impl Progress {
    /// Some only when stderr is a terminal and the run has a duration.
    fn for_terminal(duration_micros: i64) -> Option<Progress> {
        use std::io::IsTerminal;
        (duration_micros > 0 && std::io::stderr().is_terminal())
            .then_some(Progress { duration_micros, last_permille: -1 })
    }

    /// Redraws the line for event time `t` of a run ending at `end`.
    fn show(&mut self, t: EventTime, end: EventTime) {
        use std::io::Write;
        let done = (self.duration_micros - end.micros_since(t)).clamp(0, self.duration_micros);
        let permille = (done as i128 * 1000 / self.duration_micros as i128) as i64;
        if permille == self.last_permille {
            return;
        }
        self.last_permille = permille;
        let line = progress_line(done, self.duration_micros, t);
        // Clear the line, draw, and return the cursor to column 0 so a log line printed next
        // overwrites the bar instead of being appended to it.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\x1b[2K{line}\r");
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        use std::io::Write;
        if self.last_permille >= 0 {
            let _ = write!(std::io::stderr(), "\x1b[2K\r");
        }
    }
}

/// `[#########...........]  45.0 %  10h48m / 24h00m  2024-01-01T10:48:00Z` (event time).
fn progress_line(done_micros: i64, total_micros: i64, t: EventTime) -> String {
    const WIDTH: i64 = 30;
    let total = total_micros.max(1);
    let filled = (done_micros as i128 * WIDTH as i128 / total as i128) as usize;
    let hm = |us: i64| {
        let m = us / 60_000_000;
        format!("{}h{:02}m", m / 60, m % 60)
    };
    format!(
        "[{}{}] {:5.1} %  {} / {}  {}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled.min(WIDTH as usize)),
        done_micros as f64 * 100.0 / total as f64,
        hm(done_micros),
        hm(total),
        t.to_rfc3339()
    )
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn progress_line_shows_event_time_fraction_of_the_duration() {
        // 6 h of 24 h done: 30 × 0.25 = 7.5 → 7 marks, 25.0 %.
        let day = 24 * 3_600_000_000i64;
        let line = progress_line(day / 4, day, EventTime::ZERO.plus_micros(day / 4));
        assert!(line.starts_with("[#######......................."), "{line}");
        assert!(line.contains(" 25.0 %  6h00m / 24h00m"), "{line}");
        let full = progress_line(day, day, EventTime::ZERO);
        assert!(full.contains(&"#".repeat(30)) && full.contains("100.0 %"), "{full}");
    }
}
