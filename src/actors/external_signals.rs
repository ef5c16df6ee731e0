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
//! will find the journal differs). The server runs as tasks on the actix System's thread;
//! the work per message is a JSON parse, so it does not slow the market path measurably.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::actors::journal::{Append, JournalSink};
use crate::core::decisions::Signal;
use crate::core::journal::Entry;
use crate::core::signals::BUILT_IN;
use crate::core::time::{EventTime, Span};
use crate::messages::{MarketData, SignalBatch};

/// Longest accepted message (bytes); a signal is a few hundred.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Most connections served at once; later ones are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// A client without a Bearer header must send `{"auth":…}` within this wall time.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted horizon: a signal is a short-term view, not a standing order.
pub const MAX_HORIZON: Span = Span::from_secs(86_400);
/// Longest source name / explanation (characters).
const MAX_SOURCE_CHARS: usize = 64;
const MAX_EXPLANATION_CHARS: usize = 500;
const FIELDS: &str = "source, pair, score, confidence, horizon, explanation";

/// One text message from a client: a signal to check and forward. Answered with the reason
/// it was refused, naming the field.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct PushSignal(pub String);

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
    type Result = Result<(), String>;

    fn handle(&mut self, msg: PushSignal, _ctx: &mut Self::Context) -> Self::Result {
        let result = match self.last {
            None => Err("no market event seen yet; try again in a moment".to_string()),
            Some(at) => parse_signal(&msg.0, &self.pairs, at),
        };
        match result {
            Ok(s) => {
                self.accepted += 1;
                tracing::debug!(actor = "external_signals", source = %s.source, pair = %s.pair, score = s.score, "external signal accepted");
                self.out.journal.do_send(Append(vec![Entry::new(s.event_time, "external_signal", &s)]));
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

/// Parses and checks one client message, stamping it with the latest event `at`.
///
/// Every error names the field it is about (`score 5 is outside [-1, 1]`,
/// `pair "DOGE/USD" is not traded …`).
pub fn parse_signal(text: &str, pairs: &[String], at: (EventTime, u64)) -> Result<Signal, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(format!("expected a JSON object with fields {FIELDS}"));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.split(", ").any(|f| f == k.as_str())) {
        let hint = if k == "event_time" || k == "event_seq" { " (the engine stamps it)" } else { "" };
        return Err(format!("unknown field `{k}`{hint}; expected {FIELDS}"));
    }
    let source = string_field(&obj, "source")?;
    let ok_chars = source.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if source.is_empty() || source.chars().count() > MAX_SOURCE_CHARS || !ok_chars {
        return Err(format!("source {source:?} must be 1-{MAX_SOURCE_CHARS} characters of [A-Za-z0-9_.-]"));
    }
    // A built-in's name would merge its track record (weights) with an outsider's.
    if BUILT_IN.contains(&source) {
        return Err(format!("source {source:?} is the name of a built-in model; choose another"));
    }
    let pair = string_field(&obj, "pair")?;
    if !pairs.iter().any(|p| p == pair) {
        return Err(format!("pair {pair:?} is not traded (feed.pairs: {})", pairs.join(", ")));
    }
    let score = number_field(&obj, "score")?;
    let confidence = number_field(&obj, "confidence")?;
    let horizon_text = string_field(&obj, "horizon")?;
    let horizon = Span::parse(horizon_text)
        .map_err(|_| format!("horizon {horizon_text:?} is not a duration like 5m, 90s or 1h"))?;
    if horizon > MAX_HORIZON {
        return Err(format!("horizon {horizon_text:?} is longer than {MAX_HORIZON}"));
    }
    let explanation = match obj.get("explanation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_EXPLANATION_CHARS => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(format!("explanation is longer than {MAX_EXPLANATION_CHARS} characters"));
        }
        Some(_) => return Err("explanation must be a string".into()),
    };
    let s = Signal {
        source: Arc::from(source),
        pair: Arc::from(pair),
        score,
        confidence,
        horizon,
        event_time: at.0,
        event_seq: at.1,
        explanation,
    };
    // The contract's own messages name the field (`score 5 is outside [-1, 1]`).
    s.validate()?;
    Ok(s)
}

fn string_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(format!("{key} is missing")),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn number_field(obj: &Map<String, Value>, key: &str) -> Result<f64, String> {
    match obj.get(key) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{key} {n} is not a finite number")),
        None => Err(format!("{key} is missing")),
        Some(_) => Err(format!("{key} must be a number")),
    }
}

/// The reply to one message.
fn reply(result: &Result<(), String>) -> String {
    match result {
        // Written by hand to keep the documented key order (`ok` first).
        Ok(()) => r#"{"ok":true}"#.to_string(),
        Err(e) => format!(r#"{{"ok":false,"error":{}}}"#, Value::String(e.clone())),
    }
}

/// Binds the endpoint's socket (before the run starts, so a taken port fails the run early).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("external_signals.bind {addr}: cannot listen: {e}"))?;
    l.set_nonblocking(true).map_err(|e| format!("external_signals.bind {addr}: {e}"))?;
    Ok(l)
}

/// The running endpoint; `stop` closes the listener (open connections end with the System).
pub struct ServerHandle {
    /// The bound address (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting connections.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Serves the endpoint on `listener` as tasks of the current actix System, forwarding
/// messages to `actor`. `token` None refuses every connection.
pub fn serve(
    listener: std::net::TcpListener,
    token: Option<String>,
    actor: Addr<ExternalSignals>,
) -> Result<ServerHandle, String> {
    let addr = listener.local_addr().map_err(|e| format!("external signals: {e}"))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| format!("external signals: {e}"))?;
    if token.is_none() {
        tracing::warn!(
            actor = "external_signals",
            "external_signals.enabled but its token variable is unset or empty: every connection will be refused"
        );
    }
    tracing::info!(
        event = "external_signals_listening",
        actor = "external_signals",
        addr = %addr,
        "external signal endpoint at ws://{addr}/ (token: Authorization: Bearer header or first message {{\"auth\":…}})"
    );
    let token: Rc<Option<String>> = Rc::new(token);
    let open = Rc::new(Cell::new(0usize));
    let task = actix::spawn(async move {
        tracing::debug!(actor = "external_signals", "accept loop running");
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(actor = "external_signals", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if open.get() >= MAX_CONNECTIONS {
                tracing::warn!(actor = "external_signals", peer = %peer, "too many connections; closing");
                drop(stream);
                continue;
            }
            tracing::debug!(actor = "external_signals", peer = %peer, "client connected");
            open.set(open.get() + 1);
            let (token, open, actor) = (token.clone(), open.clone(), actor.clone());
            actix::spawn(async move {
                if let Err(e) = connection(stream, &token, actor).await {
                    tracing::info!(actor = "external_signals", peer = %peer, reason = %e, "client connection ended");
                }
                open.set(open.get().saturating_sub(1));
            });
        }
    });
    Ok(ServerHandle { addr, task })
}

/// Constant-time comparison, so the reply time does not leak how much of a token matched.
fn token_matches(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How the upgrade request authenticated.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum HeaderAuth {
    /// A correct Bearer header.
    Authenticated,
    /// No Authorization header: the first message must carry the token.
    Pending,
}

async fn connection(
    stream: tokio::net::TcpStream,
    token: &Option<String>,
    actor: Addr<ExternalSignals>,
) -> Result<(), String> {
    let mut auth = HeaderAuth::Pending;
    let auth_slot = &mut auth;
    // The signature is tungstenite's `Callback`; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let deny = |why: &str| {
            let mut r = ErrorResponse::new(Some(why.to_string()));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        };
        let Some(token) = token.as_deref() else {
            return Err(deny("no token configured: external signals are refused\n"));
        };
        match req.headers().get("authorization") {
            None => Ok(resp),
            Some(h) => {
                let given = h.to_str().unwrap_or("").strip_prefix("Bearer ").unwrap_or("");
                if token_matches(given.trim(), token) {
                    *auth_slot = HeaderAuth::Authenticated;
                    Ok(resp)
                } else {
                    Err(deny("wrong token\n"))
                }
            }
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sink, mut source) = ws.split();
    let send = |text: String| Message::text(text);
    if auth == HeaderAuth::Pending {
        let first = tokio::time::timeout(AUTH_TIMEOUT, source.next())
            .await
            .map_err(|_| "no auth message in time".to_string())?;
        let given = match first {
            Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(t.as_str())
                .ok()
                .and_then(|v| v.get("auth").and_then(Value::as_str).map(str::to_string)),
            Some(Ok(_)) => None,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Ok(()),
        };
        let ok = matches!((&given, token), (Some(g), Some(t)) if token_matches(g, t));
        if !ok {
            let r =
                Err("auth: first message must be {\"auth\":\"<token>\"} with the right token".to_string());
            let _ = sink.send(send(reply(&r))).await;
            let _ = sink.close().await;
            return Err("authentication failed".into());
        }
        sink.send(send(reply(&Ok(())))).await.map_err(|e| e.to_string())?;
    }
    while let Some(msg) = source.next().await {
        let result = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => match actor.send(PushSignal(t.as_str().to_string())).await {
                Ok(r) => r,
                Err(e) => Err(format!("engine is shutting down: {e}")),
            },
            Message::Binary(_) => Err("send signals as text frames of JSON".to_string()),
            Message::Close(_) => break,
            // Pings are answered by tungstenite on the next write or flush.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                sink.flush().await.map_err(|e| e.to_string())?;
                continue;
            }
        };
        sink.send(send(reply(&result))).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<String> {
        vec!["BTC/USD".into(), "ETH/USD".into()]
    }
    const AT: (EventTime, u64) = (EventTime::ZERO, 41);

    fn err(text: &str) -> String {
        parse_signal(text, &pairs(), AT).unwrap_err()
    }

    #[test]
    fn a_good_signal_is_stamped_with_the_latest_event() {
        let s = parse_signal(
            r#"{"source":"mine","pair":"BTC/USD","score":1,"confidence":0.5,"horizon":"5m","explanation":"why"}"#,
            &pairs(),
            (EventTime::ZERO.plus_micros(7), 41),
        )
        .unwrap();
        assert_eq!((&*s.source, &*s.pair, s.score, s.confidence), ("mine", "BTC/USD", 1.0, 0.5));
        assert_eq!(s.horizon, Span::from_secs(300));
        assert_eq!((s.event_time.as_micros(), s.event_seq), (7, 41));
        assert_eq!(s.explanation.as_deref(), Some("why"));
    }

    #[test]
    fn errors_name_the_field() {
        let base = |k: &str, v: &str| {
            let mut o: Map<String, Value> = serde_json::from_str(
                r#"{"source":"mine","pair":"BTC/USD","score":0.5,"confidence":0.5,"horizon":"5m"}"#,
            )
            .unwrap();
            if v.is_empty() {
                o.remove(k);
            } else {
                o.insert(k.into(), serde_json::from_str(v).unwrap());
            }
            Value::Object(o).to_string()
        };
        assert!(err(&base("score", "5")).starts_with("score 5"), "{}", err(&base("score", "5")));
        assert!(err(&base("score", "\"high\"")).starts_with("score must be a number"));
        assert!(err(&base("confidence", "-0.1")).starts_with("confidence -0.1"));
        assert!(err(&base("confidence", "")).starts_with("confidence is missing"));
        assert!(err(&base("pair", "\"DOGE/USD\"")).starts_with("pair \"DOGE/USD\" is not traded"));
        assert!(err(&base("horizon", "\"soon\"")).starts_with("horizon \"soon\""));
        assert!(err(&base("horizon", "\"2d\"")).contains("longer than 1d"));
        assert!(err(&base("horizon", "\"0s\"")).starts_with("horizon must be positive"));
        assert!(err(&base("source", "\"ema_cross\"")).contains("built-in"));
        assert!(err(&base("source", "\"a b\"")).starts_with("source \"a b\""));
        assert!(err(&base("explanation", "3")).starts_with("explanation must be a string"));
        assert!(err(&base("event_seq", "3")).contains("unknown field `event_seq` (the engine stamps it)"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(err("{not json").starts_with("malformed JSON"));
        assert!(err("[1,2]").starts_with("expected a JSON object"));
        assert!(err("").starts_with("malformed JSON"));
        // 1e999 is not an f64 (arbitrary_precision keeps the digits; as_f64 gives inf or None).
        let e = err(r#"{"source":"m","pair":"BTC/USD","score":1e999,"confidence":1,"horizon":"5m"}"#);
        assert!(e.starts_with("score"), "{e}");
    }

    #[test]
    fn replies_are_the_documented_json() {
        assert_eq!(reply(&Ok(())), r#"{"ok":true}"#);
        assert_eq!(
            reply(&Err("score 5 is outside [-1, 1]".into())),
            r#"{"ok":false,"error":"score 5 is outside [-1, 1]"}"#
        );
    }

    #[test]
    fn token_comparison_needs_the_whole_token() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secre", "secret"));
        assert!(!token_matches("secreT", "secret"));
        assert!(!token_matches("", "secret"));
    }
}
