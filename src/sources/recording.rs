//! The `record` format, one line per frame: `{"ts":<Unix seconds, 6 decimals>,"dir":…,"msg":<frame>}`.
//! One writer for `record --source sim`, `record` from Kraken's WebSocket, and a live run's
//! own recording of its feed (`RUN_DIR/feed.jsonl`, which `run --resume` re-executes).
//!
//! `dir` is `sent` (a request we sent), `recv` (a frame received), and in a live run's
//! recording also `rest` (trades fetched over REST after a downtime, written as one WS v2
//! `trade` frame), `reconnect` (the connection was lost or the process restarted:
//! `{"attempt","reason"}`) and `gap_end` (the end of the REST catch-up:
//! `{"since","pairs_unfetched"}`). `msg` is the frame itself when it is one line of JSON,
//! else the frame as a JSON string (the decoder reads both).
//!
//! `ts` is the wall time of receipt (the clock exception of [`wall_micros`]): it says when a
//! frame arrived, it decides nothing.

use std::borrow::Cow;
use std::io::Write;

use crate::core::kraken::scan::Scan;
use crate::core::market::{Side, TradeEvent};
use crate::core::time::EventTime;

const MICROS_PER_SEC: i64 = 1_000_000;

/// Appends one record line. `msg` is embedded as JSON when `msg_is_json` (the caller knows
/// it is one line of valid JSON) or [`embeddable`] says so, else written as a JSON string.
pub fn write_line(
    w: &mut impl Write,
    ts_micros: i64,
    dir: &str,
    msg: &str,
    msg_is_json: bool,
) -> std::io::Result<()> {
    write!(
        w,
        r#"{{"ts":{}.{:06},"dir":"{dir}","msg":"#,
        ts_micros.div_euclid(MICROS_PER_SEC),
        ts_micros.rem_euclid(MICROS_PER_SEC)
    )?;
    if msg_is_json || embeddable(msg) {
        w.write_all(msg.as_bytes())?;
    } else {
        serde_json::to_writer(&mut *w, msg).map_err(std::io::Error::other)?;
    }
    w.write_all(b"}\n")
}

/// True when `msg` is one line of valid JSON (so it can stand as the `msg` value as sent).
pub fn embeddable(msg: &str) -> bool {
    !msg.contains(['\n', '\r']) && serde_json::from_str::<serde::de::IgnoredAny>(msg).is_ok()
}

/// One line of a recording, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLine<'a> {
    /// `ts` as written (Unix seconds).
    pub ts: &'a str,
    /// `dir`.
    pub dir: Cow<'a, str>,
    /// The frame, exactly as received (unwrapped if it was stored as a JSON string).
    pub msg: Cow<'a, str>,
}

/// Why recording (or reading a record line) failed. No variant has a `source()`: the text
/// is the whole message, as `record` prints it.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The recording file could not be created.
    #[error("cannot create recording {path}: {reason}")]
    Create {
        /// The recording's path, as displayed.
        path: String,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// Writing (or flushing, syncing) the recording failed.
    #[error("cannot write recording {path}: {reason}")]
    Write {
        /// The recording's path, as displayed.
        path: String,
        /// What the OS said.
        reason: std::io::Error,
    },
    /// A write failed while frames were being recorded (the frame consumer stops).
    #[error("recording write failed")]
    WriteFailed,
    /// A record line is not valid JSON where it was read.
    #[error("record line: {what} at byte {at}")]
    Scan {
        /// What was wrong.
        what: &'static str,
        /// Byte offset in the line.
        at: usize,
    },
    /// A record line is not a JSON object.
    #[error("record line: not a JSON object")]
    NotObject,
    /// A record line lacks one of its fields.
    #[error("record line: needs `ts`, `dir` and `msg`")]
    MissingField,
}

impl crate::core::error::Classified for RecordError {
    /// A recording that cannot be written ends the recording (or the run); a bad record
    /// line is a malformed input that the reader refuses.
    fn disposition(&self) -> crate::core::error::Disposition {
        use crate::core::error::Disposition;
        match self {
            RecordError::Create { .. } | RecordError::Write { .. } | RecordError::WriteFailed => {
                Disposition::Halt
            }
            RecordError::Scan { .. } | RecordError::NotObject | RecordError::MissingField => {
                Disposition::Recoverable
            }
        }
    }
}

/// Splits a record line into its parts without re-encoding the frame.
pub fn split_line(line: &str) -> Result<RecordLine<'_>, RecordError> {
    let err = |e: crate::core::kraken::scan::ScanError| RecordError::Scan { what: e.what, at: e.at };
    let mut s = Scan::new(line);
    let (mut ts, mut dir, mut msg) = (None, None, None);
    let mut first = true;
    if s.peek() != Some(b'{') {
        return Err(RecordError::NotObject);
    }
    while let Some(k) = s.key(&mut first).map_err(err)? {
        match k.raw {
            "ts" => ts = Some(s.number().map_err(err)?),
            "dir" => dir = Some(s.str().map_err(err)?.text()),
            "msg" => {
                let raw = s.skip().map_err(err)?;
                msg = Some(if raw.starts_with('"') {
                    Cow::Owned(Scan::new(raw).str().map_err(err)?.text().into_owned())
                } else {
                    Cow::Borrowed(raw)
                });
            }
            _ => {
                s.skip().map_err(err)?;
            }
        }
    }
    match (ts, dir, msg) {
        (Some(ts), Some(dir), Some(msg)) => Ok(RecordLine { ts, dir, msg }),
        _ => Err(RecordError::MissingField),
    }
}

/// Wall time now in Unix microseconds: the `ts` of a recorded frame.
pub fn wall_micros() -> i64 {
    // The clock exception of recordings: `ts` is the local receive time by definition
    // (docs/market-data.md, "Record format"); nothing journaled or decided reads it.
    #[allow(clippy::disallowed_methods)]
    let now = chrono::Utc::now();
    now.timestamp_micros()
}

/// Trades (from REST `Trades`) as one WS v2 `trade` update frame, so that they go through the
/// same decoder as the live feed: `{"channel":"trade","type":"update","data":[{"symbol",
/// "side","price","qty","ord_type","trade_id","timestamp"}…]}`.
pub fn trades_frame(trades: &[TradeEvent]) -> String {
    let data: Vec<String> = trades
        .iter()
        .map(|t| {
            format!(
                r#"{{"symbol":"{}","side":"{}","price":{},"qty":{},"ord_type":"{}","trade_id":{},"timestamp":"{}"}}"#,
                t.symbol,
                if t.side == Side::Buy { "buy" } else { "sell" },
                t.price,
                t.qty,
                if t.market_order { "market" } else { "limit" },
                t.trade_id,
                t.time.to_rfc3339()
            )
        })
        .collect();
    format!(r#"{{"channel":"trade","type":"update","data":[{}]}}"#, data.join(","))
}

/// Keeps the trades after the last one the feed saw: a larger `trade_id` when both sides
/// carry one, else a later time (Kraken's `since` may repeat the trade at the cursor).
pub fn trades_after(trades: Vec<TradeEvent>, last: Option<(EventTime, u64)>) -> Vec<TradeEvent> {
    match last {
        None => trades,
        Some((time, id)) => trades
            .into_iter()
            .filter(|t| if id > 0 && t.trade_id > 0 { t.trade_id > id } else { t.time > time })
            .collect(),
    }
}

/// What `record` (from a WebSocket) does.
#[derive(Clone, Debug)]
pub struct LiveRecordSettings {
    /// The feed: `wss://ws.kraken.com/v2` (or a mock on 127.0.0.1), pairs, depth, liveness
    /// and reconnect backoff.
    pub endpoint: crate::core::kraken::endpoint::WsEndpoint,
    /// Stop after this many book and trade events.
    pub events: Option<u64>,
    /// Stop after this much wall time.
    pub duration: Option<std::time::Duration>,
}

/// What a recording session wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSummary {
    /// Lines written.
    pub lines: u64,
    /// Book and trade events in the frames received.
    pub events: u64,
    /// Connections made.
    pub connections: u64,
}

/// `record --source kraken`: records the WebSocket feed into `out` in the `record` format —
/// the subscriptions sent, every frame received (status, acks, instrument snapshot, books,
/// trades, tickers, pongs) — until `events` or `duration` is reached or SIGINT/SIGTERM comes.
/// A lost connection is reconnected with backoff and recording goes on (the new connection's
/// subscriptions and snapshots are recorded too). A book checksum mismatch resubscribes that
/// pair's book, as the engine's feed does, so the recording stays replayable.
pub async fn record_live(
    s: &LiveRecordSettings,
    out: &std::path::Path,
) -> Result<RecordSummary, RecordError> {
    use std::cell::RefCell;
    use std::rc::Rc;

    use crate::core::kraken::decode::{self, FeedDecoder, FeedNotice};
    use crate::sources::kraken_ws::{ConnectionSettings, Flow, run_connection};

    let io = |e: std::io::Error| RecordError::Write { path: out.display().to_string(), reason: e };
    let file = std::fs::File::create(out)
        .map_err(|e| RecordError::Create { path: out.display().to_string(), reason: e })?;
    struct Rec {
        w: std::io::BufWriter<std::fs::File>,
        decoder: FeedDecoder,
        summary: RecordSummary,
        error: Option<std::io::Error>,
        req_id: u64,
    }
    let rec = Rc::new(RefCell::new(Rec {
        w: std::io::BufWriter::new(file),
        decoder: FeedDecoder::new(s.endpoint.depth),
        summary: RecordSummary::default(),
        error: None,
        req_id: 1000,
    }));
    let mut stop = StopSignals::new();
    let deadline = s.duration.map(|d| tokio::time::Instant::now() + d);
    let until_deadline = async move {
        match deadline {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let mut attempt: u32 = 0;
    let mut jitter = crate::core::rng::Rng::new(0x5EC0_4D00);
    loop {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let conn = ConnectionSettings::subscribing(&s.endpoint, 64);
        rec.borrow_mut().summary.connections += 1;
        let sent = |req: &str| {
            let mut r = rec.borrow_mut();
            if let Err(e) = write_line(&mut r.w, wall_micros(), "sent", req, false) {
                r.error.get_or_insert(e);
            }
        };
        let consume = |frames: Vec<tokio_tungstenite::tungstenite::Utf8Bytes>| {
            let mut guard = rec.borrow_mut();
            let r = &mut *guard;
            let ts = wall_micros();
            let (mut events, mut notices) = (Vec::new(), Vec::new());
            for f in &frames {
                if let Err(e) = write_line(&mut r.w, ts, "recv", f.as_str(), false) {
                    r.error.get_or_insert(e);
                }
                r.summary.lines += 1;
                r.decoder.decode(f.as_str(), &mut events, &mut notices);
            }
            for n in notices {
                if let FeedNotice::Resync { symbol, .. } = n {
                    r.req_id += 2;
                    tracing::warn!(event = "book_resync", actor = "record", pair = %symbol, "book checksum mismatch: resubscribing the pair's book");
                    for req in decode::resubscribe_book(&symbol, s.endpoint.depth, r.req_id) {
                        let _ = tx.send(req);
                    }
                }
            }
            r.summary.events = r.decoder.counters().events;
            let flushed = std::io::Write::flush(&mut r.w);
            let flow = if r.error.is_some() || flushed.is_err() {
                Err(RecordError::WriteFailed)
            } else if s.events.is_some_and(|n| r.summary.events >= n) {
                Ok(Flow::Stop)
            } else {
                Ok(Flow::Continue)
            };
            std::future::ready(flow)
        };
        let result = tokio::select! {
            biased;
            _ = stop.next() => None,
            _ = &mut until_deadline => None,
            r = run_connection(&conn, rx, sent, consume) => Some(r),
        };
        if let Some(e) = rec.borrow_mut().error.take() {
            return Err(io(e));
        }
        match result {
            None | Some(Ok(())) => break,
            Some(Err(e)) => {
                attempt += 1;
                let wait = s.endpoint.reconnect.delay(attempt, jitter.uniform());
                tracing::warn!(actor = "record", attempt, error = %e, backoff_ms = wait.as_millis() as u64, "connection lost; reconnecting");
                rec.borrow_mut().decoder.reset_books();
                tokio::select! {
                    biased;
                    _ = stop.next() => break,
                    _ = &mut until_deadline => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    let mut r = rec.borrow_mut();
    std::io::Write::flush(&mut r.w).map_err(io)?;
    r.w.get_ref().sync_all().map_err(io)?;
    let c = r.decoder.counters();
    tracing::info!(
        actor = "record",
        lines = r.summary.lines,
        events = c.events,
        checksums_verified = c.checksums_verified,
        checksum_mismatches = c.checksum_mismatches,
        "recording closed"
    );
    Ok(r.summary.clone())
}

/// SIGINT and SIGTERM, watched from the start (a signal before the first poll is not lost).
struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
    }

    async fn next(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.int) => {},
            _ = one(&mut self.term) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::core::kraken::decode::FeedDecoder;
    use crate::core::market::MarketEvent;

    fn line(ts: i64, dir: &str, msg: &str) -> String {
        let mut v = Vec::new();
        write_line(&mut v, ts, dir, msg, false).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn frames_are_embedded_as_sent_and_split_back_exactly() {
        let frame = r#"{"channel":"book","data":[{"price":50000.10,"qty":0.00010000}]}"#;
        let l = line(1_735_689_600_000_001, "recv", frame);
        assert_eq!(l, format!("{{\"ts\":1735689600.000001,\"dir\":\"recv\",\"msg\":{frame}}}\n"));
        let r = split_line(l.trim_end()).unwrap();
        assert_eq!((r.ts, &*r.dir, &*r.msg), ("1735689600.000001", "recv", frame));
    }

    #[test]
    fn frames_that_are_not_one_line_of_json_are_stored_as_strings() {
        for junk in ["not json {", "{\"a\":\n1}", ""] {
            let l = line(0, "recv", junk);
            assert!(serde_json::from_str::<serde_json::Value>(l.trim_end()).is_ok(), "{l}");
            assert_eq!(split_line(l.trim_end()).unwrap().msg, junk);
        }
        assert!(split_line("[1,2]").is_err());
        assert!(split_line(r#"{"ts":1,"dir":"recv"}"#).is_err());
    }

    #[test]
    fn rest_trades_become_a_v2_frame_the_decoder_reads_back_exactly() {
        let t = |id: u64, secs: i64, price, qty, side, market| TradeEvent {
            symbol: "BTC/USD".into(),
            time: EventTime::from_micros(secs * 1_000_000 + 250),
            side,
            price,
            qty,
            trade_id: id,
            market_order: market,
        };
        let trades = vec![
            t(7, 1_735_689_700, dec!(49999.5), dec!(0.01000000), Side::Sell, true),
            t(8, 1_735_689_701, dec!(50000.0), dec!(0.5), Side::Buy, false),
        ];
        let mut dec_ = FeedDecoder::new(10);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        dec_.decode(&trades_frame(&trades), &mut events, &mut notices);
        assert!(notices.is_empty(), "{notices:?}");
        let back: Vec<TradeEvent> = events
            .into_iter()
            .map(|e| match e {
                MarketEvent::Trade(t) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(back, trades);
    }

    #[test]
    fn only_trades_after_the_last_seen_one_are_kept() {
        let t = |id: u64, secs: i64| TradeEvent {
            symbol: "BTC/USD".into(),
            time: EventTime::from_micros(secs * 1_000_000),
            side: Side::Buy,
            price: dec!(1),
            qty: dec!(1),
            trade_id: id,
            market_order: false,
        };
        let ids = |v: Vec<TradeEvent>| v.iter().map(|t| t.trade_id).collect::<Vec<_>>();
        // By id: trade 5 (the cursor, same second as 6) is dropped, 6 kept.
        assert_eq!(
            ids(trades_after(
                vec![t(5, 10), t(6, 10), t(7, 11)],
                Some((EventTime::from_micros(10_000_000), 5))
            )),
            [6, 7]
        );
        // Without ids (old rows): by time.
        assert_eq!(
            ids(trades_after(vec![t(0, 10), t(0, 11)], Some((EventTime::from_micros(10_000_000), 0)))),
            [0]
        );
        assert_eq!(ids(trades_after(vec![t(1, 1)], None)), [1]);
    }
}
