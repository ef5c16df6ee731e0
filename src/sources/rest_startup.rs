//! Live runs: what only Kraken's REST API has, fetched at start-up through the RateLimiter
//! and handed to the MarketFeed as lines of the run's recording (`feed.jsonl`), so that the
//! feed applies them at a defined point of the event stream and `run --resume` re-executes
//! them at the same point:
//!
//! - `fees` lines — a pair's fee schedule from AssetPairs (`fees`, `fees_maker`,
//!   `fee_volume_currency`): `{"pair":"BTC/USD","fees":[["0","0.40"],…],"fees_maker":[…],
//!   "fee_volume_currency":"ZUSD"}`. The feed turns one into a `MarketEvent::FeeSchedule`
//!   that PositionBook's paper exchange applies (and journals as `fee_schedule`). AssetPairs
//!   is retried in the background, with backoff, until it answers: an unreachable REST API
//!   never stops trading on the WS feed (the built-in schedule applies until then).
//! - `ohlc` lines — closed candles for the signal models' warm-up, per pair and Kraken
//!   interval: `{"pair":"BTC/USD","interval":1,"candles":[[1688671200,"30306.1"],…]}`
//!   (candle open time in Unix seconds, close). The feed turns one into a
//!   `MarketEvent::History`; each signal actor hands it to its model
//!   (`SignalModel::warm_up`). The feed waits for them at most `feed.warmup.timeout_ms`
//!   before its first connection; what comes later is dropped (the run trades cold).
//!
//! The live feed applies exactly the text it records (parsed by [`parse_line`]), so a
//! re-execution cannot differ from the live run.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::core::execution::PairFees;
use crate::core::instrument::Symbol;
use crate::core::market::{MarketEvent, PriceHistory};
use crate::core::time::EventTime;
use crate::sources::kraken_rest::{AssetPair, KrakenRest, Ohlc};

/// Recording `dir` of a fee schedule line.
pub const FEES_DIR: &str = "fees";
/// Recording `dir` of a warm-up candles line.
pub const OHLC_DIR: &str = "ohlc";

/// A `fees` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeLine {
    /// WS v2 symbol.
    pub pair: String,
    /// Taker rows `(30-day volume, percent)`.
    pub fees: Vec<(Decimal, Decimal)>,
    /// Maker rows.
    pub fees_maker: Vec<(Decimal, Decimal)>,
    /// Currency of the thresholds (`ZUSD`).
    pub fee_volume_currency: String,
}

/// An `ohlc` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OhlcLine {
    /// WS v2 symbol.
    pub pair: String,
    /// Kraken interval, minutes.
    pub interval: u32,
    /// `(open time, Unix seconds; close)`, oldest first, closed candles only.
    pub candles: Vec<(i64, Decimal)>,
}

/// One line for the feed: its recording `dir` and `msg` (one line of JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestLine {
    /// [`FEES_DIR`] or [`OHLC_DIR`].
    pub dir: &'static str,
    /// The line's JSON text.
    pub msg: String,
}

/// Why a start-up REST line could not be made or applied. No variant has a `source()`.
#[derive(Debug, thiserror::Error)]
pub enum RestStartupError {
    /// Kraken's fee schedule cannot be applied: the fee table's own message.
    #[error("{0}")]
    Fees(crate::core::fees::FeeError),
    /// A line could not be encoded as JSON.
    #[error("{0}")]
    Encode(serde_json::Error),
    /// A recorded `fees` line is not the JSON of one.
    #[error("`fees` line: {0}")]
    FeesLine(serde_json::Error),
    /// A recorded `fees` line's schedule is refused.
    #[error("`fees` line for {pair}: {reason}")]
    FeesRefused {
        /// The line's pair.
        pair: String,
        /// The fee table's refusal.
        reason: crate::core::fees::FeeError,
    },
    /// A recorded `ohlc` line is not the JSON of one.
    #[error("`ohlc` line: {0}")]
    OhlcLine(serde_json::Error),
    /// A candle's open time is out of range.
    #[error("`ohlc` line for {pair}: time {open} out of range")]
    OhlcTime {
        /// The line's pair.
        pair: String,
        /// The candle's open time (Unix seconds).
        open: i64,
    },
    /// The candles are not in time order.
    #[error("`ohlc` line for {pair}: candles not in time order at {open}")]
    OhlcOrder {
        /// The line's pair.
        pair: String,
        /// The first out-of-order open time (Unix seconds).
        open: i64,
    },
    /// The REST call for the line failed.
    #[error("{0}")]
    Rest(crate::core::kraken::rest::RestError),
    /// The line's `dir` is neither `fees` nor `ohlc`.
    #[error("not a REST line: dir {0:?}")]
    NotRestLine(String),
}

impl crate::core::error::Classified for RestStartupError {
    /// Live, a refused fee schedule keeps the built-in one (recoverable); a recorded line that
    /// cannot be applied ends the run (the caller halts); a line that cannot be encoded is a bug.
    fn disposition(&self) -> crate::core::error::Disposition {
        use crate::core::error::Disposition;
        match self {
            RestStartupError::Fees(_) => Disposition::Recoverable,
            RestStartupError::Rest(e) => e.disposition(),
            RestStartupError::Encode(_)
            | RestStartupError::FeesLine(_)
            | RestStartupError::FeesRefused { .. }
            | RestStartupError::OhlcLine(_)
            | RestStartupError::OhlcTime { .. }
            | RestStartupError::OhlcOrder { .. }
            | RestStartupError::NotRestLine(_) => Disposition::Halt,
        }
    }
}

/// The `fees` line for `pair`, checked: `Err` when Kraken's schedule cannot be applied
/// (the built-in one is kept).
pub fn fee_line(pair: &str, ap: &AssetPair) -> Result<RestLine, RestStartupError> {
    PairFees::new(ap.fees_taker.clone(), ap.fees_maker.clone(), &ap.fee_volume_currency)
        .map_err(RestStartupError::Fees)?;
    let line = FeeLine {
        pair: pair.to_string(),
        fees: ap.fees_taker.clone(),
        fees_maker: ap.fees_maker.clone(),
        fee_volume_currency: ap.fee_volume_currency.clone(),
    };
    Ok(RestLine { dir: FEES_DIR, msg: serde_json::to_string(&line).map_err(RestStartupError::Encode)? })
}

/// The `ohlc` line for `pair`: Kraken's last candle is still open and is left out.
pub fn ohlc_line(pair: &str, interval: u32, ohlc: &Ohlc) -> Result<RestLine, RestStartupError> {
    let closed = ohlc.candles.len().saturating_sub(1);
    let candles =
        ohlc.candles[..closed].iter().map(|c| (c.time.as_micros().div_euclid(1_000_000), c.close)).collect();
    let line = OhlcLine { pair: pair.to_string(), interval, candles };
    Ok(RestLine { dir: OHLC_DIR, msg: serde_json::to_string(&line).map_err(RestStartupError::Encode)? })
}

/// What a line becomes in the pipeline, plus a summary for the journal (`ohlc` lines: the
/// `ohlc_warmup` record; a fee schedule is journaled by PositionBook as `fee_schedule`).
#[derive(Debug)]
pub struct Applied {
    /// The event, stamped `time`.
    pub event: MarketEvent,
    /// The `ohlc_warmup` record's body, for candles.
    pub warmup_record: Option<serde_json::Value>,
}

/// Parses a recorded `fees` / `ohlc` line into its event at `time` (the feed's last event
/// time). Every check of the live path is made again, so a hand-edited recording is refused
/// rather than applied.
pub fn parse_line(dir: &str, msg: &str, time: EventTime) -> Result<Applied, RestStartupError> {
    match dir {
        FEES_DIR => {
            let l: FeeLine = serde_json::from_str(msg).map_err(RestStartupError::FeesLine)?;
            let fees = PairFees::new(l.fees, l.fees_maker, &l.fee_volume_currency)
                .map_err(|reason| RestStartupError::FeesRefused { pair: l.pair.clone(), reason })?;
            let symbol: Symbol = l.pair.as_str().into();
            Ok(Applied {
                event: MarketEvent::FeeSchedule { symbol, time, fees: Arc::new(fees) },
                warmup_record: None,
            })
        }
        OHLC_DIR => {
            let l: OhlcLine = serde_json::from_str(msg).map_err(RestStartupError::OhlcLine)?;
            let step = i64::from(l.interval) * 60_000_000;
            let mut closes = Vec::with_capacity(l.candles.len());
            for (open, close) in &l.candles {
                let end = open
                    .checked_mul(1_000_000)
                    .and_then(|us| us.checked_add(step - 1))
                    .ok_or_else(|| RestStartupError::OhlcTime { pair: l.pair.clone(), open: *open })?;
                if closes.last().is_some_and(|(t, _): &(EventTime, Decimal)| t.as_micros() >= end) {
                    return Err(RestStartupError::OhlcOrder { pair: l.pair.clone(), open: *open });
                }
                closes.push((EventTime::from_micros(end), *close));
            }
            let record = serde_json::json!({
                "pair": l.pair,
                "interval_minutes": l.interval,
                "candles": closes.len(),
                "first_close": closes.first().map(|c| c.0.to_rfc3339()),
                "last_close": closes.last().map(|c| c.0.to_rfc3339()),
            });
            let history = PriceHistory { interval_minutes: l.interval, closes };
            let symbol: Symbol = l.pair.as_str().into();
            Ok(Applied {
                event: MarketEvent::History { symbol, time, history: Arc::new(history) },
                warmup_record: Some(record),
            })
        }
        other => Err(RestStartupError::NotRestLine(other.to_string())),
    }
}

/// The feed's side of the start-up fetch (see [`spawn`]).
pub struct RestStartup {
    /// `fees` lines, whenever AssetPairs answers (once).
    pub fees: mpsc::UnboundedReceiver<Vec<RestLine>>,
    /// `ohlc` lines for the warm-up, if one was asked for.
    pub warmup: Option<oneshot::Receiver<Vec<RestLine>>>,
    /// How long the feed waits for the warm-up before its first connection.
    pub warmup_timeout: Duration,
}

/// Starts the start-up fetch in the background (on the current actix arbiter): AssetPairs
/// until it answers (retried with backoff, 2 s doubling to 5 min; ordermin/costmin logged;
/// the fee schedules sent as `fees` lines), then — when `warmup` lists Kraken intervals and
/// the feed still waits — OHLC per pair and interval, then SystemStatus (logged).
pub fn spawn(
    rest: KrakenRest,
    pairs: Vec<String>,
    warmup: BTreeSet<u32>,
    warmup_timeout: Duration,
) -> RestStartup {
    let (fees_tx, fees_rx) = mpsc::unbounded_channel();
    let (warm_tx, warm_rx) = match warmup.is_empty() {
        true => (None, None),
        false => {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        }
    };
    actix::spawn(async move {
        let mut wait = Duration::from_secs(2);
        let pairs_info = loop {
            match rest.asset_pairs().await {
                Ok(ap) => break ap,
                Err(e) => tracing::warn!(
                    actor = "rest_startup",
                    error = %e,
                    retry_in_s = wait.as_secs(),
                    "Kraken REST AssetPairs failed; the built-in fee schedule applies; retrying in the background"
                ),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        };
        let mut lines = Vec::new();
        for p in &pairs {
            let Some(a) = pairs_info.get(p) else {
                tracing::error!(actor = "rest_startup", pair = %p, "pair unknown to Kraken REST AssetPairs");
                continue;
            };
            tracing::info!(
                actor = "rest_startup",
                pair = %p,
                ordermin = %a.instrument.qty_min,
                costmin = %a.instrument.cost_min,
                taker_fee_pct = %a.fees_taker.first().map(|r| r.1).unwrap_or_default(),
                maker_fee_pct = %a.fees_maker.first().map(|r| r.1).unwrap_or_default(),
                "Kraken REST AssetPairs"
            );
            match fee_line(p, a) {
                Ok(l) => lines.push(l),
                Err(e) => tracing::warn!(
                    actor = "rest_startup",
                    pair = %p,
                    error = %e,
                    "Kraken's fee schedule for the pair cannot be applied; the built-in one is kept"
                ),
            }
        }
        let _ = fees_tx.send(lines);
        if let Some(tx) = warm_tx {
            send_warmup(&rest, &pairs, &warmup, tx).await;
        }
        // Informational only, after what the feed waits for.
        match rest.system_status().await {
            Ok(s) => tracing::info!(actor = "rest_startup", status = ?s.status, "Kraken REST SystemStatus"),
            Err(e) => tracing::warn!(actor = "rest_startup", error = %e, "Kraken REST SystemStatus failed"),
        }
    });
    RestStartup { fees: fees_rx, warmup: warm_rx, warmup_timeout }
}

/// OHLC per pair and interval while the feed still waits; sent as `ohlc` lines.
async fn send_warmup(
    rest: &KrakenRest,
    pairs: &[String],
    warmup: &BTreeSet<u32>,
    tx: oneshot::Sender<Vec<RestLine>>,
) {
    let mut lines = Vec::new();
    'fetch: for p in pairs {
        for &interval in warmup {
            if tx.is_closed() {
                break 'fetch;
            }
            match rest
                .ohlc(p, interval, None)
                .await
                .map_err(RestStartupError::Rest)
                .and_then(|o| ohlc_line(p, interval, &o))
            {
                Ok(l) => lines.push(l),
                Err(e) => tracing::warn!(
                    actor = "rest_startup",
                    pair = %p,
                    interval_minutes = interval,
                    error = %e,
                    "Kraken REST OHLC failed; the pair's models start cold"
                ),
            }
        }
    }
    if tx.send(lines).is_err() {
        tracing::warn!(
            actor = "rest_startup",
            "OHLC history arrived after feed.warmup.timeout_ms; not applied (the run trades cold)"
        );
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::core::orders::Liquidity;

    #[test]
    fn fee_lines_round_trip_into_the_schedule_event() {
        let msg = r#"{"pair":"BTC/USD","fees":[["0","0.40"],["10000","0.35"]],"fees_maker":[["0","0.25"],["10000","0.20"]],"fee_volume_currency":"ZUSD"}"#;
        let a = parse_line(FEES_DIR, msg, EventTime::from_micros(5)).unwrap();
        let MarketEvent::FeeSchedule { symbol, time, fees } = a.event else { panic!("not a fee event") };
        assert_eq!((&*symbol, time), ("BTC/USD", EventTime::from_micros(5)));
        assert_eq!(fees.rate(dec!(10000), Liquidity::Maker), dec!(0.002));
        assert!(a.warmup_record.is_none());
        let bad = msg.replace("ZUSD", "XXBT");
        assert!(
            parse_line(FEES_DIR, &bad, EventTime::ZERO)
                .unwrap_err()
                .to_string()
                .contains("only applied in USD")
        );
    }

    #[test]
    fn ohlc_lines_become_close_times_at_the_end_of_each_candle() {
        let msg = r#"{"pair":"ETH/USD","interval":5,"candles":[[600,"10.5"],[900,"11"]]}"#;
        let a = parse_line(OHLC_DIR, msg, EventTime::ZERO).unwrap();
        let MarketEvent::History { history, .. } = a.event else { panic!("not history") };
        // 600 s + 5 min − 1 µs = 899.999999 s.
        assert_eq!(history.closes[0], (EventTime::from_micros(899_999_999), dec!(10.5)));
        assert_eq!(history.closes[1].0, EventTime::from_micros(1_199_999_999));
        assert_eq!(a.warmup_record.unwrap()["candles"], 2);
        let unordered = r#"{"pair":"ETH/USD","interval":5,"candles":[[900,"11"],[600,"10.5"]]}"#;
        assert!(
            parse_line(OHLC_DIR, unordered, EventTime::ZERO).unwrap_err().to_string().contains("time order")
        );
    }

    #[test]
    fn the_open_candle_is_left_out() {
        let candle = |t: i64, c: Decimal| crate::sources::kraken_rest::Candle {
            time: EventTime::from_micros(t * 1_000_000),
            open: c,
            high: c,
            low: c,
            close: c,
            vwap: c,
            volume: dec!(1),
            count: 1,
        };
        let ohlc = Ohlc {
            symbol: "BTC/USD".into(),
            candles: vec![candle(60, dec!(1)), candle(120, dec!(2)), candle(180, dec!(3))],
            last: 120,
        };
        let l = ohlc_line("BTC/USD", 1, &ohlc).unwrap();
        assert_eq!(l.dir, OHLC_DIR);
        let back: OhlcLine = serde_json::from_str(&l.msg).unwrap();
        assert_eq!(back.candles, [(60, dec!(1)), (120, dec!(2))]);
        assert!(crate::sources::recording::embeddable(&l.msg), "one line of JSON: {}", l.msg);
    }
}
