//! What a journal says about continuing its run (`run --resume RUN_DIR`): where its market
//! data came from, whether the run is finished, and where earlier sessions were stopped by a
//! signal. Pure: it reads records already scanned by `core::journal::scan`.
//!
//! A resume re-executes the run from its first market frame and checks every regenerated
//! record against the journal. A session stopped by SIGINT/SIGTERM wrote its end-of-run
//! block (`equity`, `exec_stats`, `balances`, `risk_metrics`, `feed_stats`, `run_ended`
//! with reason `signal`) after the frame it stopped at; the re-execution writes that block
//! again at the same frame — after the same number of decoded frames, `feed_stats.frames`
//! — so it is checked like any other record, the state it left (a flattening on exit
//! included) is the state the continued run starts from, and `seq` runs on past it.
//!
//! A session ended by an actor's failure (`supervision::Policy::StopRun`) dropped the
//! records of the pass in flight and wrote `actor_failed` (with the feed's `frames`) and
//! `run_ended` (reason `actor_failed`) at the last pass boundary, without asking the actors
//! for anything; the re-execution passes over those records at that frame
//! ([`SessionEnd::ActorFailed`]) and goes on.
//!
//! A live run resumed after a downtime also reviews the gap ([`GapWatch`]): orders triggered
//! by the trades fetched for it, and the open orders of pairs whose trades could not be
//! fetched, have a fate that cannot be known ([`GapVerdict`], journaled as
//! `order_fate_unknown`).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::json;

use super::execution::ExecEvent;
use super::instrument::Symbol;
use super::journal::{Entry, StoredRecord};
use super::time::EventTime;

/// Where the run's market data came from (`run_started.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunSource {
    /// The embedded simulated exchange (re-executed from the same seed).
    Sim,
    /// A recording played with `kraken-paper replay` (re-executed from the same file).
    Replay,
    /// Kraken's live feed (re-executed from the run folder's `feed.jsonl`).
    Live,
}

/// How to continue a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePlan {
    /// The run's source.
    pub source: RunSource,
    /// Last complete record.
    pub last_seq: u64,
    /// For each earlier session that stopped (by a signal or an actor's failure), in order:
    /// where and how.
    pub stops: Vec<SessionStop>,
}

/// Where an earlier session stopped: the re-execution stops there again and re-creates or
/// passes over its end, then goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStop {
    /// The number of frames the feed had passed when the session stopped.
    pub frames: u64,
    /// How it ended.
    pub end: SessionEnd,
}

/// How an earlier session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// SIGINT/SIGTERM: its end-of-run block is written again (and checked).
    Signal,
    /// An actor failed: its `records` end records are passed over.
    ActorFailed {
        /// From `actor_failed` to `run_ended`, both included.
        records: u64,
    },
}

impl SessionStop {
    /// A signal stop after `frames`.
    pub fn signal(frames: u64) -> SessionStop {
        SessionStop { frames, end: SessionEnd::Signal }
    }
}

/// `run_ended.reason` of a session stopped by SIGINT/SIGTERM.
pub const END_SIGNAL: &str = "signal";
/// `run_ended.reason` of a session ended by an actor's failure.
pub const END_ACTOR_FAILED: &str = "actor_failed";

/// Why a journal cannot be continued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeRefusal {
    /// The journal has no record.
    #[error("the journal is empty (the run never started); start a new run instead")]
    Empty,
    /// The last session ended by itself.
    #[error(
        "it holds a finished run (ended: {reason}); nothing to resume (only a run that was killed or stopped by SIGINT/SIGTERM can be continued)"
    )]
    Finished {
        /// `run_ended.reason`.
        reason: String,
    },
    /// `run_started.source` is not one this build knows.
    #[error("its run_started record names an unknown source {0:?}")]
    UnknownSource(String),
    /// A signal stop without the feed's counters: the re-execution cannot find its frame.
    #[error(
        "the session stopped by a signal at seq {seq} left no feed_stats record, so the frame it stopped at is unknown"
    )]
    StopWithoutFeedStats {
        /// `run_ended`'s seq.
        seq: u64,
    },
}

/// Reads the plan from a journal's records (the torn tail already cut off).
pub fn plan(records: &[StoredRecord]) -> Result<ResumePlan, ResumeRefusal> {
    let last = records.last().ok_or(ResumeRefusal::Empty)?;
    let reason_of =
        |r: &StoredRecord| r.body.get("reason").and_then(|v| v.as_str()).unwrap_or("").to_string();
    if last.kind == "run_ended" && ![END_SIGNAL, END_ACTOR_FAILED].contains(&reason_of(last).as_str()) {
        return Err(ResumeRefusal::Finished { reason: reason_of(last) });
    }
    let source = match records.iter().find(|r| r.kind == "run_started") {
        None => RunSource::Sim,
        Some(start) => match start.body.get("source").and_then(|v| v.as_str()).unwrap_or("sim") {
            "sim" => RunSource::Sim,
            "replay" => RunSource::Replay,
            "kraken" => RunSource::Live,
            other => return Err(ResumeRefusal::UnknownSource(other.to_string())),
        },
    };
    let mut stops = Vec::new();
    let mut frames: Option<u64> = None;
    let mut failed: Option<(u64, u64)> = None;
    for r in records {
        match r.kind.as_str() {
            "feed_stats" => frames = r.body.get("frames").and_then(|v| v.as_u64()),
            "actor_failed" => {
                let f = r.body.get("frames").and_then(|v| v.as_u64());
                failed = Some((r.seq, f.ok_or(ResumeRefusal::StopWithoutFeedStats { seq: r.seq })?));
            }
            "run_ended" if reason_of(r) == END_ACTOR_FAILED => {
                let (first, f) = failed.take().ok_or(ResumeRefusal::StopWithoutFeedStats { seq: r.seq })?;
                stops.push(SessionStop {
                    frames: f,
                    end: SessionEnd::ActorFailed { records: r.seq - first + 1 },
                });
            }
            "run_ended" => {
                // Only a resumable stop can be followed by more records (a resume refuses the
                // others), so every run_ended met here is a signal stop or the last record.
                let f = frames.take().ok_or(ResumeRefusal::StopWithoutFeedStats { seq: r.seq })?;
                stops.push(SessionStop::signal(f));
            }
            _ => {}
        }
    }
    Ok(ResumePlan { source, last_seq: last.seq, stops })
}

/// What the gap review needs to know about orders, kept from the published execution events.
#[derive(Default)]
pub struct GapWatch {
    /// Pair of each open order.
    pairs: BTreeMap<u64, Symbol>,
    /// Triggered orders not yet filled: trigger time and price.
    triggered: BTreeMap<u64, (EventTime, Decimal)>,
}

impl GapWatch {
    /// Takes note of a published execution event.
    #[inline]
    pub fn see(&mut self, ev: &ExecEvent) {
        match ev {
            ExecEvent::OrderAccepted { order_id, spec, .. } => {
                self.pairs.insert(order_id.0, spec.pair.clone());
            }
            ExecEvent::OrderTriggered { time, order_id, trigger_price } => {
                self.triggered.insert(order_id.0, (*time, *trigger_price));
            }
            ExecEvent::OrderCanceled { order_id, .. } => {
                self.pairs.remove(&order_id.0);
                self.triggered.remove(&order_id.0);
            }
            ExecEvent::Fill(f) => {
                self.triggered.remove(&f.order_id.0);
                if !f.partial {
                    self.pairs.remove(&f.order_id.0);
                }
            }
            _ => {}
        }
    }

    /// The verdicts on a gap from `since` on, whose trades could not be fetched for
    /// `pairs_unfetched`: first the orders triggered in it (by order id), then each unfetched
    /// pair with its open orders.
    pub fn review(&self, since: EventTime, pairs_unfetched: &[String]) -> Vec<GapVerdict> {
        let mut out = Vec::new();
        for (id, (time, price)) in &self.triggered {
            if *time < since {
                continue;
            }
            let pair = self.pairs.get(id).map(|p| p.to_string());
            out.push(GapVerdict::Triggered { order_id: *id, pair, time: *time, trigger_price: *price });
        }
        for pair in pairs_unfetched {
            let orders: Vec<u64> =
                self.pairs.iter().filter(|(_, p)| &***p == pair.as_str()).map(|(id, _)| *id).collect();
            out.push(GapVerdict::Unfetched { pair: pair.clone(), orders });
        }
        out
    }
}

/// One finding of the gap review.
#[derive(Clone, Debug, PartialEq)]
pub enum GapVerdict {
    /// An order triggered while the feed was down: it executes on the first book after
    /// reconnecting, but the book of its trigger time is unknown.
    Triggered {
        /// The order.
        order_id: u64,
        /// Its pair, if known.
        pair: Option<String>,
        /// When it triggered.
        time: EventTime,
        /// At which price.
        trigger_price: Decimal,
    },
    /// A pair whose missed trades could not be fetched, and its open orders.
    Unfetched {
        /// The pair.
        pair: String,
        /// Its open orders (by id).
        orders: Vec<u64>,
    },
}

impl GapVerdict {
    /// The verdict's `order_fate_unknown` records (`until`: the gap's end).
    pub fn records(&self, until: EventTime) -> Vec<Entry> {
        match self {
            GapVerdict::Triggered { order_id, pair, time, trigger_price } => vec![Entry::new(
                *time,
                "order_fate_unknown",
                &json!({
                    "order_id": order_id,
                    "pair": pair,
                    "trigger_price": trigger_price,
                    "reason": "triggered by a trade fetched after a downtime; executes on the first book after reconnecting, not on the book of its trigger time (unknown)",
                }),
            )],
            GapVerdict::Unfetched { pair, orders } => orders
                .iter()
                .map(|id| {
                    Entry::new(
                        until,
                        "order_fate_unknown",
                        &json!({
                            "order_id": id,
                            "pair": pair,
                            "reason": "the trades missed while the feed was down could not be fetched",
                        }),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    fn rec(seq: u64, kind: &str, body: Value) -> StoredRecord {
        let body: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
        StoredRecord { seq, event_time: EventTime::ZERO, kind: kind.into(), body }
    }

    fn started(source: &str) -> StoredRecord {
        rec(1, "run_started", json!({ "source": source }))
    }

    #[test]
    fn killed_run_resumes_with_no_stop_to_replay() {
        let p = plan(&[started("sim"), rec(2, "fill", json!({}))]).unwrap();
        assert_eq!(p, ResumePlan { source: RunSource::Sim, last_seq: 2, stops: vec![] });
    }

    #[test]
    fn run_ended_by_its_duration_is_finished() {
        let r = plan(&[
            started("replay"),
            rec(2, "feed_stats", json!({"frames": 9})),
            rec(3, "run_ended", json!({"reason": "duration"})),
        ]);
        assert_eq!(r, Err(ResumeRefusal::Finished { reason: "duration".into() }));
        assert!(r.unwrap_err().to_string().contains("nothing to resume"));
    }

    #[test]
    fn failed_run_is_finished() {
        let r = plan(&[started("sim"), rec(2, "run_ended", json!({"reason": "failed: disk full"}))]);
        assert!(matches!(r, Err(ResumeRefusal::Finished { .. })));
    }

    #[test]
    fn signal_stops_are_listed_by_their_frame_counts() {
        let p = plan(&[
            started("kraken"),
            rec(2, "feed_stats", json!({"frames": 120})),
            rec(3, "run_ended", json!({"reason": "signal"})),
            rec(4, "fill", json!({})),
            rec(5, "feed_stats", json!({"frames": 480})),
            rec(6, "run_ended", json!({"reason": "signal"})),
        ])
        .unwrap();
        assert_eq!(
            p,
            ResumePlan {
                source: RunSource::Live,
                last_seq: 6,
                stops: vec![SessionStop::signal(120), SessionStop::signal(480)]
            }
        );
    }

    #[test]
    fn a_session_ended_by_an_actor_failure_is_resumed_past_its_end_records() {
        let p = plan(&[
            started("sim"),
            rec(2, "fill", json!({})),
            rec(3, "actor_failed", json!({"actor": "position_book", "reason": "x", "frames": 77})),
            rec(4, "run_ended", json!({"reason": "actor_failed"})),
        ])
        .unwrap();
        let failed = SessionStop { frames: 77, end: SessionEnd::ActorFailed { records: 2 } };
        assert_eq!(p, ResumePlan { source: RunSource::Sim, last_seq: 4, stops: vec![failed] });
    }

    #[test]
    fn signal_stop_without_feed_stats_is_refused() {
        let r = plan(&[started("sim"), rec(2, "run_ended", json!({"reason": "signal"}))]);
        assert_eq!(r, Err(ResumeRefusal::StopWithoutFeedStats { seq: 2 }));
    }

    #[test]
    fn unknown_source_and_empty_journal_are_refused() {
        assert_eq!(
            plan(&[started("carrier-pigeon")]),
            Err(ResumeRefusal::UnknownSource("carrier-pigeon".into()))
        );
        assert_eq!(plan(&[]), Err(ResumeRefusal::Empty));
    }

    #[test]
    fn gap_review_reports_orders_triggered_in_the_gap_then_unfetched_pairs() {
        let t = |s: i64| EventTime::ZERO.plus_micros(s * 1_000_000);
        let mut w = GapWatch::default();
        w.pairs.insert(7, Symbol::from("BTC/USD"));
        w.pairs.insert(9, Symbol::from("ETH/USD"));
        w.triggered.insert(7, (t(50), Decimal::from(100)));
        w.triggered.insert(8, (t(5), Decimal::from(1))); // before the gap
        let v = w.review(t(10), &["ETH/USD".to_string(), "SOL/USD".to_string()]);
        assert_eq!(
            v,
            [
                GapVerdict::Triggered {
                    order_id: 7,
                    pair: Some("BTC/USD".into()),
                    time: t(50),
                    trigger_price: Decimal::from(100)
                },
                GapVerdict::Unfetched { pair: "ETH/USD".into(), orders: vec![9] },
                GapVerdict::Unfetched { pair: "SOL/USD".into(), orders: vec![] },
            ]
        );
        let records: Vec<_> = v.iter().flat_map(|v| v.records(t(60))).collect();
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.kind == "order_fate_unknown"));
    }
}
