//! Instrument metadata from Kraken's two sources: the REST `AssetPairs` result and the WS v2
//! `instrument` channel. Both become [`Instrument`]s keyed by the WS v2 symbol.
//!
//! REST AssetPairs pair (shared/kraken/rest.md §3):
//! ```json
//! "XXBTZUSD": {"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD",
//!  "cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"ordermin":"0.00005",
//!  "costmin":"0.5","tick_size":"0.1","status":"online","leverage_buy":[2,3,4,5]}
//! ```
//! WS v2 instrument pair (shared/kraken/websocket-v2.md §4.7):
//! ```json
//! {"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,
//!  "qty_increment":1E-8,"price_precision":1,"cost_precision":5,"marginable":true,
//!  "cost_min":0.50,"tick_size":0.1,"price_increment":0.1,"qty_min":0.00010000}
//! ```
//! Numbers are read from their JSON text (serde_json `arbitrary_precision`), never via f64.

use std::collections::BTreeSet;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::symbols::v2_symbol;
use crate::core::instrument::{Instrument, MarginTerms, PairStatus};
use crate::core::money::parse_decimal;

/// Reads instruments from REST AssetPairs JSON (the whole response `{"error":[],"result":…}`
/// or only its `result` object) or from a WS v2 `instrument` message (`{"channel":
/// "instrument","data":{"pairs":[…]}}`). Dark-pool pairs (no `wsname`) are skipped; REST
/// names are mapped to v2 symbols (`XBT/USD` → `BTC/USD`). Sorted by symbol, one per symbol.
pub fn load_instruments(text: &str) -> Result<Vec<Instrument>, InstrumentError> {
    let root: Value = serde_json::from_str(text).map_err(|e| InstrumentError::Json(e.to_string()))?;
    let obj = root.as_object().ok_or("instrument data must be a JSON object")?;
    let mut out = if obj.get("channel").and_then(Value::as_str) == Some("instrument") {
        let pairs = obj
            .get("data")
            .and_then(|d| d.get("pairs"))
            .and_then(Value::as_array)
            .ok_or("instrument message has no data.pairs array")?;
        pairs.iter().map(instrument_from_v2).collect::<Result<Vec<_>, _>>()?
    } else if let Some(result) = obj.get("result") {
        if let Some(errors) = obj.get("error").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            return Err(InstrumentError::Kraken(Value::Array(errors.clone()).to_string()));
        }
        rest_pairs(result.as_object().ok_or("AssetPairs `result` must be an object")?)?
    } else if let Some(errors) = obj.get("error").and_then(Value::as_array).filter(|e| !e.is_empty()) {
        return Err(InstrumentError::Kraken(Value::Array(errors.clone()).to_string()));
    } else {
        rest_pairs(obj)?
    };
    out.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    out.dedup_by(|a, b| a.symbol == b.symbol);
    if out.is_empty() {
        return Err(InstrumentError::Empty);
    }
    Ok(out)
}

/// REST `result` object: pair key → pair info.
fn rest_pairs(result: &Map<String, Value>) -> Result<Vec<Instrument>, String> {
    let mut out = Vec::with_capacity(result.len());
    let mut seen = BTreeSet::new();
    for (key, info) in result {
        let Some(info) = info.as_object() else {
            return Err(format!("AssetPairs entry {key:?} is not an object"));
        };
        // Dark-pool pairs (`XXBTZUSD.d`) have no wsname and are not on the WebSocket.
        let Some(wsname) = info.get("wsname").and_then(Value::as_str) else { continue };
        let i = instrument_from_rest(key, wsname, info)?;
        if seen.insert(i.symbol.clone()) {
            out.push(i);
        }
    }
    Ok(out)
}

fn instrument_from_rest(key: &str, wsname: &str, info: &Map<String, Value>) -> Result<Instrument, String> {
    let symbol = v2_symbol(wsname);
    let (base, quote) = split_symbol(&symbol)
        .ok_or_else(|| format!("AssetPairs {key}: wsname {wsname:?} is not BASE/QUOTE"))?;
    let int = |field: &str| -> Result<Option<u32>, String> {
        match info.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|n| *n <= 28).map(Some).ok_or_else(
                    || format!("AssetPairs {key}: `{field}` must be a small non-negative integer, got {v}"),
                )
            }
        }
    };
    let pp = int("pair_decimals")?.ok_or_else(|| format!("AssetPairs {key}: `pair_decimals` missing"))?;
    let qp = int("lot_decimals")?.ok_or_else(|| format!("AssetPairs {key}: `lot_decimals` missing"))?;
    // 2021 responses have no cost_decimals: cost = price × qty carries at most pp + qp
    // decimals; cap at 10 (the largest cost_decimals in the 2026 dump).
    let cp = int("cost_decimals")?.unwrap_or((pp + qp).min(10));
    let dec = |field: &str| -> Result<Option<Decimal>, String> {
        info.get(field)
            .map(|v| decimal_of(v).map_err(|e| format!("AssetPairs {key}: `{field}`: {e}")))
            .transpose()
    };
    let marginable = info.get("leverage_buy").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let margin = margin_terms_from_rest(info).map_err(|e| format!("AssetPairs {key}: {e}"))?;
    Ok(Instrument {
        symbol: symbol.as_str().into(),
        base: base.into(),
        quote: quote.into(),
        status: info
            .get("status")
            .and_then(Value::as_str)
            .map_or(PairStatus::Online, PairStatus::from_kraken),
        price_precision: pp,
        qty_precision: qp,
        cost_precision: cp,
        price_increment: dec("tick_size")?.unwrap_or_else(|| step(pp)),
        qty_increment: step(qp),
        qty_min: dec("ordermin")?.unwrap_or(Decimal::ZERO),
        cost_min: dec("costmin")?.unwrap_or(Decimal::ZERO),
        marginable: marginable || margin.is_some(),
        margin,
    })
}

/// Margin terms of one REST AssetPairs entry: present when `leverage_sell` is non-empty
/// (the pair can be shorted); `margin_call` / `margin_stop` default to Kraken's 80 / 40 when
/// absent, `short_position_limit` is optional (older responses lack it).
pub fn margin_terms_from_rest(info: &Map<String, Value>) -> Result<Option<MarginTerms>, InstrumentError> {
    let small = |field: &str, v: &Value| -> Result<u32, String> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("`{field}` must hold non-negative integers, got {v}"))
    };
    let levs = match info.get("leverage_sell") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(format!("`leverage_sell` must be an array, got {v}").into()),
    };
    let mut max = 0;
    for v in levs {
        max = max.max(small("leverage_sell", v)?);
    }
    if max < 2 {
        return Ok(None);
    }
    let level = |field: &str, default: u32| -> Result<u32, String> {
        match info.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => small(field, v),
        }
    };
    let margin_call = level("margin_call", MarginTerms::KRAKEN_MARGIN_CALL)?;
    let margin_stop = level("margin_stop", MarginTerms::KRAKEN_MARGIN_STOP)?;
    let short_position_limit = match info.get("short_position_limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(decimal_of(v).map_err(|e| format!("`short_position_limit`: {e}"))?),
    };
    Ok(Some(MarginTerms { max_leverage_sell: max, margin_call, margin_stop, short_position_limit }))
}

/// Margin terms of one WS v2 `instrument` pair: present when `marginable` is true and
/// `margin_initial` is given (max leverage = ⌊1 / margin_initial⌋, e.g. 0.20 → 5). The
/// channel carries no margin call / liquidation levels: Kraken's 80 / 40 are used.
fn margin_terms_from_v2(
    obj: &Map<String, Value>,
    symbol: &str,
) -> Result<Option<MarginTerms>, InstrumentError> {
    if obj.get("marginable").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let Some(mi) = obj.get("margin_initial").filter(|v| !v.is_null()) else { return Ok(None) };
    let mi = decimal_of(mi).map_err(|e| format!("instrument {symbol}: `margin_initial`: {e}"))?;
    if mi <= Decimal::ZERO || mi > Decimal::ONE {
        return Err(format!("instrument {symbol}: `margin_initial` must be in (0, 1], got {mi}").into());
    }
    let lev = (Decimal::ONE / mi).floor();
    let max_leverage_sell = u32::try_from(lev.mantissa() / 10i128.pow(lev.scale())).unwrap_or(u32::MAX);
    if max_leverage_sell < 2 {
        return Ok(None);
    }
    let short_position_limit = match obj.get("position_limit_short") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(decimal_of(v).map_err(|e| format!("instrument {symbol}: `position_limit_short`: {e}"))?)
        }
    };
    Ok(Some(MarginTerms {
        max_leverage_sell,
        margin_call: MarginTerms::KRAKEN_MARGIN_CALL,
        margin_stop: MarginTerms::KRAKEN_MARGIN_STOP,
        short_position_limit,
    }))
}

/// One pair of a WS v2 `instrument` message.
pub(crate) fn instrument_from_v2(pair: &Value) -> Result<Instrument, InstrumentError> {
    let obj = pair.as_object().ok_or("instrument pair is not an object")?;
    let symbol = obj.get("symbol").and_then(Value::as_str).ok_or("instrument pair without `symbol`")?;
    let int = |field: &str| -> Result<Option<u32>, String> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= 28)
                .map(Some)
                .ok_or_else(|| {
                    format!("instrument {symbol}: `{field}` must be a small non-negative integer, got {v}")
                }),
        }
    };
    let pp =
        int("price_precision")?.ok_or_else(|| format!("instrument {symbol}: `price_precision` missing"))?;
    let qp = int("qty_precision")?.ok_or_else(|| format!("instrument {symbol}: `qty_precision` missing"))?;
    let cp = int("cost_precision")?.unwrap_or((pp + qp).min(10));
    let dec = |field: &str| -> Result<Option<Decimal>, String> {
        obj.get(field)
            .map(|v| decimal_of(v).map_err(|e| format!("instrument {symbol}: `{field}`: {e}")))
            .transpose()
    };
    let (sb, sq) = split_symbol(symbol).ok_or_else(|| format!("instrument {symbol:?} is not BASE/QUOTE"))?;
    let text = |field: &str, default: &str| -> Arc<str> {
        obj.get(field).and_then(Value::as_str).unwrap_or(default).into()
    };
    Ok(Instrument {
        symbol: symbol.into(),
        base: text("base", sb),
        quote: text("quote", sq),
        status: obj.get("status").and_then(Value::as_str).map_or(PairStatus::Online, PairStatus::from_kraken),
        price_precision: pp,
        qty_precision: qp,
        cost_precision: cp,
        // `tick_size` is the deprecated alias of `price_increment`.
        price_increment: match dec("price_increment")? {
            Some(d) => d,
            None => dec("tick_size")?.unwrap_or_else(|| step(pp)),
        },
        qty_increment: dec("qty_increment")?.unwrap_or_else(|| step(qp)),
        qty_min: dec("qty_min")?.unwrap_or(Decimal::ZERO),
        cost_min: dec("cost_min")?.unwrap_or(Decimal::ZERO),
        marginable: obj.get("marginable").and_then(Value::as_bool).unwrap_or(false),
        margin: margin_terms_from_v2(obj, symbol)?,
    })
}

/// 10^-n (the step of n decimals).
fn step(n: u32) -> Decimal {
    Decimal::new(1, n)
}

fn split_symbol(s: &str) -> Option<(&str, &str)> {
    s.split_once('/').filter(|(b, q)| !b.is_empty() && !q.is_empty())
}

/// A JSON number or decimal string as an exact Decimal (the number's own text is used).
pub(crate) fn decimal_of(v: &Value) -> Result<Decimal, InstrumentError> {
    match v {
        Value::Number(n) => parse_decimal(n.as_str()).map_err(|e| InstrumentError::Invalid(e.to_string())),
        Value::String(s) => parse_decimal(s).map_err(|e| InstrumentError::Invalid(e.to_string())),
        other => Err(InstrumentError::Invalid(format!("expected a number, got {other}"))),
    }
}

/// Why instrument data cannot be read (REST AssetPairs or a WS v2 `instrument` message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    /// The text is not JSON.
    #[error("instrument data is not valid JSON: {0}")]
    Json(String),
    /// AssetPairs answered with a non-empty `error` array (its JSON text).
    #[error("AssetPairs answered with errors: {0}")]
    Kraken(String),
    /// Nothing usable found.
    #[error("no instruments found (expected REST AssetPairs or a WS v2 instrument message)")]
    Empty,
    /// A pair or field that does not read; the message names the pair and the field (it is
    /// assembled from many parts, e.g. ``instrument BTC/USD: `qty_precision` missing``).
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for InstrumentError {
    fn from(message: String) -> Self {
        InstrumentError::Invalid(message)
    }
}

impl From<&str> for InstrumentError {
    fn from(message: &str) -> Self {
        InstrumentError::Invalid(message.to_string())
    }
}

impl crate::core::error::Classified for InstrumentError {
    /// Bad instrument data is refused (the file or message) and reported; the run's own
    /// start-up checks decide whether it can go on: [`Disposition::Recoverable`].
    ///
    /// [`Disposition::Recoverable`]: crate::core::error::Disposition::Recoverable
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            InstrumentError::Json(_)
            | InstrumentError::Kraken(_)
            | InstrumentError::Empty
            | InstrumentError::Invalid(_) => crate::core::error::Disposition::Recoverable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const REST: &str = r#"{"error":[],"result":{
      "XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD","cost_decimals":5,
        "pair_decimals":1,"lot_decimals":8,"ordermin":"0.00005","costmin":"0.5","tick_size":"0.1",
        "status":"online","leverage_buy":[2,3],"leverage_sell":[2,3,4,5,6,7,8,9,10],"margin_call":80,
        "margin_stop":40,"short_position_limit":250},
      "XXBTZUSD.d":{"altname":"XBTUSD.d","base":"XXBT","quote":"ZUSD","pair_decimals":1,"lot_decimals":8},
      "XDGUSD":{"altname":"XDGUSD","wsname":"XDG\/USD","base":"XXDG","quote":"ZUSD","pair_decimals":7,
        "lot_decimals":8,"ordermin":"13","leverage_buy":[]}}}"#;

    #[test]
    fn reads_rest_asset_pairs_with_envelope_and_maps_names() {
        let v = load_instruments(REST).unwrap();
        assert_eq!(v.len(), 2, "dark pool skipped");
        let btc = &v[0];
        assert_eq!(&*btc.symbol, "BTC/USD");
        assert_eq!((&*btc.base, &*btc.quote), ("BTC", "USD"));
        assert_eq!((btc.price_precision, btc.qty_precision, btc.cost_precision), (1, 8, 5));
        assert_eq!((btc.price_increment, btc.qty_increment), (dec!(0.1), dec!(0.00000001)));
        assert_eq!((btc.qty_min, btc.cost_min), (dec!(0.00005), dec!(0.5)));
        assert!(btc.marginable);
        let m = btc.margin.as_ref().unwrap();
        assert_eq!(
            (m.max_leverage_sell, m.margin_call, m.margin_stop, m.short_position_limit),
            (10, 80, 40, Some(dec!(250)))
        );
        let doge = &v[1];
        assert_eq!(&*doge.symbol, "DOGE/USD");
        // No tick_size (2021 shape): 10^-7; no cost_decimals: min(7 + 8, 10) = 10.
        assert_eq!((doge.price_increment, doge.cost_precision), (dec!(0.0000001), 10));
        assert!(!doge.marginable && doge.margin.is_none());
    }

    #[test]
    fn reads_rest_result_without_envelope() {
        let inner = REST.split_once(r#""result":"#).unwrap().1.trim_end().strip_suffix('}').unwrap();
        assert_eq!(load_instruments(inner).unwrap().len(), 2);
    }

    #[test]
    fn reads_ws_v2_instrument_message_with_exponent_increment() {
        let msg = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[
          {"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,
           "qty_increment":1E-8,"price_precision":1,"cost_precision":5,"marginable":true,
           "cost_min":0.50,"tick_size":0.1,"price_increment":0.1,"qty_min":0.00010000}]}}"#;
        let v = load_instruments(msg).unwrap();
        assert_eq!(v[0].qty_increment, dec!(0.00000001));
        assert_eq!(v[0].qty_min.scale(), 8, "wire scale kept");
        assert_eq!(v[0].cost_min, dec!(0.5));
        assert!(v[0].marginable && v[0].margin.is_none(), "no margin_initial: no short terms");
    }

    #[test]
    fn ws_v2_margin_initial_gives_the_short_leverage() {
        // Recorded 2024-03-29 (SOL/USD): margin_initial 0.25 → 4×, position_limit_short 24000.
        let msg = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[
          {"symbol":"SOL/USD","base":"SOL","quote":"USD","status":"online","qty_precision":8,
           "qty_increment":1e-08,"price_precision":2,"cost_precision":5,"marginable":true,
           "has_index":true,"cost_min":0.5,"margin_initial":0.25,"position_limit_long":37000,
           "position_limit_short":24000,"tick_size":0.01,"price_increment":0.01,"qty_min":0.05}]}}"#;
        let m = load_instruments(msg).unwrap()[0].margin.clone().unwrap();
        assert_eq!(
            (m.max_leverage_sell, m.margin_call, m.margin_stop, m.short_position_limit),
            (4, 80, 40, Some(dec!(24000)))
        );
        let bad = msg.replace("0.25", "-1");
        assert!(load_instruments(&bad).unwrap_err().to_string().contains("margin_initial"));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            load_instruments(r#"{"error":["EGeneral:Invalid arguments"]}"#)
                .unwrap_err()
                .to_string()
                .contains("EGeneral")
        );
        let bad = r#"{"XXBTZUSD":{"wsname":"XBT/USD","pair_decimals":"one","lot_decimals":8}}"#;
        let e = load_instruments(bad).unwrap_err().to_string();
        assert!(e.contains("XXBTZUSD") && e.contains("pair_decimals"), "{e}");
        assert!(load_instruments("[1]").is_err());
        assert!(load_instruments("{").unwrap_err().to_string().contains("not valid JSON"));
    }
}
