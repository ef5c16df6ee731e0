//! `record --source sim` then `replay`: the recording goes through the same decoder and the
//! whole engine; books verify, replays are byte-identical, and report.json's `feed` section
//! carries the counters and the throughput (from run.json).

use crate::support::*;

fn replay(file: &std::path::Path, run: &std::path::Path, batch: &str) {
    let out = run_cli(
        &["replay", file.to_str().unwrap(), "--batch-events", batch, "--run-dir", run.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "replay (batch {batch}) failed:\n{}", text(&out));
}

#[test]
fn sim_recording_replays_verified_and_byte_identical() {
    let dir = TempDir::new("replay");
    let file = dir.join("sim.jsonl");
    let out =
        run_cli(&["record", "--source", "sim", "--events", "20000", "--out", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "record failed:\n{}", text(&out));

    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    replay(&file, &a, "1");
    replay(&file, &b, "1");
    replay(&file, &c, "64");

    let report_a = report(&a);
    let feed = &report_a["feed"];
    assert!(feed["frames"].as_u64().unwrap() > 0, "{feed}");
    // record --events counts book and trade events: the replay publishes the same ones.
    assert!(feed["events"].as_u64().unwrap() >= 20_000, "{feed}");
    assert!(feed["checksums_verified"].as_u64().unwrap() > 0, "{feed}");
    assert_eq!(feed["checksum_mismatches"], 0, "{feed}");
    assert_eq!(feed["resyncs"], 0, "{feed}");
    assert_eq!(feed["reconnects"], 0, "{feed}");
    assert_eq!(feed["malformed"], 0, "{feed}");
    // Throughput is a wall-clock fact: it comes from run.json, not from the journal.
    assert!(feed["events_per_sec"].as_f64().is_some_and(|x| x > 0.0), "{feed}");
    assert_eq!(report_a["run"]["source"], "replay");

    let ja = std::fs::read(a.join("journal.jsonl")).unwrap();
    let jb = std::fs::read(b.join("journal.jsonl")).unwrap();
    assert!(ja == jb, "two replays of the same file wrote different journals");

    // `report RUN_DIR` rebuilds the same report.json (run.json included).
    let before = std::fs::read(a.join("report.json")).unwrap();
    let out = run_cli(&["report", a.to_str().unwrap()], &[]);
    assert!(out.status.success(), "report failed:\n{}", text(&out));
    assert!(before == std::fs::read(a.join("report.json")).unwrap(), "report RUN_DIR changed report.json");

    // Results do not depend on batching: other batch sizes write the same journal byte for
    // byte, and report the same feed counters.
    let report_c = report(&c);
    for k in ["frames", "events", "checksums_verified", "checksum_mismatches", "resyncs"] {
        assert_eq!(report_c["feed"][k], feed[k], "feed.{k} differs between batch 64 and batch 1");
    }
    assert!(
        ja == std::fs::read(c.join("journal.jsonl")).unwrap(),
        "batch 64 wrote another journal than batch 1"
    );
}

#[test]
fn journals_do_not_depend_on_batch_size_while_trading_halting_or_stopping_mid_batch() {
    let dir = TempDir::new("replay-batches");
    let file = dir.join("sim.jsonl");
    let out =
        run_cli(&["record", "--source", "sim", "--events", "60000", "--out", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "record failed:\n{}", text(&out));
    // A tight drawdown limit with a cool-down: emergency stops (cancel, flatten) and lifts
    // happen in the middle of batches too.
    let tight = dir.join("tight.yaml");
    std::fs::write(&tight, "risk:\n  max_drawdown: 0.002\n  halt_cooldown: 10m\nhttp:\n  enabled: false\n")
        .unwrap();
    let cases: [(&str, Option<&str>, Option<&std::path::Path>); 3] =
        [("all", None, None), ("40m", Some("40m"), None), ("tight", None, Some(&tight))];
    for (name, duration, config) in cases {
        let mut journals = Vec::new();
        for batch in ["1", "3", "50", "1000"] {
            let run = dir.join(format!("b{batch}-{name}").as_str());
            let mut args = vec![
                "replay",
                file.to_str().unwrap(),
                "--batch-events",
                batch,
                "--run-dir",
                run.to_str().unwrap(),
            ];
            if let Some(d) = duration {
                args.extend(["--duration", d]);
            }
            if let Some(c) = config {
                args.extend(["--config", c.to_str().unwrap()]);
            }
            let out = run_cli(&args, &[]);
            assert!(out.status.success(), "replay (batch {batch}, {name}) failed:\n{}", text(&out));
            let r = report(&run);
            // Not a quiet replay: orders were placed and filled, so decisions interleave with
            // fills frame by frame.
            assert!(
                r["fills"].as_u64().unwrap_or(0) > 0,
                "no fills at batch {batch} ({name}): {}",
                r["execution"]
            );
            let journal = std::fs::read(run.join("journal.jsonl")).unwrap();
            if config.is_some() {
                let text = String::from_utf8_lossy(&journal);
                assert!(
                    text.contains("\"type\":\"emergency_stop\""),
                    "no emergency stop ({name}, batch {batch})"
                );
                assert!(text.contains("\"type\":\"halt_lifted\""), "no halt lifted ({name}, batch {batch})");
            }
            journals.push((batch, journal, r["feed"].clone()));
        }
        let (_, first, feed) = &journals[0];
        for (batch, j, f) in &journals[1..] {
            for k in ["frames", "events", "checksums_verified"] {
                assert_eq!(f[k], feed[k], "feed.{k} differs at batch {batch} ({name})");
            }
            assert!(j == first, "batch {batch} wrote another journal than batch 1 ({name})");
        }
    }
}
