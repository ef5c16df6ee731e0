//! Filling a gap in a live feed: the trades printed while the feed was not connected — after
//! every reconnect, and on `run --resume` after the process was down — fetched over REST
//! `Trades` `since` the last one seen (through the RateLimiter) and driven through the
//! pipeline as WS v2 trade frames before the new connection's snapshot; then PositionBook
//! reviews the orders whose fate in the gap cannot be known ([`GapReview`]).
//!
//! Everything is recorded in `feed.jsonl` before it is applied (`rest` lines, one per trade,
//! then a `gap_end` line), so a resume re-executes it in line ([`apply_gap_end`]) and
//! regenerates the same journal records: the trades' fills, the `feed_gap` record, the
//! `order_fate_unknown` records.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use tokio::sync::mpsc;

use super::drive::{process_frames, record_frames};
use super::settings::{FeedSettings, GapFetch};
use super::state::FeedState;
use super::{FeedEnded, FeedError};
use crate::actors::journal::Append;
use crate::actors::position_book::GapReview;
use crate::core::journal::Entry;
use crate::core::market::TradeEvent;
use crate::core::time::EventTime;
use crate::pipeline::Pipeline;
use crate::sources::kraken_rest::KrakenRest;
use crate::sources::kraken_ws::Flow;
use crate::sources::recording;

/// A `gap_end` line of a live run's recording: the gap's bounds and what was fetched.
///
/// `trades` is absent from the lines of runs recorded before gaps were journaled (then no
/// `feed_gap` record is regenerated, as none was written).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct GapEnd {
    since: EventTime,
    until: EventTime,
    pairs_unfetched: Vec<String>,
    /// Trades applied per fetched pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trades: Option<BTreeMap<String, u64>>,
    /// Sequence number of the first gap trade event (None: no trades).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_seq: Option<u64>,
    /// Sequence number of the last gap trade event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seq: Option<u64>,
}

/// Fills the gap: fetches, per pair, the trades after the last one seen (REST `Trades`
/// `since`), records each as a `rest` line and drives it through the pipeline, in time order
/// across pairs — while the books still stand, so resting limits fill from trades printed
/// through them and stops trigger as on a live feed — then records the `gap_end` line and
/// applies it ([`apply_gap_end`]). Logs `feed_gap_filled` per fetched pair. Returns `Stop`
/// when the run ended meanwhile.
pub(super) async fn fill_gap(
    gap: &GapFetch,
    state: &Rc<RefCell<FeedState>>,
    settings: &FeedSettings,
    pipeline: &Pipeline,
    ended: &mpsc::UnboundedSender<FeedEnded>,
) -> Result<Flow, FeedError> {
    // A gap fill sends no requests: nothing is resubscribed.
    let (scratch, _scratch_rx) = mpsc::unbounded_channel::<String>();
    let (recorder, since_all, last_trades) = {
        let st = state.borrow();
        (st.recorder.clone(), st.book.last_time, st.book.last_trades().clone())
    };
    let mut gap_trades = Vec::new();
    let mut unfetched = Vec::new();
    let mut per_pair = BTreeMap::new();
    match &gap.rest {
        None => unfetched.extend(settings.endpoint.pairs.iter().cloned()),
        Some(rest) => {
            if let Err(e) = rest.asset_pairs().await {
                tracing::warn!(actor = "market_feed", error = %e, "REST AssetPairs failed; querying Trades by WS names");
            }
            for pair in &settings.endpoint.pairs {
                let last = last_trades.get(pair).copied();
                let since = last.map_or(since_all, |l| l.0);
                if since == EventTime::ZERO {
                    continue; // the feed never had data: nothing was missed
                }
                match fetch_trades_since(rest, pair, since).await {
                    Ok(trades) => {
                        let trades = recording::trades_after(trades, last);
                        tracing::info!(
                            event = "feed_gap_filled",
                            actor = "market_feed",
                            pair = %pair,
                            trades = trades.len(),
                            since = %since.to_rfc3339(),
                            "trades missed while the feed was down fetched over REST"
                        );
                        per_pair.insert(pair.clone(), trades.len() as u64);
                        gap_trades.extend(trades);
                    }
                    Err(e) => {
                        tracing::warn!(actor = "market_feed", pair = %pair, error = %e, "could not fetch the trades missed while the feed was down");
                        unfetched.push(pair.clone());
                    }
                }
            }
        }
    }
    // In time order across pairs (stable: a pair's own order is kept).
    gap_trades.sort_by_key(|t: &TradeEvent| t.time);
    let until = gap_trades.last().map_or(since_all, |t| t.time);
    let first_seq = state.borrow().book.next_seq;
    for t in &gap_trades {
        let frame = recording::trades_frame(std::slice::from_ref(t));
        record_frames(&recorder, "rest", std::iter::once(frame.as_str()));
        let frame = vec![tokio_tungstenite::tungstenite::Utf8Bytes::from(frame)];
        if process_frames(state, settings, pipeline, &scratch, ended, frame).await? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    let next_seq = state.borrow().book.next_seq;
    let any = next_seq > first_seq;
    let end = GapEnd {
        since: since_all,
        until,
        pairs_unfetched: unfetched,
        trades: Some(per_pair),
        first_seq: any.then_some(first_seq),
        last_seq: any.then(|| next_seq - 1),
    };
    let text = serde_json::to_string(&end).map_err(FeedError::Json)?;
    record_frames(&recorder, "gap_end", std::iter::once(text.as_str()));
    apply_gap_end(gap, pipeline, end).await;
    Ok(Flow::Continue)
}

/// The end of a gap (live, or a `gap_end` line re-executed): journals the `feed_gap` record
/// (bounds, trades per pair, their sequence numbers, unfetched pairs), then asks PositionBook
/// to report the orders whose fate in the gap cannot be known.
pub(super) async fn apply_gap_end(gap: &GapFetch, pipeline: &Pipeline, end: GapEnd) {
    if let Some(trades) = &end.trades {
        let record = Entry::new(
            end.until,
            "feed_gap",
            &serde_json::json!({
                "since": end.since,
                "until": end.until,
                "trades": trades,
                "first_seq": end.first_seq,
                "last_seq": end.last_seq,
                "pairs_unfetched": end.pairs_unfetched,
            }),
        );
        pipeline.journal().do_send(Append { entries: vec![record] });
    }
    let review = GapReview { since: end.since, until: end.until, pairs_unfetched: end.pairs_unfetched };
    let _ = gap.gap_review.send(review).await;
}

/// Kraken REST `Trades` after `since`, following the `last` cursor while pages are full
/// (Kraken returns at most 1000 trades a call), up to [`MAX_GAP_PAGES`] pages.
async fn fetch_trades_since(
    rest: &KrakenRest,
    pair: &str,
    since: EventTime,
) -> Result<Vec<TradeEvent>, FeedError> {
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
