//! ExternalSignals actor and its WebSocket endpoint: signals pushed by outside processes.
//!
//! - In: [`MarketData`] (only to learn the latest event time and sequence number),
//!   [`PushSignal`] (one text message from a WebSocket client), [`EmergencyStop`] /
//!   [`HaltLifted`] (while trading is halted every push is answered
//!   `{"ok":false,"error":"halted"}` and nothing is forwarded).
//! - Fails: a panic in a handler is caught; the actor stops itself and its
//!   `actix::Supervisor` restarts it after a backoff (`supervision::Policy::Restart`); the
//!   push that hit it is answered with an error, connections stay open.
//! - Out: [`SignalBatch`] to the aggregator; journal record `external_signal` for every
//!   accepted signal (so a trade it caused can be traced back to what was sent).
//!
//! Protocol (`external_signals.*` in the config, off by default): a WebSocket server on a
//! loopback address. The client authenticates with the token held in the environment
//! variable `external_signals.token_env`, either as an `Authorization: Bearer <token>` header
//! on the upgrade request (a wrong token is answered 401 and no WebSocket is opened) or, for
//! clients that cannot set headers, as the first message `{"auth":"<token>"}` (answered like
//! any other message; a wrong one closes the connection). With no token configured every
//! connection is refused (401). Then each text message is one signal:
//!
//! ```json
//! {"source":"my_model","pair":"BTC/USD","score":0.8,"confidence":0.6,"horizon":"5m","explanation":"optional"}
//! ```
//!
//! answered `{"ok":true}` or `{"ok":false,"error":"<reason naming the field>"}`. Malformed
//! JSON, unknown fields and out-of-range values get an error reply; nothing a client sends can
//! stop the engine. The engine stamps `event_time`/`event_seq` with the latest market event it
//! has handled, so the aggregator applies the signal from the next event on (never earlier).
//!
//! Signals from outside arrive at wall-clock moments the engine does not control: a run that
//! takes them is not reproducible (the same seed gives another journal, and `run --resume`
//! will find the journal differs).
//!
//! The parts: this actor (stamp, check, forward); the wire format and its checks in
//! [`crate::core::signals::external`] (pure); the WebSocket endpoint in [`server`].

use actix::prelude::*;

use crate::actors::journal::{Append, JournalSink};
use crate::core::journal::Entry;
use crate::core::signals::external::{ExternalSignalError, parse_signal};
use crate::core::time::EventTime;
use crate::messages::{EmergencyStop, HaltLifted, MarketData, SignalBatch};
use crate::supervision::{self, ActorName, Restarts, Watch};

pub mod server;

pub use server::{AUTH_TIMEOUT, MAX_CONNECTIONS, MAX_MESSAGE_BYTES, ServerError, ServerHandle, bind, serve};

/// One text message from a client: a signal to check and forward. Answered with the reason
/// it was refused, naming the field.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), ExternalSignalError>")]
pub struct PushSignal {
    /// The message as the client sent it (JSON, see [`parse_signal`]).
    pub text: String,
}

/// Where the actor sends what it accepts.
pub struct ExternalOutputs {
    /// The aggregator.
    pub aggregator: Recipient<SignalBatch>,
    /// The journal.
    pub journal: JournalSink,
}

/// The ExternalSignals actor: stamps, checks and forwards signals pushed from outside.
pub struct ExternalSignals {
    pairs: Vec<String>,
    out: ExternalOutputs,
    /// Latest market event handled: (event time, sequence number).
    last: Option<(EventTime, u64)>,
    accepted: u64,
    refused: u64,
    /// Trading is halted (an emergency stop not yet lifted): pushes are refused.
    halted: bool,
    watch: Watch,
    restarts: Restarts,
}

impl ExternalSignals {
    /// An actor accepting signals on `pairs` (the traded pairs).
    pub fn new(pairs: Vec<String>, out: ExternalOutputs) -> Self {
        ExternalSignals {
            pairs,
            out,
            last: None,
            accepted: 0,
            refused: 0,
            halted: false,
            watch: Watch::inert(ActorName::ExternalSignals),
            restarts: Restarts::new(ActorName::ExternalSignals),
        }
    }

    /// Reports failures and takes the test hook through `watch` (the engine's supervision).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.watch = watch;
        self
    }
}

impl Actor for ExternalSignals {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "external_signals", "external signal actor started");
        self.restarts.hold(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            event = "actor_stopped",
            actor = "external_signals",
            accepted = self.accepted,
            refused = self.refused,
            "external signal actor stopped"
        );
    }
}

impl Supervised for ExternalSignals {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.restarts.restarting("-");
    }
}

impl Handler<MarketData> for ExternalSignals {
    type Result = ();

    fn handle(&mut self, msg: MarketData, ctx: &mut Self::Context) {
        let seen = supervision::catch(|| {
            self.watch.tick();
            let last_seq = msg.last_seq()?;
            // Event time is the max seen, so a late-stamped event cannot move the clock back.
            let prev = self.last.map_or(EventTime::ZERO, |(t, _)| t);
            let t = msg.events().iter().map(|e| e.time()).fold(prev, EventTime::max);
            Some((t, last_seq))
        });
        match seen {
            Ok(Some(last)) => self.last = Some(last),
            Ok(None) => {}
            Err(reason) => {
                self.restarts.failed(reason, "-");
                ctx.stop();
            }
        }
    }
}

impl Handler<EmergencyStop> for ExternalSignals {
    type Result = ();

    fn handle(&mut self, msg: EmergencyStop, _ctx: &mut Self::Context) {
        tracing::info!(actor = "external_signals", reason = %msg.reason, "emergency stop: pushed signals are refused until the halt is lifted");
        self.halted = true;
    }
}

impl Handler<HaltLifted> for ExternalSignals {
    type Result = ();

    fn handle(&mut self, _msg: HaltLifted, _ctx: &mut Self::Context) {
        self.halted = false;
    }
}

impl Handler<PushSignal> for ExternalSignals {
    type Result = Result<(), ExternalSignalError>;

    fn handle(&mut self, msg: PushSignal, ctx: &mut Self::Context) -> Self::Result {
        let parsed = match (self.halted, self.last) {
            (true, _) => Err(ExternalSignalError::Halted),
            (false, None) => Err(ExternalSignalError::NoMarketEvent),
            (false, Some(at)) => supervision::catch(|| parse_signal(&msg.text, &self.pairs, at))
                .unwrap_or_else(|reason| {
                    self.restarts.failed(reason, "-");
                    ctx.stop();
                    Err(ExternalSignalError::Restarting)
                }),
        };
        let result = parsed;
        match result {
            Ok(s) => {
                self.accepted += 1;
                tracing::debug!(actor = "external_signals", source = %s.source, pair = %s.pair, score = s.score, "external signal accepted");
                self.out
                    .journal
                    .do_send(Append { entries: vec![Entry::new(s.event_time, "external_signal", &s)] });
                self.out.aggregator.do_send(SignalBatch { signals: vec![s] });
                Ok(())
            }
            Err(e) => {
                self.refused += 1;
                tracing::debug!(actor = "external_signals", error = %e, "external signal refused");
                Err(e)
            }
        }
    }
}
