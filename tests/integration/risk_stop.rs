//! The drawdown emergency stop through the real actor graph: one `emergency_stop` JSON event,
//! open orders cancelled and positions flattened in the same event (before any record of a
//! later event time), later intents refused `halted`; the cool-down lifts the halt; a run
//! killed while halted resumes halted and `--lift-halt` lifts it, resetting the peak.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::*;

/// A 0.1 % drawdown limit: the simulated market breaches it early in every run.
const TIGHT: &str = "risk:\n  max_drawdown: 0.001\n  halt_cooldown: none\nhttp:\n  enabled: false\n";

fn time(r: &serde_json::Value) -> &str {
    r["event_time"].as_str().unwrap()
}

/// Orders open just before journal index `at`: accepted, and neither cancelled, rejected nor
/// completely filled before it.
fn open_orders_before(journal: &[serde_json::Value], at: usize) -> BTreeSet<u64> {
    let mut open = BTreeSet::new();
    for r in &journal[..at] {
        let id = r["order_id"].as_u64();
        match r["type"].as_str().unwrap() {
            "order" => {
                open.insert(id.unwrap());
            }
            "order_canceled" | "order_rejected" => {
                open.remove(&id.unwrap());
            }
            "fill" if r["partial"] == false => {
                open.remove(&id.unwrap());
            }
            _ => {}
        }
    }
    open
}

/// Pairs with a position just before journal index `at` (from the `position` records).
fn positions_before(journal: &[serde_json::Value], at: usize) -> BTreeMap<String, rust_decimal::Decimal> {
    let mut pos = BTreeMap::new();
    for r in records(&journal[..at], "position") {
        pos.insert(r["pair"].as_str().unwrap().to_string(), dec(&r["qty"]));
    }
    pos.retain(|_, q| !q.is_zero());
    pos
}

#[test]
fn drawdown_breach_halts_cancels_and_flattens_in_the_same_event() {
    let dir = TempDir::new("risk-stop");
    let run = dir.join("run");
    let out = run_cli(
        &[
            "run",
            "--no-http",
            "--duration",
            "2h",
            "--seed",
            "3",
            "--log-format",
            "json",
            "--run-dir",
            run.to_str().unwrap(),
        ],
        &[("KRAKEN_PAPER__RISK__MAX_DRAWDOWN", "0.001"), ("KRAKEN_PAPER__RISK__HALT_COOLDOWN", "none")],
    );
    assert!(out.status.success(), "run failed:\n{}", text(&out));

    // Exactly one emergency_stop event in the JSON log, with the fields operators filter on.
    let logs = json_logs(&out);
    let stops: Vec<_> = logs.iter().filter(|l| l["event"] == "emergency_stop").collect();
    assert_eq!(stops.len(), 1, "expected one emergency_stop log event, got {}", stops.len());
    let ev = stops[0];
    assert_eq!(ev["actor"], "risk_manager", "{ev}");
    let (dd, limit) = (ev["drawdown"].as_f64().unwrap(), ev["limit"].as_f64().unwrap());
    assert_eq!(limit, 0.001, "limit is a fraction: {ev}");
    assert!(dd > limit && dd < 1.0, "drawdown {dd} vs limit {limit}: {ev}");

    let journal = valid_journal(&run);
    let at = journal.iter().position(|r| r["type"] == "emergency_stop").expect("an emergency_stop record");
    assert_eq!(records(&journal, "emergency_stop").len(), 1);
    let stop = &journal[at];
    let t = time(stop);
    assert!(dec(&stop["equity"]) < dec(&stop["peak"]), "{stop}");

    // The same event: everything up to the first record of a later event time.
    let end = journal[at..].iter().position(|r| time(r) > t).map_or(journal.len(), |i| at + i);
    let block = &journal[at + 1..end];
    let open = open_orders_before(&journal, at);
    let canceled: BTreeSet<u64> = block
        .iter()
        .filter(|r| r["type"] == "order_canceled" && r["reason"] == "emergency_stop")
        .map(|r| r["order_id"].as_u64().unwrap())
        .collect();
    assert_eq!(canceled, open, "open orders at the stop vs orders cancelled in the same event");
    let positions = positions_before(&journal, at);
    assert!(!positions.is_empty(), "no position open at the stop: pick a seed that has one");
    let flatten: Vec<_> =
        block.iter().filter(|r| r["type"] == "order" && r["origin"]["kind"] == "flatten").collect();
    let flattened: BTreeSet<&str> = flatten.iter().map(|r| r["spec"]["pair"].as_str().unwrap()).collect();
    assert_eq!(
        flattened,
        positions.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        "one flattening order per open position in the same event"
    );
    for o in &flatten {
        assert_eq!(o["spec"]["order_type"], "market");
        assert_eq!(o["spec"]["reduce_only"], true);
    }
    let flatten_ids: BTreeSet<u64> = flatten.iter().map(|r| r["order_id"].as_u64().unwrap()).collect();
    assert!(
        block.iter().any(|r| r["type"] == "fill" && flatten_ids.contains(&r["order_id"].as_u64().unwrap())),
        "no flattening fill in the same event"
    );

    // Halted for the rest of the run: no new intent orders. The stop reached the aggregator
    // too, which makes no decisions while halted (docs/signals.md), so intents do not even
    // reach the RiskManager; any that would are refused `halted` there.
    let later = &journal[end..];
    assert!(
        !later.iter().any(|r| r["type"] == "order" && r["origin"]["kind"] == "intent"),
        "an intent order after the emergency stop"
    );
    assert!(records(later, "signal_decision").is_empty(), "the aggregator decided while halted");
    assert!(
        records(later, "risk_refusal").iter().all(|r| r["reason"] == "halted"),
        "a refusal after the stop is not `halted`"
    );
    assert!(!records(&journal[..at], "signal_decision").is_empty(), "no decisions before the stop");
    assert!(records(later, "halt_lifted").is_empty(), "halt lifted with halt_cooldown: none");

    let report = report(&run);
    assert_eq!(report["open_positions"], 0, "positions open at the end: {}", report["open_positions"]);
    assert_eq!(report["risk"]["emergency_stops"], 1, "{}", report["risk"]);
    assert_eq!(report["risk"]["halted"], true);
    assert_balances_follow_fills(&journal);
}

#[test]
fn halt_lifts_after_the_cooldown_of_event_time() {
    let dir = TempDir::new("risk-cooldown");
    let (run, _) = run_with(
        &dir,
        "risk:\n  max_drawdown: 0.001\n  halt_cooldown: 20m\nhttp:\n  enabled: false\n",
        &["--duration", "2h", "--seed", "3"],
    );
    let journal = valid_journal(&run);
    let at = journal.iter().position(|r| r["type"] == "emergency_stop").expect("an emergency_stop record");
    let lift = at + journal[at..].iter().position(|r| r["type"] == "halt_lifted").expect("halt_lifted");
    assert_eq!(journal[lift]["by"], "cooldown");
    let stopped = kraken_paper::core::time::EventTime::parse_rfc3339(time(&journal[at])).unwrap();
    let lifted = kraken_paper::core::time::EventTime::parse_rfc3339(time(&journal[lift])).unwrap();
    let waited = lifted.micros_since(stopped);
    // 20 min of event time, lifted on the first portfolio update past it (events arrive
    // every few seconds of market time).
    assert!(waited >= 20 * 60 * 1_000_000, "lifted after {waited} µs");
    assert!(waited < 21 * 60 * 1_000_000, "lifted only after {waited} µs");
    // The halt held until then.
    let between = &journal[at + 1..lift];
    assert!(!between.iter().any(|r| r["type"] == "order" && r["origin"]["kind"] == "intent"));
    assert!(records(between, "risk_refusal").iter().all(|r| r["reason"] == "halted"));
    assert!(records(between, "signal_decision").is_empty(), "the aggregator decided while halted");
    // Trading resumes: intent orders after the lift, and the drawdown was measured from the
    // equity at the lift (a second stop, if any, needs a fresh 0.1 % fall, so it is not at
    // the lift's own event time).
    let after = &journal[lift + 1..];
    let first_order = after.iter().position(|r| r["type"] == "order" && r["origin"]["kind"] == "intent");
    let next_stop = after.iter().position(|r| r["type"] == "emergency_stop");
    assert!(first_order.is_some(), "no intent order after the halt lifted");
    if let Some(s) = next_stop {
        assert!(first_order.unwrap() < s, "halted again before trading resumed");
        assert!(time(&after[s]) > time(&journal[lift]));
    }
}

#[test]
fn killed_while_halted_resumes_halted_and_lift_halt_lifts_it() {
    let dir = TempDir::new("risk-lift");
    let cfg = write_config(dir.path(), TIGHT);
    let run = dir.join("run");
    let journal_path = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let mut child = spawn_cli(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "2h",
            "--seed",
            "3",
            "--run-dir",
            run.to_str().unwrap(),
        ],
        &[],
        &log,
    );
    // Kill it some records after the stop, while halted.
    let mut stop_len = None;
    let halted = wait_until(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&journal_path).unwrap_or_default();
        match stop_len {
            None if text.contains("\"type\":\"emergency_stop\"") => stop_len = Some(text.len()),
            Some(n) => return text.len() > n + 4096,
            None => {}
        }
        child.try_wait().unwrap().is_some()
    });
    assert!(
        halted && stop_len.is_some(),
        "no emergency stop:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();
    let before = valid_journal_or_torn(&run);
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    assert!(records(&before, "halt_lifted").is_empty());

    let out = run_cli(
        &["run", "--resume", run.to_str().unwrap(), "--no-http", "--lift-halt", "--log-format", "json"],
        &[],
    );
    assert!(out.status.success(), "resume failed:\n{}", text(&out));
    // It came back halted (the re-execution rebuilt the halt), so --lift-halt had one to lift.
    let logs = json_logs(&out);
    let lift_log = logs.iter().find(|l| l["message"] == "--lift-halt").expect("no --lift-halt log line");
    assert_eq!(lift_log["result"], "halt lifted", "{lift_log}");

    let journal = valid_journal(&run);
    unique_fill_ids(&journal);
    let lifts: Vec<usize> =
        journal.iter().enumerate().filter(|(_, r)| r["type"] == "halt_lifted").map(|(i, _)| i).collect();
    assert_eq!(lifts.len(), 1, "one halt_lifted record");
    let lift = lifts[0];
    assert_eq!(journal[lift]["by"], "operator");
    assert!(journal[lift]["seq"].as_u64().unwrap() > last_seq, "halt_lifted before the kill point");
    let first = journal.iter().position(|r| r["type"] == "emergency_stop").unwrap();
    assert!(records(&journal[first + 1..lift], "risk_refusal").iter().all(|r| r["reason"] == "halted"));
    assert!(
        !journal[first + 1..lift].iter().any(|r| r["type"] == "order" && r["origin"]["kind"] == "intent")
    );

    // Lifting reset the peak to the equity at the lift: trading resumed instead of halting
    // again at once, and a later stop is measured from a lower peak than the first.
    let after = &journal[lift + 1..];
    let first_order = after.iter().position(|r| r["type"] == "order" && r["origin"]["kind"] == "intent");
    assert!(first_order.is_some(), "no intent order after --lift-halt");
    if let Some(s) = after.iter().position(|r| r["type"] == "emergency_stop") {
        assert!(first_order.unwrap() < s, "halted again before trading resumed");
        assert!(
            dec(&after[s]["peak"]) < dec(&journal[first]["peak"]),
            "the second stop's peak {} is the first's {}: the peak was not reset",
            after[s]["peak"],
            journal[first]["peak"]
        );
    }
}

/// The journal's complete lines (a SIGKILL may leave a torn last one).
fn valid_journal_or_torn(run: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("journal.jsonl")).unwrap();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
