//! Shorts on margin end to end: with `execution.margin.enabled` a negative consensus opens
//! short margin positions through RiskManager; they pay Kraken's margin fees, close into
//! `trade_closed` records with side `sell`, and the journal's fills and margin fees account
//! for every balance. Without it the same market opens no short at all.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::support::*;

fn run(dir: &TempDir, name: &str, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let run = dir.join(name);
    let out = run_cli(&["run", "--no-http", "--duration", "2h", "--run-dir", run.to_str().unwrap()], env);
    assert!(out.status.success(), "run {name} failed:\n{}", text(&out));
    journal(&run)
}

#[test]
fn negative_consensus_opens_shorts_only_with_margin_on() {
    let dir = TempDir::new("shorts");
    let j = run(&dir, "margin", &[("KRAKEN_PAPER__EXECUTION__MARGIN__ENABLED", "true")]);
    assert!(records(&j, "identity_violation").is_empty(), "accounting identity broke");
    let shorts: Vec<_> = records(&j, "order")
        .into_iter()
        .filter(|o| {
            o["spec"]["side"] == "sell" && o["spec"]["leverage"] == 2 && o["origin"]["kind"] == "intent"
        })
        .collect();
    assert!(!shorts.is_empty(), "no margin sell was placed");
    let fees = records(&j, "margin_fee");
    assert!(fees.iter().any(|f| f["kind"] == "opening"), "no opening fee");
    // Opening fee = rate × borrowed qty × price, at the pair's cost precision (5).
    for f in &fees {
        let want =
            (dec(&f["qty"]) * dec(&f["price"]) * dec(&f["rate_pct"]) / Decimal::ONE_HUNDRED).round_dp(5);
        assert_eq!(dec(&f["fee"]), want, "{f}");
    }
    assert!(records(&j, "trade_closed").iter().any(|t| t["side"] == "sell"), "no short closed");
    // Starting balances + fills − margin fees = the final balances (a short leaves the base
    // balance negative while it is open, and flat once bought back).
    let mut bal: BTreeMap<String, Decimal> = BTreeMap::new();
    for (a, v) in records(&j, "run_started")[0]["starting_balances"].as_object().unwrap() {
        bal.insert(a.clone(), dec(v));
    }
    for f in records(&j, "fill") {
        let (base, quote) = f["pair"].as_str().unwrap().split_once('/').unwrap();
        let sign = if f["side"] == "buy" { Decimal::ONE } else { -Decimal::ONE };
        *bal.entry(base.into()).or_default() += sign * dec(&f["qty"]);
        *bal.entry(quote.into()).or_default() -= sign * dec(&f["price"]) * dec(&f["qty"]) + dec(&f["fee"]);
    }
    for f in &fees {
        *bal.entry(f["currency"].as_str().unwrap().into()).or_default() -= dec(&f["fee"]);
    }
    let last = records(&j, "balances").last().cloned().unwrap();
    for (asset, want) in &bal {
        assert_eq!(last["balances"].get(asset).map(dec).unwrap_or_default(), *want, "{asset}");
    }

    // Margin off (the default): the same sells are refused, nothing is borrowed.
    let j = run(&dir, "spot", &[]);
    assert!(records(&j, "margin_fee").is_empty());
    assert!(records(&j, "order").iter().all(|o| o["spec"].get("leverage").is_none()));
    assert!(records(&j, "trade_closed").iter().all(|t| t["side"] == "buy"));
    assert!(records(&j, "risk_refusal").iter().any(|r| r["reason"] == "no_position"));
}
