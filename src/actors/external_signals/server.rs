//! The external-signal WebSocket endpoint: binds the loopback socket, accepts clients,
//! authenticates them and hands each text message to the [`ExternalSignals`] actor as a
//! [`PushSignal`], answering with its result (the protocol is in the parent module's doc).
//!
//! The server runs as tasks on the actix System's thread; the work per message is a JSON
//! parse, so it does not slow the market path measurably.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{ExternalSignals, PushSignal};
use crate::core::signals::external::{ExternalSignalError, reply};
use crate::core::token::token_matches;

/// Longest accepted message (bytes); a signal is a few hundred.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Most connections served at once; later ones are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// A client without a Bearer header must send `{"auth":…}` within this wall time.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the endpoint's socket (before the run starts, so a taken port fails the run early).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let l = std::net::TcpListener::bind(addr).map_err(|error| ServerError::Listen { addr, error })?;
    l.set_nonblocking(true).map_err(|error| ServerError::Socket { addr, error })?;
    Ok(l)
}

/// Why the endpoint cannot start ([`bind`], [`serve`]).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address cannot be bound (taken, not local, …).
    #[error("external_signals.bind {addr}: cannot listen: {error}")]
    Listen {
        /// `external_signals.bind`.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        error: std::io::Error,
    },
    /// The bound socket cannot be set up.
    #[error("external_signals.bind {addr}: {error}")]
    Socket {
        /// `external_signals.bind`.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        error: std::io::Error,
    },
    /// The listener cannot be handed to the runtime.
    #[error("external signals: {0}")]
    Serve(#[source] std::io::Error),
}

impl crate::core::error::Classified for ServerError {
    /// An endpoint that cannot start fails the run before anything is journaled
    /// ([`Disposition::Halt`]).
    ///
    /// [`Disposition::Halt`]: crate::core::error::Disposition::Halt
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            ServerError::Listen { .. } | ServerError::Socket { .. } | ServerError::Serve(_) => {
                crate::core::error::Disposition::Halt
            }
        }
    }
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
) -> Result<ServerHandle, ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServerError::Serve)?;
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
            let r = Err(ExternalSignalError::BadAuth);
            let _ = sink.send(send(reply(&r))).await;
            let _ = sink.close().await;
            return Err("authentication failed".into());
        }
        sink.send(send(reply(&Ok(())))).await.map_err(|e| e.to_string())?;
    }
    while let Some(msg) = source.next().await {
        let result = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => match actor.send(PushSignal { text: t.as_str().to_string() }).await {
                Ok(r) => r,
                Err(e) => Err(ExternalSignalError::ShuttingDown(e.to_string())),
            },
            Message::Binary(_) => Err(ExternalSignalError::BinaryFrame),
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
