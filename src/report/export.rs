//! Exports of a run folder's journal: `trades`, `orders`, `fills`, `equity` and `returns` (the
//! equity on the statistics' grid, the returns report.json's ratios are computed from) as CSV (a
//! header row, RFC 4180 quoting, LF line ends; `pandas.read_csv` reads them directly) or
//! JSON (an array of objects per file). Works on finished, running and crashed journals:
//! the torn last line is left out. Columns: docs/reporting.md, "Exports".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use super::load::{self, RunData};
use super::{ExportFormat, dec};
use crate::core::market::Side;
use crate::core::orders::{FillCause, Liquidity};
use crate::core::time::{EventTime, MICROS_PER_SEC};
use crate::run_dir::RunDir;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// `csv` or `json`.
    pub format: String,
    /// Files written, in the order trades, orders, fills, equity, returns.
    pub files: Vec<PathBuf>,
    /// Rows in trades.
    pub trades: usize,
    /// Rows in orders.
    pub orders: usize,
    /// Rows in fills.
    pub fills: usize,
    /// Rows in equity.
    pub equity_points: usize,
    /// Rows in returns (grid times).
    pub returns: usize,
    /// True when the journal ended in a torn line that was left out.
    pub torn_tail: bool,
}

/// One value of a table: CSV renders it as text, JSON as a typed value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    Str(String),
    Dec(Decimal),
    UInt(u64),
    Float(Option<f64>),
    Bool(bool),
    Time(EventTime),
    /// A list: joined text in CSV, a JSON value in JSON.
    Multi {
        csv: String,
        json: Value,
    },
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Null | Cell::Float(None) => String::new(),
            Cell::Str(s) => s.clone(),
            Cell::Dec(d) => d.to_string(),
            Cell::UInt(n) => n.to_string(),
            Cell::Float(Some(x)) => x.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Time(t) => t.to_rfc3339(),
            Cell::Multi { csv, .. } => csv.clone(),
        }
    }
    fn json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Str(s) => Value::String(s.clone()),
            Cell::Dec(d) => dec(*d),
            Cell::UInt(n) => Value::from(*n),
            Cell::Float(x) => super::num(*x),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Time(t) => Value::String(t.to_rfc3339()),
            Cell::Multi { json, .. } => json.clone(),
        }
    }
}

fn opt_dec(d: Option<Decimal>) -> Cell {
    d.map_or(Cell::Null, Cell::Dec)
}
fn opt_str(s: Option<&str>) -> Cell {
    s.map_or(Cell::Null, |s| Cell::Str(s.to_string()))
}
fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// A named table with fixed columns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// CSV (RFC 4180, by the `csv` crate): header row then one line per row, `\n`-terminated;
    /// a field is quoted only when it holds a comma, a quote, CR or LF (inner quotes doubled).
    pub fn to_csv(&self) -> Result<Vec<u8>, super::ReportError> {
        let fail =
            |e: &dyn std::fmt::Display| super::ReportError::Csv { table: self.name, error: e.to_string() };
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        w.write_record(self.columns).map_err(|e| fail(&e))?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::csv)).map_err(|e| fail(&e))?;
        }
        w.into_inner().map_err(|e| fail(&e))
    }
    /// JSON: an array of objects keyed by column.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| (c.to_string(), v.json()))
                            .collect::<Map<_, _>>(),
                    )
                })
                .collect(),
        )
    }
}

/// Columns of trades.csv.
pub const TRADE_COLUMNS: &[&str] = &[
    "trade_id",
    "pair",
    "side",
    "qty",
    "entry_time",
    "exit_time",
    "holding_s",
    "entry_price",
    "exit_price",
    "fees",
    "pnl",
    "return_pct",
    "max_pnl",
    "max_drawdown",
    "exit_reason",
    "tags",
    "signals",
];

/// One row per `trade_closed` record, in journal order.
pub(crate) fn trades_table(d: &RunData) -> Table {
    let rows = d
        .trades
        .iter()
        .map(|t| {
            let notional = t.entry_price * t.qty;
            let ret = (!notional.is_zero()).then(|| crate::core::money::to_f64(t.pnl / notional) * 100.0);
            let signals = t
                .contributions
                .iter()
                .map(|c| format!("{}:{}", c.source, c.weight))
                .collect::<Vec<_>>()
                .join(";");
            vec![
                Cell::UInt(t.trade_id),
                Cell::Str(t.pair.to_string()),
                Cell::Str(side_str(t.side).into()),
                Cell::Dec(t.qty),
                Cell::Time(t.entry_time),
                Cell::Time(t.exit_time),
                Cell::Float(Some(t.exit_time.micros_since(t.entry_time) as f64 / MICROS_PER_SEC as f64)),
                Cell::Dec(t.entry_price),
                Cell::Dec(t.exit_price),
                Cell::Dec(t.fees),
                Cell::Dec(t.pnl),
                Cell::Float(ret),
                Cell::Dec(t.max_pnl),
                Cell::Dec(t.max_drawdown),
                Cell::Str(t.exit_reason.clone()),
                Cell::Multi { csv: t.tags.join(";"), json: serde_json::json!(t.tags) },
                Cell::Multi {
                    csv: signals,
                    json: serde_json::to_value(&t.contributions).unwrap_or(Value::Null),
                },
            ]
        })
        .collect();
    Table { name: "trades", columns: TRADE_COLUMNS, rows }
}

/// Columns of fills.csv (`fill_id` first).
pub const FILL_COLUMNS: &[&str] = &[
    "fill_id",
    "seq",
    "time",
    "order_id",
    "pair",
    "side",
    "price",
    "qty",
    "notional",
    "fee",
    "fee_currency",
    "liquidity",
    "slippage",
    "partial",
    "cause",
    "cause_event_seq",
    "cause_price",
    "cause_qty",
    "cause_trade_id",
];

/// One row per `fill` record, in journal order.
pub(crate) fn fills_table(d: &RunData) -> Table {
    let rows = d
        .fills
        .iter()
        .map(|r| {
            let f = &r.fill;
            let (cause, ev, price, qty, trade) = match &f.cause {
                FillCause::BookLevel { event_seq, level_price, level_qty } => {
                    ("book_level", *event_seq, *level_price, *level_qty, Cell::Null)
                }
                FillCause::Trade { event_seq, trade_id, trade_price, trade_qty } => {
                    ("trade", *event_seq, *trade_price, *trade_qty, Cell::UInt(*trade_id))
                }
            };
            vec![
                Cell::UInt(f.fill_id),
                Cell::UInt(r.seq),
                Cell::Time(f.time),
                Cell::UInt(f.order_id.0),
                Cell::Str(f.pair.to_string()),
                Cell::Str(side_str(f.side).into()),
                Cell::Dec(f.price),
                Cell::Dec(f.qty),
                Cell::Dec(f.price * f.qty),
                Cell::Dec(f.fee),
                Cell::Str(f.fee_currency.to_string()),
                Cell::Str(match f.liquidity {
                    Liquidity::Maker => "maker".into(),
                    Liquidity::Taker => "taker".into(),
                }),
                Cell::Dec(f.slippage),
                Cell::Bool(f.partial),
                Cell::Str(cause.into()),
                Cell::UInt(ev),
                Cell::Dec(price),
                Cell::Dec(qty),
                trade,
            ]
        })
        .collect();
    Table { name: "fills", columns: FILL_COLUMNS, rows }
}

/// Columns of orders.csv.
pub const ORDER_COLUMNS: &[&str] = &[
    "order_id",
    "time",
    "pair",
    "side",
    "order_type",
    "qty",
    "price",
    "price2",
    "trailing",
    "time_in_force",
    "expire_time",
    "post_only",
    "reduce_only",
    "client_order_id",
    "origin",
    "origin_ref",
    "status",
    "filled_qty",
    "avg_fill_price",
    "fees",
    "fills",
    "triggered_at",
    "trigger_price",
    "ended_at",
    "end_reason",
    "leverage",
    "amends",
];

#[derive(Default)]
struct OrderAcc {
    time: Option<EventTime>,
    spec: Map<String, Value>,
    origin: Map<String, Value>,
    status: Option<&'static str>,
    ended_at: Option<EventTime>,
    end_reason: Option<String>,
    triggered_at: Option<EventTime>,
    trigger_price: Option<Decimal>,
    filled: Decimal,
    cost: Decimal,
    fees: Decimal,
    fills: u64,
    fill_pair: Option<String>,
    fill_side: Option<Side>,
    amends: u64,
}

fn trailing_text(v: Option<&Value>) -> Cell {
    match v {
        Some(Value::Object(m)) => {
            if let Some(a) = m.get("absolute").and_then(load::decimal) {
                Cell::Str(format!("+{a}"))
            } else if let Some(p) = m.get("percent").and_then(load::decimal) {
                Cell::Str(format!("+{p}%"))
            } else {
                Cell::Str(Value::Object(m.clone()).to_string())
            }
        }
        _ => Cell::Null,
    }
}

/// One row per order id (ascending), with its final state from the order records and its
/// fills.
pub(crate) fn orders_table(d: &RunData) -> Table {
    let mut acc: BTreeMap<u64, OrderAcc> = BTreeMap::new();
    for r in &d.order_events {
        let Some(id) = r.body.get("order_id").and_then(Value::as_u64) else { continue };
        let time = r.body.get("time").and_then(load::time_of).unwrap_or(r.event_time);
        let o = acc.entry(id).or_default();
        o.time.get_or_insert(time);
        if let Some(Value::Object(spec)) = r.body.get("spec")
            && o.spec.is_empty()
        {
            o.spec = spec.clone();
        }
        match r.kind.as_str() {
            "order" => {
                if let Some(Value::Object(origin)) = r.body.get("origin") {
                    o.origin = origin.clone();
                }
            }
            "order_rejected" => {
                o.status = Some("rejected");
                o.ended_at = Some(time);
                let rej = r.body.get("rejection");
                let part = |k: &str| rej.and_then(|j| j.get(k)).and_then(Value::as_str).unwrap_or("");
                o.end_reason = Some(format!("{} ({})", part("error"), part("reason")));
            }
            "order_amended" => {
                // The amended values replace the requested ones; the row shows the last.
                o.amends += 1;
                for k in ["qty", "price", "price2"] {
                    if let Some(v) = r.body.get(k) {
                        o.spec.insert(k.to_string(), v.clone());
                    }
                }
            }
            "order_triggered" => {
                o.triggered_at = Some(time);
                o.trigger_price = r.body.get("trigger_price").and_then(load::decimal);
            }
            "order_canceled" => {
                let reason = r.body.get("reason").and_then(Value::as_str).unwrap_or("");
                o.status = Some(if reason == "expired" { "expired" } else { "canceled" });
                o.ended_at = Some(time);
                o.end_reason = Some(reason.to_string());
            }
            _ => {}
        }
    }
    for r in &d.fills {
        let f = &r.fill;
        let o = acc.entry(f.order_id.0).or_default();
        o.time.get_or_insert(f.time);
        o.filled += f.qty;
        o.cost += f.price * f.qty;
        o.fees += f.fee;
        o.fills += 1;
        o.fill_pair.get_or_insert_with(|| f.pair.to_string());
        o.fill_side.get_or_insert(f.side);
        if !f.partial {
            o.ended_at.get_or_insert(f.time);
        }
    }
    let rows = acc
        .into_iter()
        .map(|(id, o)| {
            let s = |k: &str| o.spec.get(k).and_then(Value::as_str);
            let qty = o.spec.get("qty").and_then(load::decimal);
            let liquidation = o.origin.get("kind").and_then(Value::as_str) == Some("liquidation");
            let status = o.status.unwrap_or(match qty {
                // Kraken: a liquidation order closes with `misc` `liquidated`.
                Some(q) if o.filled >= q && !q.is_zero() && liquidation => "liquidated",
                Some(q) if o.filled >= q && !q.is_zero() => "closed",
                _ => "open",
            });
            let ended_at = match status {
                "open" => None,
                _ => o.ended_at,
            };
            let origin_ref =
                ["intent_id", "parent"].iter().find_map(|k| o.origin.get(*k)).and_then(Value::as_u64);
            vec![
                Cell::UInt(id),
                o.time.map_or(Cell::Null, Cell::Time),
                opt_str(s("pair").or(o.fill_pair.as_deref())),
                opt_str(s("side").or(o.fill_side.map(side_str))),
                opt_str(s("order_type")),
                opt_dec(qty),
                opt_dec(o.spec.get("price").and_then(load::decimal)),
                opt_dec(o.spec.get("price2").and_then(load::decimal)),
                trailing_text(o.spec.get("trailing")),
                opt_str(s("time_in_force")),
                opt_str(s("expire_time")),
                o.spec.get("post_only").and_then(Value::as_bool).map_or(Cell::Null, Cell::Bool),
                o.spec.get("reduce_only").and_then(Value::as_bool).map_or(Cell::Null, Cell::Bool),
                opt_str(s("client_order_id")),
                opt_str(o.origin.get("kind").and_then(Value::as_str)),
                origin_ref.map_or(Cell::Null, Cell::UInt),
                Cell::Str(status.into()),
                Cell::Dec(o.filled),
                if o.filled.is_zero() { Cell::Null } else { Cell::Dec(o.cost / o.filled) },
                Cell::Dec(o.fees),
                Cell::UInt(o.fills),
                o.triggered_at.map_or(Cell::Null, Cell::Time),
                opt_dec(o.trigger_price),
                ended_at.map_or(Cell::Null, Cell::Time),
                o.end_reason.map_or(Cell::Null, Cell::Str),
                o.spec.get("leverage").and_then(Value::as_u64).map_or(Cell::Null, Cell::UInt),
                Cell::UInt(o.amends),
            ]
        })
        .collect();
    Table { name: "orders", columns: ORDER_COLUMNS, rows }
}

/// Columns of equity.csv.
pub const EQUITY_COLUMNS: &[&str] =
    &["seq", "time", "equity", "cash", "unrealized", "open_positions", "drawdown"];

/// One row per `equity` record, in journal order (`drawdown` is the engine's, a fraction).
pub(crate) fn equity_table(d: &RunData) -> Table {
    let rows = d
        .equity
        .iter()
        .map(|e| {
            vec![
                Cell::UInt(e.seq),
                Cell::Time(e.time),
                Cell::Dec(e.equity),
                opt_dec(e.cash),
                opt_dec(e.unrealized),
                e.open_positions.map_or(Cell::Null, Cell::UInt),
                Cell::Float(e.drawdown),
            ]
        })
        .collect();
    Table { name: "equity", columns: EQUITY_COLUMNS, rows }
}

/// Columns of returns.csv.
pub const RETURN_COLUMNS: &[&str] = &["time", "equity", "return"];

/// The equity on the statistics' grid (`stats.period_seconds` apart, from the first curve
/// point) and the simple return into each grid time (empty on the first row, and after a
/// non-positive equity): the returns report.json's Sharpe, Sortino, volatility and annualised
/// return are computed from.
pub(crate) fn returns_table(d: &RunData) -> Table {
    let s = super::sample(&super::equity_points(d), d);
    let step = s.period_s * MICROS_PER_SEC;
    let rows = s
        .values
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            // As `stats::simple_returns` computes it.
            let r =
                k.checked_sub(1).map(|j| s.values[j]).filter(|&prev| prev > 0.0).map(|prev| v / prev - 1.0);
            vec![Cell::Time(s.start.plus_micros(k as i64 * step)), Cell::Float(Some(v)), Cell::Float(r)]
        })
        .collect();
    Table { name: "returns", columns: RETURN_COLUMNS, rows }
}

/// Writes `trades`, `orders`, `fills`, `equity` and `returns` (`.csv` or `.json`) into
/// `run_dir`, each atomically, from its journal.
pub fn export(run_dir: &Path, format: ExportFormat) -> Result<ExportSummary, super::ReportError> {
    let dir = RunDir::open(run_dir)?;
    let d = load::load_path(&dir.journal())?;
    let tables = [trades_table(&d), orders_table(&d), fills_table(&d), equity_table(&d), returns_table(&d)];
    let ext = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
    };
    let mut files = Vec::with_capacity(tables.len());
    for t in &tables {
        let name = format!("{}.{ext}", t.name);
        let bytes = match format {
            ExportFormat::Csv => t.to_csv()?,
            ExportFormat::Json => super::to_json_bytes(&t.to_json()),
        };
        dir.write_atomic(&name, &bytes)?;
        files.push(dir.file(&name));
    }
    Ok(ExportSummary {
        format: ext.to_string(),
        files,
        trades: tables[0].rows.len(),
        orders: tables[1].rows.len(),
        fills: tables[2].rows.len(),
        equity_points: tables[3].rows.len(),
        returns: tables[4].rows.len(),
        torn_tail: d.torn.is_some(),
    })
}
