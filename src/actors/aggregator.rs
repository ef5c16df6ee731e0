//! SignalAggregator actor: owns the aggregation core ([`Aggregator`]).
//!
//! - In: [`SignalBatch`] (from signal actors), [`MarketData`] (decide per event),
//!   [`TradesClosed`] (feedback: source weights), [`EmergencyStop`] / [`HaltLifted`].
//! - Out: [`TradeIntents`] to RiskManager; journal records `signal_decision` (with the
//!   contributing signals, so every trade can be explained) and `signal_weights`.
//! - Fails: a panic ends the run (`supervision::Policy::StopRun`: it holds the pending
//!   signals and the source weights; the run resumes from the journal).
//! - Signals are applied in event order: a signal computed at event `k` is only seen by
//!   decisions at events ≥ `k`, whatever the batching.

use actix::prelude::*;

use crate::actors::journal::{Append, JournalSink};
use crate::core::aggregator::{Aggregator, Decision, SourceWeights};
use crate::core::decisions::Signal;
use crate::core::journal::Entry;
use crate::messages::{
    EmergencyStop, HaltLifted, MarketData, NextDecision, SignalBatch, TradeIntents, TradesClosed,
};
use crate::supervision::{ActorName, Watch};

/// Where the aggregator sends what it produces.
pub struct AggregatorOutputs {
    /// RiskManager.
    pub risk: Recipient<TradeIntents>,
    /// The journal.
    pub journal: JournalSink,
}

/// Asks for the current source weights and statistics.
#[derive(Message)]
#[rtype(result = "SourceWeights")]
pub struct GetWeights;

/// The SignalAggregator actor.
pub struct SignalAggregator {
    core: Aggregator,
    out: AggregatorOutputs,
    pending: Vec<Signal>,
    decisions: Vec<Decision>,
    /// Reports a panic to the engine (and the test hook).
    supervision: Watch,
}

impl SignalAggregator {
    /// An aggregator actor over `core`.
    pub fn new(core: Aggregator, out: AggregatorOutputs) -> Self {
        SignalAggregator {
            core,
            out,
            pending: Vec::new(),
            decisions: Vec::new(),
            supervision: Watch::inert(ActorName::Aggregator),
        }
    }

    /// Reports its failure and takes the test hook through `watch` (the engine's
    /// supervision: `supervision::Policy::StopRun`).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.supervision = watch;
        self
    }

    fn take_signal(&mut self, s: Signal) {
        if let Err(reason) = self.core.on_signal(s.clone()) {
            tracing::warn!(actor = "aggregator", source = %s.source, pair = %s.pair, reason = %reason, "signal refused");
        }
    }
}

impl Actor for SignalAggregator {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "aggregator", "signal aggregator started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "aggregator", "signal aggregator stopped");
    }
}

impl Handler<SignalBatch> for SignalAggregator {
    type Result = ();

    fn handle(&mut self, msg: SignalBatch, _ctx: &mut Self::Context) {
        self.pending.extend(msg.signals);
    }
}

impl Handler<MarketData> for SignalAggregator {
    type Result = ();

    fn handle(&mut self, msg: MarketData, _ctx: &mut Self::Context) {
        self.supervision.tick();
        // Stable sort: signals of one event keep the order of the signal actors.
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|s| s.event_seq);
        let mut next = pending.into_iter().peekable();
        for (seq, ev) in msg.iter_seq() {
            while let Some(s) = next.next_if(|s| s.event_seq <= seq) {
                self.take_signal(s);
            }
            self.core.on_event(seq, ev, &mut self.decisions);
        }
        // Signals about events after this batch (an external source running ahead) wait.
        self.pending.extend(next);
        if self.decisions.is_empty() {
            return;
        }
        let mut records = Vec::with_capacity(self.decisions.len());
        let mut intents = Vec::new();
        for d in self.decisions.drain(..) {
            records.push(Entry::new(d.time, "signal_decision", &d));
            if let Some(i) = d.intent {
                intents.push(i);
            }
        }
        self.out.journal.do_send(Append { entries: records });
        if !intents.is_empty() {
            self.out.risk.do_send(TradeIntents { intents });
        }
    }
}

impl Handler<NextDecision> for SignalAggregator {
    type Result = Option<u64>;

    /// Decisions happen only where a signal becomes live: at its event, or — for a signal
    /// already taken in that waits for an event of its pair — at any event (answered 0).
    fn handle(&mut self, _msg: NextDecision, _ctx: &mut Self::Context) -> Option<u64> {
        if self.core.has_pending() {
            return Some(0);
        }
        self.pending.iter().map(|s| s.event_seq).min()
    }
}

impl Handler<TradesClosed> for SignalAggregator {
    type Result = ();

    fn handle(&mut self, msg: TradesClosed, _ctx: &mut Self::Context) {
        let mut records = Vec::new();
        for t in &msg.trades {
            if let Some(w) = self.core.on_trade_closed(t) {
                records.push(Entry::new(t.exit_time, "signal_weights", &w));
            }
        }
        if !records.is_empty() {
            self.out.journal.do_send(Append { entries: records });
        }
    }
}

impl Handler<EmergencyStop> for SignalAggregator {
    type Result = ();

    fn handle(&mut self, _msg: EmergencyStop, _ctx: &mut Self::Context) {
        self.core.set_halted(true);
    }
}

impl Handler<HaltLifted> for SignalAggregator {
    type Result = ();

    fn handle(&mut self, _msg: HaltLifted, _ctx: &mut Self::Context) {
        self.core.set_halted(false);
    }
}

impl Handler<GetWeights> for SignalAggregator {
    type Result = MessageResult<GetWeights>;

    fn handle(&mut self, _msg: GetWeights, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.weights())
    }
}
