//! Live resume (`run --resume` of a live run): re-execute the run's recording of its feed,
//! catch up on the trades missed while the process was down (REST `Trades`), have the orders
//! they touched reviewed ([`GapEnd`]), then reconnect.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::sync::mpsc;

use super::drive::{apply_rest_line, process_frames, record_frames};
use super::settings::{FeedSettings, LiveResume};
use super::state::FeedState;
use super::{FeedEnded, FeedError};
use crate::actors::journal::Append;
use crate::core::time::EventTime;
use crate::pipeline::Pipeline;
use crate::sources::kraken_ws::Flow;

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
pub(super) async fn resume_live(
    resume: &LiveResume,
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
) -> Result<Flow, FeedError> {
    use crate::sources::recording;
    // Resubscriptions the re-execution asks for were sent (and recorded) long ago.
    let (scratch, _scratch_rx) = mpsc::unbounded_channel::<String>();
    let path = &resume.recording;
    let mut frames_replayed: u64 = 0;
    if path.exists() {
        let mut rx = crate::sources::replay::spawn_reader(path, 256, 0).map_err(FeedError::Recording)?;
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(FeedError::Recording)?;
            // Frames go through in batches (results do not depend on batching); a disconnect
            // or gap marker first has the frames before it passed.
            let mut frames = Vec::new();
            for (i, line) in batch.lines.iter().enumerate() {
                let line = line.text();
                let rec = recording::split_line(&line).map_err(|reason| FeedError::RecordLine {
                    path: path.display().to_string(),
                    line: batch.first_line + i as u64,
                    reason,
                })?;
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
                        let v: serde_json::Value = serde_json::from_str(&rec.msg).map_err(FeedError::Json)?;
                        let attempt = v.get("attempt").and_then(|a| a.as_u64()).unwrap_or(0) as u32;
                        let reason = v.get("reason").and_then(|r| r.as_str()).unwrap_or("").to_string();
                        replay_reconnect(state, settings, pipeline, attempt, &reason).await?;
                    }
                    "fees" | "ohlc" => apply_rest_line(state, pipeline, &rec.dir, &rec.msg).await?,
                    "gap_end" => {
                        let review: GapEnd = serde_json::from_str(&rec.msg).map_err(FeedError::Json)?;
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
        (st.book.last_time, st.book.last_trades().clone())
    };
    let mut gap_trades = Vec::new();
    let mut unfetched = Vec::new();
    match &resume.rest {
        None => unfetched.extend(settings.endpoint.pairs.iter().cloned()),
        Some(rest) => {
            if let Err(e) = rest.asset_pairs().await {
                tracing::warn!(actor = "market_feed", error = %e, "REST AssetPairs failed; querying Trades by WS names");
            }
            for pair in &settings.endpoint.pairs {
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
    let text = serde_json::to_string(&review).map_err(FeedError::Json)?;
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

/// Asks PositionBook to report the orders whose fate in the gap cannot be known.
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
) -> Result<(), FeedError> {
    let (batch, record) = {
        let mut st = state.borrow_mut();
        st.reconnects += 1;
        st.restarts += 1;
        st.decoder.reset_books();
        st.book.distrust(&settings.endpoint.pairs);
        st.book.invalidation(&settings.endpoint.pairs, attempt, reason)
    };
    pipeline.journal().do_send(Append { entries: vec![record] });
    pipeline.run(batch).await.map_err(FeedError::Pipeline)
}

/// Kraken REST `Trades` after `since`, following the `last` cursor while pages are full
/// (Kraken returns at most 1000 trades a call), up to [`MAX_GAP_PAGES`] pages.
async fn fetch_trades_since(
    rest: &crate::sources::kraken_rest::KrakenRest,
    pair: &str,
    since: EventTime,
) -> Result<Vec<crate::core::market::TradeEvent>, FeedError> {
    let mut cursor = crate::sources::kraken_rest::trades_since(since);
    let mut out = Vec::new();
    for _ in 0..MAX_GAP_PAGES {
        let page = rest.trades(pair, Some(&cursor)).await.map_err(FeedError::Rest)?;
        let full = page.trades.len() >= 1000;
        out.extend(page.trades);
        if !full || page.last == cursor {
            return Ok(out);
        }
        cursor = page.last;
    }
    Err(FeedError::GapTooLong(MAX_GAP_PAGES))
}

/// Most `Trades` pages fetched per pair after a downtime (1000 trades each).
const MAX_GAP_PAGES: usize = 50;
