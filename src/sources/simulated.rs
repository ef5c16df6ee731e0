//! The embedded simulated Kraken exchange: a WebSocket server on 127.0.0.1 speaking Kraken's
//! WS v2 protocol, driven by [`crate::core::sim::SimMarket`]. OWNER: sim helper.
//!
//! The engine reaches it through the same client code as the real exchange. The server runs
//! on its own thread with its own current-thread Tokio runtime, so producing frames does not
//! slow the engine's thread. One client is served at a time; a later connection continues the
//! same market path with fresh snapshots.
//!
//! Protocol (docs/simulator.md): `status` on connect; `subscribe`/`unsubscribe` for
//! `instrument`, `ticker`, `trade`, `book` with one ack per symbol in Kraken's shape; `ping` →
//! `pong`; snapshots right after their acks; only subscribed channels and symbols stream.
//!
//! Determinism rule: the market clock does not run until a `book` subscription has been
//! processed (our client subscribes to the book last), and it pauses while the connection
//! has no book subscription. Client messages never change the market path; they only decide
//! which of its frames are sent.
//!
//! How it fails: a broken or closed connection ends that connection only; the server keeps
//! accepting. Setup errors (bad pairs, no port) are returned by [`SimServer::start`].

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::core::rng::Rng;
use crate::core::sim::{SimConfig, SimFrame, SimMarket, VALID_DEPTHS, status_frame};
use crate::core::time::Speed;
use crate::core::time::{EventTime, MICROS_PER_SEC};

/// Frames written before a flush when streaming at `Speed::Max`.
const FLUSH_EVERY: usize = 32;

// ---------------------------------------------------------------------------------------
// Protocol: one connection's subscriptions and the answers to its requests
// ---------------------------------------------------------------------------------------

/// What one connection is subscribed to, and how its requests are answered. Pure (no I/O):
/// used by the server and by [`record_sim`].
#[derive(Clone, Debug)]
pub struct SimSession {
    depth: u16,
    instrument: bool,
    ticker: BTreeSet<Arc<str>>,
    trade: BTreeSet<Arc<str>>,
    book: BTreeSet<Arc<str>>,
}

impl SimSession {
    /// A session on a market whose books have `depth` levels.
    pub fn new(depth: u16) -> SimSession {
        SimSession {
            depth,
            instrument: false,
            ticker: BTreeSet::new(),
            trade: BTreeSet::new(),
            book: BTreeSet::new(),
        }
    }

    /// True when at least one `book` subscription exists (the market clock runs).
    pub fn has_book(&self) -> bool {
        !self.book.is_empty()
    }

    /// True when anything is subscribed (heartbeats flow only then, as on Kraken).
    pub fn has_any(&self) -> bool {
        self.instrument || !self.ticker.is_empty() || !self.trade.is_empty() || !self.book.is_empty()
    }

    /// Whether a market frame goes out on this connection.
    pub fn wants(&self, f: &SimFrame) -> bool {
        let sub = |set: &BTreeSet<Arc<str>>| f.symbol.as_ref().is_some_and(|s| set.contains(s));
        match f.channel {
            "book" => sub(&self.book),
            "trade" => sub(&self.trade),
            "ticker" => sub(&self.ticker),
            "heartbeat" => self.has_any(),
            _ => true,
        }
    }

    /// Answers one client request: acks, errors and snapshots are appended to `out` in the
    /// order Kraken sends them; symbols whose book snapshot was sent go to `snapshots`
    /// (the server drops unsent book frames of those pairs: the snapshot already has them).
    pub fn handle(
        &mut self,
        text: &str,
        market: &SimMarket,
        out: &mut Vec<String>,
        snapshots: &mut Vec<Arc<str>>,
    ) {
        let now = market.now();
        let v: Value = match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            _ => {
                out.push(error_reply(None, None, "Malformed request", None, now));
                return;
            }
        };
        let req_id = v.get("req_id").filter(|r| r.is_u64()).map(Value::to_string);
        let req_id = req_id.as_deref();
        match v.get("method").and_then(Value::as_str) {
            Some("ping") => {
                if v.get("params").is_some() {
                    let e = "Unsupported field: 'params' for the given msg type: ping";
                    out.push(error_reply(Some("ping"), req_id, e, None, now));
                } else {
                    out.push(format!(r#"{{"method":"pong",{}{}}}"#, req_id_field(req_id), times(now)));
                }
            }
            Some(m @ ("subscribe" | "unsubscribe")) => {
                self.subscription(m == "subscribe", &v, req_id, market, out, snapshots);
            }
            Some(other) => out.push(error_reply(Some(other), req_id, "Unsupported event", None, now)),
            None => out.push(error_reply(None, req_id, "Unsupported event", None, now)),
        }
    }

    fn subscription(
        &mut self,
        subscribe: bool,
        v: &Value,
        req_id: Option<&str>,
        market: &SimMarket,
        out: &mut Vec<String>,
        snapshots: &mut Vec<Arc<str>>,
    ) {
        let now = market.now();
        let method = if subscribe { "subscribe" } else { "unsubscribe" };
        let params = v.get("params").unwrap_or(&Value::Null);
        let Some(channel) = params.get("channel").and_then(Value::as_str) else {
            out.push(error_reply(Some(method), req_id, "Missing field: params.channel", None, now));
            return;
        };
        let snapshot = params.get("snapshot").and_then(Value::as_bool);
        if channel == "instrument" {
            if subscribe {
                let snap = snapshot.unwrap_or(true);
                self.instrument = true;
                let result = format!(r#"{{"channel":"instrument","snapshot":{snap}}}"#);
                out.push(ok_reply(method, req_id, &result, now));
                if snap {
                    out.push(market.instrument_snapshot_frame());
                }
            } else if std::mem::take(&mut self.instrument) {
                out.push(ok_reply(method, req_id, r#"{"channel":"instrument"}"#, now));
            } else {
                // Kraken's quirk: a failed unsubscribe says "subscribe".
                out.push(error_reply(Some("subscribe"), req_id, "Subscription Not Found", None, now));
            }
            return;
        }
        if !matches!(channel, "ticker" | "trade" | "book") {
            let e = format!("Channel not supported: {channel}");
            out.push(error_reply(Some(method), req_id, &e, None, now));
            return;
        }
        let symbols: Vec<&str> = params
            .get("symbol")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_str).collect());
        if symbols.is_empty() {
            out.push(error_reply(Some(method), req_id, "Missing field: params.symbol", None, now));
            return;
        }
        // Channel options, checked once; the error is repeated per symbol like Kraken's acks.
        let mut option_error = None;
        let mut extra = String::new();
        match channel {
            "book" => {
                let depth = params.get("depth").and_then(Value::as_u64).unwrap_or(10);
                if !VALID_DEPTHS.iter().any(|&d| u64::from(d) == depth) {
                    option_error = Some(format!("Invalid depth {depth}: use 10, 25, 100, 500 or 1000"));
                } else if depth != u64::from(self.depth) {
                    option_error = Some(format!(
                        "Unsupported depth {depth}: this simulated exchange serves depth {}",
                        self.depth
                    ));
                }
                extra = format!(r#","depth":{}"#, self.depth);
            }
            "ticker" => {
                let trigger = params.get("event_trigger").and_then(Value::as_str).unwrap_or("trades");
                if !matches!(trigger, "trades" | "bbo") {
                    option_error = Some(format!("Invalid event_trigger {trigger}: use trades or bbo"));
                }
                extra = format!(r#","event_trigger":"{trigger}""#);
            }
            _ => {}
        }
        for sym in symbols {
            if !market.has_pair(sym) {
                let e = format!("Currency pair not supported {sym}");
                out.push(error_reply(Some(method), req_id, &e, Some(sym), now));
                continue;
            }
            if let Some(e) = &option_error {
                out.push(error_reply(Some(method), req_id, e, Some(sym), now));
                continue;
            }
            let key: Arc<str> = Arc::from(sym);
            let set = match channel {
                "book" => &mut self.book,
                "trade" => &mut self.trade,
                _ => &mut self.ticker,
            };
            let sym_json = json_str(sym);
            if subscribe {
                // Defaults: ticker and book snapshots on, trade snapshot off (newer docs).
                let snap = snapshot.unwrap_or(channel != "trade");
                set.insert(key.clone());
                let result =
                    format!(r#"{{"channel":"{channel}"{extra},"snapshot":{snap},"symbol":{sym_json}}}"#);
                out.push(ok_reply(method, req_id, &result, now));
                if snap {
                    let frame = match channel {
                        "book" => market.book_snapshot_frame(sym),
                        "trade" => market.trade_snapshot_frame(sym),
                        _ => market.ticker_snapshot_frame(sym),
                    };
                    out.extend(frame);
                }
                if channel == "book" {
                    snapshots.push(key);
                }
            } else if set.remove(&key) {
                let result = format!(r#"{{"channel":"{channel}"{extra},"symbol":{sym_json}}}"#);
                out.push(ok_reply(method, req_id, &result, now));
            } else {
                out.push(error_reply(Some("subscribe"), req_id, "Subscription Not Found", Some(sym), now));
            }
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn req_id_field(req_id: Option<&str>) -> String {
    req_id.map_or_else(String::new, |r| format!(r#""req_id":{r},"#))
}

/// `"time_in":"…","time_out":"…"` in event time (the simulator has no wall clock).
fn times(now: EventTime) -> String {
    let t = now.to_rfc3339();
    format!(r#""time_in":"{t}","time_out":"{t}""#)
}

/// A success ack: `{"method":…,"req_id":…,"result":{…},"success":true,"time_in":…,"time_out":…}`.
fn ok_reply(method: &str, req_id: Option<&str>, result: &str, now: EventTime) -> String {
    format!(
        r#"{{"method":"{method}",{}"result":{result},"success":true,{}}}"#,
        req_id_field(req_id),
        times(now)
    )
}

/// A failure ack, keys in Kraken's (alphabetical) order:
/// `{"error":…,"method":…,"req_id":…,"success":false,"symbol":…,"time_in":…,"time_out":…}`.
fn error_reply(
    method: Option<&str>,
    req_id: Option<&str>,
    error: &str,
    symbol: Option<&str>,
    now: EventTime,
) -> String {
    let mut s = format!(r#"{{"error":{},"#, json_str(error));
    if let Some(m) = method {
        s.push_str(&format!(r#""method":{},"#, json_str(m)));
    }
    s.push_str(&req_id_field(req_id));
    s.push_str(r#""success":false,"#);
    if let Some(sym) = symbol {
        s.push_str(&format!(r#""symbol":{},"#, json_str(sym)));
    }
    s.push_str(&times(now));
    s.push('}');
    s
}

/// The requests our client sends, in its order (instrument, ticker, trade, book last), with
/// req_id 1–4. [`record_sim`] writes these as "sent".
pub fn subscription_requests(pairs: &[String], depth: u16) -> Vec<String> {
    let syms = serde_json::to_string(pairs).unwrap_or_else(|_| "[]".to_string());
    vec![
        r#"{"method":"subscribe","params":{"channel":"instrument","snapshot":true},"req_id":1}"#.to_string(),
        format!(
            r#"{{"method":"subscribe","params":{{"channel":"ticker","symbol":{syms},"snapshot":true}},"req_id":2}}"#
        ),
        format!(
            r#"{{"method":"subscribe","params":{{"channel":"trade","symbol":{syms},"snapshot":false}},"req_id":3}}"#
        ),
        format!(
            r#"{{"method":"subscribe","params":{{"channel":"book","symbol":{syms},"depth":{depth},"snapshot":true}},"req_id":4}}"#
        ),
    ]
}

/// Kraken-like 64-bit connection id, fixed by the seed and the connection's number.
fn connection_id(seed: u64, n: u64) -> u64 {
    Rng::derive(seed, 0xC0FF_EE00 + n).next_u64()
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A running simulated exchange (on its own thread). Dropping it stops the server.
pub struct SimServer {
    url: String,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer").field("url", &self.url).finish_non_exhaustive()
    }
}

/// State that lives as long as the server: the market continues across connections.
struct Exchange {
    market: SimMarket,
    cfg: SimConfig,
    speed: Speed,
    depth: u16,
    connections: u64,
}

/// Why the simulated exchange (or `record --source sim`) could not start. No variant has a
/// `source()`: the text is the whole message.
#[derive(Debug, thiserror::Error)]
pub enum SimServerError {
    /// The simulated market refused its settings (pairs, depth, …): its own message.
    #[error("{0}")]
    Market(crate::core::sim::SimError),
    /// No port on 127.0.0.1.
    #[error("simulated exchange: cannot bind 127.0.0.1:0: {0}")]
    Bind(std::io::Error),
    /// The listener cannot be made non-blocking.
    #[error("simulated exchange: cannot set non-blocking: {0}")]
    NonBlocking(std::io::Error),
    /// The listener has no local address.
    #[error("simulated exchange: no local address: {0}")]
    LocalAddr(std::io::Error),
    /// The server's thread could not be spawned.
    #[error("simulated exchange: cannot start its thread: {0}")]
    Thread(std::io::Error),
    /// `record --source sim` could not create or write its recording.
    #[error(transparent)]
    Record(#[from] crate::sources::recording::RecordError),
}

impl crate::core::error::Classified for SimServerError {
    /// The simulated exchange is the run's market: without it the run cannot start.
    fn disposition(&self) -> crate::core::error::Disposition {
        use crate::core::error::Disposition;
        match self {
            SimServerError::Market(_)
            | SimServerError::Bind(_)
            | SimServerError::NonBlocking(_)
            | SimServerError::LocalAddr(_)
            | SimServerError::Thread(_)
            | SimServerError::Record(_) => Disposition::Halt,
        }
    }
}

impl SimServer {
    /// Starts the server on 127.0.0.1 at a random free port.
    pub fn start(
        cfg: &SimConfig,
        pairs: &[String],
        depth: u16,
        speed: Speed,
    ) -> Result<SimServer, SimServerError> {
        let market = SimMarket::new(cfg, pairs, depth).map_err(SimServerError::Market)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(SimServerError::Bind)?;
        listener.set_nonblocking(true).map_err(SimServerError::NonBlocking)?;
        let addr = listener.local_addr().map_err(SimServerError::LocalAddr)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let ex = Exchange { market, cfg: cfg.clone(), speed, depth, connections: 0 };
        let thread = std::thread::Builder::new()
            .name("sim-exchange".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(actor = "sim_exchange", reason = %e, "cannot build the simulator runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve(l, ex, stop_rx).await,
                        Err(e) => tracing::error!(actor = "sim_exchange", reason = %e, "cannot listen"),
                    }
                });
            })
            .map_err(SimServerError::Thread)?;
        tracing::info!(actor = "sim_exchange", %addr, "simulated Kraken exchange listening");
        Ok(SimServer { url: format!("ws://{addr}"), stop: Some(stop_tx), thread: Some(thread) })
    }

    /// `ws://127.0.0.1:PORT` — what MarketFeed connects to (same code path as Kraken).
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: TcpListener, mut ex: Exchange, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(actor = "sim_exchange", reason = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ws = tokio::select! {
            biased;
            _ = stop.changed() => return,
            w = tokio_tungstenite::accept_async(stream) => w,
        };
        let ws = match ws {
            Ok(ws) => ws,
            Err(e) => {
                tracing::warn!(actor = "sim_exchange", reason = %e, "websocket handshake failed");
                continue;
            }
        };
        ex.connections += 1;
        let n = ex.connections;
        let drop_after = if n == 1 { ex.cfg.drop_connection_after_frames } else { None };
        tracing::info!(actor = "sim_exchange", connection = n, "client connected");
        match connection(ws, &mut ex, drop_after, &mut stop).await {
            Ended::Stop => return,
            Ended::Closed(reason) => {
                tracing::info!(actor = "sim_exchange", connection = n, reason, "client connection ended");
            }
        }
    }
}

enum Ended {
    /// The server is shutting down.
    Stop,
    /// This connection is over; accept the next one.
    Closed(&'static str),
}

type Ws = WebSocketStream<TcpStream>;

/// Per-connection buffers.
struct Conn {
    session: SimSession,
    /// Frames the market produced that are not sent yet (at most one step's worth).
    pending: VecDeque<SimFrame>,
    replies: Vec<String>,
    snapshots: Vec<Arc<str>>,
}

impl Conn {
    /// Handles what reading the socket gave: a message is answered; an error or the end of
    /// the stream ends the connection (the reason is returned).
    async fn on_incoming(
        &mut self,
        ws: &mut Ws,
        market: &SimMarket,
        next: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), &'static str> {
        match next {
            Some(Ok(msg)) => self.on_message(ws, market, msg).await,
            Some(Err(_)) => Err("read failed"),
            None => Err("client closed"),
        }
    }

    /// Answers one client message; false when the client closed.
    async fn on_message(
        &mut self,
        ws: &mut Ws,
        market: &SimMarket,
        msg: Message,
    ) -> Result<(), &'static str> {
        match msg {
            Message::Text(t) => {
                self.session.handle(t.as_str(), market, &mut self.replies, &mut self.snapshots);
                for sym in self.snapshots.drain(..) {
                    // The snapshot already contains these updates; sending them would apply
                    // them twice.
                    self.pending.retain(|f| !(f.channel == "book" && f.symbol.as_ref() == Some(&sym)));
                }
                for r in self.replies.drain(..) {
                    ws.feed(Message::text(r)).await.map_err(|_| "write failed")?;
                }
                ws.flush().await.map_err(|_| "write failed")
            }
            Message::Close(_) => Err("client closed"),
            // Protocol pings are answered by tungstenite; binary frames mean nothing here.
            _ => Ok(()),
        }
    }
}

async fn connection(
    mut ws: Ws,
    ex: &mut Exchange,
    drop_after: Option<u64>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let status = status_frame(connection_id(ex.cfg.seed, ex.connections));
    if ws.send(Message::text(status)).await.is_err() {
        return Ended::Closed("write failed");
    }
    let mut c = Conn {
        session: SimSession::new(ex.depth),
        pending: VecDeque::new(),
        replies: Vec::new(),
        snapshots: Vec::new(),
    };
    let mut step_buf = Vec::new();
    let mut sent: u64 = 0;
    let mut unflushed = 0usize;
    let mut anchor: Option<(tokio::time::Instant, EventTime)> = None;
    loop {
        // 1. Requests that have already arrived are answered before the next market frame.
        while let Some(next) = ws.next().now_or_never() {
            if let Err(reason) = c.on_incoming(&mut ws, &ex.market, next).await {
                return Ended::Closed(reason);
            }
        }
        if !c.session.has_book() {
            // No book subscription: the market clock stands still until one arrives.
            anchor = None;
            if unflushed > 0 {
                if ws.flush().await.is_err() {
                    return Ended::Closed("write failed");
                }
                unflushed = 0;
            }
            let next = tokio::select! {
                biased;
                _ = stop.changed() => return Ended::Stop,
                m = ws.next() => m,
            };
            if let Err(reason) = c.on_incoming(&mut ws, &ex.market, next).await {
                return Ended::Closed(reason);
            }
            continue;
        }
        // 2. The next market frame.
        let Some(frame) = c.pending.pop_front() else {
            ex.market.step(&mut step_buf);
            c.pending.extend(step_buf.drain(..));
            continue;
        };
        if !c.session.wants(&frame) {
            continue;
        }
        if let Speed::Times(x) = ex.speed {
            let now = tokio::time::Instant::now();
            let (w0, t0) = *anchor.get_or_insert((now, frame.time));
            let event_s = frame.time.micros_since(t0).max(0) as f64 / MICROS_PER_SEC as f64;
            let target = w0 + Duration::from_secs_f64(event_s / x.max(1e-9));
            if target > now {
                if ws.flush().await.is_err() {
                    return Ended::Closed("write failed");
                }
                unflushed = 0;
                let woke = tokio::select! {
                    biased;
                    _ = stop.changed() => return Ended::Stop,
                    _ = tokio::time::sleep_until(target) => None,
                    m = ws.next() => Some(m),
                };
                if let Some(next) = woke {
                    // A request came in while waiting: answer it, then wait again.
                    c.pending.push_front(frame);
                    if let Err(reason) = c.on_incoming(&mut ws, &ex.market, next).await {
                        return Ended::Closed(reason);
                    }
                    continue;
                }
            } else if now.duration_since(target) > Duration::from_secs(1) {
                // The client cannot keep up: restart the pacing rather than burst to catch up.
                anchor = Some((now, frame.time));
            }
        }
        let fed = tokio::select! {
            biased;
            _ = stop.changed() => return Ended::Stop,
            r = ws.feed(Message::text(frame.text)) => r,
        };
        if fed.is_err() {
            return Ended::Closed("write failed");
        }
        sent += 1;
        unflushed += 1;
        if drop_after.is_some_and(|n| sent >= n) {
            let _ = ws.flush().await;
            tracing::info!(actor = "sim_exchange", frames = sent, "fault injection: dropping the connection");
            // Dropping the socket without a close frame is the fault being injected.
            drop(ws);
            return Ended::Closed("dropped by fault injection");
        }
        if unflushed >= FLUSH_EVERY || matches!(ex.speed, Speed::Times(_)) {
            let flushed = tokio::select! {
                biased;
                _ = stop.changed() => return Ended::Stop,
                r = ws.flush() => r,
            };
            if flushed.is_err() {
                return Ended::Closed("write failed");
            }
            unflushed = 0;
            // Let the runtime poll the socket: a task that never waits would never see
            // readiness updates, and so never the client's requests.
            tokio::task::yield_now().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recording without a socket
// ---------------------------------------------------------------------------------------

/// One `record` line (`sources::recording`, the one writer of the format); the simulator's
/// frames are JSON, written as they are.
fn write_line(w: &mut impl Write, t: EventTime, dir: &str, msg: &str) -> std::io::Result<()> {
    crate::sources::recording::write_line(w, t.as_micros(), dir, msg, true)
}

/// `record --source sim`: writes at least `events` book/trade events (≥ 70 % book updates)
/// in the `record` format (`{"ts","dir","msg"}` per line), subscriptions and the instrument
/// snapshot included, so the recording is self-contained.
pub fn record_sim(
    cfg: &SimConfig,
    pairs: &[String],
    depth: u16,
    events: u64,
    out: &Path,
) -> Result<u64, SimServerError> {
    use crate::sources::recording::RecordError;
    let mut market = SimMarket::new(cfg, pairs, depth).map_err(SimServerError::Market)?;
    let io = |e: std::io::Error| RecordError::Write { path: out.display().to_string(), reason: e };
    let file =
        File::create(out).map_err(|e| RecordError::Create { path: out.display().to_string(), reason: e })?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut session = SimSession::new(depth);
    let t0 = market.now();
    let requests = subscription_requests(pairs, depth);
    for r in &requests {
        write_line(&mut w, t0, "sent", r).map_err(io)?;
    }
    let mut replies = vec![status_frame(connection_id(cfg.seed, 1))];
    let mut snapshots = Vec::new();
    for r in &requests {
        session.handle(r, &market, &mut replies, &mut snapshots);
    }
    for r in &replies {
        write_line(&mut w, t0, "recv", r).map_err(io)?;
    }
    let mut count: u64 = 0;
    let mut buf = Vec::new();
    while count < events {
        market.step(&mut buf);
        for f in buf.drain(..) {
            if session.wants(&f) {
                write_line(&mut w, f.time, "recv", &f.text).map_err(io)?;
                count += u64::from(f.events);
            }
        }
    }
    w.flush().map_err(io)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::book::L2Book;
    use crate::core::market::Side;
    use crate::core::money::parse_decimal;
    use std::collections::BTreeMap;
    use tokio_tungstenite::connect_async;

    fn pairs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn market(ps: &[&str]) -> SimMarket {
        SimMarket::new(&SimConfig::default(), &pairs(ps), 10).unwrap()
    }

    fn answer(s: &mut SimSession, m: &SimMarket, req: &str) -> Vec<Value> {
        let (mut out, mut snaps) = (Vec::new(), Vec::new());
        s.handle(req, m, &mut out, &mut snaps);
        out.iter().map(|t| serde_json::from_str(t).unwrap()).collect()
    }

    /// Client books rebuilt from frames; checks every checksum.
    #[derive(Default)]
    struct Books {
        books: BTreeMap<String, L2Book>,
        verified: usize,
    }

    impl Books {
        fn apply(&mut self, v: &Value) {
            if v["channel"] != "book" {
                return;
            }
            let d = &v["data"][0];
            let sym = d["symbol"].as_str().unwrap().to_string();
            // All test pairs: BTC/USD 1/8, ETH/USD and SOL/USD 2/8.
            let pp = if sym == "BTC/USD" { 1 } else { 2 };
            let book = self.books.entry(sym).or_insert_with(|| L2Book::new(10, Some(pp), Some(8)));
            if v["type"] == "snapshot" {
                book.clear();
            }
            for (k, side) in [("bids", Side::Buy), ("asks", Side::Sell)] {
                for l in d[k].as_array().unwrap() {
                    book.apply(
                        side,
                        parse_decimal(&l["price"].to_string()).unwrap(),
                        parse_decimal(&l["qty"].to_string()).unwrap(),
                    );
                }
            }
            book.truncate();
            assert_eq!(book.checksum(), d["checksum"].as_u64().unwrap() as u32, "checksum of {v}");
            assert!(!book.is_crossed());
            self.verified += 1;
        }
    }

    #[test]
    fn acks_have_krakens_shape_and_unknown_symbols_fail_by_name() {
        let m = market(&["BTC/USD", "ETH/USD"]);
        let mut s = SimSession::new(10);
        let r = answer(
            &mut s,
            &m,
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","FOO/BAR"],"depth":10},"req_id":7}"#,
        );
        assert_eq!(r.len(), 3, "ack, snapshot, error: {r:?}");
        assert_eq!(r[0]["success"], true);
        assert_eq!(r[0]["req_id"], 7);
        assert_eq!(r[0]["result"]["channel"], "book");
        assert_eq!(r[0]["result"]["depth"], 10);
        assert_eq!(r[0]["result"]["symbol"], "BTC/USD");
        assert_eq!(r[1]["type"], "snapshot");
        assert_eq!(r[2]["success"], false);
        assert_eq!(r[2]["symbol"], "FOO/BAR");
        assert_eq!(r[2]["error"], "Currency pair not supported FOO/BAR");
        assert!(s.has_book());

        let r = answer(&mut s, &m, r#"{"method":"ping","req_id":101}"#);
        assert_eq!(r[0]["method"], "pong");
        assert_eq!(r[0]["req_id"], 101);
        let r = answer(&mut s, &m, r#"{"method":"ping","params":{},"req_id":0}"#);
        assert_eq!(r[0]["error"], "Unsupported field: 'params' for the given msg type: ping");

        let r = answer(
            &mut s,
            &m,
            r#"{"method":"unsubscribe","params":{"channel":"ticker","symbol":["ETH/USD"]},"req_id":9}"#,
        );
        assert_eq!(
            (r[0]["success"].clone(), r[0]["error"].clone()),
            (Value::Bool(false), "Subscription Not Found".into())
        );
        assert_eq!(r[0]["method"], "subscribe", "Kraken's quirk");

        let r = answer(
            &mut s,
            &m,
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["ETH/USD"],"depth":25}}"#,
        );
        assert_eq!(r.len(), 1);
        assert!(r[0]["error"].as_str().unwrap().contains("depth 25"));
        assert!(r[0].get("req_id").is_none());

        let r = answer(&mut s, &m, r#"{"method":"subscribe","params":{"channel":"instrument"},"req_id":1}"#);
        assert_eq!(r[0]["result"], serde_json::json!({"channel":"instrument","snapshot":true}));
        assert_eq!(r[1]["data"]["pairs"][1]["symbol"], "ETH/USD");

        let r = answer(
            &mut s,
            &m,
            r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},"req_id":3}"#,
        );
        assert_eq!(r[0]["success"], true);
        assert!(!s.has_book());
        let r = answer(&mut s, &m, "not json");
        assert_eq!(r[0]["success"], false);
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("kp-sim-{}-{name}.jsonl", std::process::id()))
    }

    #[test]
    fn record_sim_writes_a_self_contained_deterministic_recording() {
        let ps = pairs(&["BTC/USD", "ETH/USD", "SOL/USD"]);
        let (a, b) = (temp("a"), temp("b"));
        let n = record_sim(&SimConfig::default(), &ps, 10, 20_000, &a).unwrap();
        assert!((20_000..20_010).contains(&n), "{n}");
        assert_eq!(record_sim(&SimConfig::default(), &ps, 10, 20_000, &b).unwrap(), n);
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap(), "same seed, same bytes");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let dirs: Vec<&str> = lines.iter().take(5).map(|l| l["dir"].as_str().unwrap()).collect();
        assert_eq!(dirs, ["sent", "sent", "sent", "sent", "recv"]);
        let channels: Vec<&str> =
            lines[..4].iter().map(|l| l["msg"]["params"]["channel"].as_str().unwrap()).collect();
        assert_eq!(channels, ["instrument", "ticker", "trade", "book"]);
        assert_eq!(lines[4]["msg"]["channel"], "status");
        assert_eq!(lines[0]["ts"].to_string(), "1735689600.000000");
        let mut books = Books::default();
        let (mut book_ev, mut trade_ev, mut inst) = (0u64, 0u64, 0);
        for l in &lines[4..] {
            let m = &l["msg"];
            books.apply(m);
            match (m["channel"].as_str(), m["type"].as_str()) {
                (Some("book"), Some("update")) => book_ev += 1,
                (Some("trade"), _) => trade_ev += m["data"].as_array().unwrap().len() as u64,
                (Some("instrument"), _) => inst += 1,
                _ => {}
            }
        }
        assert_eq!(inst, 1);
        assert_eq!(book_ev + trade_ev, n);
        assert!(book_ev as f64 / n as f64 >= 0.7, "book share {}", book_ev as f64 / n as f64);
        assert_eq!(books.books.len(), 3);
        // KP_SIM_KEEP=FILE keeps the sample (calibration against real recordings).
        if let Some(keep) = std::env::var_os("KP_SIM_KEEP") {
            let _ = std::fs::copy(&a, keep);
        }
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
    }

    /// `cargo test --release --lib record_sim_a_million -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn record_sim_a_million_events_quickly() {
        let ps = pairs(&["BTC/USD", "ETH/USD", "SOL/USD"]);
        let path = temp("million");
        #[allow(clippy::disallowed_methods)] // test-only wall-clock timeout
        let started = std::time::Instant::now();
        let n = record_sim(&SimConfig::default(), &ps, 10, 1_000_000, &path).unwrap();
        let took = started.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).unwrap().len();
        println!("{n} events in {took:.2}s, {size} bytes");
        let _ = std::fs::remove_file(path);
        assert_eq!(n, 1_000_000);
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    type Client = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

    async fn next_json(ws: &mut Client) -> Option<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Connects, subscribes like our client and returns the market frames after the book
    /// snapshots (book, trade, ticker), all book checksums verified.
    async fn session(url: &str, ps: &[String], frames: usize) -> (Vec<Value>, bool) {
        let (mut ws, _) = connect_async(url).await.unwrap();
        let status = next_json(&mut ws).await.unwrap();
        assert_eq!(status["channel"], "status");
        assert_eq!(status["data"][0]["system"], "online");
        for r in subscription_requests(ps, 10) {
            ws.send(Message::text(r)).await.unwrap();
        }
        let mut books = Books::default();
        let mut acks = 0;
        let mut out = Vec::new();
        let mut pinged = false;
        let mut ponged = false;
        let mut extra = 0usize;
        // Frames already in the socket buffers arrive before the pong: read on until it comes.
        while out.len() < frames || (pinged && !ponged && out.len() < 200_000) {
            let Some(v) = next_json(&mut ws).await else {
                return (out, true); // dropped
            };
            if v.get("method").is_some() {
                if v["method"] == "pong" {
                    assert_eq!(v["req_id"], 55);
                    ponged = true;
                } else {
                    assert_eq!(v["success"], true, "{v}");
                    acks += 1;
                }
                continue;
            }
            books.apply(&v);
            if (v["type"] == "update" || v["channel"] == "heartbeat") && out.len() < frames {
                out.push(v);
            } else if v["type"] == "update" {
                extra += 1;
            }
            if out.len() == 50 && !pinged {
                // Client messages must not change the market path.
                ws.send(Message::text(r#"{"method":"ping","req_id":55}"#)).await.unwrap();
                pinged = true;
            }
        }
        assert_eq!(acks, 1 + 3 * ps.len(), "one ack per symbol per channel");
        assert!(books.verified > frames / 2, "book updates verified: {}", books.verified);
        assert_eq!(ponged, pinged, "ping answered while streaming ({extra} frames after the first {frames})");
        let _ = ws.close(None).await;
        (out, false)
    }

    #[test]
    fn server_streams_acks_snapshots_and_verified_updates_deterministically() {
        let ps = pairs(&["BTC/USD", "ETH/USD"]);
        let srv_a = SimServer::start(&SimConfig::default(), &ps, 10, Speed::Max).unwrap();
        let srv_b = SimServer::start(&SimConfig::default(), &ps, 10, Speed::Max).unwrap();
        assert!(srv_a.url().starts_with("ws://127.0.0.1:"));
        let rt = rt();
        let (a, dropped) = rt.block_on(session(&srv_a.url(), &ps, 400));
        assert!(!dropped);
        let (b, _) = rt.block_on(session(&srv_b.url(), &ps, 400));
        assert_eq!(a, b, "same seed, same frames over the socket");
        assert!(a.iter().any(|v| v["channel"] == "trade") && a.iter().any(|v| v["channel"] == "ticker"));
        // A second connection continues the same path: its snapshot is not older than the
        // last frame of the first one.
        let (c, _) = rt.block_on(session(&srv_a.url(), &ps, 50));
        let last_a = a.iter().rev().find_map(|v| v["data"][0]["timestamp"].as_str()).unwrap().to_string();
        let first_c = c.iter().find_map(|v| v["data"][0]["timestamp"].as_str()).unwrap().to_string();
        assert!(first_c >= last_a, "{first_c} < {last_a}");
        assert_ne!(a[..50], c[..], "the second connection does not restart the market");
        drop(srv_a);
        drop(srv_b);
    }

    #[test]
    fn fault_injection_drops_only_the_first_connection() {
        let ps = pairs(&["BTC/USD"]);
        let cfg = SimConfig { drop_connection_after_frames: Some(30), ..SimConfig::default() };
        let srv = SimServer::start(&cfg, &ps, 10, Speed::Max).unwrap();
        let rt = rt();
        let (first, dropped) = rt.block_on(session(&srv.url(), &ps, 100));
        assert!(dropped, "first connection must be dropped");
        assert!(first.len() <= 30, "{} frames before the drop", first.len());
        let (second, dropped) = rt.block_on(session(&srv.url(), &ps, 100));
        assert!(!dropped && second.len() == 100);
    }

    #[test]
    fn paced_speed_runs_event_time_at_n_times_wall_time() {
        let ps = pairs(&["BTC/USD"]);
        let srv = SimServer::start(&SimConfig::default(), &ps, 10, Speed::Times(200.0)).unwrap();
        let rt = rt();
        #[allow(clippy::disallowed_methods)] // test-only wall-clock timeout
        let started = std::time::Instant::now();
        let (frames, _) = rt.block_on(session(&srv.url(), &ps, 60));
        let wall = started.elapsed().as_secs_f64();
        let ts: Vec<EventTime> = frames
            .iter()
            .filter_map(|v| v["data"][0]["timestamp"].as_str())
            .map(|s| EventTime::parse_rfc3339(s).unwrap())
            .collect();
        let span = ts.last().unwrap().micros_since(SimConfig::default().start_time) as f64 / 1e6;
        // 60 frames ≈ 10 s of event time → at least ≈ 50 ms of wall time at 200× (pacing holds
        // frames back; a slow machine can only take longer, so there is no upper bound).
        assert!(wall >= span / 200.0 * 0.9, "wall {wall}s for {span}s of event time");
    }
}
