//! The WebSocket client for Kraken's v2 API — and for the embedded simulated exchange, which
//! is reached through exactly this code (it is a server on 127.0.0.1, not a shortcut).
//!
//! One call of [`run_connection`] is one connection: connect, send the subscriptions, then
//! read frames, handing them over in batches (every frame already received, up to a limit)
//! to a consumer that is awaited before more is read — that is the backpressure. Liveness
//! is wall time: an application `ping` after `ping_interval` of silence, and the connection
//! is declared dead after `liveness_timeout` without any frame. The caller (MarketFeed under
//! its Supervisor) reconnects with backoff.

use std::future::Future;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::core::kraken::decode;
use crate::core::kraken::endpoint::WsEndpoint;

/// Frames handed to the consumer in one batch.
pub type FrameBatch = Vec<Utf8Bytes>;

/// What the consumer wants after a batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Close the connection normally (end of run).
    Stop,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Could not connect or upgrade.
    #[error("connect to {url} failed: {reason}")]
    Connect {
        /// Endpoint.
        url: String,
        /// Reason.
        reason: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server{0}")]
    Closed(String),
    /// No frame for longer than the liveness timeout.
    #[error("no message for {0} ms")]
    Silent(u64),
    /// Transport error while reading or writing.
    #[error("websocket error: {0}")]
    Transport(String),
    /// The consumer is gone (engine shutting down) or could not take the frames: its error.
    #[error("frame consumer stopped: {0}")]
    Consumer(Box<dyn std::error::Error + Send + Sync>),
}

impl crate::core::error::Classified for ConnectionError {
    /// A lost, refused or silent connection restarts the feed (with backoff); a stopped
    /// consumer means the engine is shutting down, so nothing restarts.
    fn disposition(&self) -> crate::core::error::Disposition {
        use crate::core::error::Disposition;
        match self {
            ConnectionError::Connect { .. }
            | ConnectionError::Closed(_)
            | ConnectionError::Silent(_)
            | ConnectionError::Transport(_) => Disposition::Restart,
            ConnectionError::Consumer(_) => Disposition::Halt,
        }
    }
}

/// Settings of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// `wss://ws.kraken.com/v2` or the simulator's `ws://127.0.0.1:PORT`.
    pub url: String,
    /// Requests sent right after connecting (subscriptions), in order.
    pub on_connect: Vec<String>,
    /// Send an application ping after this much silence.
    pub ping_interval: Duration,
    /// Declare the connection dead after this much silence.
    pub liveness_timeout: Duration,
    /// At most this many frames per batch.
    pub max_batch: usize,
}

impl ConnectionSettings {
    /// A connection to `endpoint` that subscribes its pairs on connect and hands frames over
    /// in batches of at most `max_batch`.
    pub fn subscribing(endpoint: &WsEndpoint, max_batch: usize) -> ConnectionSettings {
        ConnectionSettings {
            url: endpoint.url.clone(),
            on_connect: decode::subscribe_requests(&endpoint.pairs, endpoint.depth),
            ping_interval: endpoint.ping_interval,
            liveness_timeout: endpoint.liveness_timeout,
            max_batch,
        }
    }
}

/// Runs one connection until it fails or the consumer says stop.
///
/// `outgoing` carries requests to send while connected (resubscriptions after a checksum
/// mismatch). `sent` is told about every request sent, in order (recording keeps them).
pub async fn run_connection<F, Fut, E>(
    settings: &ConnectionSettings,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    mut sent: impl FnMut(&str),
    mut consume: F,
) -> Result<(), ConnectionError>
where
    F: FnMut(FrameBatch) -> Fut,
    Fut: Future<Output = Result<Flow, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let (ws, _response) = tokio_tungstenite::connect_async(settings.url.as_str())
        .await
        .map_err(|e| ConnectionError::Connect { url: settings.url.clone(), reason: e.to_string() })?;
    let (mut sink, mut stream) = ws.split();
    for req in &settings.on_connect {
        sent(req);
        sink.send(Message::text(req.clone())).await.map_err(|e| ConnectionError::Transport(e.to_string()))?;
    }
    let mut ping_id: u64 = 0;
    let mut silent_for = Duration::ZERO;
    let mut batch: FrameBatch = Vec::with_capacity(settings.max_batch.min(4096));
    loop {
        tokio::select! {
            biased;
            req = outgoing.recv() => {
                if let Some(req) = req {
                    sent(&req);
                    sink.send(Message::text(req)).await.map_err(|e| ConnectionError::Transport(e.to_string()))?;
                }
            }
            next = tokio::time::timeout(settings.ping_interval, stream.next()) => {
                let msg = match next {
                    Err(_elapsed) => {
                        silent_for += settings.ping_interval;
                        if silent_for >= settings.liveness_timeout {
                            return Err(ConnectionError::Silent(silent_for.as_millis() as u64));
                        }
                        ping_id += 1;
                        let ping = format!(r#"{{"method":"ping","req_id":{ping_id}}}"#);
                        sent(&ping);
                        sink.send(Message::text(ping)).await.map_err(|e| ConnectionError::Transport(e.to_string()))?;
                        continue;
                    }
                    Ok(None) => return Err(ConnectionError::Closed(String::new())),
                    Ok(Some(Err(e))) => return Err(ConnectionError::Transport(e.to_string())),
                    Ok(Some(Ok(m))) => m,
                };
                silent_for = Duration::ZERO;
                if !push_frame(msg, &mut batch, &mut sink).await? {
                    continue;
                }
                // Take everything already received, without waiting, up to the batch limit.
                while batch.len() < settings.max_batch {
                    match stream.next().now_or_never() {
                        Some(Some(Ok(m))) => {
                            push_frame(m, &mut batch, &mut sink).await?;
                        }
                        Some(Some(Err(e))) => return Err(ConnectionError::Transport(e.to_string())),
                        Some(None) => break,
                        None => break,
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let frames = std::mem::replace(&mut batch, Vec::with_capacity(settings.max_batch.min(4096)));
                match consume(frames).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => {
                        let _ = sink.send(Message::Close(None)).await;
                        return Ok(());
                    }
                    Err(e) => return Err(ConnectionError::Consumer(Box::new(e))),
                }
            }
        }
    }
}

/// Adds a text frame to the batch; answers protocol pings; returns false for non-data frames.
async fn push_frame<S>(msg: Message, batch: &mut FrameBatch, sink: &mut S) -> Result<bool, ConnectionError>
where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    match msg {
        Message::Text(t) => {
            batch.push(t);
            Ok(true)
        }
        Message::Binary(b) => match String::from_utf8(b.to_vec()) {
            Ok(s) => {
                batch.push(Utf8Bytes::from(s));
                Ok(true)
            }
            Err(_) => Ok(false),
        },
        Message::Ping(p) => {
            sink.send(Message::Pong(p)).await.map_err(|e| ConnectionError::Transport(e.to_string()))?;
            Ok(false)
        }
        Message::Close(frame) => Err(ConnectionError::Closed(
            frame.map(|f| format!(": {} {}", u16::from(f.code), f.reason)).unwrap_or_default(),
        )),
        Message::Pong(_) | Message::Frame(_) => Ok(false),
    }
}
