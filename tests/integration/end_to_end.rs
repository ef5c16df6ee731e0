//! A short simulated session through the real actor graph: trades happen, the accounting
//! identity holds at every fill, and the journal holds every fill.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::support::*;

#[test]
fn short_simulated_session_trades_and_journals_every_fill() {
    let dir = TempDir::new("e2e");
    let run = dir.join("run");
    let out = run_cli(
        &["run", "--no-http", "--duration", "3h", "--seed", "3", "--run-dir", run.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "run failed:\n{}", text(&out));

    let journal = journal(&run);
    let fills = records(&journal, "fill");
    let report = report(&run);
    assert!(report["trades"].as_u64().unwrap() > 0, "no closed trades: {report}");
    assert_eq!(
        report["fills"].as_u64().unwrap() as usize,
        fills.len(),
        "report and journal disagree on fills"
    );
    assert!(!fills.is_empty());

    // The PositionBook checks equity = cash + Σ qty × mark after every fill and journals any
    // violation; there must be none.
    assert!(records(&journal, "identity_violation").is_empty(), "accounting identity violated");

    // Every fill id is unique, and replaying the fills from the starting balances gives the
    // final balances the engine journaled: nothing created or destroyed.
    let mut ids: Vec<u64> = fills.iter().map(|f| f["fill_id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), fills.len(), "duplicate fill ids");
    let mut balances: BTreeMap<String, Decimal> = BTreeMap::new();
    balances.insert("USD".into(), Decimal::from(10_000));
    for f in &fills {
        let pair = f["pair"].as_str().unwrap();
        let (base, quote) = pair.split_once('/').unwrap();
        let (price, qty, fee) = (dec(&f["price"]), dec(&f["qty"]), dec(&f["fee"]));
        let cost = price * qty;
        let sign = if f["side"] == "buy" { Decimal::ONE } else { -Decimal::ONE };
        *balances.entry(base.to_string()).or_default() += sign * qty;
        *balances.entry(quote.to_string()).or_default() -= sign * cost;
        *balances.entry(f["fee_currency"].as_str().unwrap().to_string()).or_default() -= fee;
    }
    let journaled = records(&journal, "balances");
    let last = journaled.last().expect("a final balances record");
    for (asset, expected) in &balances {
        let got = last["balances"].get(asset).map(dec).unwrap_or_default();
        assert_eq!(got, *expected, "balance of {asset}: journal implies {expected}, engine says {got}");
    }
}
