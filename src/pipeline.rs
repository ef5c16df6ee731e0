//! The frame-pass protocol: the stages a batch of market data goes through, in order, each
//! hop awaited ([`Pipeline`]), and the journal handle every stage appends through
//! ([`JournalSink`]), whose count lets a pass that appended nothing skip its journal `Flush`.
//!
//! One pass over a run of whole frames: PositionBook ([`BookPass`], which may end the pass
//! early) → RiskManager ([`MarketData`]) → SignalAggregator ([`MarketData`]) → RiskManager
//! ([`WatchRequest`], answering what PositionBook must watch) → PositionBook ([`Barrier`]) →
//! Journal ([`Flush`], queued and awaited before the next pass). The signal actors see each
//! batch whole, before its passes. Where a pass may end at the latest is asked of the
//! aggregator ([`NextDecision`]); before RiskManager's first answer and while it is halted a
//! pass is one frame. The diagram is in [`crate::messages`]; who drives the passes is
//! `actors::market_feed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;

use crate::core::market::MarketBatch;
use crate::core::risk::RiskWatch;
use crate::messages::{Append, Barrier, BookPass, Flush, MarketData, NextDecision, WatchRequest};

/// Why a pass could not be completed: the run must end.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A stage's mailbox is closed (the actor stopped) or refused the message.
    #[error("pipeline stage stopped: {0}")]
    StageStopped(#[from] MailboxError),
    /// The journal could not write or sync the records of the last pass.
    #[error("journal: {0}")]
    Journal(crate::core::journal::JournalError),
}

impl crate::core::error::Classified for PipelineError {
    /// A pass that cannot complete ends the run: both are [`Disposition::Halt`].
    ///
    /// [`Disposition::Halt`]: crate::core::error::Disposition::Halt
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            PipelineError::StageStopped(_) | PipelineError::Journal(_) => {
                crate::core::error::Disposition::Halt
            }
        }
    }
}

/// What the other actors hold to append records: the journal's address plus a count of the
/// appends sent, so the pipeline can skip its end-of-batch [`Flush`] (a cross-thread round
/// trip) when a batch appended nothing.
#[derive(Clone)]
pub struct JournalSink {
    addr: Recipient<Append>,
    sent: Arc<AtomicU64>,
}

impl JournalSink {
    /// A sink sending to `addr`.
    pub fn new(addr: Recipient<Append>) -> JournalSink {
        JournalSink { addr, sent: Arc::new(AtomicU64::new(0)) }
    }

    /// Appends records (never blocks; the journal orders them as they arrive).
    #[inline]
    pub fn do_send(&self, msg: Append) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.addr.do_send(msg);
    }

    /// Appends sent so far through this sink and its clones.
    #[inline]
    pub fn appends_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// The actors a batch goes through, in order ([`Pipeline::new`]).
#[derive(Clone)]
pub struct Stages {
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
}

/// The stages plus what the protocol remembers between passes (cheap to clone: clones share
/// that memory).
#[derive(Clone)]
pub struct Pipeline {
    /// The actors a pass goes through.
    stages: Stages,
    /// `journal.appends_sent()` at the last Flush: a pass that appended nothing skips it.
    flushed_at: Arc<AtomicU64>,
    /// Flush after every pass even when it appended nothing (live runs: the feed recording
    /// `feed.jsonl` is written by the journal's Flush and must keep up with the frames).
    always_flush: bool,
    /// RiskManager's answer after the last pass (None before the first: frame by frame).
    watch: Arc<std::sync::Mutex<Option<RiskWatch>>>,
    /// The last pass's journal Flush, until the next pass awaits it ([`Pipeline::settle`]).
    pending_flush: Arc<std::sync::Mutex<Option<actix::dev::RecipientRequest<Flush>>>>,
}

impl Pipeline {
    /// A pipeline through `stages`, frame by frame until RiskManager's first answer;
    /// `always_flush`: flush the journal after every pass, even one that appended nothing
    /// (live runs, whose feed recording is written by the journal's Flush).
    pub fn new(stages: Stages, always_flush: bool) -> Pipeline {
        Pipeline {
            stages,
            flushed_at: Default::default(),
            always_flush,
            watch: Default::default(),
            pending_flush: Default::default(),
        }
    }

    /// The journal handle (records the feed itself appends).
    #[inline]
    pub fn journal(&self) -> &JournalSink {
        &self.stages.journal
    }

    /// Drives a batch through every stage as one pass (a disconnect's book invalidation).
    pub async fn run(&self, batch: MarketBatch) -> Result<(), PipelineError> {
        let data = MarketData::whole(Arc::new(batch));
        self.signals(&data).await;
        self.pass(data).await.map(|_| ())
    }

    /// The signal actors see a batch whole, ahead of its passes: they depend on market data
    /// only, and the aggregator holds their signals until their events come.
    pub async fn signals(&self, data: &MarketData) {
        for s in &self.stages.signals {
            // A signal actor being restarted misses this batch; trading goes on.
            let _ = s.send(data.clone()).await;
        }
    }

    /// The lowest event sequence number at which the aggregator can decide.
    pub async fn next_decision(&self) -> Result<Option<u64>, PipelineError> {
        Ok(self.stages.next_decision.send(NextDecision).await?)
    }

    /// The last frame a pass starting at frame `first` of `batch` may cover, as far as the
    /// stages are concerned: `first` itself while frame by frame ([`Self::frame_by_frame`])
    /// or at the batch's last frame; else the frame holding the event at which the aggregator
    /// can next decide, or the batch's last frame. (The driver may end it earlier still: the
    /// run's end, a stop.)
    pub async fn pass_limit(&self, batch: &MarketBatch, first: usize) -> Result<usize, PipelineError> {
        let n = batch.frames.len();
        if self.frame_by_frame() || first + 1 >= n {
            return Ok(first);
        }
        let mut last = n - 1;
        if let Some(seq) = self.next_decision().await?
            && seq < batch.end_seq()
        {
            last = batch.frame_of_seq(seq).max(first);
        }
        Ok(last)
    }

    /// One pass over `data.range` (whole frames) through every stage but the signal actors,
    /// awaiting each. PositionBook may end it early: returns the index one past the last
    /// event passed.
    pub async fn pass(&self, data: MarketData) -> Result<usize, PipelineError> {
        let watch = self.last_watch().unwrap_or_default();
        let (start, end) = (data.range.start, data.range.end);
        let applied = self.stages.position_book.send(BookPass { data: data.clone(), watch }).await?;
        let data = MarketData { range: start..applied.clamp(start, end), ..data };
        self.stages.risk.send(data.clone()).await?;
        self.stages.aggregator.send(data.clone()).await?;
        let watch = self.stages.risk_watch.send(WatchRequest).await?;
        if let Ok(mut w) = self.watch.lock() {
            *w = Some(watch);
        }
        self.stages.position_book_barrier.send(Barrier).await?;
        let sent = self.stages.journal.appends_sent();
        if self.flushed_at.swap(sent, Ordering::Relaxed) != sent || self.always_flush {
            // Group commit beside the data path: this pass's Flush is queued now (behind its
            // records) and awaited before the next one, so the journal's thread syncs while
            // the next pass is computed. At most one pass is unsynced; a failed write or sync
            // ends the run at the next pass (and `Close` reports it again).
            self.settle().await?;
            let flush = self.stages.journal_flush.send(Flush);
            if let Ok(mut pending) = self.pending_flush.lock() {
                *pending = Some(flush);
            }
        }
        Ok(data.range.end)
    }

    /// Awaits the journal Flush still in flight, if any (see [`Self::pass`]).
    async fn settle(&self) -> Result<(), PipelineError> {
        let pending = self.pending_flush.lock().ok().and_then(|mut p| p.take());
        if let Some(flush) = pending {
            flush.await?.map_err(PipelineError::Journal)?;
        }
        Ok(())
    }

    /// RiskManager's answer after the last pass.
    #[inline]
    fn last_watch(&self) -> Option<RiskWatch> {
        self.watch.lock().ok().and_then(|w| w.clone())
    }

    /// Whether the next pass must be a single frame (before the first pass, and while
    /// RiskManager is halted: a cool-down lifts at the first view past its end).
    #[inline]
    pub fn frame_by_frame(&self) -> bool {
        self.last_watch().is_none_or(|w| w.halted)
    }
}

#[cfg(test)]
mod tests;
