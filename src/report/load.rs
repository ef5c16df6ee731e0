//! Reads a journal into the typed facts the report and the exports need.
//!
//! The journal is the only input. A torn last line (crash or a run still writing) is left
//! out and reported; corruption in the middle is an error. Unknown record types are
//! ignored, so older readers keep working when the engine journals more.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::ReportError;
use crate::core::execution::ClosedTrade;
use crate::core::journal::{StoredRecord, TornTail, scan};
use crate::core::money::parse_decimal;
use crate::core::orders::Fill;
use crate::core::time::EventTime;

/// One `run_started` record (a resumed run has one per session).
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub seq: u64,
    pub time: EventTime,
    pub body: Map<String, Value>,
}

/// A `fill` record.
#[derive(Clone, Debug)]
pub(crate) struct FillRec {
    pub seq: u64,
    pub fill: Fill,
}

/// A `feed_gap` record.
#[derive(Clone, Debug, Default)]
pub(crate) struct GapRec {
    /// Trades applied, all pairs.
    pub trades: u64,
    /// Event sequence numbers of the first and last gap trade (None: no trades).
    pub seqs: Option<(u64, u64)>,
}

/// An `equity` record.
#[derive(Clone, Debug)]
pub(crate) struct EquityRec {
    pub seq: u64,
    pub time: EventTime,
    pub equity: Decimal,
    pub cash: Option<Decimal>,
    pub unrealized: Option<Decimal>,
    pub open_positions: Option<u64>,
    pub drawdown: Option<f64>,
}

/// A `position` record: the pair's signed quantity after a change.
#[derive(Clone, Debug)]
pub(crate) struct PositionRec {
    pub time: EventTime,
    pub pair: String,
    pub qty: Decimal,
}

/// Everything read from one journal.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunData {
    /// Complete records read.
    pub records: usize,
    /// The cut-off tail, if any.
    pub torn: Option<TornTail>,
    pub sessions: Vec<Session>,
    pub first_time: Option<EventTime>,
    pub last_time: Option<EventTime>,
    pub fills: Vec<FillRec>,
    pub trades: Vec<ClosedTrade>,
    /// `order`, `order_rejected`, `order_triggered`, `order_canceled`, `order_amended`, in
    /// journal order.
    pub order_events: Vec<StoredRecord>,
    /// Σ `margin_fee` fees (quote currency of each pair).
    pub margin_fees: Decimal,
    /// `margin_call` records.
    pub margin_calls: u64,
    /// `margin_liquidation` records.
    pub liquidations: u64,
    pub positions: Vec<PositionRec>,
    pub equity: Vec<EquityRec>,
    /// Reason codes of `risk_refusal` records.
    pub refusals: Vec<String>,
    pub emergency_stops: Vec<StoredRecord>,
    /// `order_fate_unknown` records (live resume: orders the missed trades touched whose
    /// outcome cannot be known).
    pub fate_unknown: Vec<StoredRecord>,
    /// `feed_gap` records (live runs: the gaps filled over REST after reconnects and on
    /// resume): trades applied, and the sequence numbers of the first and last.
    pub gaps: Vec<GapRec>,
    pub halts_lifted: u64,
    pub signal_decisions: u64,
    /// Latest `signal_weights`.
    pub signal_weights: BTreeMap<String, f64>,
    /// Latest `exec_stats`.
    pub exec_stats: Option<Map<String, Value>>,
    /// Latest `feed_stats` of each session that wrote one.
    pub feed_stats: Vec<Map<String, Value>>,
    /// Latest `risk_metrics`.
    pub risk_metrics: Option<Map<String, Value>>,
    /// Latest `run_ended`.
    pub run_ended: Option<StoredRecord>,
    /// True when the last session ended with `run_ended` (false: crashed or still running).
    pub ended: bool,
}

impl RunData {
    /// The first session's `run_started` fields (empty without one).
    pub fn start(&self) -> Option<&Map<String, Value>> {
        self.sessions.first().map(|s| &s.body)
    }
    /// Account currency from `run_started`.
    pub fn currency(&self) -> Option<&str> {
        self.start().and_then(|b| b.get("currency")).and_then(Value::as_str)
    }
    /// Starting equity from `run_started`, else the first equity snapshot.
    pub fn starting_equity(&self) -> Option<Decimal> {
        self.start()
            .and_then(|b| b.get("starting_equity"))
            .and_then(decimal)
            .or(self.equity.first().map(|e| e.equity))
    }
    /// Annual risk-free rate (fraction; 0 when absent).
    pub fn risk_free_rate(&self) -> f64 {
        self.start().and_then(|b| b.get("risk_free_rate")).and_then(float).unwrap_or(0.0)
    }
}

/// Reads and scans the journal at `path`.
pub(crate) fn load_path(path: &Path) -> Result<RunData, ReportError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ReportError::ReadJournal { path: path.to_path_buf(), error: e.to_string() })?;
    load_bytes(&bytes).map_err(|e| ReportError::InJournal { path: path.to_path_buf(), error: Box::new(e) })
}

/// Scans journal bytes.
pub(crate) fn load_bytes(bytes: &[u8]) -> Result<RunData, ReportError> {
    let scanned = scan(bytes)?;
    let mut d = RunData { records: scanned.records.len(), torn: scanned.torn, ..RunData::default() };
    let mut session_feed: Option<Map<String, Value>> = None;
    // `run_started` is written before the first market event, at event time zero (the run's
    // clock starts at the first event carrying exchange time): such a session starts at the
    // next record with a real event time, not in 1970.
    let mut untimed_session: Option<usize> = None;
    for rec in scanned.records {
        if rec.event_time > EventTime::ZERO {
            if let Some(i) = untimed_session.take() {
                d.sessions[i].time = rec.event_time;
            }
            d.first_time.get_or_insert(rec.event_time);
        }
        d.last_time = Some(d.last_time.map_or(rec.event_time, |t| t.max(rec.event_time)));
        match rec.kind.as_str() {
            "run_started" => {
                d.feed_stats.extend(session_feed.take());
                d.ended = false;
                if rec.event_time == EventTime::ZERO {
                    untimed_session = Some(d.sessions.len());
                }
                d.sessions.push(Session { seq: rec.seq, time: rec.event_time, body: rec.body });
            }
            "run_ended" => {
                d.ended = true;
                d.run_ended = Some(rec);
            }
            "fill" => {
                let fill: Fill = rec.parse()?;
                d.fills.push(FillRec { seq: rec.seq, fill });
            }
            "trade_closed" => d.trades.push(rec.parse()?),
            "order" | "order_rejected" | "order_triggered" | "order_canceled" | "order_amended" => {
                d.order_events.push(rec)
            }
            "margin_fee" => {
                d.margin_fees += rec.body.get("fee").and_then(decimal).unwrap_or_default();
            }
            "margin_call" => d.margin_calls += 1,
            "margin_liquidation" => d.liquidations += 1,
            "position" => {
                let time = rec.body.get("time").and_then(time_of).unwrap_or(rec.event_time);
                let pair = rec.body.get("pair").and_then(Value::as_str).unwrap_or("").to_string();
                let qty = rec.body.get("qty").and_then(decimal).unwrap_or(Decimal::ZERO);
                d.positions.push(PositionRec { time, pair, qty });
            }
            // A snapshot before the first market event (event time zero) is the starting
            // equity again, dated 1970: the session's start point already stands for it.
            "equity" if rec.event_time == EventTime::ZERO => {}
            "equity" => {
                let Some(equity) = rec.body.get("equity").and_then(decimal) else {
                    return Err(ReportError::NoEquity { seq: rec.seq });
                };
                let b = &rec.body;
                d.equity.push(EquityRec {
                    seq: rec.seq,
                    time: rec.event_time,
                    equity,
                    cash: b.get("cash").and_then(decimal),
                    unrealized: b.get("unrealized").and_then(decimal),
                    open_positions: b.get("open_positions").and_then(Value::as_u64),
                    drawdown: b.get("drawdown").and_then(float),
                });
            }
            "risk_refusal" => {
                let reason = rec.body.get("reason").and_then(Value::as_str).unwrap_or("unknown");
                d.refusals.push(reason.to_string());
            }
            "emergency_stop" => d.emergency_stops.push(rec),
            "order_fate_unknown" => d.fate_unknown.push(rec),
            "feed_gap" => {
                let b = &rec.body;
                let trades = b.get("trades").and_then(Value::as_object);
                let seq = |k: &str| b.get(k).and_then(Value::as_u64);
                d.gaps.push(GapRec {
                    trades: trades.map_or(0, |t| t.values().filter_map(Value::as_u64).sum()),
                    seqs: seq("first_seq").zip(seq("last_seq")),
                });
            }
            "halt_lifted" => d.halts_lifted += 1,
            "signal_decision" => d.signal_decisions += 1,
            "signal_weights" => {
                if let Some(Value::Object(w)) = rec.body.get("weights") {
                    d.signal_weights = w.iter().filter_map(|(k, v)| Some((k.clone(), float(v)?))).collect();
                }
            }
            "exec_stats" => d.exec_stats = Some(rec.body),
            "feed_stats" => session_feed = Some(rec.body),
            "risk_metrics" => d.risk_metrics = Some(rec.body),
            _ => {}
        }
    }
    d.feed_stats.extend(session_feed);
    if d.first_time.is_none() && d.records > 0 {
        d.first_time = Some(EventTime::ZERO);
    }
    Ok(d)
}

/// A decimal from a JSON string (`"50000.10"`) or number, digits kept.
pub(crate) fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => parse_decimal(s).ok(),
        Value::Number(n) => parse_decimal(&n.to_string()).ok(),
        _ => None,
    }
}

/// A float from a JSON number or numeric string.
pub(crate) fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// An event time from an RFC 3339 string.
pub(crate) fn time_of(v: &Value) -> Option<EventTime> {
    v.as_str().and_then(|s| EventTime::parse_rfc3339(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::journal::{Entry, encode};
    use serde_json::json;

    #[test]
    fn records_at_event_time_zero_do_not_date_the_run_from_1970() {
        // The engine journals run_started before any market event, at event time 0; the
        // session (and the run) start at the first equity snapshot, t = 1 000 s, not 1970.
        let t = EventTime::from_micros(1_000_000_000);
        let mut bytes = Vec::new();
        encode(
            1,
            &Entry::new(EventTime::ZERO, "run_started", &json!({"starting_equity": "100"})),
            &mut bytes,
        );
        encode(2, &Entry::new(EventTime::ZERO, "equity", &json!({"equity": "100"})), &mut bytes);
        encode(3, &Entry::new(t, "equity", &json!({"equity": "100"})), &mut bytes);
        let d = load_bytes(&bytes).unwrap();
        assert_eq!(d.sessions[0].time, t);
        assert_eq!(d.first_time, Some(t));
        // The untimed snapshot is left out of the curve: one point, at t.
        assert_eq!(d.equity.len(), 1);
        assert_eq!(d.equity[0].time, t);
    }
}
