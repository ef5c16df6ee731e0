//! Unit tests of one pass of the [`Pipeline`] against stub stages: the order of the hops, an
//! early end from `BookPass`, the `NextDecision` limit, and halted ⇒ frame by frame.

use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::{JournalSink, Pipeline, Stages};
use crate::core::journal::Entry;
use crate::core::market::{BookInvalidReason, FrameMark, MarketBatch, MarketEvent};
use crate::core::risk::RiskWatch;
use crate::core::time::EventTime;
use crate::messages::{
    Append, Barrier, BookPass, Flush, JournalPosition, MarketData, NextDecision, WatchRequest,
};

/// The hops the stubs were sent, in the order they handled them.
type Log = Arc<Mutex<Vec<String>>>;

/// A stub stage: it logs each hop it gets as `role: hop`.
struct Stub {
    role: &'static str,
    log: Log,
    /// What `BookPass` answers: events applied from the range's start (None: all).
    applied: Option<usize>,
    /// What `NextDecision` answers.
    next: Option<u64>,
    /// Whether RiskManager's answer says halted.
    halted: bool,
}

impl Stub {
    fn note(&self, hop: String) {
        self.log.lock().unwrap().push(format!("{}: {hop}", self.role));
    }
}

impl Actor for Stub {
    type Context = Context<Self>;
}

impl Handler<BookPass> for Stub {
    type Result = usize;
    fn handle(&mut self, msg: BookPass, _ctx: &mut Self::Context) -> usize {
        let r = msg.data.range;
        self.note(format!("pass {}..{}", r.start, r.end));
        self.applied.map_or(r.end, |a| r.start + a)
    }
}

impl Handler<MarketData> for Stub {
    type Result = ();
    fn handle(&mut self, msg: MarketData, _ctx: &mut Self::Context) {
        self.note(format!("data {}..{}", msg.range.start, msg.range.end));
    }
}

impl Handler<WatchRequest> for Stub {
    type Result = MessageResult<WatchRequest>;
    fn handle(&mut self, _msg: WatchRequest, _ctx: &mut Self::Context) -> Self::Result {
        self.note("watch".into());
        MessageResult(RiskWatch { halted: self.halted, ..Default::default() })
    }
}

impl Handler<Barrier> for Stub {
    type Result = ();
    fn handle(&mut self, _msg: Barrier, _ctx: &mut Self::Context) {
        self.note("barrier".into());
    }
}

impl Handler<NextDecision> for Stub {
    type Result = Option<u64>;
    fn handle(&mut self, _msg: NextDecision, _ctx: &mut Self::Context) -> Option<u64> {
        self.note("next_decision".into());
        self.next
    }
}

impl Handler<Append> for Stub {
    type Result = ();
    fn handle(&mut self, _msg: Append, _ctx: &mut Self::Context) {
        self.note("append".into());
    }
}

impl Handler<Flush> for Stub {
    type Result = Result<JournalPosition, crate::core::journal::JournalError>;
    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        self.note("flush".into());
        Ok(JournalPosition::default())
    }
}

/// A pipeline through stub stages, and their shared log.
fn pipeline(applied: Option<usize>, next: Option<u64>, halted: bool) -> (Pipeline, Log) {
    let log = Log::default();
    let stub = |role| Stub { role, log: log.clone(), applied, next, halted }.start();
    let (book, risk, aggregator, signal, journal) =
        (stub("book"), stub("risk"), stub("aggregator"), stub("signal"), stub("journal"));
    let stages = Stages {
        position_book: book.clone().recipient(),
        position_book_barrier: book.recipient(),
        risk: risk.clone().recipient(),
        risk_watch: risk.recipient(),
        signals: vec![signal.recipient()],
        aggregator: aggregator.clone().recipient(),
        next_decision: aggregator.recipient(),
        journal_flush: journal.clone().recipient(),
        journal: JournalSink::new(journal.recipient()),
    };
    (Pipeline::new(stages, false), log)
}

/// A batch of `frames` frames of one event each, the first numbered `first_seq`.
fn batch(first_seq: u64, frames: usize) -> Arc<MarketBatch> {
    let time = EventTime::ZERO.plus_micros(1_000_000);
    let events = (0..frames)
        .map(|_| MarketEvent::BookInvalid {
            symbol: "BTC/USD".into(),
            time,
            reason: BookInvalidReason::Disconnected,
        })
        .collect();
    let frames = (1..=frames).map(|end| FrameMark { end, time }).collect();
    Arc::new(MarketBatch { first_seq, events, frames })
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[actix::test]
async fn a_pass_visits_the_stages_in_order_and_flushes_only_after_appends() {
    let (p, log) = pipeline(None, None, false);
    let b = batch(10, 3);
    p.signals(&MarketData::whole(b.clone())).await;
    let end = p.pass(MarketData { batch: b.clone(), range: 0..3 }).await.unwrap();
    assert_eq!(end, 3);
    assert_eq!(
        taken(&log),
        [
            "signal: data 0..3",
            "book: pass 0..3",
            "risk: data 0..3",
            "aggregator: data 0..3",
            "risk: watch",
            "book: barrier"
        ]
    );
    // A pass after an append queues a Flush behind it; the next pass awaits it first.
    p.journal().do_send(Append { entries: vec![Entry::new(EventTime::ZERO, "test", &1)] });
    p.pass(MarketData { batch: b.clone(), range: 0..1 }).await.unwrap();
    p.pass(MarketData { batch: b, range: 1..2 }).await.unwrap();
    let hops = taken(&log);
    let at = |hop: &str| hops.iter().position(|h| h == hop).unwrap_or_else(|| panic!("{hop} in {hops:?}"));
    assert!(at("journal: append") < at("journal: flush"), "{hops:?}");
    assert!(at("journal: flush") < at("book: pass 1..2"), "{hops:?}");
    assert_eq!(hops.iter().filter(|h| *h == "journal: flush").count(), 1, "{hops:?}");
}

#[actix::test]
async fn position_book_ends_a_pass_early() {
    let (p, log) = pipeline(Some(1), None, false);
    let b = batch(0, 3);
    let end = p.pass(MarketData { batch: b, range: 0..3 }).await.unwrap();
    assert_eq!(end, 1);
    // The stages after PositionBook see only the events it applied.
    let hops = taken(&log);
    assert!(hops.contains(&"risk: data 0..1".to_string()), "{hops:?}");
    assert!(hops.contains(&"aggregator: data 0..1".to_string()), "{hops:?}");
}

#[actix::test]
async fn a_pass_ends_at_the_next_decision() {
    // Frames of one event each, numbered 100..105: the aggregator can decide at 102.
    let (p, log) = pipeline(None, Some(102), false);
    let b = batch(100, 5);
    // Before RiskManager's first answer: frame by frame, the aggregator is not asked.
    assert!(p.frame_by_frame());
    assert_eq!(p.pass_limit(&b, 0).await.unwrap(), 0);
    p.pass(MarketData { batch: b.clone(), range: 0..1 }).await.unwrap();
    taken(&log);
    assert!(!p.frame_by_frame());
    assert_eq!(p.pass_limit(&b, 1).await.unwrap(), 2);
    assert_eq!(taken(&log), ["aggregator: next_decision"]);
    // Never before the pass's first frame; the batch's last frame is a pass of its own.
    assert_eq!(p.pass_limit(&b, 3).await.unwrap(), 3);
    assert_eq!(p.pass_limit(&b, 4).await.unwrap(), 4);
}

#[actix::test]
async fn no_decision_ahead_lets_a_pass_run_to_the_batch_end() {
    let (p, _log) = pipeline(None, None, false);
    let b = batch(0, 4);
    p.pass(MarketData { batch: b.clone(), range: 0..1 }).await.unwrap();
    assert_eq!(p.pass_limit(&b, 1).await.unwrap(), 3);
}

#[actix::test]
async fn halted_means_frame_by_frame() {
    let (p, log) = pipeline(None, Some(0), true);
    let b = batch(0, 4);
    p.pass(MarketData { batch: b.clone(), range: 0..1 }).await.unwrap();
    taken(&log);
    assert!(p.frame_by_frame());
    assert_eq!(p.pass_limit(&b, 1).await.unwrap(), 1);
    assert!(taken(&log).is_empty(), "the aggregator is not asked while halted");
}

#[actix::test]
async fn a_stopped_stage_fails_the_pass_with_the_logged_wording() {
    let (mut p, _log) = pipeline(None, None, false);
    struct Gone;
    impl Actor for Gone {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Self::Context) {
            ctx.stop();
        }
    }
    impl Handler<BookPass> for Gone {
        type Result = usize;
        fn handle(&mut self, _msg: BookPass, _ctx: &mut Self::Context) -> usize {
            0
        }
    }
    p.stages.position_book = Gone.start().recipient();
    tokio::task::yield_now().await;
    let e = p.pass(MarketData { batch: batch(0, 1), range: 0..1 }).await.unwrap_err();
    assert!(e.to_string().starts_with("pipeline stage stopped: "), "{e}");
}
