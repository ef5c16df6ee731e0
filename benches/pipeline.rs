//! One pipeline pass against stub stages: the cost of the pass protocol itself (five awaited
//! hops and the journal-flush bookkeeping), without any work in the stages.
//!
//! Run: `cargo bench --bench pipeline`. Each iteration is one pass over a batch of 64
//! one-event frames; divan reports items/s = events/s through the protocol alone.

use std::sync::Arc;

use actix::prelude::*;
use divan::counter::ItemsCount;

use kraken_paper::core::market::{BookInvalidReason, FrameMark, MarketBatch, MarketEvent};
use kraken_paper::core::risk::RiskWatch;
use kraken_paper::core::time::EventTime;
use kraken_paper::messages::{
    Append, Barrier, BookPass, Flush, JournalPosition, MarketData, NextDecision, WatchRequest,
};
use kraken_paper::pipeline::{JournalSink, Pipeline, Stages};

const EVENTS: usize = 64;

fn main() {
    divan::main();
}

/// Plays every stage and does nothing.
struct Stub;

impl Actor for Stub {
    type Context = Context<Self>;
}

impl Handler<BookPass> for Stub {
    type Result = usize;
    fn handle(&mut self, msg: BookPass, _ctx: &mut Self::Context) -> usize {
        msg.data.range.end
    }
}

impl Handler<MarketData> for Stub {
    type Result = ();
    fn handle(&mut self, _msg: MarketData, _ctx: &mut Self::Context) {}
}

impl Handler<WatchRequest> for Stub {
    type Result = MessageResult<WatchRequest>;
    fn handle(&mut self, _msg: WatchRequest, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(RiskWatch::default())
    }
}

impl Handler<Barrier> for Stub {
    type Result = ();
    fn handle(&mut self, _msg: Barrier, _ctx: &mut Self::Context) {}
}

impl Handler<NextDecision> for Stub {
    type Result = Option<u64>;
    fn handle(&mut self, _msg: NextDecision, _ctx: &mut Self::Context) -> Option<u64> {
        None
    }
}

impl Handler<Append> for Stub {
    type Result = ();
    fn handle(&mut self, _msg: Append, _ctx: &mut Self::Context) {}
}

impl Handler<Flush> for Stub {
    type Result = Result<JournalPosition, kraken_paper::core::journal::JournalError>;
    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        Ok(JournalPosition::default())
    }
}

fn batch() -> Arc<MarketBatch> {
    let time = EventTime::from_micros(1_735_689_600_000_000);
    let events = (0..EVENTS)
        .map(|_| MarketEvent::BookInvalid {
            symbol: "BTC/USD".into(),
            time,
            reason: BookInvalidReason::Disconnected,
        })
        .collect();
    let frames = (1..=EVENTS).map(|end| FrameMark { end, time }).collect();
    Arc::new(MarketBatch { first_seq: 0, events, frames })
}

/// One pass of a whole batch through stub stages (after a first pass, as in a run).
#[divan::bench]
fn one_pass(bencher: divan::Bencher) {
    let sys = System::new();
    let pipeline = sys.block_on(async {
        let s = Stub.start();
        let stages = Stages {
            position_book: s.clone().recipient(),
            position_book_barrier: s.clone().recipient(),
            risk: s.clone().recipient(),
            risk_watch: s.clone().recipient(),
            signals: vec![s.clone().recipient()],
            aggregator: s.clone().recipient(),
            next_decision: s.clone().recipient(),
            journal_flush: s.clone().recipient(),
            journal: JournalSink::new(s.recipient()),
        };
        Pipeline::new(stages, false)
    });
    let data = MarketData::whole(batch());
    sys.block_on(pipeline.pass(data.clone())).expect("first pass");
    bencher.counter(ItemsCount::new(EVENTS)).bench_local(|| {
        sys.block_on(async {
            let limit = pipeline.pass_limit(&data.batch, 0).await.expect("limit");
            divan::black_box(limit);
            pipeline.pass(data.clone()).await.expect("pass")
        })
    });
}
