//! Two runs with the same config and seed, in different run folders, write byte-identical
//! journals (with fills in them).

use crate::support::*;

#[test]
fn same_seed_gives_byte_identical_journals() {
    let dir = TempDir::new("determinism");
    let mut journals = Vec::new();
    for i in 0..2 {
        let run = dir.join(&format!("run{i}"));
        let out = run_cli(
            &["run", "--no-http", "--duration", "2h", "--seed", "7", "--run-dir", run.to_str().unwrap()],
            &[],
        );
        assert!(out.status.success(), "run {i} failed:\n{}", text(&out));
        journals.push(std::fs::read(run.join("journal.jsonl")).unwrap());
    }
    let fills = String::from_utf8_lossy(&journals[0]).matches("\"type\":\"fill\"").count();
    assert!(fills > 0, "the journal has no fills");
    assert!(journals[0] == journals[1], "journals differ between two runs with the same seed");
    // A different seed is a different market.
    let other = dir.join("other");
    let out = run_cli(
        &["run", "--no-http", "--duration", "2h", "--seed", "8", "--run-dir", other.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success());
    assert!(std::fs::read(other.join("journal.jsonl")).unwrap() != journals[0]);
}
