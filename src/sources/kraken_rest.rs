//! Kraken's REST API, public endpoints, as a client that never gets refused for going too
//! fast: every request first awaits a slot from the [`RateLimiter`] actor, so a burst of
//! calls is spread out to fit Kraken's limits instead of drawing `EAPI:Rate limit exceeded`.
//!
//! - Endpoints: `Time`, `SystemStatus`, `AssetPairs`, `Ticker`, `OHLC`, `Depth`, `Trades`
//!   (with `since`, to fetch the trades missed during a WebSocket outage); see
//!   shared/kraken/rest.md for the wire shapes quoted in the doc comments below.
//! - Envelope: `{"error":[…],"result":…}`; `result` may be absent on errors; `W…` strings are
//!   warnings (logged, the result is used). Every `E…` string and every non-200 status is
//!   mapped to a [`RestError`]; the `result` is then read by the pure parsers of
//!   [`crate::core::kraken::rest`] (numbers exact, never through `f64`).
//! - Retries: all public calls are idempotent GETs, so transient failures (rate limited,
//!   unavailable, busy, timeout, transport) are retried with exponential backoff up to
//!   [`RestSettings::retries`] times, each attempt taking a fresh limiter slot. Argument and
//!   pair errors are never retried. [`KrakenRest::private_call`] is never retried.
//! - Names: REST keys (`XXBTZUSD`) are mapped to WS v2 symbols (`BTC/USD`) through
//!   AssetPairs' `wsname` (`XBT/USD`, with XBT→BTC and XDG→DOGE). After
//!   [`KrakenRest::asset_pairs`] the client accepts v2 symbols everywhere and answers with them.
//! - Transport: [`ReqwestTransport`] (rustls with the ring provider and bundled Mozilla
//!   roots) in production; tests may plug any [`RestTransport`] (e.g. an in-process mock on
//!   virtual time).
//!
//! [`RateLimiter`]: crate::actors::rate_limiter::RateLimiter

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Recipient;
use serde::Deserialize;
use serde_json::Value;

use crate::core::instrument::Symbol;
use crate::core::kraken::rest::{decode, obj};
use crate::core::kraken::symbols::v2_pair;
use crate::core::rate_limit::RestCall;
use crate::messages::Acquire;

// The wire types, parsers, error kinds and settings live in the pure core; re-exported so the
// client's users name them in one place.
pub use crate::core::kraken::rest::{
    AssetPair, AssetPairs, Candle, Depth, DepthLevel, FeeSchedule, Ohlc, RestError, RestSettings, RestTicker,
    ServerStatus, ServerTime, Trades, parse_asset_pair, parse_asset_pairs, parse_candles, parse_depth,
    parse_levels, parse_ohlc_last, parse_server_time, parse_system_status, parse_ticker, parse_trades,
    parse_trades_last, trades_since,
};

/// Reads Kraken's envelope and returns `result`.
///
/// ```json
/// {"error": [], "result": {"status": "online", "timestamp": "2021-03-22T17:18:03Z"}}
/// {"error": ["EGeneral:Invalid arguments:ordertype"]}
/// ```
/// The first `E…` string decides the error; `W…` strings are warnings (logged).
pub fn parse_envelope(body: &str) -> Result<Value, RestError> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        error: Vec<String>,
        #[serde(default)]
        result: Option<Value>,
    }
    let env: Envelope =
        serde_json::from_str(body).map_err(|e| RestError::Decode(format!("envelope: {e}")))?;
    if let Some(first) = env.error.iter().find(|s| !s.starts_with('W')) {
        return Err(RestError::from_kraken(first));
    }
    for w in &env.error {
        tracing::warn!(actor = "kraken_rest", warning = %w, "Kraken returned a warning");
    }
    env.result.ok_or_else(|| RestError::Decode("envelope has neither `result` nor an error".into()))
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// HTTP method of a request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RestMethod {
    /// Public endpoints.
    Get,
    /// Private endpoints (form body).
    Post,
}

/// One request, relative to the base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestRequest {
    /// GET or POST.
    pub method: RestMethod,
    /// Path, e.g. `/0/public/Ticker`.
    pub path: String,
    /// Query parameters (GET) or form fields (POST), in order.
    pub params: Vec<(String, String)>,
}

/// One raw answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestResponse {
    /// HTTP status code.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// Future returned by a transport.
pub type TransportFuture = Pin<Box<dyn Future<Output = Result<RestResponse, RestError>> + Send>>;

/// Sends requests somewhere: [`ReqwestTransport`] over HTTP(S), or a test double.
pub trait RestTransport: Send + Sync {
    /// Sends `req`; errors are [`RestError::Timeout`], [`RestError::Transport`] or
    /// [`RestError::Decode`] (body not text).
    fn send(&self, req: RestRequest) -> TransportFuture;
}

/// HTTP(S) transport on reqwest with rustls (ring) and the bundled Mozilla roots.
pub struct ReqwestTransport {
    client: reqwest::Client,
    base_url: String,
}

impl ReqwestTransport {
    /// A transport for `base_url` (`https://api.kraken.com`, or `http://127.0.0.1:PORT`).
    /// Installs the ring crypto provider if none is installed yet (reqwest's
    /// `rustls-no-provider` would panic without one).
    pub fn new(base_url: &str, settings: &RestSettings) -> Result<ReqwestTransport, RestError> {
        // Err only means a provider is already installed (e.g. by main): fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            roots.push(
                reqwest::Certificate::from_der(der.as_ref())
                    .map_err(|e| RestError::Transport(format!("bundled root certificate: {e}")))?,
            );
        }
        let client = reqwest::Client::builder()
            .tls_certs_only(roots)
            .timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent(settings.user_agent.as_str())
            .build()
            .map_err(|e| RestError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(ReqwestTransport { client, base_url: base_url.trim_end_matches('/').to_string() })
    }
}

impl RestTransport for ReqwestTransport {
    fn send(&self, req: RestRequest) -> TransportFuture {
        let url = format!("{}{}", self.base_url, req.path);
        let builder = match req.method {
            RestMethod::Get => self.client.get(url).query(&req.params),
            RestMethod::Post => self.client.post(url).form(&req.params),
        };
        Box::pin(async move {
            let resp = builder.send().await.map_err(map_reqwest)?;
            let status = resp.status().as_u16();
            let body = resp.text().await.map_err(map_reqwest)?;
            Ok(RestResponse { status, body })
        })
    }
}

fn map_reqwest(e: reqwest::Error) -> RestError {
    if e.is_timeout() {
        RestError::Timeout(e.to_string())
    } else if e.is_decode() {
        RestError::Decode(e.to_string())
    } else {
        RestError::Transport(e.to_string())
    }
}

/// OHLC intervals Kraken accepts (minutes).
pub const OHLC_INTERVALS: [u32; 9] = crate::core::signals::common::OHLC_INTERVALS;

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Name mapping learned from AssetPairs.
#[derive(Default)]
struct PairNames {
    /// key, altname, wsname and v2 symbol → v2 symbol.
    to_symbol: BTreeMap<String, Symbol>,
    /// v2 symbol → altname (the `pair=` value Kraken accepts).
    to_query: BTreeMap<String, String>,
}

struct Inner {
    transport: Arc<dyn RestTransport>,
    limiter: Recipient<Acquire>,
    settings: RestSettings,
    names: Mutex<PairNames>,
}

/// The REST client; cheap to clone (shared state behind an `Arc`).
///
/// Call [`KrakenRest::asset_pairs`] first: it teaches the client the pair names, after which
/// every method takes and returns WS v2 symbols (`BTC/USD`). Before that, pass REST names
/// (`XBTUSD`).
#[derive(Clone)]
pub struct KrakenRest {
    inner: Arc<Inner>,
}

impl KrakenRest {
    /// A client for `base_url` (`feed.rest_url`) over HTTP(S); every call first awaits a
    /// slot from `limiter`.
    pub fn new(
        base_url: &str,
        limiter: Recipient<Acquire>,
        settings: RestSettings,
    ) -> Result<KrakenRest, RestError> {
        let transport = ReqwestTransport::new(base_url, &settings)?;
        Ok(KrakenRest::with_transport(Arc::new(transport), limiter, settings))
    }

    /// A client over any transport (tests: an in-process mock).
    pub fn with_transport(
        transport: Arc<dyn RestTransport>,
        limiter: Recipient<Acquire>,
        settings: RestSettings,
    ) -> KrakenRest {
        KrakenRest {
            inner: Arc::new(Inner { transport, limiter, settings, names: Mutex::new(PairNames::default()) }),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RestSettings {
        &self.inner.settings
    }

    /// `GET /0/public/Time`.
    pub async fn server_time(&self) -> Result<ServerTime, RestError> {
        parse_server_time(&self.public("Time", None, Vec::new()).await?)
    }

    /// `GET /0/public/SystemStatus`.
    pub async fn system_status(&self) -> Result<ServerStatus, RestError> {
        parse_system_status(&self.public("SystemStatus", None, Vec::new()).await?)
    }

    /// `GET /0/public/AssetPairs` (all pairs); also records the pair names for later calls.
    pub async fn asset_pairs(&self) -> Result<AssetPairs, RestError> {
        let pairs = parse_asset_pairs(&self.public("AssetPairs", None, Vec::new()).await?)?;
        self.learn_names(&pairs);
        Ok(pairs)
    }

    /// Records the names of `pairs` (done by [`KrakenRest::asset_pairs`]; public for callers
    /// that load AssetPairs elsewhere, e.g. from a file).
    pub fn learn_names(&self, pairs: &AssetPairs) {
        let mut names = self.inner.names.lock().unwrap_or_else(|e| e.into_inner());
        for p in &pairs.pairs {
            let sym = p.instrument.symbol.clone();
            for n in [&p.key, &p.altname, &p.wsname] {
                names.to_symbol.insert(n.clone(), sym.clone());
            }
            names.to_symbol.insert(sym.to_string(), sym.clone());
            names.to_query.insert(sym.to_string(), p.altname.clone());
        }
    }

    /// `GET /0/public/Ticker?pair=…` for one pair.
    pub async fn ticker(&self, pair: &str) -> Result<RestTicker, RestError> {
        let result = self.public("Ticker", None, vec![("pair".into(), self.query_name(pair))]).await?;
        let (key, v) = self.pick_pair(&result, pair)?;
        parse_ticker(self.symbol_for(key, pair), v)
    }

    /// `GET /0/public/OHLC?pair=…&interval=…[&since=…]`; `interval` in minutes (one of
    /// [`OHLC_INTERVALS`]), `since` in Unix seconds (a previous [`Ohlc::last`]).
    pub async fn ohlc(&self, pair: &str, interval: u32, since: Option<i64>) -> Result<Ohlc, RestError> {
        if !OHLC_INTERVALS.contains(&interval) {
            return Err(RestError::InvalidArguments(format!(
                "OHLC interval {interval} is not one of {OHLC_INTERVALS:?} (minutes)"
            )));
        }
        let mut params =
            vec![("pair".into(), self.query_name(pair)), ("interval".into(), interval.to_string())];
        if let Some(s) = since {
            params.push(("since".into(), s.to_string()));
        }
        let result = self.public("OHLC", Some(pair), params).await?;
        let (key, rows) = self.pick_pair(&result, pair)?;
        let symbol = self.symbol_for(key, pair);
        let last = parse_ohlc_last(&result)?;
        Ok(Ohlc { symbol, candles: parse_candles(rows)?, last })
    }

    /// `GET /0/public/Depth?pair=…&count=…` (`count` 1–500).
    pub async fn depth(&self, pair: &str, count: u32) -> Result<Depth, RestError> {
        if !(1..=500).contains(&count) {
            return Err(RestError::InvalidArguments(format!("Depth count must be 1 to 500, got {count}")));
        }
        let params = vec![("pair".into(), self.query_name(pair)), ("count".into(), count.to_string())];
        let result = self.public("Depth", None, params).await?;
        let (key, v) = self.pick_pair(&result, pair)?;
        parse_depth(self.symbol_for(key, pair), v)
    }

    /// `GET /0/public/Trades?pair=…[&since=…]`: up to 1000 trades after `since` (a previous
    /// [`Trades::last`], or [`trades_since`] of a time) — how trades missed while the
    /// WebSocket was down are fetched.
    pub async fn trades(&self, pair: &str, since: Option<&str>) -> Result<Trades, RestError> {
        let mut params = vec![("pair".into(), self.query_name(pair))];
        if let Some(s) = since {
            params.push(("since".into(), s.to_string()));
        }
        let result = self.public("Trades", Some(pair), params).await?;
        let (key, rows) = self.pick_pair(&result, pair)?;
        let symbol = self.symbol_for(key, pair);
        let last = parse_trades_last(&result)?;
        Ok(Trades { trades: parse_trades(&symbol, rows)?, symbol, last })
    }

    /// `POST /0/private/<endpoint>` through the limiter's private counter, **unsigned** and
    /// with an empty body: paper trading needs no private call; this exists so that the
    /// private limit path is exercised against a mock. Never retried (a private call need not
    /// be idempotent). Returns the envelope's `result`.
    pub async fn private_call(&self, endpoint: &str) -> Result<Value, RestError> {
        if endpoint.is_empty() || !endpoint.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(RestError::InvalidArguments(format!("private endpoint name {endpoint:?}")));
        }
        self.acquire(RestCall::Private { endpoint: endpoint.to_string() }).await?;
        let req = RestRequest {
            method: RestMethod::Post,
            path: format!("/0/private/{endpoint}"),
            params: Vec::new(),
        };
        self.once(req).await
    }

    /// One public call with retries; `pair` is set for the per-pair limited endpoints.
    async fn public(
        &self,
        endpoint: &'static str,
        pair: Option<&str>,
        params: Vec<(String, String)>,
    ) -> Result<Value, RestError> {
        let call = RestCall::Public {
            endpoint: endpoint.to_string(),
            pair: pair.map(|p| self.symbol_for(p, p).to_string()),
        };
        let mut retry = 0;
        loop {
            self.acquire(call.clone()).await?;
            let req = RestRequest {
                method: RestMethod::Get,
                path: format!("/0/public/{endpoint}"),
                params: params.clone(),
            };
            match self.once(req).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && retry < self.inner.settings.retries => {
                    let backoff = self.inner.settings.backoff(retry);
                    retry += 1;
                    tracing::warn!(
                        actor = "kraken_rest", endpoint, attempt = retry, backoff_ms = backoff.as_millis() as u64,
                        error = %e, "REST call failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn acquire(&self, call: RestCall) -> Result<(), RestError> {
        self.inner
            .limiter
            .send(Acquire { call })
            .await
            .map(|_| ())
            .map_err(|e| RestError::Limiter(e.to_string()))
    }

    async fn once(&self, req: RestRequest) -> Result<Value, RestError> {
        let resp = self.inner.transport.send(req).await?;
        if let Some(e) = RestError::from_http_status(resp.status) {
            return Err(e);
        }
        parse_envelope(&resp.body)
    }

    /// The `pair=` value for `pair`: its altname once known, else `pair` itself.
    fn query_name(&self, pair: &str) -> String {
        let names = self.inner.names.lock().unwrap_or_else(|e| e.into_inner());
        names.to_query.get(pair).cloned().unwrap_or_else(|| pair.to_string())
    }

    /// The v2 symbol for a result key, falling back on the requested name.
    fn symbol_for(&self, key: &str, requested: &str) -> Symbol {
        let names = self.inner.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = names.to_symbol.get(key).or_else(|| names.to_symbol.get(requested)) {
            return s.clone();
        }
        match v2_pair(requested) {
            Some(s) => s.as_str().into(),
            None => requested.into(),
        }
    }

    /// The entry for `requested` in a per-pair result (`{"XXBTZUSD": …, "last": …}`): the only
    /// pair key, or the one whose name maps to the same symbol (Kraken may answer with the
    /// key, the altname or the wsname).
    fn pick_pair<'a>(&self, result: &'a Value, requested: &str) -> Result<(&'a str, &'a Value), RestError> {
        let m = obj(result, "result")?;
        let mut entries = m.iter().filter(|(k, _)| k.as_str() != "last");
        let first = entries.next();
        match (first, entries.next()) {
            (Some((k, v)), None) => Ok((k.as_str(), v)),
            (None, _) => Err(decode(format!("result has no entry for {requested}"))),
            _ => {
                let want = self.symbol_for(requested, requested);
                m.iter()
                    .filter(|(k, _)| k.as_str() != "last")
                    .find(|(k, _)| k.as_str() == requested || self.symbol_for(k, "") == want)
                    .map(|(k, v)| (k.as_str(), v))
                    .ok_or_else(|| decode(format!("result has no entry for {requested}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Value {
        serde_json::from_str(s).expect("test JSON")
    }

    #[test]
    fn envelope_errors_win_and_warnings_do_not() {
        assert_eq!(
            parse_envelope(r#"{"error":["EGeneral:Invalid arguments:ordertype"]}"#),
            Err(RestError::InvalidArguments("EGeneral:Invalid arguments:ordertype".into()))
        );
        // A warning with a result is a success.
        let v = parse_envelope(r#"{"error":["WGeneral:Deprecated"],"result":{"x":1}}"#).expect("result");
        assert_eq!(v["x"], json("1"));
        assert!(matches!(parse_envelope(r#"{"error":[]}"#), Err(RestError::Decode(_))));
        assert!(matches!(parse_envelope("<html>"), Err(RestError::Decode(_))));
    }
}
