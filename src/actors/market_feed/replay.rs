//! Playing a recording (`kraken-paper replay FILE`) through the same decoder and pipeline as a
//! live connection: the file is read and decoded on another thread, and each batch's vectors
//! go back to it once the pipeline is done with them ([`Spent`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::drive::{admit_frames, drive_batch};
use super::frames::{DecodedFrames, Spent, decode_lines};
use super::settings::{FeedSettings, ReplayInput};
use super::state::FeedState;
use super::{FeedEnded, FeedError};
use crate::core::market::MarketBatch;
use crate::pipeline::Pipeline;
use crate::sources::kraken_ws::Flow;

/// Plays a recording through the same decoder and pipeline as a live connection; the file is
/// read on another thread (`sources::replay`), memory stays flat.
pub(super) async fn replay_file(
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
        .map_err(|e| crate::sources::kraken_ws::ConnectionError::Consumer(Box::new(e)))?;
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
                process_decoded(state, settings, pipeline, tx, ended, decoded, &spent_tx).await
            {
                return Ok(());
            }
        }
    }
    let mut st = state.borrow_mut();
    st.finished = true;
    st.progress = None;
    let t = st.book.last_time;
    let _ = ended.send(FeedEnded::DurationReached(t));
    Ok(())
}

/// [`super::drive::process_frames`] for frames already decoded (`replay` decodes on the
/// reader thread), handing the batch's emptied vectors back to the reader ([`Spent`]).
async fn process_decoded(
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    tx: &mpsc::UnboundedSender<String>,
    ended: &mpsc::UnboundedSender<FeedEnded>,
    decoded: DecodedFrames,
    spent: &std::sync::mpsc::Sender<Spent>,
) -> Result<Flow, FeedError> {
    let (batch, counters) = admit_frames(state, settings, tx, decoded);
    let batch = Arc::new(batch);
    let flow = drive_batch(state, pipeline, ended, &batch, &counters).await;
    // The batch's vectors go back to the reader thread, emptied here (the events are freed
    // where they always were), to be filled again: no fresh memory per batch.
    if let Ok(MarketBatch { mut events, mut frames, .. }) = Arc::try_unwrap(batch) {
        let mut counters = counters;
        events.clear();
        frames.clear();
        counters.clear();
        let _ = spent.send(Spent { events, marks: frames, counters });
    }
    flow
}
