//! The default run (embedded config, offline, six simulated hours) shows its brackets at
//! work: report.json counts the closed trades by exit reason exactly as the journal's
//! `trade_closed` records have them, take-profits and stop-losses both fire, and `gross_pnl`
//! is the closed trades' P&L before their fees.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::support::*;

const REASONS: [&str; 8] =
    ["signal", "stop_loss", "take_profit", "trailing_stop", "chase", "flatten", "liquidation", "api"];

#[test]
fn default_run_counts_exits_by_reason_and_fires_both_brackets() {
    let dir = TempDir::new("exits");
    let run = dir.join("run");
    let out = run_cli(&["run", "--no-http", "--run-dir", run.to_str().unwrap()], &[]);
    assert!(out.status.success(), "default run failed:\n{}", text(&out));
    let journal = journal(&run);
    let closed = records(&journal, "trade_closed");
    let report = report(&run);
    let ex = &report["execution"];

    // exits_by_reason: the histogram of trade_closed.exit_reason, every reason present.
    let mut want: BTreeMap<String, u64> = REASONS.iter().map(|r| (r.to_string(), 0)).collect();
    for t in &closed {
        *want.entry(t["exit_reason"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let got: BTreeMap<String, u64> = ex["exits_by_reason"]
        .as_object()
        .expect("execution.exits_by_reason")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.values().sum::<u64>(), report["trades"].as_u64().unwrap());

    // The volatility-scaled brackets are reachable within a hold: both fire.
    assert!(got["take_profit"] > 0 && got["stop_loss"] > 0, "exits by reason: {got:?}");
    let (tp, sl) = (&ex["take_profits_triggered"], &ex["stop_losses_triggered"]);
    assert!(tp.as_u64().unwrap() > 0 && sl.as_u64().unwrap() > 0, "triggers: tp {tp} sl {sl}");
    assert!(tp.as_u64().unwrap() + sl.as_u64().unwrap() <= ex["stops_triggered"].as_u64().unwrap());
    // gross_pnl = realized_pnl + the closed trades' fees.
    let fees: Decimal = closed.iter().map(|t| dec(&t["fees"])).sum();
    assert_eq!(dec(&report["gross_pnl"]), dec(&report["realized_pnl"]) + fees);
    // The fields the shared checks read are still there.
    for k in ["trades", "fills", "final_equity", "return_pct", "max_drawdown_pct", "win_rate"] {
        assert!(!report[k].is_null(), "report.json lacks {k}");
    }
}
