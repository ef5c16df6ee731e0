//! Live resume (`run --resume` of a live run): re-execute the run's recording of its feed,
//! fill the gap while the process was down (`gap`: REST `Trades`, the review of the orders
//! they touched), then reconnect.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::sync::mpsc;

use super::drive::{apply_rest_line, process_frames, record_frames};
use super::gap::{GapEnd, apply_gap_end, fill_gap};
use super::settings::{FeedSettings, GapFetch, LiveResume};
use super::state::FeedState;
use super::{FeedEnded, FeedError};
use crate::actors::journal::Append;
use crate::pipeline::Pipeline;
use crate::sources::kraken_ws::Flow;

/// Live resume, before the first connection of the resumed process:
/// 1. re-executes the run's recording (`feed.jsonl`) through the same decoder and pipeline,
///    frames in the order they came (in batches: results do not depend on batching),
///    disconnects included — the journal checks every record it regenerates, so state is
///    exactly what it was;
/// 2. fills the gap while the process was down ([`fill_gap`], as after every reconnect):
///    the trades after the last one seen, over REST, through the pipeline, then PositionBook
///    reports the orders whose fate in the gap cannot be known;
/// 3. invalidates the books (they are stale) as after any disconnect.
///
/// Steps 2–3 are recorded (`rest`, `gap_end`, `reconnect` lines) before they are applied,
/// so a later resume re-executes them too. Returns `Stop` when the run ended meanwhile.
pub(super) async fn resume_live(
    resume: &LiveResume,
    gap: Option<&GapFetch>,
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
                        let end: GapEnd = serde_json::from_str(&rec.msg).map_err(FeedError::Json)?;
                        if let Some(gap) = gap {
                            apply_gap_end(gap, pipeline, end).await;
                        }
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
    // The gap while the process was down (the feed's gap fill, as after any reconnect).
    if let Some(gap) = gap
        && fill_gap(gap, state, settings, pipeline, ended).await? == Flow::Stop
    {
        return Ok(Flow::Stop);
    }
    let recorder = state.borrow().recorder.clone();
    let marker = serde_json::json!({ "attempt": 1, "reason": "resumed" }).to_string();
    record_frames(&recorder, "reconnect", std::iter::once(marker.as_str()));
    replay_reconnect(state, settings, pipeline, 1, "resumed").await?;
    Ok(Flow::Continue)
}

/// A disconnect as the supervisor handles it (`restarting`, then the book invalidation of
/// the next connection), applied in line when a recording is re-executed or a resumed
/// process reconnects.
async fn replay_reconnect(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    attempt: u32,
    reason: &str,
) -> Result<(), FeedError> {
    {
        let mut st = state.borrow_mut();
        st.reconnects += 1;
        st.restarts += 1;
    }
    invalidate_books(state, settings, pipeline, attempt, reason).await
}

/// After a disconnect (reconnect attempt `attempt`, for `reason`): every book is untrusted
/// until its new snapshot — the `BookInvalid` record, then the batch through the pipeline.
pub(super) async fn invalidate_books(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    attempt: u32,
    reason: &str,
) -> Result<(), FeedError> {
    let (batch, record) = {
        let mut st = state.borrow_mut();
        st.decoder.reset_books();
        st.book.distrust(&settings.endpoint.pairs);
        st.book.invalidation(&settings.endpoint.pairs, attempt, reason)
    };
    pipeline.journal().do_send(Append { entries: vec![record] });
    pipeline.run(batch).await.map_err(FeedError::Pipeline)
}

/// A live feed reconnecting (after the supervisor restarted it): fills the gap while it was
/// disconnected ([`fill_gap`], while the old books still stand), then records the disconnect
/// (`reconnect` line) and invalidates the books — the order a re-execution of the recording
/// applies them in — before the new connection reads a frame.
pub(super) async fn catch_up_reconnect(
    gap: Option<&GapFetch>,
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    (attempt, reason): (u32, &str),
) -> Result<Flow, FeedError> {
    if let Some(gap) = gap
        && fill_gap(gap, state, settings, pipeline, ended).await? == Flow::Stop
    {
        return Ok(Flow::Stop);
    }
    let recorder = state.borrow().recorder.clone();
    let marker = serde_json::json!({ "attempt": attempt, "reason": reason }).to_string();
    record_frames(&recorder, "reconnect", std::iter::once(marker.as_str()));
    invalidate_books(state, settings, pipeline, attempt, reason).await?;
    Ok(Flow::Continue)
}
