//! report.html: one self-contained page (inline CSS, server-side SVG charts, no scripts,
//! no external requests) showing the equity curve with trade entry/exit markers, the
//! drawdown, and the report's tables. Deterministic: the same report gives the same bytes.

use std::fmt::Write;

use serde_json::Value;

use super::load::RunData;
use super::stats::EquityPoint;
use crate::core::execution::ClosedTrade;
use crate::core::market::Side;
use crate::core::time::EventTime;

/// Trades drawn as markers and listed in "Last trades".
const MAX_MARKERS: usize = 500;
const LAST_TRADES: usize = 50;
const WIDTH: f64 = 960.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;\
max-width:1000px;color:#1d2330;background:#fafbfc;padding:0 16px}h1{margin:0 0 4px}h2{margin:28px 0 8px;\
font-size:1.15em;border-bottom:1px solid #dde1e7;padding-bottom:4px}.sub{color:#5b6475;margin:0 0 16px;\
font-size:.9em}.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #dde1e7;\
border-radius:6px;padding:8px 14px;min-width:120px}.card b{display:block;font-size:1.25em}.card span{color:#5b6475;\
font-size:.8em}table{border-collapse:collapse;background:#fff;font-size:.85em;margin:4px 0}th,td{border:1px \
solid #e3e6eb;padding:3px 8px;text-align:right}th{background:#f0f2f5}td.l,th.l{text-align:left}\
svg{background:#fff;border:1px solid #dde1e7;border-radius:6px}.axis{font-size:10px;fill:#5b6475}\
.grid{stroke:#eef0f3}.eq{fill:none;stroke:#2b6cb0;stroke-width:1.3}.dd{fill:#e5484d33;stroke:#e5484d;\
stroke-width:1}.win{fill:#1a9e55}.loss{fill:#d93036}.entry{fill:#2b6cb0;opacity:.8}.pos{color:#1a7f45}\
.neg{color:#c42b30}footer{margin:30px 0;color:#8a92a3;font-size:.8em}";

/// HTML-escapes text.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value for display: `—` for null, long float fractions shortened to 6 places.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let s = n.to_string();
            match s.split_once('.') {
                Some((_, frac)) if frac.len() > 6 && !s.contains(['e', 'E']) => {
                    let f = n.as_f64().unwrap_or(0.0);
                    let t = format!("{f:.6}");
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                }
                _ => s,
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(show).collect::<Vec<_>>().join(", ")
        }
        Value::Array(a) => format!("{} items", a.len()),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}: {}", show(v))).collect::<Vec<_>>().join(", "),
    }
}

fn pct(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{x:.digits$} %"))
}

fn short_time(t: EventTime) -> String {
    let s = t.to_rfc3339();
    s.get(..16).map_or(s.clone(), |x| x.replace('T', " "))
}

fn table(headers: &[&str], rows: &[Vec<String>], left_cols: usize) -> String {
    let mut h = String::from("<table><tr>");
    for (i, c) in headers.iter().enumerate() {
        let cls = if i < left_cols { " class=\"l\"" } else { "" };
        let _ = write!(h, "<th{cls}>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for r in rows {
        h.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let cls = if i < left_cols { " class=\"l\"" } else { "" };
            let _ = write!(h, "<td{cls}>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

/// A two-column table of an object's fields (skipping `skip`).
fn kv_table(obj: &Value, skip: &[&str]) -> String {
    let rows: Vec<Vec<String>> = obj
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .map(|(k, v)| vec![k.clone(), show(v)])
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return "<p class=\"sub\">No records.</p>".into();
    }
    table(&["field", "value"], &rows, 1)
}

/// A table with one row per key of an object of objects.
fn grouped_table(obj: &Value, first: &str, cols: &[&str]) -> String {
    let Some(m) = obj.as_object().filter(|m| !m.is_empty()) else {
        return "<p class=\"sub\">None.</p>".into();
    };
    let rows: Vec<Vec<String>> = m
        .iter()
        .map(|(k, v)| {
            let mut r = vec![k.clone()];
            r.extend(cols.iter().map(|c| show(v.get(*c).unwrap_or(&Value::Null))));
            r
        })
        .collect();
    let mut headers = vec![first];
    headers.extend_from_slice(cols);
    table(&headers, &rows, 1)
}

/// Maps event time and values to SVG coordinates.
struct Frame {
    t0: i64,
    t1: i64,
    height: f64,
}

impl Frame {
    fn x(&self, t: EventTime) -> f64 {
        let span = (self.t1 - self.t0).max(1) as f64;
        LEFT + (t.as_micros() - self.t0) as f64 / span * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let h = self.height - TOP - BOTTOM;
        let r = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        TOP + (1.0 - r) * h
    }
    fn time_axis(&self, out: &mut String) {
        for i in 0..=4 {
            let t = EventTime::from_micros(self.t0 + (self.t1 - self.t0) * i / 4);
            let x = self.x(t);
            let anchor = match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            };
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
                 <text class=\"axis\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                self.height - BOTTOM,
                self.height - 8.0,
                short_time(t)
            );
        }
    }
    fn value_axis(&self, lo: f64, hi: f64, fmt: &dyn Fn(f64) -> String, out: &mut String) {
        for i in 0..=4 {
            let v = lo + (hi - lo) * f64::from(i) / 4.0;
            let y = self.y(v, lo, hi);
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 4.0,
                y + 3.0,
                esc(&fmt(v))
            );
        }
    }
}

/// Keeps, per pixel column, the lowest and highest point (in time order), so that spikes
/// and troughs survive downsampling.
fn downsample(points: &[(EventTime, f64)], frame: &Frame) -> Vec<(EventTime, f64)> {
    let columns = (WIDTH - LEFT - RIGHT) as usize;
    if points.len() <= columns * 2 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(columns * 2 + 2);
    let mut bucket: Option<(usize, usize, usize)> = None; // (column, min index, max index)
    let flush = |b: (usize, usize, usize), out: &mut Vec<(EventTime, f64)>| {
        let (lo, hi) = (b.1.min(b.2), b.1.max(b.2));
        out.push(points[lo]);
        if hi != lo {
            out.push(points[hi]);
        }
    };
    for (i, p) in points.iter().enumerate() {
        let col = (frame.x(p.0) - LEFT).max(0.0) as usize;
        bucket = match bucket {
            Some((c, mn, mx)) if c == col => {
                Some((c, if p.1 < points[mn].1 { i } else { mn }, if p.1 > points[mx].1 { i } else { mx }))
            }
            Some(b) => {
                flush(b, &mut out);
                Some((col, i, i))
            }
            None => Some((col, i, i)),
        };
    }
    if let Some(b) = bucket {
        flush(b, &mut out);
    }
    out
}

/// Equity at `t` on the step curve.
fn equity_at(points: &[EquityPoint], t: EventTime) -> Option<f64> {
    let i = points.partition_point(|p| p.time <= t);
    points.get(i.saturating_sub(1)).map(|p| p.equity)
}

fn equity_svg(points: &[EquityPoint], trades: &[ClosedTrade]) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return "<p class=\"sub\">No equity snapshots in the journal.</p>".into();
    };
    let frame = Frame { t0: first.time.as_micros(), t1: last.time.as_micros(), height: 300.0 };
    let (mut lo, mut hi) =
        points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.equity), b.max(p.equity)));
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-4).max(1e-9);
    lo -= pad;
    hi += pad;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" \
         role=\"img\" aria-label=\"equity curve\">",
        frame.height, frame.height
    );
    frame.value_axis(lo, hi, &|v| format!("{v:.2}"), &mut s);
    frame.time_axis(&mut s);
    let raw: Vec<(EventTime, f64)> = points.iter().map(|p| (p.time, p.equity)).collect();
    s.push_str("<polyline class=\"eq\" points=\"");
    for (t, v) in downsample(&raw, &frame) {
        let _ = write!(s, "{:.1},{:.1} ", frame.x(t), frame.y(v, lo, hi));
    }
    s.push_str("\"/>");
    let skip = trades.len().saturating_sub(MAX_MARKERS);
    for t in &trades[skip..] {
        let label = format!(
            "trade {} {} {} qty {} entry {} exit {} pnl {}",
            t.trade_id,
            t.pair,
            if t.side == Side::Buy { "long" } else { "short" },
            t.qty,
            t.entry_price,
            t.exit_price,
            t.pnl
        );
        if let Some(v) = equity_at(points, t.entry_time) {
            let (x, y) = (frame.x(t.entry_time), frame.y(v, lo, hi));
            // Up triangle for a long entry, down for a short one.
            let d = if t.side == Side::Buy { 4.0 } else { -4.0 };
            let _ = write!(
                s,
                "<path class=\"entry\" d=\"M{x:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z\"><title>{}</title></path>",
                y - d,
                x - 4.0,
                y + d,
                x + 4.0,
                y + d,
                esc(&format!("entry: {label}"))
            );
        }
        if let Some(v) = equity_at(points, t.exit_time) {
            let cls = if t.pnl.is_sign_positive() && !t.pnl.is_zero() { "win" } else { "loss" };
            let _ = write!(
                s,
                "<circle class=\"{cls}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}</title></circle>",
                frame.x(t.exit_time),
                frame.y(v, lo, hi),
                esc(&format!("exit: {label}"))
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn drawdown_svg(points: &[EquityPoint]) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    let frame = Frame { t0: first.time.as_micros(), t1: last.time.as_micros(), height: 160.0 };
    let mut peak = f64::MIN;
    let dd: Vec<(EventTime, f64)> = points
        .iter()
        .map(|p| {
            peak = peak.max(p.equity);
            (p.time, if peak > 0.0 { (peak - p.equity) / peak * 100.0 } else { 0.0 })
        })
        .collect();
    let max = dd.iter().map(|x| x.1).fold(0.0, f64::max).max(1e-6);
    // Drawdown grows downward: 0 at the top, the maximum at the bottom.
    let (lo, hi) = (-max, 0.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" \
         role=\"img\" aria-label=\"drawdown\">",
        frame.height, frame.height
    );
    frame.value_axis(lo, hi, &|v| format!("{:.2} %", -v), &mut s);
    frame.time_axis(&mut s);
    let top = frame.y(0.0, lo, hi);
    let _ = write!(s, "<path class=\"dd\" d=\"M{:.1},{top:.1}", frame.x(first.time));
    for (t, v) in downsample(&dd, &frame) {
        let _ = write!(s, "L{:.1},{:.1}", frame.x(t), frame.y(-v, lo, hi));
    }
    let _ = write!(s, "L{:.1},{top:.1}Z\"/></svg>", frame.x(last.time));
    s
}

fn card(label: &str, value: String, class: &str) -> String {
    format!("<div class=\"card\"><b class=\"{class}\">{}</b><span>{}</span></div>", esc(&value), esc(label))
}

fn sign_class(v: &Value) -> &'static str {
    match v.as_f64() {
        Some(x) if x > 0.0 => "pos",
        Some(x) if x < 0.0 => "neg",
        _ => "",
    }
}

/// The page for `report` (as built by `report_from(data)`).
pub(crate) fn render(report: &Value, data: &RunData) -> String {
    let r = |k: &str| report.get(k).unwrap_or(&Value::Null);
    let run = r("run");
    let g = |k: &str| show(run.get(k).unwrap_or(&Value::Null));
    let points = super::equity_points(data);
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>kraken-paper report</title><style>{CSS}</style></head><body>\
         <h1>kraken-paper run report</h1><p class=\"sub\">source {} · pairs {} · seed {} · {} → {} · \
         config {} · {} session(s){}</p>",
        esc(&g("source")),
        esc(&g("pairs")),
        esc(&g("seed")),
        esc(&g("first_event_time")),
        esc(&g("last_event_time")),
        esc(&g("fingerprint")),
        esc(&g("sessions")),
        if data.ended { "" } else { " · <b>not ended (running or crashed)</b>" }
    );
    let cur = show(r("currency"));
    h.push_str("<div class=\"cards\">");
    h.push_str(&card("return", pct(r("return_pct"), 2), sign_class(r("return_pct"))));
    h.push_str(&card(&format!("final equity ({cur})"), show(r("final_equity")), ""));
    h.push_str(&card("max drawdown", pct(r("max_drawdown_pct"), 2), ""));
    h.push_str(&card("Sharpe", r("sharpe").as_f64().map_or("—".into(), |x| format!("{x:.2}")), ""));
    h.push_str(&card("trades", show(r("trades")), ""));
    h.push_str(&card(
        "win rate",
        r("win_rate").as_f64().map_or("—".into(), |x| format!("{:.1} %", x * 100.0)),
        "",
    ));
    h.push_str(&card("fills", show(r("fills")), ""));
    h.push_str(&card("open positions", show(r("open_positions")), ""));
    h.push_str("</div>");

    h.push_str("<h2>Equity</h2>");
    h.push_str(&equity_svg(&points, &data.trades));
    h.push_str("<p class=\"sub\">▲/▼ long/short entry · ● exit (green: profit, red: loss)</p>");
    h.push_str("<h2>Drawdown</h2>");
    h.push_str(&drawdown_svg(&points));

    h.push_str("<h2>Summary</h2>");
    let summary_keys = [
        "starting_equity",
        "final_equity",
        "net_pnl",
        "realized_pnl",
        "return_pct",
        "annualised_return_pct",
        "volatility_pct",
        "max_drawdown_pct",
        "max_drawdown_duration_s",
        "sharpe",
        "sortino",
        "calmar",
        "trades",
        "win_rate",
        "profit_factor",
        "expectancy",
        "avg_win",
        "avg_loss",
        "exposure_time",
        "fees_paid",
        "slippage_paid",
        "open_positions",
    ];
    let rows: Vec<Vec<String>> = summary_keys.iter().map(|k| vec![k.to_string(), show(r(k))]).collect();
    h.push_str(&table(&["field", "value"], &rows, 1));
    let stats = r("stats");
    let _ = write!(
        h,
        "<p class=\"sub\">Returns every {} s ({} returns, {} periods a year), risk-free rate {}; \
         conventions in report.json <code>stats.conventions</code>.</p>",
        esc(&show(stats.get("period_seconds").unwrap_or(&Value::Null))),
        esc(&show(stats.get("returns").unwrap_or(&Value::Null))),
        esc(&show(stats.get("periods_per_year").unwrap_or(&Value::Null))),
        esc(&show(stats.get("risk_free_rate").unwrap_or(&Value::Null))),
    );

    h.push_str("<h2>Execution</h2>");
    h.push_str(&kv_table(r("execution"), &["recorded"]));
    h.push_str("<h2>Risk</h2>");
    h.push_str(&kv_table(r("risk"), &["recorded", "emergency_stop_events"]));
    h.push_str("<h2>Feed</h2>");
    h.push_str(&kv_table(r("feed"), &[]));
    let cols = ["trades", "wins", "losses", "win_rate", "pnl", "profit_factor", "expectancy"];
    h.push_str("<h2>Per pair</h2>");
    let mut pair_cols = cols.to_vec();
    pair_cols.extend(["fills", "fill_fees", "notional_traded"]);
    h.push_str(&grouped_table(r("per_pair"), "pair", &pair_cols));
    h.push_str("<h2>Per signal</h2>");
    let mut sig_cols = cols.to_vec();
    sig_cols.extend(["attributed_pnl", "avg_weight", "final_weight"]);
    h.push_str(&grouped_table(r("per_signal"), "source", &sig_cols));

    let _ =
        write!(h, "<h2>Last trades ({} of {})</h2>", data.trades.len().min(LAST_TRADES), data.trades.len());
    let skip = data.trades.len().saturating_sub(LAST_TRADES);
    let rows: Vec<Vec<String>> = data.trades[skip..]
        .iter()
        .rev()
        .map(|t| {
            vec![
                t.trade_id.to_string(),
                t.pair.to_string(),
                if t.side == Side::Buy { "long".into() } else { "short".into() },
                short_time(t.entry_time),
                short_time(t.exit_time),
                t.qty.to_string(),
                t.entry_price.to_string(),
                t.exit_price.to_string(),
                t.fees.to_string(),
                t.pnl.to_string(),
                t.max_pnl.to_string(),
                t.max_drawdown.to_string(),
                t.exit_reason.clone(),
                t.contributions.iter().map(|c| c.source.to_string()).collect::<Vec<_>>().join(", "),
            ]
        })
        .collect();
    h.push_str(&table(
        &[
            "id", "pair", "side", "entry", "exit", "qty", "entry px", "exit px", "fees", "pnl", "MFE", "MAE",
            "exit", "signals",
        ],
        &rows,
        3,
    ));
    let _ = writeln!(
        h,
        "<footer>Built from journal.jsonl alone ({} records{}); report_version {}.</footer></body></html>",
        data.records,
        if data.torn.is_some() { ", torn last line left out" } else { "" },
        esc(&show(r("report_version")))
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_text() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn shows_long_floats_shortened_and_null_as_dash() {
        assert_eq!(show(&serde_json::json!(0.123456789)), "0.123457");
        assert_eq!(show(&serde_json::json!(12)), "12");
        assert_eq!(show(&Value::Null), "—");
        assert_eq!(show(&serde_json::json!({"a": 1, "b": 2})), "a: 1, b: 2");
    }

    #[test]
    fn downsampling_keeps_the_extremes_of_each_column() {
        let frame = Frame { t0: 0, t1: 1_000_000, height: 100.0 };
        // 10 000 points in 870 columns; one deep spike must survive.
        let pts: Vec<(EventTime, f64)> = (0..10_000)
            .map(|i| (EventTime::from_micros(i * 100), if i == 5_000 { -50.0 } else { 100.0 }))
            .collect();
        let d = downsample(&pts, &frame);
        assert!(d.len() <= 2 * 870 + 2, "{}", d.len());
        assert!(d.iter().any(|p| p.1 == -50.0));
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
