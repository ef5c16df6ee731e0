//! ExternalSignals actor and its WebSocket endpoint: signals pushed by outside processes.
//!
//! - In: [`MarketData`] (only to learn the latest event time and sequence number),
//!   [`PushSignal`] (one text message from a WebSocket client).
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
use crate::messages::{MarketData, SignalBatch};

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
}

impl ExternalSignals {
    /// An actor accepting signals on `pairs` (the traded pairs).
    pub fn new(pairs: Vec<String>, out: ExternalOutputs) -> Self {
        ExternalSignals { pairs, out, last: None, accepted: 0, refused: 0 }
    }
}

impl Actor for ExternalSignals {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "external_signals", "external signal actor started");
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

impl Handler<MarketData> for ExternalSignals {
    type Result = ();

    fn handle(&mut self, msg: MarketData, _ctx: &mut Self::Context) {
        let Some(last_seq) = msg.last_seq() else { return };
        // Event time is the max seen, so a late-stamped event cannot move the clock back.
        let prev = self.last.map_or(EventTime::ZERO, |(t, _)| t);
        let t = msg.events().iter().map(|e| e.time()).fold(prev, EventTime::max);
        self.last = Some((t, last_seq));
    }
}

impl Handler<PushSignal> for ExternalSignals {
    type Result = Result<(), ExternalSignalError>;

    fn handle(&mut self, msg: PushSignal, _ctx: &mut Self::Context) -> Self::Result {
        let result = match self.last {
            None => Err(ExternalSignalError::NoMarketEvent),
            Some(at) => parse_signal(&msg.text, &self.pairs, at),
        };
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
