//! Kraken's REST wire types and their parsers, pure: a `result` value in, a typed value out
//! (`Time`, `SystemStatus`, `AssetPairs`, `Ticker`, `OHLC`, `Depth`, `Trades`), plus the
//! error kinds Kraken's `E…` strings map to ([`RestError`]) and the client's settings
//! ([`RestSettings`]). The client itself (transport, rate-limiter slots, retries) is
//! `sources::kraken_rest`; the wire shapes quoted below are in shared/kraken/rest.md.
//!
//! Numbers are read exactly (`serde_json/arbitrary_precision` + [`parse_decimal`]), never
//! through `f64`; REST names (`wsname` `XBT/USD`) become WS v2 symbols (`BTC/USD`) through
//! the one legacy-symbol map, [`super::symbols`].

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::symbols::v2_pair;
use crate::core::instrument::{Instrument, PairStatus, Symbol};
use crate::core::market::{Side, SystemStatus, TradeEvent};
use crate::core::money::parse_decimal;
use crate::core::time::{EventTime, MICROS_PER_SEC};
use crate::core::validate::Issues;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a REST call failed. Each variant carries Kraken's error string (or the HTTP status /
/// transport message) so the log shows exactly what the exchange said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// `EGeneral:Too many requests`, `EAPI:Rate limit exceeded`, `EOrder:Rate limit
    /// exceeded`, or HTTP 429 (edge throttling). Retried.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// `EGeneral:Invalid arguments[:detail]`. Not retried.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// `EQuery:Unknown asset pair` (or the `EQuery:Invalid asset pair` variant). Not retried.
    #[error("unknown pair: {0}")]
    UnknownPair(String),
    /// `EService:Unavailable`, `EGeneral:Internal error`, `EDatabase:Internal error`, or an
    /// HTTP 5xx (the request did not reach the API). Retried.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// `EService:Busy` or `EService:Throttled[:<unix ts>]`. Retried.
    #[error("service busy: {0}")]
    Busy(String),
    /// No answer within [`RestSettings::timeout_ms`]. Retried.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connection failure or an unexpected HTTP status (4xx other than 429). Retried.
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was not the JSON Kraken documents. Not retried.
    #[error("cannot decode Kraken's response: {0}")]
    Decode(String),
    /// The RateLimiter actor is gone (engine shutting down). Not retried.
    #[error("rate limiter unavailable: {0}")]
    Limiter(String),
    /// Any other Kraken error string (`EGeneral:Permission denied`, `EAPI:Invalid key`, …).
    /// Not retried.
    #[error("Kraken error: {0}")]
    Other(String),
}

impl RestError {
    /// Classifies one Kraken error string by its `E<Category>:<Message>` prefix (spaces
    /// around the colons are ignored: Kraken writes `EService: Throttled: 1688…` too).
    pub fn from_kraken(s: &str) -> RestError {
        let mut parts = s.split(':').map(str::trim);
        let category = parts.next().unwrap_or("");
        let message = parts.next().unwrap_or("");
        let is = |c: &str, m: &str| category.eq_ignore_ascii_case(c) && message.eq_ignore_ascii_case(m);
        let text = s.to_string();
        if is("EGeneral", "Too many requests")
            || is("EAPI", "Rate limit exceeded")
            || is("EOrder", "Rate limit exceeded")
        {
            RestError::RateLimited(text)
        } else if is("EGeneral", "Invalid arguments") {
            RestError::InvalidArguments(text)
        } else if is("EQuery", "Unknown asset pair") || is("EQuery", "Invalid asset pair") {
            RestError::UnknownPair(text)
        } else if is("EService", "Unavailable")
            || is("EGeneral", "Internal error")
            || is("EDatabase", "Internal error")
        {
            RestError::ServiceUnavailable(text)
        } else if is("EService", "Busy") || is("EService", "Throttled") {
            RestError::Busy(text)
        } else {
            RestError::Other(text)
        }
    }

    /// The error a non-2xx HTTP status means (`None` for 2xx). Kraken answers API errors
    /// with 200; other statuses come from the edge (Cloudflare) and mean the request did
    /// not reach the API.
    pub fn from_http_status(status: u16) -> Option<RestError> {
        match status {
            200..=299 => None,
            429 => Some(RestError::RateLimited(format!("HTTP {status}"))),
            500..=599 => Some(RestError::ServiceUnavailable(format!("HTTP {status}"))),
            _ => Some(RestError::Transport(format!("HTTP {status}"))),
        }
    }

    /// Whether repeating the same idempotent request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RestError::RateLimited(_)
                | RestError::ServiceUnavailable(_)
                | RestError::Busy(_)
                | RestError::Timeout(_)
                | RestError::Transport(_)
        )
    }
}

impl crate::core::error::Classified for RestError {
    /// A failed or refused REST call is logged and the caller carries on (retried when
    /// [`RestError::is_retryable`], else without the answer); a gone RateLimiter means the
    /// engine is shutting down.
    fn disposition(&self) -> crate::core::error::Disposition {
        use crate::core::error::Disposition;
        match self {
            RestError::RateLimited(_)
            | RestError::InvalidArguments(_)
            | RestError::UnknownPair(_)
            | RestError::ServiceUnavailable(_)
            | RestError::Busy(_)
            | RestError::Timeout(_)
            | RestError::Transport(_)
            | RestError::Decode(_)
            | RestError::Other(_) => Disposition::Recoverable,
            RestError::Limiter(_) => Disposition::Halt,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// Client settings (a config section of its own, e.g. `feed.rest.*`). Wall-time values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestSettings {
    /// Retries after the first attempt for transient failures (default 3).
    pub retries: u32,
    /// Backoff before the first retry; doubles each retry (default 500 ms).
    pub initial_backoff_ms: u64,
    /// Backoff cap (default 30 000 ms).
    pub max_backoff_ms: u64,
    /// Whole-request timeout (default 10 000 ms).
    pub timeout_ms: u64,
    /// `User-Agent` header (Kraken asks for one; default `kraken-paper/<version>`).
    pub user_agent: String,
}

impl Default for RestSettings {
    fn default() -> Self {
        RestSettings {
            retries: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 10_000,
            user_agent: concat!("kraken-paper/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

impl RestSettings {
    /// Backoff before retry number `retry` (0 = first retry): initial × 2^retry, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u64.checked_shl(retry).unwrap_or(u64::MAX);
        Duration::from_millis(self.initial_backoff_ms.saturating_mul(factor).min(self.max_backoff_ms))
    }

    /// Records every out-of-range value; `prefix` is the section's key (`feed.rest`).
    pub fn validate(&self, prefix: &str, issues: &mut Issues) {
        issues.in_range(&format!("{prefix}.retries"), i64::from(self.retries), 0, 20);
        issues.check(self.timeout_ms > 0, &format!("{prefix}.timeout_ms"), || {
            "must be greater than 0, got 0".into()
        });
        issues.check(
            self.initial_backoff_ms <= self.max_backoff_ms,
            &format!("{prefix}.initial_backoff_ms"),
            || {
                format!(
                    "must not exceed {prefix}.max_backoff_ms ({}), got {}",
                    self.max_backoff_ms, self.initial_backoff_ms
                )
            },
        );
        issues.check(!self.user_agent.trim().is_empty(), &format!("{prefix}.user_agent"), || {
            "must not be empty".into()
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Typed results
// ---------------------------------------------------------------------------------------------

/// `Time`: `{"unixtime":1688669448,"rfc1123":"Thu, 06 Jul 23 18:50:48 +0000"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTime {
    /// Server time (whole seconds).
    pub time: EventTime,
    /// The same time as Kraken prints it.
    pub rfc1123: String,
}

/// `SystemStatus`: `{"status":"online","timestamp":"2023-07-06T18:52:00Z"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Exchange state; an unknown string reads as `Maintenance` (do not trade on a state
    /// we do not understand).
    pub status: SystemStatus,
    /// When Kraken stamped the status.
    pub timestamp: EventTime,
}

/// A fee schedule: `(30-day volume threshold in fee_volume_currency, fee in percent)` rows,
/// ascending; the applicable row is the last one whose threshold ≤ the account's volume.
/// Maker percentages may be negative (rebates).
pub type FeeSchedule = Vec<(Decimal, Decimal)>;

/// One AssetPairs entry.
///
/// ```json
/// "XXBTZUSD": {"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD",
///  "cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"leverage_buy":[2,3],"leverage_sell":[2,3],
///  "fees":[[0,0.4],[10000,0.35]],"fees_maker":[[0,0.25],[10000,0.2]],"fee_volume_currency":"ZUSD",
///  "ordermin":"0.00005","costmin":"0.5","tick_size":"0.1","status":"online"}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetPair {
    /// REST key (`XXBTZUSD`).
    pub key: String,
    /// Alternate name (`XBTUSD`), used as the `pair=` query value.
    pub altname: String,
    /// WS v1 name (`XBT/USD`).
    pub wsname: String,
    /// Metadata in the engine's form, symbol in WS v2 form (`BTC/USD`).
    pub instrument: Instrument,
    /// Taker schedule (`fees`).
    pub fees_taker: FeeSchedule,
    /// Maker schedule (`fees_maker`; absent on some old pairs → same as taker).
    pub fees_maker: FeeSchedule,
    /// Currency of the volume thresholds (`ZUSD`).
    pub fee_volume_currency: String,
}

/// AssetPairs, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetPairs {
    /// Tradable pairs, in key order.
    pub pairs: Vec<AssetPair>,
    /// Keys skipped because they have no `wsname` (dark-pool `.d` pairs).
    pub skipped: Vec<String>,
}

impl AssetPairs {
    /// The instruments, in key order.
    pub fn instruments(&self) -> Vec<Instrument> {
        self.pairs.iter().map(|p| p.instrument.clone()).collect()
    }

    /// The pair with v2 symbol, REST key, altname or wsname `name`.
    pub fn get(&self, name: &str) -> Option<&AssetPair> {
        self.pairs
            .iter()
            .find(|p| &*p.instrument.symbol == name || p.key == name || p.altname == name || p.wsname == name)
    }
}

/// `Ticker` for one pair (all REST ticker values are strings; `t` counts are integers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestTicker {
    /// Pair (v2).
    pub symbol: Symbol,
    /// Best bid price (`b[0]`).
    pub bid: Decimal,
    /// Best bid lot volume (`b[2]`).
    pub bid_qty: Decimal,
    /// Best ask price (`a[0]`).
    pub ask: Decimal,
    /// Best ask lot volume (`a[2]`).
    pub ask_qty: Decimal,
    /// Last trade price (`c[0]`).
    pub last: Decimal,
    /// Last trade volume (`c[1]`).
    pub last_qty: Decimal,
    /// Volume over the last 24 h (`v[1]`).
    pub volume_24h: Decimal,
    /// VWAP over the last 24 h (`p[1]`).
    pub vwap_24h: Decimal,
    /// Low over the last 24 h (`l[1]`).
    pub low_24h: Decimal,
    /// High over the last 24 h (`h[1]`).
    pub high_24h: Decimal,
    /// Today's opening price (`o`; today starts 00:00 UTC).
    pub open: Decimal,
    /// Number of trades over the last 24 h (`t[1]`).
    pub trades_24h: u64,
}

/// One OHLC row: `[time, open, high, low, close, vwap, volume, count]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Candle start.
    pub time: EventTime,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Volume-weighted average price.
    pub vwap: Decimal,
    /// Volume (base units).
    pub volume: Decimal,
    /// Number of trades.
    pub count: u64,
}

/// `OHLC`: at most the 720 most recent candles; the last one is still open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ohlc {
    /// Pair (v2).
    pub symbol: Symbol,
    /// Candles, oldest first.
    pub candles: Vec<Candle>,
    /// `last` (Unix seconds): the `since` for the next poll.
    pub last: i64,
}

/// One Depth level: `[price, volume, timestamp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthLevel {
    /// Price.
    pub price: Decimal,
    /// Volume (base units).
    pub qty: Decimal,
    /// Last change of the level.
    pub time: EventTime,
}

/// `Depth`: asks ascending, bids descending. REST strings are padded differently from WS:
/// do not use them for the WS book checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depth {
    /// Pair (v2).
    pub symbol: Symbol,
    /// Bids, best first.
    pub bids: Vec<DepthLevel>,
    /// Asks, best first.
    pub asks: Vec<DepthLevel>,
}

/// `Trades`: trades since the cursor, oldest first, plus the next cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trades {
    /// Pair (v2).
    pub symbol: Symbol,
    /// Trades, oldest first.
    pub trades: Vec<TradeEvent>,
    /// `last` (nanoseconds, as Kraken's string): pass it as `since` to continue.
    pub last: String,
}

/// The `since` cursor for Trades starting at `t` (Kraken takes nanoseconds).
pub fn trades_since(t: EventTime) -> String {
    (i128::from(t.as_micros()) * 1000).to_string()
}

// ---------------------------------------------------------------------------------------------
// Parsers (pure: `result` value in, typed value out)
// ---------------------------------------------------------------------------------------------

/// A [`RestError::Decode`] naming what was not as Kraken documents it.
pub fn decode(what: impl std::fmt::Display) -> RestError {
    RestError::Decode(what.to_string())
}

/// `v` as a JSON object, or a [`RestError::Decode`] naming `what`.
pub fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, RestError> {
    v.as_object().ok_or_else(|| decode(format!("{what}: expected an object, got {v}")))
}

fn arr<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, RestError> {
    v.as_array().ok_or_else(|| decode(format!("{what}: expected an array, got {v}")))
}

fn get<'a>(m: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, RestError> {
    m.get(key).ok_or_else(|| decode(format!("{what}: missing `{key}`")))
}

fn string(v: &Value, what: &str) -> Result<String, RestError> {
    v.as_str().map(str::to_string).ok_or_else(|| decode(format!("{what}: expected a string, got {v}")))
}

/// Number text, whether Kraken sent a JSON string or a JSON number (exact digits either way:
/// `arbitrary_precision` keeps a number's original text).
fn number_text(v: &Value, what: &str) -> Result<String, RestError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(decode(format!("{what}: expected a number, got {other}"))),
    }
}

fn dec(v: &Value, what: &str) -> Result<Decimal, RestError> {
    let t = number_text(v, what)?;
    parse_decimal(&t).map_err(|e| decode(format!("{what}: {e}")))
}

fn int(v: &Value, what: &str) -> Result<i64, RestError> {
    let t = number_text(v, what)?;
    t.parse::<i64>().map_err(|_| decode(format!("{what}: expected an integer, got {t}")))
}

fn uint<T: TryFrom<i64>>(v: &Value, what: &str) -> Result<T, RestError> {
    let i = int(v, what)?;
    T::try_from(i).map_err(|_| decode(format!("{what}: {i} out of range")))
}

fn at<'a>(row: &'a [Value], i: usize, what: &str) -> Result<&'a Value, RestError> {
    row.get(i).ok_or_else(|| decode(format!("{what}: row has no element {i}")))
}

fn secs(s: i64, what: &str) -> Result<EventTime, RestError> {
    s.checked_mul(MICROS_PER_SEC)
        .map(EventTime::from_micros)
        .ok_or_else(|| decode(format!("{what}: time {s} out of range")))
}

/// Parses `Time`'s result.
pub fn parse_server_time(result: &Value) -> Result<ServerTime, RestError> {
    let m = obj(result, "Time")?;
    let unix = int(get(m, "unixtime", "Time")?, "Time.unixtime")?;
    let rfc1123 = m.get("rfc1123").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(ServerTime { time: secs(unix, "Time.unixtime")?, rfc1123 })
}

/// Parses `SystemStatus`'s result.
pub fn parse_system_status(result: &Value) -> Result<ServerStatus, RestError> {
    let m = obj(result, "SystemStatus")?;
    let status = match string(get(m, "status", "SystemStatus")?, "SystemStatus.status")?.as_str() {
        "online" => SystemStatus::Online,
        "cancel_only" => SystemStatus::CancelOnly,
        "post_only" => SystemStatus::PostOnly,
        _ => SystemStatus::Maintenance,
    };
    let ts = string(get(m, "timestamp", "SystemStatus")?, "SystemStatus.timestamp")?;
    let timestamp =
        EventTime::parse_rfc3339(&ts).map_err(|e| decode(format!("SystemStatus.timestamp: {e}")))?;
    Ok(ServerStatus { status, timestamp })
}

fn fee_schedule(v: Option<&Value>, what: &str) -> Result<FeeSchedule, RestError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    arr(v, what)?
        .iter()
        .map(|row| {
            let row = arr(row, what)?;
            Ok((dec(at(row, 0, what)?, what)?, dec(at(row, 1, what)?, what)?))
        })
        .collect()
}

fn ten_pow_neg(decimals: u32) -> Decimal {
    Decimal::new(1, decimals.min(28))
}

/// Parses one AssetPairs entry; `Ok(None)` for a pair without `wsname` (dark pool).
pub fn parse_asset_pair(key: &str, v: &Value) -> Result<Option<AssetPair>, RestError> {
    let w = format!("AssetPairs.{key}");
    let m = obj(v, &w)?;
    let Some(wsname) = m.get("wsname").and_then(Value::as_str) else { return Ok(None) };
    let symbol = v2_pair(wsname).ok_or_else(|| decode(format!("{w}.wsname: not BASE/QUOTE: {wsname:?}")))?;
    let (base, quote) = symbol.split_once('/').unwrap_or((symbol.as_str(), ""));
    let pair_decimals: u32 = uint(get(m, "pair_decimals", &w)?, &format!("{w}.pair_decimals"))?;
    let lot_decimals: u32 = uint(get(m, "lot_decimals", &w)?, &format!("{w}.lot_decimals"))?;
    // cost_decimals, costmin, tick_size and status are newer fields (absent in 2021 data).
    let cost_decimals: u32 = match m.get("cost_decimals") {
        Some(c) => uint(c, &format!("{w}.cost_decimals"))?,
        // Without Kraken's figure keep a cost exact: price decimals + volume decimals.
        None => pair_decimals + lot_decimals,
    };
    let opt_dec = |k: &str| -> Result<Option<Decimal>, RestError> {
        m.get(k).filter(|v| !v.is_null()).map(|v| dec(v, &format!("{w}.{k}"))).transpose()
    };
    let leverage = |k: &str| m.get(k).and_then(Value::as_array).map(|a| !a.is_empty()).unwrap_or(false);
    let status = m.get("status").and_then(Value::as_str).map(PairStatus::from_kraken).unwrap_or_default();
    let instrument = Instrument {
        symbol: symbol.as_str().into(),
        base: base.into(),
        quote: quote.into(),
        status,
        price_precision: pair_decimals,
        qty_precision: lot_decimals,
        cost_precision: cost_decimals,
        price_increment: opt_dec("tick_size")?.unwrap_or_else(|| ten_pow_neg(pair_decimals)),
        qty_increment: ten_pow_neg(lot_decimals),
        qty_min: opt_dec("ordermin")?.unwrap_or(Decimal::ZERO),
        cost_min: opt_dec("costmin")?.unwrap_or(Decimal::ZERO),
        marginable: leverage("leverage_buy") || leverage("leverage_sell"),
        margin: crate::core::kraken::instruments::margin_terms_from_rest(m)
            .map_err(|e| decode(format!("{w}: {e}")))?,
    };
    let fees_taker = fee_schedule(m.get("fees"), &format!("{w}.fees"))?;
    let mut fees_maker = fee_schedule(m.get("fees_maker"), &format!("{w}.fees_maker"))?;
    if fees_maker.is_empty() {
        // Kraken omits fees_maker on pairs where maker and taker pay the same.
        fees_maker = fees_taker.clone();
    }
    Ok(Some(AssetPair {
        key: key.to_string(),
        altname: m.get("altname").and_then(Value::as_str).unwrap_or(key).to_string(),
        wsname: wsname.to_string(),
        instrument,
        fees_taker,
        fees_maker,
        fee_volume_currency: m
            .get("fee_volume_currency")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }))
}

/// Parses AssetPairs' result (keys in sorted order; dark-pool pairs listed in `skipped`).
pub fn parse_asset_pairs(result: &Value) -> Result<AssetPairs, RestError> {
    let m = obj(result, "AssetPairs")?;
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    let mut out = AssetPairs::default();
    for (key, v) in sorted {
        match parse_asset_pair(key, v)? {
            Some(p) => out.pairs.push(p),
            None => out.skipped.push(key.clone()),
        }
    }
    Ok(out)
}

/// Parses one Ticker entry.
///
/// ```json
/// {"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],"c":["30303.20000","0.00067643"],
///  "v":["4083.67001100","4412.73601799"],"p":["30706.77771","30689.13205"],"t":[34619,38907],
///  "l":["29868.30000","29868.30000"],"h":["31631.00000","31631.00000"],"o":"30502.80000"}
/// ```
pub fn parse_ticker(symbol: Symbol, v: &Value) -> Result<RestTicker, RestError> {
    let m = obj(v, "Ticker")?;
    let field = |k: &str, i: usize| -> Result<&Value, RestError> {
        let a = arr(get(m, k, "Ticker")?, &format!("Ticker.{k}"))?;
        at(a, i, &format!("Ticker.{k}"))
    };
    Ok(RestTicker {
        bid: dec(field("b", 0)?, "Ticker.b")?,
        bid_qty: dec(field("b", 2)?, "Ticker.b")?,
        ask: dec(field("a", 0)?, "Ticker.a")?,
        ask_qty: dec(field("a", 2)?, "Ticker.a")?,
        last: dec(field("c", 0)?, "Ticker.c")?,
        last_qty: dec(field("c", 1)?, "Ticker.c")?,
        volume_24h: dec(field("v", 1)?, "Ticker.v")?,
        vwap_24h: dec(field("p", 1)?, "Ticker.p")?,
        low_24h: dec(field("l", 1)?, "Ticker.l")?,
        high_24h: dec(field("h", 1)?, "Ticker.h")?,
        open: dec(get(m, "o", "Ticker")?, "Ticker.o")?,
        trades_24h: uint(field("t", 1)?, "Ticker.t")?,
        symbol,
    })
}

/// Parses OHLC rows: `[[1688671200,"30306.1","30306.2","30305.7","30305.7","30306.1","3.39243896",23],…]`.
pub fn parse_candles(rows: &Value) -> Result<Vec<Candle>, RestError> {
    arr(rows, "OHLC")?
        .iter()
        .enumerate()
        .map(|(n, row)| {
            let w = format!("OHLC row {n}");
            let r = arr(row, &w)?;
            let d = |i: usize| dec(at(r, i, &w)?, &w);
            Ok(Candle {
                time: secs(int(at(r, 0, &w)?, &w)?, &w)?,
                open: d(1)?,
                high: d(2)?,
                low: d(3)?,
                close: d(4)?,
                vwap: d(5)?,
                volume: d(6)?,
                count: uint(at(r, 7, &w)?, &w)?,
            })
        })
        .collect()
}

/// Parses Depth levels: `[["30384.10000","2.059",1688671659],…]`.
pub fn parse_levels(rows: &Value, what: &str) -> Result<Vec<DepthLevel>, RestError> {
    arr(rows, what)?
        .iter()
        .map(|row| {
            let r = arr(row, what)?;
            Ok(DepthLevel {
                price: dec(at(r, 0, what)?, what)?,
                qty: dec(at(r, 1, what)?, what)?,
                time: secs(int(at(r, 2, what)?, what)?, what)?,
            })
        })
        .collect()
}

/// Parses one Depth entry: `{"asks":[…],"bids":[…]}` (levels as [`parse_levels`] reads them).
pub fn parse_depth(symbol: Symbol, v: &Value) -> Result<Depth, RestError> {
    let m = obj(v, "Depth")?;
    Ok(Depth {
        symbol,
        bids: parse_levels(get(m, "bids", "Depth")?, "Depth.bids")?,
        asks: parse_levels(get(m, "asks", "Depth")?, "Depth.asks")?,
    })
}

/// OHLC's `last` (Unix seconds, the `since` of the next poll) from its result.
pub fn parse_ohlc_last(result: &Value) -> Result<i64, RestError> {
    int(get(obj(result, "OHLC")?, "last", "OHLC")?, "OHLC.last")
}

/// Trades' `last` cursor (nanoseconds, Kraken's text) from its result.
pub fn parse_trades_last(result: &Value) -> Result<String, RestError> {
    number_text(get(obj(result, "Trades")?, "last", "Trades")?, "Trades.last")
}

/// Parses Trades rows: `[price, volume, time (float s), "b"|"s", "m"|"l", misc, trade_id]`
/// (pre-2023 rows have 6 elements and no trade id → 0). The time is read from its text:
/// exact to the microsecond.
pub fn parse_trades(symbol: &Symbol, rows: &Value) -> Result<Vec<TradeEvent>, RestError> {
    arr(rows, "Trades")?
        .iter()
        .enumerate()
        .map(|(n, row)| {
            let w = format!("Trades row {n}");
            let r = arr(row, &w)?;
            let t = number_text(at(r, 2, &w)?, &w)?;
            let time = EventTime::parse_unix_seconds(&t).map_err(|e| decode(format!("{w}: {e}")))?;
            let side = match at(r, 3, &w)?.as_str() {
                Some("b") => Side::Buy,
                Some("s") => Side::Sell,
                other => return Err(decode(format!("{w}: side {other:?} is neither \"b\" nor \"s\""))),
            };
            let trade_id = match r.get(6) {
                Some(v) => uint(v, &w)?,
                None => 0,
            };
            Ok(TradeEvent {
                symbol: symbol.clone(),
                time,
                side,
                price: dec(at(r, 0, &w)?, &w)?,
                qty: dec(at(r, 1, &w)?, &w)?,
                trade_id,
                market_order: at(r, 4, &w)?.as_str() == Some("m"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn json(s: &str) -> Value {
        serde_json::from_str(s).expect("test JSON")
    }

    #[test]
    fn every_documented_error_string_maps_to_its_kind() {
        use RestError as E;
        type Kind = fn(String) -> RestError;
        let cases: &[(&str, Kind)] = &[
            ("EGeneral:Too many requests", E::RateLimited),
            ("EAPI:Rate limit exceeded", E::RateLimited),
            ("EOrder:Rate limit exceeded", E::RateLimited),
            ("EGeneral:Invalid arguments", E::InvalidArguments),
            ("EGeneral:Invalid arguments:ordertype", E::InvalidArguments),
            ("EGeneral:Invalid arguments:Index unavailable", E::InvalidArguments),
            ("EQuery:Unknown asset pair", E::UnknownPair),
            ("EQuery:Invalid asset pair", E::UnknownPair),
            ("EService:Unavailable", E::ServiceUnavailable),
            ("EGeneral:Internal error", E::ServiceUnavailable),
            ("EDatabase:Internal error", E::ServiceUnavailable),
            ("EService:Busy", E::Busy),
            ("EService: Throttled: 1688671969", E::Busy),
            ("EService:Throttled", E::Busy),
            ("EGeneral:Permission denied", E::Other),
            ("EAPI:Invalid nonce", E::Other),
            ("EQuery:Unknown asset", E::Other),
            ("EService:Market in post_only mode", E::Other),
        ];
        for (s, kind) in cases {
            assert_eq!(RestError::from_kraken(s), kind(s.to_string()), "{s}");
        }
    }

    #[test]
    fn http_statuses_map_to_transport_kinds() {
        assert_eq!(RestError::from_http_status(200), None);
        assert_eq!(RestError::from_http_status(429), Some(RestError::RateLimited("HTTP 429".into())));
        assert_eq!(RestError::from_http_status(520), Some(RestError::ServiceUnavailable("HTTP 520".into())));
        assert_eq!(RestError::from_http_status(403), Some(RestError::Transport("HTTP 403".into())));
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(RestError::RateLimited(String::new()).is_retryable());
        assert!(RestError::Busy(String::new()).is_retryable());
        assert!(RestError::Timeout(String::new()).is_retryable());
        assert!(!RestError::InvalidArguments(String::new()).is_retryable());
        assert!(!RestError::UnknownPair(String::new()).is_retryable());
        assert!(!RestError::Decode(String::new()).is_retryable());
        assert!(!RestError::Other(String::new()).is_retryable());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = RestSettings { initial_backoff_ms: 500, max_backoff_ms: 3000, ..RestSettings::default() };
        // 500, 1000, 2000, then capped at 3000.
        let ms: Vec<u128> = (0..5).map(|r| s.backoff(r).as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 3000, 3000]);
        assert_eq!(s.backoff(200).as_millis(), 3000);
    }

    #[test]
    fn settings_validation_names_the_keys() {
        let s = RestSettings {
            retries: 50,
            timeout_ms: 0,
            initial_backoff_ms: 10,
            max_backoff_ms: 5,
            user_agent: " ".into(),
        };
        let mut issues = Issues::default();
        s.validate("feed.rest", &mut issues);
        let keys: Vec<&str> = issues.list.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "feed.rest.retries",
                "feed.rest.timeout_ms",
                "feed.rest.initial_backoff_ms",
                "feed.rest.user_agent"
            ]
        );
        let mut ok = Issues::default();
        RestSettings::default().validate("feed.rest", &mut ok);
        assert!(ok.is_empty());
    }

    #[test]
    fn wsnames_map_to_v2_symbols() {
        assert_eq!(v2_pair("XBT/USD").as_deref(), Some("BTC/USD"));
        assert_eq!(v2_pair("XDG/EUR").as_deref(), Some("DOGE/EUR"));
        assert_eq!(v2_pair("ETH/XBT").as_deref(), Some("ETH/BTC"));
        assert_eq!(v2_pair("SOL/USD").as_deref(), Some("SOL/USD"));
        assert_eq!(v2_pair("XBTUSD"), None);
    }

    #[test]
    fn asset_pair_keeps_exact_decimals() {
        let v = json(
            r#"{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD",
            "cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"leverage_buy":[2,3],"leverage_sell":[2,3],
            "fees":[[0,0.40],[10000,0.35]],"fees_maker":[[0,0.25],[10000000,0.0],[500000000,-0.02]],
            "fee_volume_currency":"ZUSD","ordermin":"0.00005","costmin":"0.5","tick_size":"0.1","status":"online"},
            "XXBTZUSD.d":{"altname":"XBTUSD.d","base":"XXBT","quote":"ZUSD","pair_decimals":1,"lot_decimals":8}}"#,
        );
        let pairs = parse_asset_pairs(&v).expect("parses");
        assert_eq!(pairs.skipped, vec!["XXBTZUSD.d".to_string()]);
        let p = &pairs.pairs[0];
        let i = &p.instrument;
        assert_eq!((&*i.symbol, &*i.base, &*i.quote), ("BTC/USD", "BTC", "USD"));
        assert_eq!((i.price_precision, i.qty_precision, i.cost_precision), (1, 8, 5));
        assert_eq!(i.qty_min, dec!(0.00005));
        assert_eq!(i.cost_min, dec!(0.5));
        assert_eq!(i.price_increment, dec!(0.1));
        assert_eq!(i.qty_increment, dec!(0.00000001));
        assert!(i.marginable);
        // 0.40 keeps its scale (no f64 round trip turning it into 0.4).
        assert_eq!(p.fees_taker[0].1.to_string(), "0.40");
        assert_eq!(p.fees_maker[2], (dec!(500000000), dec!(-0.02)));
        assert_eq!(pairs.get("XBTUSD").map(|p| p.key.as_str()), Some("XXBTZUSD"));
    }

    #[test]
    fn old_asset_pairs_without_newer_fields_still_parse() {
        // 2021 shape: no cost_decimals, costmin, tick_size, status, fees_maker.
        let v = json(
            r#"{"XDGUSD":{"altname":"XDGUSD","wsname":"XDG/USD","pair_decimals":7,"lot_decimals":8,
            "fees":[[0,0.26]],"ordermin":"50","leverage_buy":[],"leverage_sell":[]}}"#,
        );
        let p = &parse_asset_pairs(&v).expect("parses").pairs[0];
        assert_eq!(&*p.instrument.symbol, "DOGE/USD");
        assert_eq!(p.instrument.price_increment, dec!(0.0000001)); // 10^-7 from pair_decimals
        assert_eq!(p.instrument.cost_precision, 15); // 7 + 8: exact cost
        assert_eq!(p.instrument.cost_min, Decimal::ZERO);
        assert_eq!(p.instrument.status, PairStatus::Online);
        assert!(!p.instrument.marginable);
        assert_eq!(p.fees_maker, p.fees_taker);
    }

    #[test]
    fn ticker_reads_bid_ask_last() {
        let v = json(
            r#"{"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],"c":["30303.20000","0.00067643"],
            "v":["4083.67001100","4412.73601799"],"p":["30706.77771","30689.13205"],"t":[34619,38907],
            "l":["29868.30000","29868.30000"],"h":["31631.00000","31631.00000"],"o":"30502.80000"}"#,
        );
        let t = parse_ticker("BTC/USD".into(), &v).expect("parses");
        assert_eq!((t.bid, t.ask, t.last), (dec!(30300.00000), dec!(30300.10000), dec!(30303.20000)));
        assert_eq!(t.last_qty, dec!(0.00067643));
        assert_eq!(t.volume_24h, dec!(4412.73601799));
        assert_eq!(t.trades_24h, 38907);
        assert_eq!(t.open, dec!(30502.80000));
    }

    #[test]
    fn candles_depth_and_trades_parse_exactly() {
        let c = parse_candles(&json(
            r#"[[1688671200,"30306.1","30306.2","30305.7","30305.7","30306.1","3.39243896",23]]"#,
        ))
        .expect("candles");
        assert_eq!(c[0].time, EventTime::from_micros(1_688_671_200 * MICROS_PER_SEC));
        assert_eq!(
            (c[0].open, c[0].high, c[0].volume, c[0].count),
            (dec!(30306.1), dec!(30306.2), dec!(3.39243896), 23)
        );

        let l = parse_levels(&json(r#"[["30384.10000","2.059",1688671659]]"#), "asks").expect("levels");
        assert_eq!(l[0].price.to_string(), "30384.10000");
        assert_eq!(l[0].qty, dec!(2.059));

        let sym: Symbol = "BTC/USD".into();
        let t = parse_trades(
            &sym,
            &json(
                r#"[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],
                    ["30243.30000","0.00376960",1688669598.2804112,"s","l",""]]"#,
            ),
        )
        .expect("trades");
        // 1688669597.8277369 s → truncated to µs: 1688669597827736.
        assert_eq!(t[0].time, EventTime::from_micros(1_688_669_597_827_736));
        assert_eq!((t[0].side, t[0].market_order, t[0].trade_id), (Side::Buy, true, 61044952));
        assert_eq!((t[1].side, t[1].market_order, t[1].trade_id), (Side::Sell, false, 0));
        assert_eq!(t[1].qty.to_string(), "0.00376960");
        assert!(matches!(
            parse_trades(&sym, &json(r#"[["1","1",1.5,"x","m",""]]"#)),
            Err(RestError::Decode(_))
        ));
    }

    #[test]
    fn time_and_status_parse() {
        let t =
            parse_server_time(&json(r#"{"unixtime":1688669448,"rfc1123":"Thu, 06 Jul 23 18:50:48 +0000"}"#))
                .expect("time");
        assert_eq!(t.time.as_micros(), 1_688_669_448 * MICROS_PER_SEC);
        let s = parse_system_status(&json(r#"{"status":"post_only","timestamp":"2023-07-06T18:52:00Z"}"#))
            .expect("status");
        assert_eq!(s.status, SystemStatus::PostOnly);
        let odd = parse_system_status(&json(r#"{"status":"weird","timestamp":"2023-07-06T18:52:00Z"}"#))
            .expect("status");
        assert_eq!(odd.status, SystemStatus::Maintenance);
    }

    #[test]
    fn trades_cursor_is_nanoseconds() {
        assert_eq!(trades_since(EventTime::from_micros(1_688_671_969_993_150)), "1688671969993150000");
    }
}
