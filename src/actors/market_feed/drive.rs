//! Driving decoded frames through the [`Pipeline`], pass by pass, and what a live feed adds to
//! the stream: the start-up REST lines (fee schedules, warm-up candles) and the recording of
//! the frames it receives and sends (`feed.jsonl`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use tokio::sync::mpsc;

use super::frames::{DecodedFrames, Spent, decode_lines};
use super::settings::FeedSettings;
use super::state::FeedState;
use super::{FeedEnded, FeedError, ReplayedStop};
use crate::actors::journal::{Append, RecordFrames};
use crate::core::journal::Entry;
use crate::core::kraken::decode::{self, FeedCounters, FeedNotice};
use crate::core::market::{FrameMark, MarketBatch};
use crate::core::time::EventTime;
use crate::messages::MarketData;
use crate::pipeline::{Pipeline, PipelineError};
use crate::sources::kraken_ws::Flow;
use crate::sources::rest_startup::RestLine;

/// Decodes frames and drives them through the pipeline; says whether to go on.
///
/// The signal actors get the decoded frames whole; the other stages get them in passes of
/// whole frames. A pass is a single frame while a stage is engaged (orders open, holdings
/// that move with the market, a halt); otherwise it runs up to the frame at which the
/// aggregator can next decide (or the run's end, or a replayed stop). Both give exactly the
/// journal of frame-by-frame passes, so results do not depend on how frames are grouped.
pub(super) async fn process_frames(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    tx: &mpsc::UnboundedSender<String>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    frames: Vec<tokio_tungstenite::tungstenite::Utf8Bytes>,
) -> Result<Flow, FeedError> {
    let decoded = decode_lines(&mut state.borrow_mut().decoder, &frames, Spent::default());
    test_panic_if_due(state, &decoded);
    let (batch, counters) = admit_frames(state, settings, tx, decoded);
    drive_batch(state, pipeline, ended, &Arc::new(batch), &counters).await
}

/// The test hook: panics (once) when the decoded frames reach its frame number.
fn test_panic_if_due(state: &Rc<RefCell<FeedState>>, decoded: &DecodedFrames) {
    let decoded_frames = decoded.counters.last().map_or(0, |c| c.frames);
    let due = {
        let mut st = state.borrow_mut();
        match st.test_panic_at {
            Some(at) if decoded_frames >= at => st.test_panic_at.take(),
            _ => None,
        }
    };
    if let Some(at) = due {
        panic!("test panic injected by {}=market_feed@{at}", crate::supervision::TEST_PANIC_VAR);
    }
}

/// Drives an admitted batch through the pipeline, pass by pass.
pub(super) async fn drive_batch(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    batch: &Arc<MarketBatch>,
    counters: &[FeedCounters],
) -> Result<Flow, FeedError> {
    // Resume of a session that ended before its first pass (an actor failed in it).
    let nothing_passed = state.borrow().passed.frames == 0;
    if nothing_passed && let Some(m) = batch.frames.first() {
        replay_stop_if_due(state, 0, m.time).await;
    }
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
        if let (Some(end), Some(p)) = (st.book.end_time, st.progress.as_mut()) {
            p.show(t, end);
        }
        if st.book.ended_at(t) {
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
) -> Result<usize, PipelineError> {
    // Where the stages let the pass end: the frame at which the aggregator can next decide
    // (frame by frame while RiskManager is halted).
    let last = pipeline.pass_limit(batch, first).await?;
    if last == first {
        return Ok(first);
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
        .position(|(m, c)| st.book.ended_at(m.time) || Some(c.frames) == stop_at);
    Ok(stops.map_or(last, |i| first + i))
}

/// The pipeline failed: the run ends.
fn pipeline_failed(
    state: &Rc<RefCell<FeedState>>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    e: PipelineError,
) -> Flow {
    tracing::error!(actor = "market_feed", error = %e, "pipeline failed; ending the run");
    state.borrow_mut().finished = true;
    let _ = ended.send(FeedEnded::Failed(FeedError::Pipeline(e)));
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

/// Takes decoded frames into the feed: handles notices (resync requests, subscription
/// errors), book trust, the run's clock and event numbering; returns the batch and the
/// feed's counters after each frame.
pub(super) fn admit_frames(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    tx: &mpsc::UnboundedSender<String>,
    decoded: DecodedFrames,
) -> (MarketBatch, Vec<FeedCounters>) {
    let DecodedFrames { events, marks, counters, notices, last_time } = decoded;
    let mut st = state.borrow_mut();
    st.book.last_time = last_time;
    for n in notices {
        match n {
            FeedNotice::Resync { symbol, reason } => {
                let req_id = st.book.resync(symbol.clone());
                tracing::warn!(event = "book_resync", actor = "market_feed", pair = %symbol, reason = ?reason, "book checksum mismatch: resubscribing the pair's book");
                for req in decode::resubscribe_book(&symbol, settings.endpoint.depth, req_id) {
                    let _ = tx.send(req);
                }
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
    let first_seq = st.book.admit(&events, settings.duration_micros);
    (MarketBatch { first_seq, events, frames: marks }, counters)
}

/// The warm-up candles, if they come within `timeout` (wall time: a connection matter, the
/// candles themselves are recorded); else none, and the run trades cold.
pub(super) async fn wait_for_warmup(
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
pub(super) fn take_rest_fees(state: &Rc<RefCell<FeedState>>) -> Vec<RestLine> {
    let mut st = state.borrow_mut();
    let mut out = Vec::new();
    if let Some(rx) = st.rest_fees.as_mut() {
        while let Ok(lines) = rx.try_recv() {
            out.extend(lines);
        }
    }
    out
}

/// Live runs: records REST lines (before they are applied).
pub(super) fn record_rest_lines(to: &Option<Recipient<RecordFrames>>, lines: &[RestLine]) {
    for l in lines {
        record_frames(to, l.dir, std::iter::once(l.msg.as_str()));
    }
}

/// Live: applies REST lines (already recorded); a failure ends the run like a pipeline
/// failure (the lines are our own, checked when made).
pub(super) async fn apply_rest_lines(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    lines: &[RestLine],
) -> Flow {
    for l in lines {
        if let Err(e) = apply_rest_line(state, pipeline, l.dir, &l.msg).await {
            tracing::error!(actor = "market_feed", error = %e, "could not apply a REST line; ending the run");
            state.borrow_mut().finished = true;
            let _ = ended.send(FeedEnded::Failed(e));
            return Flow::Stop;
        }
    }
    Flow::Continue
}

/// A `fees` or `ohlc` line of the recording (live, or re-executed): its event, stamped with
/// the last event time and the next sequence number, through the pipeline as a batch of its
/// own; candles are journaled as `ohlc_warmup` first.
pub(super) async fn apply_rest_line(
    state: &Rc<RefCell<FeedState>>,
    pipeline: &Pipeline,
    dir: &str,
    msg: &str,
) -> Result<(), FeedError> {
    let (batch, record) = {
        let mut st = state.borrow_mut();
        let time = st.book.last_time;
        let applied =
            crate::sources::rest_startup::parse_line(dir, msg, time).map_err(FeedError::RestLine)?;
        let first_seq = st.book.next_seq;
        st.book.next_seq += 1;
        let record = applied.warmup_record.map(|r| Entry::new(time, "ohlc_warmup", &r));
        (MarketBatch::one_frame(first_seq, vec![applied.event], time), record)
    };
    if let Some(r) = record {
        pipeline.journal().do_send(Append { entries: vec![r] });
    }
    pipeline.run(batch).await.map_err(FeedError::Pipeline)
}

/// Live runs: hands frames to the journal for `feed.jsonl`, stamped with the wall time of
/// receipt (`ts`, [`crate::sources::recording::wall_micros`]).
pub(super) fn record_frames<'a>(
    to: &Option<Recipient<RecordFrames>>,
    dir: &str,
    frames: impl Iterator<Item = &'a str>,
) {
    let Some(to) = to else { return };
    let ts = crate::sources::recording::wall_micros();
    let mut buf = Vec::new();
    for f in frames {
        let _ = crate::sources::recording::write_line(&mut buf, ts, dir, f, false);
    }
    to.do_send(RecordFrames { lines: buf });
}
