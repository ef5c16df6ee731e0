//! RiskManager actor: owns the risk core ([`RiskCore`]): turns trade intents into orders or
//! refusals, watches equity drawdown on every batch, and halts everything when it breaches.
//!
//! - In: [`PortfolioUpdate`] (from PositionBook after every pass, and within one after each
//!   frame whose view can change its state), [`TradeIntents`] (from the aggregator),
//!   [`TradesClosed`] (feedback for Kelly sizing), [`MarketData`] and [`WatchRequest`]
//!   (end-of-pass barrier, answered with the `RiskWatch`), [`OperatorCommand`] (HTTP API),
//!   [`Shutdown`].
//! - Out: [`PlaceOrders`] to PositionBook (with every intent's pair and side, so that
//!   PositionBook cancels entries the signal turned against); journal records (`risk_refusal`,
//!   `emergency_stop`, `halt_lifted`, `risk_metrics`); [`EmergencyStop`] / [`HaltLifted`]
//!   broadcast to every actor. The broadcast is awaited (the handler is atomic), so every
//!   actor has handled the stop before the feed's next market batch reaches anyone.
//! - Fails: a panic ends the run (`supervision::Policy::StopRun`: it holds the halt, the peak
//!   and the limits' state; the run resumes from the journal).

use actix::prelude::*;

use crate::actors::journal::{Append, JournalSink};
use crate::core::journal::Entry;
use crate::core::portfolio::PortfolioView;
use crate::core::risk::{EmergencyReason, HaltLiftedBy, RiskCore, Verdict};
use crate::core::time::EventTime;
use crate::messages::{
    EmergencyStop, HaltLifted, MarketData, OperatorCommand, OperatorError, OperatorOutcome, PlaceOrders,
    PortfolioUpdate, Shutdown, SignalTurned, TradeIntents, TradesClosed, WatchRequest,
};
use crate::supervision::{ActorName, Watch};

/// Asks for the risk figures (dashboard, report).
#[derive(Message)]
#[rtype(result = "serde_json::Value")]
pub struct GetRiskMetrics;

/// Where RiskManager sends what it produces.
pub struct RiskOutputs {
    /// PositionBook.
    pub position_book: Recipient<PlaceOrders>,
    /// The journal.
    pub journal: JournalSink,
    /// Every actor that must stop trading on an emergency stop.
    pub emergency_stop: Vec<Recipient<EmergencyStop>>,
    /// Every actor told when the halt is lifted.
    pub halt_lifted: Vec<Recipient<HaltLifted>>,
}

/// The RiskManager actor.
pub struct RiskManager {
    core: RiskCore,
    out: RiskOutputs,
    last_time: EventTime,
    last_view: Option<std::sync::Arc<PortfolioView>>,
    api_intents: u64,
    /// Reports a panic to the engine (and the test hook).
    supervision: Watch,
}

impl RiskManager {
    /// A RiskManager over `core`.
    pub fn new(core: RiskCore, out: RiskOutputs) -> Self {
        RiskManager {
            core,
            out,
            last_time: EventTime::ZERO,
            last_view: None,
            api_intents: 0,
            supervision: Watch::inert(ActorName::RiskManager),
        }
    }

    /// Reports its failure and takes the test hook through `watch` (the engine's
    /// supervision: `supervision::Policy::StopRun`).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.supervision = watch;
        self
    }

    /// Journals and logs a stop, and returns the future that delivers it to every actor.
    fn broadcast_stop(
        &mut self,
        stop: EmergencyStop,
        equity: String,
        peak: String,
    ) -> impl Future<Output = ()> + 'static {
        tracing::error!(
            event = "emergency_stop",
            actor = "risk_manager",
            drawdown = stop.drawdown,
            limit = stop.limit,
            equity = %equity,
            peak = %peak,
            reason = %stop.reason,
            event_time = %stop.time,
            "emergency stop: trading halted"
        );
        let recipients = self.out.emergency_stop.clone();
        async move {
            for r in recipients {
                // An actor that is gone cannot trade either; nothing to do about it here.
                let _ = r.send(stop.clone()).await;
            }
        }
    }

    fn lifted(&mut self, time: EventTime, by: HaltLiftedBy) {
        tracing::warn!(event = "halt_lifted", actor = "risk_manager", by = by.as_str(), event_time = %time, "trading halt lifted");
        self.out.journal.do_send(Append {
            entries: vec![Entry::new(time, "halt_lifted", &serde_json::json!({ "by": by }))],
        });
        for r in &self.out.halt_lifted {
            r.do_send(HaltLifted { time, by });
        }
    }
}

impl Actor for RiskManager {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "risk_manager", "risk manager started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "risk_manager", "risk manager stopped");
    }
}

impl Handler<PortfolioUpdate> for RiskManager {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PortfolioUpdate, _ctx: &mut Self::Context) -> Self::Result {
        let was_halted = self.core.halted();
        self.last_time = self.last_time.max(msg.view.time);
        let breach = self.core.on_portfolio(&msg.view);
        self.last_view = Some(msg.view);
        if was_halted && !self.core.halted() {
            self.lifted(self.last_time, HaltLiftedBy::Cooldown);
        }
        let Some(b) = breach else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        self.out.journal.do_send(Append { entries: vec![Entry::new(b.time, "emergency_stop", &b)] });
        let stop = EmergencyStop {
            time: b.time,
            drawdown: b.drawdown,
            limit: b.limit,
            reason: EmergencyReason::MaxDrawdown,
        };
        let f = self.broadcast_stop(stop, b.equity.to_string(), b.peak.to_string());
        AtomicResponse::new(Box::pin(f.into_actor(self)))
    }
}

impl Handler<TradeIntents> for RiskManager {
    type Result = ();

    fn handle(&mut self, msg: TradeIntents, _ctx: &mut Self::Context) {
        let mut orders = Vec::new();
        let mut records = Vec::new();
        // Every intent turns its pair: entries of the other side are cancelled (an opposite
        // signal means a resting entry's reason is gone, and a signal exit ends its entry).
        let turned: Vec<SignalTurned> = msg
            .intents
            .iter()
            .map(|i| SignalTurned { pair: i.pair.clone(), side: i.side, time: i.time })
            .collect();
        for intent in &msg.intents {
            // A cool-down can end at an intent's time: say so, as on a portfolio update.
            let was_halted = self.core.halted();
            let verdict = self.core.evaluate(intent);
            if was_halted && !self.core.halted() {
                self.lifted(intent.time, HaltLiftedBy::Cooldown);
            }
            match verdict {
                Verdict::Approved(req) | Verdict::Exit(req) => orders.push(*req),
                Verdict::Refused(r) => {
                    tracing::info!(actor = "risk_manager", pair = %r.pair, reason = %r.reason, detail = %r.detail, "intent refused");
                    records.push(Entry::new(r.time, "risk_refusal", &r));
                }
            }
        }
        if !records.is_empty() {
            self.out.journal.do_send(Append { entries: records });
        }
        if !orders.is_empty() || !turned.is_empty() {
            self.out.position_book.do_send(PlaceOrders { turned, orders });
        }
    }
}

impl Handler<TradesClosed> for RiskManager {
    type Result = ();

    fn handle(&mut self, msg: TradesClosed, _ctx: &mut Self::Context) {
        for t in &msg.trades {
            self.core.on_trade_closed(t);
        }
    }
}

impl Handler<MarketData> for RiskManager {
    type Result = ();

    fn handle(&mut self, msg: MarketData, _ctx: &mut Self::Context) {
        self.supervision.tick();
        // The latest of each frame's last event: what a frame-by-frame run would keep.
        for ev in msg.frame_last_events() {
            self.last_time = self.last_time.max(ev.time());
        }
    }
}

impl Handler<WatchRequest> for RiskManager {
    type Result = MessageResult<WatchRequest>;

    /// The end-of-pass barrier: intents are handled; what PositionBook must watch next.
    fn handle(&mut self, _msg: WatchRequest, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.watch())
    }
}

impl Handler<OperatorCommand> for RiskManager {
    type Result = AtomicResponse<Self, Result<OperatorOutcome, OperatorError>>;

    fn handle(&mut self, msg: OperatorCommand, _ctx: &mut Self::Context) -> Self::Result {
        match msg {
            OperatorCommand::Resume => {
                if !self.core.halted() {
                    return AtomicResponse::new(Box::pin(fut::ready(Ok(OperatorOutcome::NotHalted))));
                }
                self.core.lift_halt(self.last_time);
                self.lifted(self.last_time, HaltLiftedBy::Operator);
                AtomicResponse::new(Box::pin(fut::ready(Ok(OperatorOutcome::HaltLifted))))
            }
            OperatorCommand::EmergencyStop => {
                let Some(b) = self.core.halt_now(self.last_time) else {
                    return AtomicResponse::new(Box::pin(fut::ready(Ok(OperatorOutcome::AlreadyHalted))));
                };
                self.out.journal.do_send(Append { entries: vec![Entry::new(b.time, "emergency_stop", &b)] });
                let stop = EmergencyStop {
                    time: b.time,
                    drawdown: b.drawdown,
                    limit: b.limit,
                    reason: EmergencyReason::Operator,
                };
                let f = self.broadcast_stop(stop, b.equity.to_string(), b.peak.to_string());
                AtomicResponse::new(Box::pin(f.into_actor(self).map(|_, _, _| Ok(OperatorOutcome::Halted))))
            }
        }
    }
}

impl Handler<crate::messages::OpenPosition> for RiskManager {
    type Result = Result<crate::core::orders::OrderSpec, crate::core::risk::Refusal>;

    fn handle(&mut self, msg: crate::messages::OpenPosition, _ctx: &mut Self::Context) -> Self::Result {
        // Order-API intents get ids of their own range, apart from the aggregator's.
        self.api_intents += 1;
        let intent = crate::core::decisions::TradeIntent {
            intent_id: API_INTENT_IDS + self.api_intents,
            pair: msg.pair.as_str().into(),
            side: msg.side,
            confidence: msg.confidence,
            volatility: msg.volatility,
            time: self.last_time,
            event_seq: 0,
            contributions: Vec::new(),
            overrides: crate::core::decisions::IntentOverrides {
                stop_loss_pct: msg.stop_loss_pct,
                take_profit_pct: msg.take_profit_pct,
                tags: msg.tags,
            },
        };
        self.out.journal.do_send(Append { entries: vec![Entry::new(self.last_time, "api_intent", &intent)] });
        match self.core.evaluate(&intent) {
            Verdict::Approved(req) | Verdict::Exit(req) => {
                let spec = req.spec().clone();
                self.out.position_book.do_send(PlaceOrders { turned: Vec::new(), orders: vec![*req] });
                Ok(spec)
            }
            Verdict::Refused(r) => {
                tracing::info!(actor = "risk_manager", pair = %r.pair, reason = %r.reason, detail = %r.detail, "order API intent refused");
                self.out.journal.do_send(Append { entries: vec![Entry::new(r.time, "risk_refusal", &r)] });
                Err(r)
            }
        }
    }
}

/// First intent id of the order API's range.
pub const API_INTENT_IDS: u64 = 1 << 48;

impl Handler<Shutdown> for RiskManager {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) {
        let time = msg.time.max(self.last_time);
        self.out
            .journal
            .do_send(Append { entries: vec![Entry::new(time, "risk_metrics", &self.core.metrics())] });
    }
}

impl Handler<GetRiskMetrics> for RiskManager {
    type Result = MessageResult<GetRiskMetrics>;

    fn handle(&mut self, _msg: GetRiskMetrics, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.metrics())
    }
}
