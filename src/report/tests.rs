//! Report and export tests on a synthetic journal with hand-computed expectations.
//!
//! The journal (hours after 2025-01-01T00:00:00Z; account USD, starting equity 10 000):
//! - equity snapshots every hour 1..29 alternating 10 100 (odd hours) / 10 000 (even), and
//!   9 500 at 30 h; run_ended at 30 h with final equity 9 500 and no open position.
//! - trade 1 BTC/USD long 0.1, 50 000 → 51 000 (1 h → 3 h), fees 0.80 + 1.20 + 2.04 = 4.04,
//!   pnl 100 − 4.04 = 95.96; signals ema_cross (0.5 × 0.8 × 1.0) and rsi (0.5 × 0.8 × 0.5).
//! - trade 2 ETH/USD short 1, 3 000 → 3 050 (5 h → 8 h), fees 2.40, pnl −50 − 2.40 = −52.40; rsi.
//! - trade 3 BTC/USD long 0.1, 50 000 → 49 000 (10 h → 12 h), fees 3.96, pnl −103.96; ema_cross.
//! - 7 fills (one partial, 3 maker, 4 taker), fees 10.40, slippage 0.5 + 0.3 + 0.2 + 1.0 = 2.0.
//! - 8 orders: 2 triggered, 1 rejected, 1 canceled; 3 refusals (2 halted, 1 max_exposure);
//!   1 emergency stop; a stale exec_stats claiming 3 fills; an unknown record type.

use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

use super::*;
use crate::core::decisions::Contribution;
use crate::core::execution::ClosedTrade;
use crate::core::journal::{Entry, encode};
use crate::core::market::Side;
use crate::core::orders::{Fill, FillCause, Liquidity, OrderId};

const T0: i64 = 1_735_689_600_000_000; // 2025-01-01T00:00:00Z
const H: i64 = 3_600 * MICROS_PER_SEC;

fn at(h: f64) -> EventTime {
    EventTime::from_micros(T0 + (h * H as f64) as i64)
}

fn contrib(source: &str, weight: f64) -> Contribution {
    Contribution { source: Arc::from(source), score: 0.5, confidence: 0.8, weight }
}

#[allow(clippy::too_many_arguments)]
fn fill(
    id: u64,
    order: u64,
    pair: &str,
    side: Side,
    price: Decimal,
    qty: Decimal,
    fee: Decimal,
    h: f64,
) -> Fill {
    Fill {
        fill_id: id,
        order_id: OrderId(order),
        pair: Arc::from(pair),
        side,
        price,
        qty,
        fee,
        fee_currency: Arc::from("USD"),
        liquidity: Liquidity::Taker,
        time: at(h),
        cause: FillCause::BookLevel { event_seq: id * 10, level_price: price, level_qty: dec!(5) },
        slippage: Decimal::ZERO,
        partial: false,
    }
}

#[allow(clippy::too_many_arguments)]
fn trade(
    id: u64,
    pair: &str,
    side: Side,
    qty: Decimal,
    (h_in, h_out): (f64, f64),
    (p_in, p_out): (Decimal, Decimal),
    fees: Decimal,
    pnl: Decimal,
    contributions: Vec<Contribution>,
    tags: Vec<String>,
    exit_reason: &str,
) -> ClosedTrade {
    ClosedTrade {
        trade_id: id,
        pair: Arc::from(pair),
        side,
        qty,
        entry_time: at(h_in),
        exit_time: at(h_out),
        entry_price: p_in,
        exit_price: p_out,
        fees,
        pnl,
        max_pnl: dec!(120.5),
        max_drawdown: dec!(-30.25),
        contributions,
        tags,
        exit_reason: exit_reason.into(),
    }
}

fn order(id: u64, pair: &str, side: &str, ty: &str, qty: &str, price: Option<&str>) -> Value {
    json!({
        "time": at(0.0), "order_id": id,
        "spec": {"pair": pair, "side": side, "order_type": ty, "qty": qty, "price": price, "price2": null,
                 "trailing": null, "time_in_force": "GTC", "expire_time": null, "post_only": false,
                 "reduce_only": false, "client_order_id": null},
        "origin": {"kind": "intent", "intent_id": id + 100},
    })
}

/// The records of the synthetic journal, in event-time order (stable).
fn records() -> Vec<(EventTime, &'static str, Value)> {
    let mut r: Vec<(EventTime, &'static str, Value)> = Vec::new();
    let mut push = |h: f64, kind: &'static str, v: Value| r.push((at(h), kind, v));
    push(
        0.0,
        "run_started",
        json!({"journal_version": 1, "config_fingerprint": "abc123", "seed": 7, "source": "sim",
               "pairs": ["BTC/USD", "ETH/USD"], "currency": "USD", "starting_equity": "10000"}),
    );
    for k in 1..30 {
        let e = if k % 2 == 1 { "10100" } else { "10000" };
        push(
            f64::from(k),
            "equity",
            json!({"equity": e, "cash": e, "unrealized": "0", "open_positions": 0, "drawdown": 0.0}),
        );
    }
    push(
        30.0,
        "equity",
        json!({"equity": "9500", "cash": "9500", "unrealized": "0", "open_positions": 0, "drawdown": 0.0594}),
    );

    for (i, (p, s, ty, q, px)) in [
        ("BTC/USD", "buy", "limit", "0.1", Some("50000")),
        ("BTC/USD", "sell", "take-profit", "0.1", Some("51000")),
        ("ETH/USD", "sell", "market", "1", None),
        ("ETH/USD", "buy", "stop-loss", "1", Some("3050")),
        ("BTC/USD", "buy", "limit", "0.1", Some("50000")),
        ("BTC/USD", "sell", "stop-loss", "0.1", Some("49000")),
        ("BTC/USD", "buy", "market", "0.00001", None),
        ("ETH/USD", "buy", "take-profit", "1", Some("2900")),
    ]
    .into_iter()
    .enumerate()
    {
        let id = i as u64 + 1;
        let v = order(id, p, s, ty, q, px);
        if id == 7 {
            let mut v = v;
            v["rejection"] =
                json!({"error": "EOrder:Order minimum not met", "reason": "qty 0.00001 < ordermin 0.0001"});
            push(0.5, "order_rejected", v);
        } else {
            push(0.5, "order", v);
        }
    }
    push(2.9, "order_triggered", json!({"time": at(2.9), "order_id": 2, "trigger_price": "51000"}));
    push(11.9, "order_triggered", json!({"time": at(11.9), "order_id": 6, "trigger_price": "49000"}));
    push(8.0, "order_canceled", json!({"time": at(8.0), "order_id": 8, "reason": "oco"}));

    let mut f1 = fill(1, 1, "BTC/USD", Side::Buy, dec!(50000), dec!(0.04), dec!(0.80), 1.0);
    f1.partial = true;
    f1.liquidity = Liquidity::Maker;
    let mut f2 = fill(2, 1, "BTC/USD", Side::Buy, dec!(50000), dec!(0.06), dec!(1.20), 1.0);
    f2.liquidity = Liquidity::Maker;
    let mut f3 = fill(3, 2, "BTC/USD", Side::Sell, dec!(51000), dec!(0.1), dec!(2.04), 3.0);
    f3.slippage = dec!(0.5);
    f3.cause =
        FillCause::Trade { event_seq: 99, trade_id: 555, trade_price: dec!(51000), trade_qty: dec!(0.3) };
    let mut f4 = fill(4, 3, "ETH/USD", Side::Sell, dec!(3000), dec!(1), dec!(1.20), 5.0);
    f4.slippage = dec!(0.3);
    let mut f5 = fill(5, 4, "ETH/USD", Side::Buy, dec!(3050), dec!(1), dec!(1.20), 8.0);
    f5.slippage = dec!(0.2);
    let mut f6 = fill(6, 5, "BTC/USD", Side::Buy, dec!(50000), dec!(0.1), dec!(2.00), 10.0);
    f6.liquidity = Liquidity::Maker;
    let mut f7 = fill(7, 6, "BTC/USD", Side::Sell, dec!(49000), dec!(0.1), dec!(1.96), 12.0);
    f7.slippage = dec!(1.0);
    for f in [f1, f2, f3, f4, f5, f6, f7] {
        let h = (f.time.as_micros() - T0) as f64 / H as f64;
        push(h, "fill", serde_json::to_value(&f).unwrap());
    }
    for (h, pair, qty) in [
        (1.0, "BTC/USD", "0.04"),
        (1.0, "BTC/USD", "0.1"),
        (3.0, "BTC/USD", "0"),
        (5.0, "ETH/USD", "-1"),
        (8.0, "ETH/USD", "0"),
        (10.0, "BTC/USD", "0.1"),
        (12.0, "BTC/USD", "0"),
    ] {
        push(
            h,
            "position",
            json!({"time": at(h), "pair": pair, "qty": qty, "avg_price": "1", "realized_pnl": "0"}),
        );
    }
    let trades = [
        trade(
            1,
            "BTC/USD",
            Side::Buy,
            dec!(0.1),
            (1.0, 3.0),
            (dec!(50000), dec!(51000)),
            dec!(4.04),
            dec!(95.96),
            vec![contrib("ema_cross", 1.0), contrib("rsi", 0.5)],
            vec!["a,b".into(), "x".into()],
            "take_profit",
        ),
        trade(
            2,
            "ETH/USD",
            Side::Sell,
            dec!(1),
            (5.0, 8.0),
            (dec!(3000), dec!(3050)),
            dec!(2.40),
            dec!(-52.40),
            vec![contrib("rsi", 0.5)],
            vec![],
            "stop_loss",
        ),
        trade(
            3,
            "BTC/USD",
            Side::Buy,
            dec!(0.1),
            (10.0, 12.0),
            (dec!(50000), dec!(49000)),
            dec!(3.96),
            dec!(-103.96),
            vec![contrib("ema_cross", 1.0)],
            vec![],
            "flatten \"now\"",
        ),
    ];
    for t in trades {
        let h = (t.exit_time.as_micros() - T0) as f64 / H as f64;
        push(h, "trade_closed", serde_json::to_value(&t).unwrap());
    }
    for (h, reason) in [(13.0, "halted"), (14.0, "halted"), (6.0, "max_exposure")] {
        push(
            h,
            "risk_refusal",
            json!({"intent_id": 1, "pair": "BTC/USD", "reason": reason, "detail": "d", "time": at(h)}),
        );
    }
    push(12.5, "emergency_stop", json!({"drawdown": 0.06, "limit": 0.05, "equity": "9400", "peak": "10000"}));
    push(20.0, "signal_weights", json!({"weights": {"ema_cross": 1.2, "rsi": 0.8, "macd": 0.5}}));
    push(21.0, "mystery", json!({"anything": [1, 2, 3]}));
    push(
        30.0,
        "exec_stats",
        json!({"fills": 3, "partial_fills": 0, "maker_fills": 0, "taker_fills": 3,
        "stops_triggered": 0, "rejected_orders": 0, "fees_paid": "1", "slippage_paid": "0"}),
    );
    push(
        30.0,
        "feed_stats",
        json!({"frames": 100, "events": 250, "checksums_verified": 90, "checksum_mismatches": 1,
        "resyncs": 1, "reconnects": 0, "malformed": 0, "unknown": 2, "events_per_sec": 1234.5}),
    );
    push(
        30.0,
        "risk_metrics",
        json!({"max_drawdown": 0.07, "current_drawdown": 0.01, "var": 12.5, "emergency_stops": 9}),
    );
    push(30.0, "run_ended", json!({"reason": "duration", "final_equity": "9500", "open_positions": 0}));
    r.sort_by_key(|x| x.0);
    r
}

fn journal_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (t, kind, v)) in records().into_iter().enumerate() {
        encode(i as u64 + 1, &Entry::new(t, kind, &v), &mut out);
    }
    out
}

/// A fresh run folder holding `bytes` as its journal.
fn run_dir(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kp-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(files::JOURNAL), bytes).unwrap();
    dir
}

fn report_of(bytes: &[u8]) -> Value {
    report_from(&load::load_bytes(bytes).unwrap())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

/// Minimal RFC 4180 reader (quoted fields, doubled quotes, LF line ends).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

fn csv_records(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let rows = parse_csv(text);
    let header = &rows[0];
    rows[1..].iter().map(|r| header.iter().cloned().zip(r.iter().cloned()).collect()).collect()
}

#[test]
fn decimals_are_exact_json_numbers() {
    assert_eq!(dec(dec!(50000.10)).to_string(), "50000.10");
    assert_eq!(dec(dec!(-0.000001)).to_string(), "-0.000001");
    assert_eq!(num(Some(f64::NAN)), Value::Null);
    assert_eq!(num(Some(f64::INFINITY)), Value::Null);
    assert_eq!(num(Some(0.25)).to_string(), "0.25");
}

#[test]
fn headline_fields_match_the_journal() {
    let r = report_of(&journal_bytes());
    assert_eq!(r["trades"], json!(3));
    assert_eq!(r["fills"], json!(7));
    assert_eq!(r["starting_equity"].to_string(), "10000");
    assert_eq!(r["final_equity"].to_string(), "9500");
    assert_eq!(r["net_pnl"].to_string(), "-500");
    // 95.96 − 52.40 − 103.96 = −60.40.
    assert_eq!(r["realized_pnl"].to_string(), "-60.40");
    assert_eq!(f(&r["return_pct"]), -5.0);
    // Peak 10 100 at 29 h, 9 500 at 30 h: 600 / 10 100 = 5.940594 %.
    assert!(close(f(&r["max_drawdown_pct"]), 600.0 / 10_100.0 * 100.0));
    assert!(close(f(&r["win_rate"]), 1.0 / 3.0));
    // 95.96 / (52.40 + 103.96) = 0.613712.
    assert!(close(f(&r["profit_factor"]), 95.96 / 156.36));
    // −60.40 / 3 rounded to 8 places.
    assert_eq!(r["expectancy"].to_string(), "-20.13333333");
    assert_eq!(r["avg_win"].to_string(), "95.96");
    assert_eq!(r["avg_loss"].to_string(), "-78.18"); // (−52.40 − 103.96) / 2
    assert_eq!(r["open_positions"], json!(0));
    // Open 1–3 h, 5–8 h, 10–12 h: 7 h of 30 h.
    assert!(close(f(&r["exposure_time"]), 7.0 / 30.0));
    assert_eq!(r["currency"], json!("USD"));
    assert_eq!(r["fees_paid"].to_string(), "10.40");
    assert_eq!(r["slippage_paid"].to_string(), "2.0");
}

#[test]
fn statistics_use_hourly_returns_for_a_thirty_hour_run() {
    let r = report_of(&journal_bytes());
    let s = &r["stats"];
    assert_eq!(s["period_seconds"], json!(3600));
    assert_eq!(f(&s["periods_per_year"]), 8760.0);
    assert_eq!(s["returns"], json!(30));
    // Grid 0..30 h: 10 000, then 10 100 / 10 000 alternating for 1..29 h, then 9 500.
    let mut grid = vec![10_000.0];
    grid.extend((1..30).map(|k| if k % 2 == 1 { 10_100.0 } else { 10_000.0 }));
    grid.push(9_500.0);
    let rets: Vec<f64> = grid.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let n = rets.len() as f64;
    let m = rets.iter().sum::<f64>() / n;
    let sd = (rets.iter().map(|x| libm::pow(x - m, 2.0)).sum::<f64>() / (n - 1.0)).sqrt();
    let down = (rets.iter().map(|x| libm::pow(x.min(0.0), 2.0)).sum::<f64>() / n).sqrt();
    assert!(close(f(&s["mean_period_return"]), m));
    assert!(close(f(&r["sharpe"]), m / sd * 8760f64.sqrt()));
    assert!(close(f(&r["sortino"]), m / down * 8760f64.sqrt()));
    // Annualised: (9 500 / 10 000)^(8760 / 30) − 1.
    let annual = libm::pow(0.95, 8760.0 / 30.0) - 1.0;
    assert!(close(f(&s["annualised_return"]), annual));
    assert!(close(f(&r["calmar"]), annual / (600.0 / 10_100.0)));
    assert!(close(f(&s["annualised_volatility"]), sd * 8760f64.sqrt()));
    assert_eq!(s["max_drawdown_peak_time"], json!(at(29.0).to_rfc3339()));
    assert_eq!(s["max_drawdown_trough_time"], json!(at(30.0).to_rfc3339()));
    assert_eq!(s["max_drawdown_recovery_time"], Value::Null);
    // Each dip (peak at an odd hour, back at the next odd hour) lasts 2 h; the last one,
    // from 29 h to the end at 30 h, only 1 h.
    assert_eq!(f(&s["max_drawdown_duration_s"]), 7200.0);
    assert_eq!(f(&s["trades"]["avg_holding_s"]), (2.0 + 3.0 + 2.0) / 3.0 * 3600.0);
    assert_eq!(f(&s["risk_free_rate"]), 0.0);
    // 30 h from the first curve point to the last event: under 30 days, so warned.
    assert_eq!(f(&s["span_s"]), 30.0 * 3600.0);
    let warning = s["annualisation_warning"].as_str().unwrap();
    assert!(warning.contains("30.0 hours") && warning.contains("30 returns of 1 hour"), "{warning}");
}

#[test]
fn a_run_of_thirty_days_has_no_annualisation_warning() {
    // Starting equity at 0 h, one snapshot a day for 30 days: daily returns, no warning.
    let mut bytes = Vec::new();
    let start = json!({"currency": "USD", "starting_equity": "10000", "risk_free_rate": 0.05});
    encode(1, &Entry::new(at(0.0), "run_started", &start), &mut bytes);
    for d in 1..=30u64 {
        let e = json!({"equity": (10_000 + 10 * (d % 3)).to_string()});
        encode(1 + d, &Entry::new(at(24.0 * d as f64), "equity", &e), &mut bytes);
    }
    let s = &report_of(&bytes)["stats"];
    assert_eq!((s["period_seconds"].clone(), s["returns"].clone()), (json!(86_400), json!(30)));
    assert_eq!(s["annualisation_warning"], Value::Null);
    assert_eq!(f(&s["risk_free_rate"]), 0.05);
}

#[test]
fn the_dashboards_sharpe_is_the_reports() {
    // PositionBook's equity bookkeeping over 50 h of snapshots every 60 s (3 000 of them, more
    // than the dashboard's thinned chart keeps), and a journal of the same records: the
    // dashboard's Sharpe (sampled_sharpe of the tracker's grid) is report.json's `sharpe`.
    use crate::core::equity::EquityTracker;
    use crate::core::time::Span;
    let rf = 0.05;
    let mut tracker = EquityTracker::new(dec!(10000), Span::from_secs(60));
    let mut bytes = Vec::new();
    let start = json!({"currency": "USD", "starting_equity": "10000", "risk_free_rate": rf});
    encode(1, &Entry::new(EventTime::ZERO, "run_started", &start), &mut bytes);
    let mut seq = 1;
    let mut equity = dec!(10000);
    // Events every 25 s of market time; a snapshot is due before the first event at or after
    // each grid point, holding the equity as of then.
    for k in 0..(50 * 144) {
        let t = at(0.0).plus_micros(k * 25 * MICROS_PER_SEC);
        if let Some(grid_time) = tracker.due(t) {
            tracker.snapshot(grid_time, equity);
            seq += 1;
            encode(seq, &Entry::new(grid_time, "equity", &json!({"equity": equity})), &mut bytes);
        }
        // A wandering equity (deterministic): ±0.37, ±1.13 …
        equity += Decimal::from((k * 7_919) % 23 - 11) * dec!(0.0371);
    }
    let report = report_of(&bytes);
    let dashboard = stats::sampled_sharpe(&tracker.sampled(), rf);
    assert!(dashboard.is_some());
    assert_eq!(report["sharpe"], num(dashboard));
    assert_eq!(report["stats"]["period_seconds"], json!(tracker.sampled().period_s));
    assert!(tracker.curve().len() <= crate::core::equity::CURVE_POINTS);
}

#[test]
fn execution_is_recomputed_from_fill_and_order_records() {
    let r = report_of(&journal_bytes());
    let e = &r["execution"];
    // The stale exec_stats record says 3 fills; the journal holds 7 fill records.
    assert_eq!(e["fills"], json!(7));
    assert_eq!(e["partial_fills"], json!(1));
    assert_eq!(e["maker_fills"], json!(3));
    assert_eq!(e["taker_fills"], json!(4));
    assert_eq!(e["stops_triggered"], json!(2));
    assert_eq!(e["rejected_orders"], json!(1));
    assert_eq!(e["canceled_orders"], json!(1));
    assert_eq!(e["fees_paid"].to_string(), "10.40");
    assert_eq!(e["slippage_paid"].to_string(), "2.0");
    assert_eq!(e["recorded"]["fills"], json!(3));
    // 2 000 + 3 000 + 5 100 + 3 000 + 3 050 + 5 000 + 4 900 = 26 050.
    assert_eq!(e["notional_traded"].to_string().parse::<Decimal>().unwrap(), dec!(26050));
}

#[test]
fn risk_feed_and_run_sections() {
    let r = report_of(&journal_bytes());
    let k = &r["risk"];
    assert_eq!(k["emergency_stops"], json!(1)); // counted records, not the metric's 9
    assert_eq!(k["refused_intents"], json!(3));
    assert_eq!(k["refused_by_reason"], json!({"halted": 2, "max_exposure": 1}));
    assert!(close(f(&k["max_drawdown"]), 600.0 / 10_100.0));
    assert_eq!(f(&k["var"]), 12.5); // other risk_metrics fields are kept
    assert_eq!(k["recorded"]["max_drawdown"], json!(0.07));
    let fd = &r["feed"];
    assert_eq!((fd["frames"].clone(), fd["checksum_mismatches"].clone()), (json!(100), json!(1)));
    assert_eq!(f(&fd["events_per_sec"]), 1234.5);
    let run = &r["run"];
    assert_eq!(run["fingerprint"], json!("abc123"));
    assert_eq!(run["seed"], json!(7));
    assert_eq!(run["source"], json!("sim"));
    assert_eq!(run["pairs"], json!(["BTC/USD", "ETH/USD"]));
    assert_eq!(run["first_event_time"], json!("2025-01-01T00:00:00.000000Z"));
    assert_eq!(run["last_event_time"], json!("2025-01-02T06:00:00.000000Z"));
    assert_eq!(run["ended"], json!(true));
    assert_eq!(run["torn_tail"], Value::Null);
}

#[test]
fn per_pair_and_per_signal_breakdowns() {
    let r = report_of(&journal_bytes());
    let btc = &r["per_pair"]["BTC/USD"];
    assert_eq!((btc["trades"].clone(), btc["wins"].clone()), (json!(2), json!(1)));
    assert_eq!(btc["pnl"].to_string(), "-8.00"); // 95.96 − 103.96
    assert_eq!(f(&btc["win_rate"]), 0.5);
    assert_eq!(btc["fills"], json!(5));
    assert_eq!(r["per_pair"]["ETH/USD"]["pnl"].to_string(), "-52.40");
    let ema = &r["per_signal"]["ema_cross"];
    assert_eq!(ema["trades"], json!(2));
    assert_eq!(ema["pnl"].to_string(), "-8.00");
    // Trade 1 split by |score × confidence × weight|: ema 0.4, rsi 0.2 → 2/3 and 1/3.
    assert!(close(f(&ema["attributed_pnl"]), 95.96 * 2.0 / 3.0 - 103.96));
    let rsi = &r["per_signal"]["rsi"];
    assert!(close(f(&rsi["attributed_pnl"]), 95.96 / 3.0 - 52.40));
    assert_eq!(f(&rsi["final_weight"]), 0.8);
    // A source with a weight but no trades is listed with zero trades.
    assert_eq!(r["per_signal"]["macd"]["trades"], json!(0));
    assert_eq!(r["per_signal"]["macd"]["win_rate"], Value::Null);
}

#[test]
fn same_journal_gives_byte_identical_report() {
    let a = to_json_bytes(&report_of(&journal_bytes()));
    let b = to_json_bytes(&report_of(&journal_bytes()));
    assert_eq!(a, b);
    let text = String::from_utf8(a).unwrap();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

#[test]
fn torn_tail_is_left_out_and_reported() {
    let full = journal_bytes();
    let mut torn = full.clone();
    torn.extend_from_slice(
        b"{\"seq\":9999,\"event_time\":\"2025-01-02T07:00:00Z\",\"type\":\"fill\",\"fill_id\":",
    );
    let a = report_of(&full);
    let b = report_of(&torn);
    assert_eq!(b["fills"], a["fills"]);
    assert_eq!(b["final_equity"], a["final_equity"]);
    assert_eq!(b["run"]["torn_tail"]["offset"], json!(full.len()));
}

#[test]
fn crashed_run_without_end_records_still_reports() {
    // Cut the journal right after the third trade (12 h): no run_ended, exec_stats or
    // risk_metrics; the last equity snapshot (12 h, 10 000) is the final equity.
    let mut out = Vec::new();
    for (i, (t, kind, v)) in records().into_iter().filter(|r| r.0 <= at(12.0)).enumerate() {
        encode(i as u64 + 1, &Entry::new(t, kind, &v), &mut out);
    }
    let r = report_of(&out);
    assert_eq!(r["trades"], json!(3));
    assert_eq!(r["fills"], json!(7));
    assert_eq!(r["final_equity"].to_string(), "10000");
    assert_eq!(r["run"]["ended"], json!(false));
    assert_eq!(r["open_positions"], json!(0)); // from the position records
    assert_eq!(r["execution"]["recorded"], Value::Null);
    assert_eq!(r["feed"]["frames"], Value::Null);
    // 12 h: 5-minute returns (144 ≥ 30).
    assert_eq!(r["stats"]["period_seconds"], json!(300));
}

#[test]
fn empty_and_tiny_journals_give_nulls_not_errors() {
    let r = report_of(b"");
    assert_eq!(r["trades"], json!(0));
    assert_eq!(r["sharpe"], Value::Null);
    assert_eq!(r["win_rate"], Value::Null);
    let mut one = Vec::new();
    encode(1, &Entry::new(at(0.0), "run_started", &records()[0].2), &mut one);
    let r = report_of(&one);
    assert_eq!(r["final_equity"].to_string(), "10000");
    assert_eq!(r["return_pct"], json!(0.0));
    assert_eq!((r["sharpe"].clone(), r["calmar"].clone()), (Value::Null, Value::Null));
}

#[test]
fn write_reports_writes_json_and_self_contained_html() {
    let dir = run_dir("write", &journal_bytes());
    let r = write_reports(&dir).unwrap();
    let json_text = std::fs::read(dir.join(files::REPORT)).unwrap();
    assert_eq!(json_text, to_json_bytes(&r));
    let html = std::fs::read_to_string(dir.join(files::REPORT_HTML)).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("<polyline") && html.contains("class=\"win\""));
    // Nothing to fetch: no scripts, links or images; the only URL is the SVG namespace.
    for bad in ["<script", "<link", "<img", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(bad), "report.html contains {bad}");
    }
    assert_eq!(html.matches("http").count(), html.matches("http://www.w3.org/2000/svg").count());
    // Trade 3's exit reason is escaped.
    assert!(html.contains("flatten &quot;now&quot;"));
    // Writing again gives the same bytes.
    write_reports(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join(files::REPORT_HTML)).unwrap(), html);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn csv_export_round_trips_to_the_report_totals() {
    let dir = run_dir("csv", &journal_bytes());
    let report = write_reports(&dir).unwrap();
    let s = export(&dir, ExportFormat::Csv).unwrap();
    assert_eq!((s.trades, s.orders, s.fills, s.equity_points, s.torn_tail), (3, 8, 7, 30, false));

    let trades = csv_records(&std::fs::read_to_string(dir.join("trades.csv")).unwrap());
    assert_eq!(trades.len() as u64, report["trades"].as_u64().unwrap());
    let pnl: Decimal = trades.iter().map(|t| t["pnl"].parse::<Decimal>().unwrap()).sum();
    assert_eq!(pnl.to_string(), report["realized_pnl"].to_string());
    assert_eq!(trades[0]["tags"], "a,b;x"); // the comma survives quoting
    assert_eq!(trades[0]["signals"], "ema_cross:1;rsi:0.5");
    assert_eq!(trades[2]["exit_reason"], "flatten \"now\"");
    assert_eq!(trades[0]["entry_time"], at(1.0).to_rfc3339());
    assert_eq!(trades[1]["max_drawdown"], "-30.25");

    let text = std::fs::read_to_string(dir.join("fills.csv")).unwrap();
    assert!(text.starts_with("fill_id,"));
    let fills = csv_records(&text);
    assert_eq!(fills.len() as u64, report["execution"]["fills"].as_u64().unwrap());
    let fees: Decimal = fills.iter().map(|f| f["fee"].parse::<Decimal>().unwrap()).sum();
    assert_eq!(fees.to_string(), report["execution"]["fees_paid"].to_string());
    let ids: Vec<&str> = fills.iter().map(|f| f["fill_id"].as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!((fills[0]["partial"].as_str(), fills[0]["liquidity"].as_str()), ("true", "maker"));
    assert_eq!((fills[2]["cause"].as_str(), fills[2]["cause_trade_id"].as_str()), ("trade", "555"));

    let orders = csv_records(&std::fs::read_to_string(dir.join("orders.csv")).unwrap());
    let status: Vec<&str> = orders.iter().map(|o| o["status"].as_str()).collect();
    assert_eq!(status, ["closed", "closed", "closed", "closed", "closed", "closed", "rejected", "canceled"]);
    assert_eq!(orders[0]["filled_qty"], "0.10");
    assert_eq!(orders[0]["fills"], "2");
    assert_eq!(orders[1]["triggered_at"], at(2.9).to_rfc3339());
    assert_eq!(orders[6]["end_reason"], "EOrder:Order minimum not met (qty 0.00001 < ordermin 0.0001)");
    assert_eq!(orders[0]["origin"], "intent");
    assert_eq!(orders[0]["origin_ref"], "101");

    let equity = csv_records(&std::fs::read_to_string(dir.join("equity.csv")).unwrap());
    assert_eq!(equity.last().unwrap()["equity"], report["final_equity"].to_string());

    // returns.csv: the statistics' grid (hourly, 0..30 h) and the returns into each grid time;
    // their Sharpe is the report's.
    let text = std::fs::read_to_string(dir.join("returns.csv")).unwrap();
    assert!(text.starts_with("time,equity,return\n"), "{text}");
    let rows = csv_records(&text);
    assert_eq!((rows.len(), s.returns), (31, 31));
    let times: Vec<String> = (0..=30).map(|h| at(f64::from(h)).to_rfc3339()).collect();
    assert_eq!(rows.iter().map(|r| r["time"].clone()).collect::<Vec<_>>(), times);
    assert_eq!((rows[0]["equity"].as_str(), rows[0]["return"].as_str()), ("10000", ""));
    assert_eq!((rows[1]["equity"].as_str(), rows[30]["equity"].as_str()), ("10100", "9500"));
    let r: Vec<f64> = rows[1..].iter().map(|r| r["return"].parse().unwrap()).collect();
    assert_eq!(r.len() as u64, report["stats"]["returns"].as_u64().unwrap());
    assert_eq!(num(stats::sharpe(&r, 0.0, 8_760.0)), report["sharpe"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_export_matches_csv_rows() {
    let dir = run_dir("json", &journal_bytes());
    let s = export(&dir, ExportFormat::Json).unwrap();
    assert_eq!(s.files.len(), 5);
    let returns: Value = serde_json::from_slice(&std::fs::read(dir.join("returns.json")).unwrap()).unwrap();
    assert_eq!(returns[0], json!({"time": at(0.0).to_rfc3339(), "equity": 10000.0, "return": null}));
    let trades: Value = serde_json::from_slice(&std::fs::read(dir.join("trades.json")).unwrap()).unwrap();
    assert_eq!(trades.as_array().unwrap().len(), 3);
    assert_eq!(trades[0]["pnl"].to_string(), "95.96");
    assert_eq!(trades[0]["tags"], json!(["a,b", "x"]));
    assert_eq!(trades[1]["signals"][0]["source"], json!("rsi"));
    let fills: Value = serde_json::from_slice(&std::fs::read(dir.join("fills.json")).unwrap()).unwrap();
    assert_eq!(fills[0]["fill_id"], json!(1));
    assert_eq!(fills[0]["partial"], json!(true));
    assert_eq!(fills[0]["cause_trade_id"], Value::Null);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_of_a_journal_being_written_ignores_the_partial_line() {
    let mut bytes = journal_bytes();
    bytes.extend_from_slice(b"{\"seq\":9999,\"event_time\":\"2025-01-02T07:00:00Z\",\"type\":\"fi");
    let dir = run_dir("torn", &bytes);
    let s = export(&dir, ExportFormat::Csv).unwrap();
    assert!(s.torn_tail);
    assert_eq!(s.fills, 7);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corruption_in_the_middle_is_an_error_naming_the_line() {
    let mut bytes = journal_bytes();
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    bytes[nl - 2] = b'#';
    let dir = run_dir("corrupt", &bytes);
    let err = build_report(&dir.join(files::JOURNAL)).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_run_folder_is_a_clear_error() {
    let err = export(Path::new("/nonexistent/kp-run"), ExportFormat::Csv).unwrap_err().to_string();
    assert!(err.contains("no journal.jsonl"), "{err}");
}

#[test]
fn csv_export_quotes_only_what_rfc_4180_needs_and_reads_back() {
    use export::{Cell, Table};
    let t = Table {
        name: "t",
        columns: &["a", "b", "c"],
        rows: vec![
            vec![Cell::Str("plain".into()), Cell::Dec(dec!(1.50)), Cell::Null],
            vec![Cell::Str("x,y".into()), Cell::Str("say \"hi\"".into()), Cell::Str("two\nlines".into())],
        ],
    };
    let bytes = t.to_csv().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        "a,b,c\nplain,1.50,\n\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
    );
    let back: Vec<Vec<String>> = csv::Reader::from_reader(bytes.as_slice())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(back[1], ["x,y", "say \"hi\"", "two\nlines"]);
}
