//! The end-of-run summary a person reads in the terminal: money to the cent with its
//! currency, percentages to two places, the win rate as a percentage, take-profit and
//! stop-loss counts, gross P&L beside fees, and the annualisation warning. It is made from
//! report.json (the same figures, rounded for reading; report.json keeps every digit).

use std::fmt::Write;
use std::path::Path;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// The summary of the run in `dir` whose report is `r`; `reason` says how it ended.
pub fn summary_text(r: &Value, dir: &Path, reason: &str) -> String {
    let currency = r.get("currency").and_then(Value::as_str).unwrap_or("");
    let ex = r.get("execution");
    let money = |v: Option<&Value>| fmt_money(v, currency);
    let mut s = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(s, "  {label:<16} {value}");
    };
    let head = format!("kraken-paper run finished ({reason})");
    line("final equity", money(r.get("final_equity")));
    line("return", fmt_pct(r.get("return_pct")));
    let exits = match (count(ex, "take_profits_triggered"), count(ex, "stop_losses_triggered")) {
        (Some(tp), Some(sl)) => format!(", take-profits {tp}, stop-losses {sl}"),
        _ => String::new(),
    };
    line(
        "trades",
        format!("{} (win rate {}{exits})", plain(r.get("trades")), fmt_fraction_pct(r.get("win_rate"))),
    );
    if r.get("gross_pnl").is_some() {
        line(
            "P&L closed",
            format!(
                "{} before fees, {} after (fees {})",
                money(r.get("gross_pnl")),
                money(r.get("realized_pnl")),
                money(r.get("fees_paid"))
            ),
        );
    } else {
        line("realized P&L", money(r.get("realized_pnl")));
    }
    line("max drawdown", fmt_pct(r.get("max_drawdown_pct")));
    line(
        "fills",
        format!(
            "{} (maker {}, taker {}, partial {})",
            plain(r.get("fills")),
            plain(ex.and_then(|e| e.get("maker_fills"))),
            plain(ex.and_then(|e| e.get("taker_fills"))),
            plain(ex.and_then(|e| e.get("partial_fills"))),
        ),
    );
    line("fees paid", money(r.get("fees_paid")));
    line("open positions", plain(r.get("open_positions")));
    line("run folder", dir.display().to_string());
    line("report", dir.join("report.json").display().to_string());
    let warning = r.get("stats").and_then(|st| st.get("annualisation_warning")).and_then(Value::as_str);
    let mut out = format!("{head}\n{s}");
    if let Some(w) = warning {
        let _ = writeln!(out, "  note: {w}");
    }
    out
}

/// A JSON number or numeric string as an exact decimal.
fn decimal(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Number(n) => {
            Decimal::from_str(&n.to_string()).or_else(|_| Decimal::from_scientific(&n.to_string())).ok()
        }
        Value::String(t) => Decimal::from_str(t).ok(),
        _ => None,
    }
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// `9680.15 USD`; `-` when absent.
fn fmt_money(v: Option<&Value>, currency: &str) -> String {
    match decimal(v) {
        Some(d) => format!("{:.2} {currency}", round2(d)).trim_end().to_string(),
        None => "-".into(),
    }
}

/// Percent points to two places: `-3.20 %`.
fn fmt_pct(v: Option<&Value>) -> String {
    match decimal(v) {
        Some(d) => format!("{:.2} %", round2(d)),
        None => "-".into(),
    }
}

/// A fraction as a percentage to two places: 0.4 → `40.00 %`; `-` when null (no trades).
fn fmt_fraction_pct(v: Option<&Value>) -> String {
    match decimal(v) {
        Some(d) => format!("{:.2} %", round2(d * Decimal::ONE_HUNDRED)),
        None => "-".into(),
    }
}

fn count(ex: Option<&Value>, key: &str) -> Option<u64> {
    ex?.get(key)?.as_u64()
}

fn plain(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_to_the_cent_percentages_to_two_places_win_rate_as_percent() {
        // As report.json holds them: exact decimals (serde_json's arbitrary precision).
        let r: Value = serde_json::from_str(
            r#"{
            "currency": "USD", "final_equity": 9680.148991641650, "return_pct": -3.1985100835835,
            "trades": 32, "win_rate": 0.0625, "max_drawdown_pct": 3.200051036016994,
            "fills": 111, "fees_paid": "232.71050", "realized_pnl": -319.0164488872,
            "gross_pnl": -86.3, "open_positions": 3,
            "execution": {"maker_fills": 56, "taker_fills": 55, "partial_fills": 44,
                          "take_profits_triggered": 4, "stop_losses_triggered": 9},
            "stats": {"annualisation_warning": "The run spans 1 day: annualised figures are extrapolations."}
        }"#,
        )
        .unwrap();
        let s = summary_text(&r, Path::new("/tmp/run"), "duration");
        assert!(s.starts_with("kraken-paper run finished (duration)\n"), "{s}");
        assert!(s.contains("final equity     9680.15 USD\n"), "{s}");
        assert!(s.contains("return           -3.20 %\n"), "{s}");
        assert!(s.contains("trades           32 (win rate 6.25 %, take-profits 4, stop-losses 9)\n"), "{s}");
        assert!(
            s.contains("P&L closed       -86.30 USD before fees, -319.02 USD after (fees 232.71 USD)\n"),
            "{s}"
        );
        assert!(s.contains("max drawdown     3.20 %\n"), "{s}");
        assert!(s.contains("fills            111 (maker 56, taker 55, partial 44)\n"), "{s}");
        assert!(s.ends_with("  note: The run spans 1 day: annualised figures are extrapolations.\n"), "{s}");
    }

    #[test]
    fn absent_and_null_figures_print_a_dash() {
        let r = json!({"currency": "EUR", "trades": 0, "win_rate": null});
        let s = summary_text(&r, Path::new("run"), "signal");
        assert!(s.contains("trades           0 (win rate -)\n"), "{s}");
        assert!(s.contains("final equity     -\n"), "{s}");
        assert!(s.contains("realized P&L     -\n"), "{s}");
        assert!(!s.contains("note:"), "{s}");
    }
}
