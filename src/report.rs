//! Reports and exports, built from the journal alone.
//!
//! - [`build_report`] reads `journal.jsonl` and returns report.json's content: top-level
//!   headline figures (`trades`, `fills`, `final_equity`, `return_pct`, …) and the sections
//!   `execution`, `risk`, `feed`, `per_pair`, `per_signal`, `stats`, `run`.
//! - [`write_reports`] writes `report.json` and a self-contained `report.html` (inline CSS
//!   and SVG, no external requests) into the run folder, each atomically.
//! - [`export()`] writes `trades`, `orders`, `fills` and `equity` as CSV or JSON.
//!
//! All of them work on a finished run, a run still writing its journal, and a crashed one
//! (the torn last line is left out). The same journal always gives byte-identical output:
//! JSON objects are `BTreeMap`s (sorted keys) and nothing reads the wall clock. Money is
//! written as exact JSON numbers (the decimal's digits); statistics are floats, and an
//! undefined statistic is `null`. Field meanings and formulas: docs/reporting.md.

pub mod export;
mod html;
mod load;
pub mod stats;
pub mod summary;

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

pub use crate::cli::ExportFormat;
pub use export::{ExportSummary, export};

use crate::core::money::to_f64;
use crate::core::orders::FillCause;
use crate::core::time::{EventTime, MICROS_PER_SEC};
use crate::run_dir::{RunDir, files};
use load::RunData;
use stats::EquityPoint;

/// Why a report or an export could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run folder has no journal, or a file in it could not be written.
    #[error("{0}")]
    RunDir(crate::run_dir::RunDirError),
    /// The journal file cannot be read.
    #[error("cannot read journal {}: {error}", path.display())]
    ReadJournal {
        /// The journal file.
        path: std::path::PathBuf,
        /// The I/O error's text.
        error: String,
    },
    /// The journal at `path` does not load (the error names the record).
    #[error("journal {}: {error}", path.display())]
    InJournal {
        /// The journal file.
        path: std::path::PathBuf,
        /// What is wrong in it.
        error: Box<ReportError>,
    },
    /// The journal is corrupt, or a record's fields do not match its type.
    #[error("{0}")]
    Journal(crate::core::journal::JournalError),
    /// An `equity` record without a decimal `equity` field.
    #[error("journal record seq {seq} (equity): no decimal `equity` field")]
    NoEquity {
        /// The record's seq.
        seq: u64,
    },
    /// The CSV writer failed (in memory: not expected).
    #[error("cannot write {table}.csv: {error}")]
    Csv {
        /// The table.
        table: &'static str,
        /// The writer's message.
        error: String,
    },
}

impl From<crate::run_dir::RunDirError> for ReportError {
    fn from(e: crate::run_dir::RunDirError) -> Self {
        ReportError::RunDir(e)
    }
}

impl From<crate::core::journal::JournalError> for ReportError {
    fn from(e: crate::core::journal::JournalError) -> Self {
        ReportError::Journal(e)
    }
}

impl crate::core::error::Classified for ReportError {
    /// A report that cannot be built or written ends the command (or the run's end) with an
    /// error: every variant is [`Disposition::Halt`](crate::core::error::Disposition::Halt).
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            ReportError::RunDir(_)
            | ReportError::ReadJournal { .. }
            | ReportError::InJournal { .. }
            | ReportError::Journal(_)
            | ReportError::NoEquity { .. }
            | ReportError::Csv { .. } => crate::core::error::Disposition::Halt,
        }
    }
}

/// Version of report.json's layout.
pub const REPORT_VERSION: u32 = 1;

/// Builds report.json's content from the journal at `journal_path`.
pub fn build_report(journal_path: &Path) -> Result<Value, ReportError> {
    let data = load::load_path(journal_path)?;
    Ok(report_from(&data))
}

/// Writes `report.json` and `report.html` into `run_dir` (each via temp file + rename) and
/// returns the report.
pub fn write_reports(run_dir: &Path) -> Result<Value, ReportError> {
    let dir = RunDir::open(run_dir)?;
    let data = load::load_path(&dir.journal())?;
    let mut report = report_from(&data);
    add_run_info(&mut report, &dir);
    let html = html::render(&report, &data);
    dir.write_atomic(files::REPORT, &to_json_bytes(&report))?;
    dir.write_atomic(files::REPORT_HTML, html.as_bytes())?;
    Ok(report)
}

/// Takes `feed.events_per_sec` from run.json (wall-clock facts the engine writes beside the
/// journal) when the journal's `feed_stats` did not carry it; a missing or unreadable
/// run.json leaves the report as the journal alone gives it.
fn add_run_info(report: &mut Value, dir: &RunDir) {
    let Ok(text) = std::fs::read_to_string(dir.file(files::RUN_INFO)) else { return };
    let Ok(info) = serde_json::from_str::<Value>(&text) else { return };
    if let Some(eps) = info.get("events_per_sec").filter(|v| v.is_number())
        && let Some(feed) = report.get_mut("feed").and_then(Value::as_object_mut)
        && feed.get("events_per_sec").is_none_or(Value::is_null)
    {
        feed.insert("events_per_sec".into(), eps.clone());
    }
}

/// Pretty JSON with a final newline (stable: keys are sorted).
pub(crate) fn to_json_bytes(v: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail (no non-string keys, no non-finite floats).
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A decimal as an exact JSON number (its digits and scale are kept).
pub(crate) fn dec(d: Decimal) -> Value {
    let s = d.to_string();
    match s.parse::<serde_json::Number>() {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(s),
    }
}

/// An optional decimal; `None` is `null`.
pub(crate) fn opt_dec(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, dec)
}

/// A float statistic; `None`, NaN and infinities are `null`.
pub(crate) fn num(x: Option<f64>) -> Value {
    x.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// An optional event time as RFC 3339; `None` is `null`.
fn time_value(t: Option<EventTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// The quote currency of a `BASE/QUOTE` pair.
pub(crate) fn quote_of(pair: &str) -> &str {
    pair.rsplit_once('/').map_or("", |(_, q)| q)
}

/// The equity curve: starting equity at the first `run_started`, every `equity` snapshot,
/// and the last `run_ended`'s final equity, sorted by event time (stable).
pub(crate) fn equity_points(d: &RunData) -> Vec<EquityPoint> {
    let mut pts = Vec::with_capacity(d.equity.len() + 2);
    if let (Some(s), Some(e)) = (d.sessions.first(), d.starting_equity()) {
        // `run_started` is written before the first market event, at time zero: the
        // starting equity then holds from the run's first event time.
        let time = if s.time > EventTime::ZERO { s.time } else { d.first_time.unwrap_or(s.time) };
        pts.push(EquityPoint { time, equity: to_f64(e) });
    }
    pts.extend(d.equity.iter().map(|e| EquityPoint { time: e.time, equity: to_f64(e.equity) }));
    if let Some(end) = &d.run_ended
        && let Some(fe) = end.body.get("final_equity").and_then(load::decimal)
    {
        pts.push(EquityPoint { time: end.event_time, equity: to_f64(fe) });
    }
    pts.sort_by_key(|p| p.time);
    pts
}

/// The equity curve on the statistics' grid ([`stats::ReturnGrid`], the sampling PositionBook
/// keeps for the dashboard): the span runs from the first curve point to the journal's last
/// event.
pub(crate) fn sample(points: &[EquityPoint], d: &RunData) -> stats::Sampled {
    let mut grid = stats::ReturnGrid::new();
    for p in points {
        grid.push(p.time, p.equity);
    }
    if let (Some(_), Some(t)) = (points.first(), d.last_time) {
        grid.extend_to(t);
    }
    grid.sampled()
}

/// Final equity: the latest (by seq) of the equity snapshots and `run_ended`, else the
/// starting equity.
fn final_equity(d: &RunData) -> Option<Decimal> {
    let snap = d.equity.last().map(|e| (e.seq, e.equity));
    let end =
        d.run_ended.as_ref().and_then(|r| Some((r.seq, r.body.get("final_equity").and_then(load::decimal)?)));
    match (snap, end) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b.1 } else { a.1 }),
        (a, b) => a.or(b).map(|x| x.1).or(d.starting_equity()),
    }
}

/// Open positions at the end: `run_ended.open_positions` when the last session ended
/// cleanly, else the pairs whose last `position` record is non-zero, else the last equity
/// snapshot's count.
fn open_positions(d: &RunData) -> u64 {
    if d.ended
        && let Some(n) =
            d.run_ended.as_ref().and_then(|r| r.body.get("open_positions")).and_then(Value::as_u64)
    {
        return n;
    }
    if !d.positions.is_empty() {
        let mut last: BTreeMap<&str, Decimal> = BTreeMap::new();
        for p in &d.positions {
            last.insert(&p.pair, p.qty);
        }
        return last.values().filter(|q| !q.is_zero()).count() as u64;
    }
    d.equity.last().and_then(|e| e.open_positions).unwrap_or(0)
}

/// Intervals with at least one open position: from `position` records, or from the closed
/// trades' entry/exit times when the journal has no position records.
fn exposure_intervals(d: &RunData, end: EventTime) -> Vec<(EventTime, EventTime)> {
    if d.positions.is_empty() {
        return d.trades.iter().map(|t| (t.entry_time, t.exit_time)).collect();
    }
    let changes: Vec<(EventTime, &str, bool)> =
        d.positions.iter().map(|p| (p.time, p.pair.as_str(), !p.qty.is_zero())).collect();
    stats::open_intervals(&changes, end)
}

fn trade_stats_json(s: &stats::TradeStats) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("trades".into(), json!(s.trades));
    m.insert("wins".into(), json!(s.wins));
    m.insert("losses".into(), json!(s.losses));
    m.insert("breakeven".into(), json!(s.breakeven));
    m.insert("win_rate".into(), num(s.win_rate));
    m.insert("profit_factor".into(), num(s.profit_factor));
    m.insert("expectancy".into(), opt_dec(s.expectancy));
    m.insert("avg_win".into(), opt_dec(s.avg_win));
    m.insert("avg_loss".into(), opt_dec(s.avg_loss));
    m.insert("largest_win".into(), opt_dec(s.largest_win));
    m.insert("largest_loss".into(), opt_dec(s.largest_loss));
    m.insert("gross_profit".into(), dec(s.gross_profit));
    m.insert("gross_loss".into(), dec(s.gross_loss));
    m.insert("pnl".into(), dec(s.net_pnl));
    m
}

/// The execution counters, recomputed from `fill` and order records (so they stay right
/// across resumes and crashes); the latest `exec_stats` record is kept under `recorded`.
fn execution_section(d: &RunData) -> Value {
    let currency = d.currency();
    let mut fees_by_currency: BTreeMap<String, Decimal> = BTreeMap::new();
    let (mut partial, mut maker, mut taker) = (0u64, 0u64, 0u64);
    let (mut slippage, mut notional) = (Decimal::ZERO, Decimal::ZERO);
    for f in &d.fills {
        let f = &f.fill;
        *fees_by_currency.entry(f.fee_currency.to_string()).or_default() += f.fee;
        partial += u64::from(f.partial);
        match f.liquidity {
            crate::core::orders::Liquidity::Maker => maker += 1,
            crate::core::orders::Liquidity::Taker => taker += 1,
        }
        // Slippage and notional are in the pair's quote currency: only those quoted in the
        // account currency can be summed into account-currency totals.
        if currency.is_none_or(|c| quote_of(&f.pair) == c) {
            slippage += f.slippage;
            notional += f.price * f.qty;
        }
    }
    let fees = match currency {
        Some(c) => fees_by_currency.get(c).copied().unwrap_or_default(),
        None => fees_by_currency.values().copied().sum(),
    };
    let count = |kind: &str| d.order_events.iter().filter(|r| r.kind == kind).count() as u64;
    let fills = d.fills.len() as u64;
    let (stop_losses, take_profits) = triggers_by_type(d);
    // Shorts: only when the run had margin records (a spot run's report is unchanged).
    let margin = (!d.margin_fees.is_zero() || d.margin_calls > 0 || d.liquidations > 0).then(|| {
        json!({
            "margin_fees_paid": dec(d.margin_fees),
            "margin_calls": d.margin_calls,
            "liquidations": d.liquidations,
        })
    });
    let mut out = json!({
        "fills": fills,
        "partial_fills": partial,
        "maker_fills": maker,
        "taker_fills": taker,
        "maker_ratio": num((fills > 0).then(|| maker as f64 / fills as f64)),
        "stops_triggered": count("order_triggered"),
        "stop_losses_triggered": stop_losses,
        "take_profits_triggered": take_profits,
        "exits_by_reason": exits_by_reason(d),
        "rejected_orders": count("order_rejected"),
        "canceled_orders": count("order_canceled"),
        "orders": count("order"),
        "fees_paid": dec(fees),
        "fees_by_currency": fees_by_currency.into_iter().map(|(k, v)| (k, dec(v))).collect::<Map<_, _>>(),
        "slippage_paid": dec(slippage),
        "notional_traded": dec(notional),
        "recorded": d.exec_stats.clone().map_or(Value::Null, Value::Object),
        "amends": count("order_amended"),
    });
    if let (Some(m), Some(o)) = (margin, out.as_object_mut()) {
        o.insert("margin".into(), m);
    }
    out
}

/// Every `exit_reason` the engine writes, so a reader sees a 0 rather than a missing key.
const EXIT_REASONS: [&str; 8] =
    ["signal", "stop_loss", "take_profit", "trailing_stop", "chase", "flatten", "liquidation", "api"];

/// Closed trades counted by `trade_closed.exit_reason` (every reason of [`EXIT_REASONS`],
/// and any other the journal holds).
fn exits_by_reason(d: &RunData) -> BTreeMap<String, u64> {
    let mut by: BTreeMap<String, u64> = EXIT_REASONS.iter().map(|r| (r.to_string(), 0)).collect();
    for t in &d.trades {
        *by.entry(t.exit_reason.clone()).or_default() += 1;
    }
    by
}

/// `order_triggered` records of stop-loss(-limit) orders and of take-profit(-limit) orders,
/// the type read from each triggered order's `order` record.
fn triggers_by_type(d: &RunData) -> (u64, u64) {
    let id = |r: &crate::core::journal::StoredRecord| r.body.get("order_id").and_then(Value::as_u64);
    let mut types: BTreeMap<u64, &str> = BTreeMap::new();
    for r in d.order_events.iter().filter(|r| r.kind == "order") {
        let ty = r.body.get("spec").and_then(|s| s.get("order_type")).and_then(Value::as_str);
        if let (Some(i), Some(ty)) = (id(r), ty) {
            types.insert(i, ty);
        }
    }
    let (mut stops, mut takes) = (0, 0);
    for r in d.order_events.iter().filter(|r| r.kind == "order_triggered") {
        match id(r).and_then(|i| types.get(&i)).copied() {
            Some("stop-loss" | "stop-loss-limit") => stops += 1,
            Some("take-profit" | "take-profit-limit") => takes += 1,
            _ => {}
        }
    }
    (stops, takes)
}

/// Risk figures: the latest `risk_metrics` record's fields, with the counts and drawdowns
/// replaced by what the journal's records show (the record itself stays under `recorded`).
fn risk_section(d: &RunData, dd: &stats::DrawdownStats) -> Value {
    let mut m = d.risk_metrics.clone().unwrap_or_default();
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &d.refusals {
        *by_reason.entry(r).or_default() += 1;
    }
    let stops: Vec<Value> = d
        .emergency_stops
        .iter()
        .map(|r| {
            let mut e = r.body.clone();
            e.insert("time".into(), Value::String(r.event_time.to_rfc3339()));
            Value::Object(e)
        })
        .collect();
    m.insert("emergency_stops".into(), json!(d.emergency_stops.len()));
    m.insert("emergency_stop_events".into(), Value::Array(stops));
    m.insert("halts_lifted".into(), json!(d.halts_lifted));
    m.insert("refused_intents".into(), json!(d.refusals.len()));
    m.insert("refused_by_reason".into(), json!(by_reason));
    m.insert("max_drawdown".into(), num(Some(dd.max)));
    m.insert("current_drawdown".into(), num(Some(dd.current)));
    m.insert("recorded".into(), d.risk_metrics.clone().map_or(Value::Null, Value::Object));
    Value::Object(m)
}

/// Feed counters: integer counters summed over the sessions (each session writes its own),
/// other values from the latest session.
fn feed_section(d: &RunData) -> Value {
    let mut m = Map::new();
    for s in &d.feed_stats {
        for (k, v) in s {
            match (m.get(k).and_then(Value::as_u64), v.as_u64()) {
                (Some(a), Some(b)) => m.insert(k.clone(), json!(a + b)),
                _ => m.insert(k.clone(), v.clone()),
            };
        }
    }
    for k in [
        "frames",
        "events",
        "checksums_verified",
        "checksum_mismatches",
        "resyncs",
        "reconnects",
        "malformed",
        "unknown",
        "events_per_sec",
    ] {
        m.entry(k).or_insert(Value::Null);
    }
    m.insert("sessions_reported".into(), json!(d.feed_stats.len()));
    // Gaps filled over REST (`feed_gap` records): their trades, and the fills those trades
    // caused (a fill's cause names the trade event's sequence number).
    m.insert("gap_trades".into(), json!(d.gaps.iter().map(|g| g.trades).sum::<u64>()));
    let in_gap = |seq: u64| d.gaps.iter().filter_map(|g| g.seqs).any(|(a, b)| (a..=b).contains(&seq));
    let gap_fills = d
        .fills
        .iter()
        .filter(|f| matches!(f.fill.cause, FillCause::Trade { event_seq, .. } if in_gap(event_seq)))
        .count();
    m.insert("gap_fills".into(), json!(gap_fills));
    Value::Object(m)
}

fn per_pair_section(d: &RunData) -> Value {
    #[derive(Default)]
    struct Acc {
        pnls: Vec<Decimal>,
        trade_fees: Decimal,
        fills: u64,
        fill_fees: Decimal,
        notional: Decimal,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    if let Some(Value::Array(pairs)) = d.start().and_then(|b| b.get("pairs")) {
        for p in pairs.iter().filter_map(Value::as_str) {
            acc.entry(p.to_string()).or_default();
        }
    }
    for t in &d.trades {
        let a = acc.entry(t.pair.to_string()).or_default();
        a.pnls.push(t.pnl);
        a.trade_fees += t.fees;
    }
    for f in &d.fills {
        let a = acc.entry(f.fill.pair.to_string()).or_default();
        a.fills += 1;
        a.fill_fees += f.fill.fee;
        a.notional += f.fill.price * f.fill.qty;
    }
    let out: Map<String, Value> = acc
        .into_iter()
        .map(|(pair, a)| {
            let s = stats::trade_stats(&a.pnls);
            let mut m = trade_stats_json(&s);
            m.insert("trade_fees".into(), dec(a.trade_fees));
            m.insert("fills".into(), json!(a.fills));
            m.insert("fill_fees".into(), dec(a.fill_fees));
            m.insert("notional_traded".into(), dec(a.notional));
            (pair, Value::Object(m))
        })
        .collect();
    Value::Object(out)
}

/// Per signal source: the trades it contributed to (their whole P&L) and the P&L attributed
/// to it by its share |score × confidence × weight| of the trade's contributions.
fn per_signal_section(d: &RunData) -> Value {
    #[derive(Default)]
    struct Acc {
        pnls: Vec<Decimal>,
        attributed: f64,
        weights: Vec<f64>,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for src in d.signal_weights.keys() {
        acc.entry(src.clone()).or_default();
    }
    for t in &d.trades {
        if t.contributions.is_empty() {
            let a = acc.entry("(none)".into()).or_default();
            a.pnls.push(t.pnl);
            a.attributed += to_f64(t.pnl);
            continue;
        }
        let strength = |c: &crate::core::decisions::Contribution| {
            let s = (c.score * c.confidence * c.weight).abs();
            if s.is_finite() { s } else { 0.0 }
        };
        let total: f64 = t.contributions.iter().map(strength).sum();
        let n = t.contributions.len() as f64;
        for c in &t.contributions {
            let share = if total > 0.0 { strength(c) / total } else { 1.0 / n };
            let a = acc.entry(c.source.to_string()).or_default();
            a.pnls.push(t.pnl);
            a.attributed += to_f64(t.pnl) * share;
            a.weights.push(c.weight);
        }
    }
    let out: Map<String, Value> = acc
        .into_iter()
        .map(|(src, a)| {
            let mut m = trade_stats_json(&stats::trade_stats(&a.pnls));
            m.insert("attributed_pnl".into(), num(Some(a.attributed)));
            m.insert("avg_weight".into(), num(stats::mean(&a.weights)));
            m.insert("final_weight".into(), num(d.signal_weights.get(&src).copied()));
            (src, Value::Object(m))
        })
        .collect();
    Value::Object(out)
}

fn run_section(d: &RunData) -> Value {
    let start = d.start();
    let get = |k: &str| start.and_then(|b| b.get(k)).cloned().unwrap_or(Value::Null);
    let fingerprints: Vec<Value> = {
        let mut seen: Vec<Value> = Vec::new();
        for s in &d.sessions {
            let f = s.body.get("config_fingerprint").cloned().unwrap_or(Value::Null);
            if !seen.contains(&f) {
                seen.push(f);
            }
        }
        seen
    };
    let duration = match (d.first_time, d.last_time) {
        (Some(a), Some(b)) => num(Some(b.micros_since(a) as f64 / MICROS_PER_SEC as f64)),
        _ => Value::Null,
    };
    json!({
        "fingerprint": get("config_fingerprint"),
        "fingerprints": fingerprints,
        "seed": get("seed"),
        "source": get("source"),
        "pairs": get("pairs"),
        "currency": get("currency"),
        "journal_version": get("journal_version"),
        "risk_free_rate": num(Some(d.risk_free_rate())),
        "first_event_time": time_value(d.first_time),
        "last_event_time": time_value(d.last_time),
        "duration_s": duration,
        "sessions": d.sessions.len(),
        "session_starts": d.sessions.iter().map(|s| json!({"seq": s.seq, "event_time": s.time.to_rfc3339()})).collect::<Vec<_>>(),
        "records": d.records,
        "ended": d.ended,
        "end_reason": d.run_ended.as_ref().and_then(|r| r.body.get("reason")).cloned().unwrap_or(Value::Null),
        "signal_decisions": d.signal_decisions,
        "torn_tail": d.torn.as_ref().map_or(Value::Null, |t| json!({"offset": t.offset, "bytes": t.bytes, "reason": t.reason})),
    })
}

/// The report's content from loaded journal data.
pub(crate) fn report_from(d: &RunData) -> Value {
    let points = equity_points(d);
    let (t0, t_end) = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (a.time, b.time.max(d.last_time.unwrap_or(b.time))),
        _ => (d.first_time.unwrap_or_default(), d.last_time.unwrap_or_default()),
    };
    let sampled = sample(&points, d);
    let period_s = sampled.period_s;
    let ppy = stats::periods_per_year(period_s);
    let grid = &sampled.values;
    let returns = stats::simple_returns(grid);
    let rf = d.risk_free_rate();
    let dd = stats::drawdown(&points);
    let annual = stats::annualised_return(grid, ppy);
    let sharpe = stats::sampled_sharpe(&sampled, rf);
    let sortino = stats::sortino(&returns, rf, ppy);
    let calmar = stats::calmar(annual, dd.max);
    let vol = stats::annualised_volatility(&returns, ppy);
    let exposure = stats::exposure_fraction(&exposure_intervals(d, t_end), t0, t_end);

    let pnls: Vec<Decimal> = d.trades.iter().map(|t| t.pnl).collect();
    let ts = stats::trade_stats(&pnls);
    let holding: Vec<f64> = d
        .trades
        .iter()
        .map(|t| t.exit_time.micros_since(t.entry_time) as f64 / MICROS_PER_SEC as f64)
        .collect();

    let start = d.starting_equity();
    let fin = final_equity(d);
    // In Decimal, so that e.g. 10000 → 9500 is exactly −5 %.
    let total_return_pct = match (start, fin) {
        (Some(s), Some(f)) if !s.is_zero() => Some(to_f64((f - s) / s * Decimal::ONE_HUNDRED)),
        _ => None,
    };
    let total_return = total_return_pct.map(|p| p / 100.0);
    let execution = execution_section(d);

    let mut trade_block = trade_stats_json(&ts);
    trade_block.insert("avg_holding_s".into(), num(stats::mean(&holding)));
    trade_block.insert("trade_fees".into(), dec(d.trades.iter().map(|t| t.fees).sum()));

    let stats_block = json!({
        "conventions": {
            "equity_curve": "step function of equity snapshots (run_started starting_equity, every `equity` record, run_ended final_equity); value between snapshots = the earlier snapshot",
            "resampling": "grid t0 + k*period from the first curve point; last value at or before each grid time; a partial last period is dropped",
            "period": "longest of 1d, 1h, 5min, 1min giving at least 30 returns over the run (1min if none)",
            "returns": "simple returns between consecutive grid values",
            "annualisation": "24/7 market: periods_per_year = 365 days / period (8760 for hourly)",
            "volatility": "sample standard deviation (n-1) of period returns * sqrt(periods_per_year)",
            "sharpe": "(mean(r) - rf_p) / sd(r) * sqrt(periods_per_year), rf_p = (1+rf)^(1/periods_per_year) - 1",
            "sortino": "(mean(r) - rf_p) / sqrt(sum(min(0, r - rf_p)^2) / n) * sqrt(periods_per_year)",
            "calmar": "annualised_return / max_drawdown",
            "annualised_return": "(last/first grid value)^(periods_per_year/n) - 1",
            "drawdown": "(running peak - equity) / running peak over every curve point (not resampled)",
            "exposure_time": "fraction of [first curve point, last event] with at least one open position (from position records)",
            "undefined": "null when too few returns, zero variance, no losing trade, or overflow",
            "reference": "the definitions of empyrical (sharpe_ratio, sortino_ratio, annual_volatility, cagr with annualization = periods_per_year and risk_free = rf_p; max_drawdown over the curve points); .ci/stats-check compares them on returns.csv",
            "annualisation_warning": "set when span_s (first curve point to last event) is under 30 days: annualised figures of short runs are mostly noise",
        },
        "period_seconds": period_s,
        "periods_per_year": num(Some(ppy)),
        "span_s": num(Some(sampled.span_us as f64 / MICROS_PER_SEC as f64)),
        "annualisation_warning": stats::annualisation_warning(&sampled, returns.len()).map_or(Value::Null, Value::String),
        "equity_points": points.len(),
        "returns": returns.len(),
        "risk_free_rate": num(Some(rf)),
        "total_return": num(total_return),
        "annualised_return": num(annual),
        "annualised_volatility": num(vol),
        "mean_period_return": num(stats::mean(&returns)),
        "std_period_return": num(stats::sample_std(&returns)),
        "downside_deviation": num(stats::downside_deviation(&returns, stats::per_period_rate(rf, ppy))),
        "sharpe": num(sharpe),
        "sortino": num(sortino),
        "calmar": num(calmar),
        "max_drawdown": num(Some(dd.max)),
        "max_drawdown_duration_s": num(Some(dd.max_duration_us as f64 / MICROS_PER_SEC as f64)),
        "max_drawdown_peak_time": time_value(dd.peak_time),
        "max_drawdown_trough_time": time_value(dd.trough_time),
        "max_drawdown_recovery_time": time_value(dd.recovery_time),
        "current_drawdown": num(Some(dd.current)),
        "exposure_time": num(exposure),
        "trades": Value::Object(trade_block),
    });

    let pct = |x: Option<f64>| num(x.map(|v| v * 100.0));
    json!({
        "report_version": REPORT_VERSION,
        "currency": d.currency(),
        "trades": d.trades.len(),
        "fills": d.fills.len(),
        "starting_equity": opt_dec(start),
        "final_equity": opt_dec(fin),
        "net_pnl": opt_dec(start.zip(fin).map(|(s, f)| f - s)),
        "realized_pnl": dec(ts.net_pnl),
        "gross_pnl": dec(d.trades.iter().map(|t| t.pnl + t.fees).sum()),
        "return_pct": num(total_return_pct),
        "annualised_return_pct": pct(annual),
        "volatility_pct": pct(vol),
        "max_drawdown_pct": pct(Some(dd.max)),
        "max_drawdown_duration_s": num(Some(dd.max_duration_us as f64 / MICROS_PER_SEC as f64)),
        "win_rate": num(ts.win_rate),
        "profit_factor": num(ts.profit_factor),
        "expectancy": opt_dec(ts.expectancy),
        "avg_win": opt_dec(ts.avg_win),
        "avg_loss": opt_dec(ts.avg_loss),
        "exposure_time": num(exposure),
        "open_positions": open_positions(d),
        "sharpe": num(sharpe),
        "sortino": num(sortino),
        "calmar": num(calmar),
        "fees_paid": execution["fees_paid"].clone(),
        "slippage_paid": execution["slippage_paid"].clone(),
        "execution": execution,
        "risk": risk_section(d, &dd),
        "feed": feed_section(d),
        "per_pair": per_pair_section(d),
        "per_signal": per_signal_section(d),
        "stats": stats_block,
        "run": run_section(d),
        "orders_fate_unknown": d.fate_unknown.iter().map(|r| {
            let mut m = r.body.clone();
            m.insert("seq".into(), json!(r.seq));
            m.insert("event_time".into(), json!(r.event_time.to_rfc3339()));
            Value::Object(m)
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
