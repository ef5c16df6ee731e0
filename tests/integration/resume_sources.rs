//! `run --resume` beyond a SIGKILLed simulated run: a replay run killed mid-way (its folder
//! keeps the recording's path and options in replay.json), and runs stopped by SIGTERM or
//! SIGINT (simulated and replay), which are continued past their end-of-run block. In each
//! case the fills equal an uninterrupted run's; `seq` runs on without a gap or a repeat.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// A `record --source sim` recording, made once per test binary run.
fn recording() -> &'static PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kp-resume-rec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sim.jsonl");
        let out = run_cli(
            &[
                "record",
                "--source",
                "sim",
                "--seed",
                "5",
                "--events",
                "90000",
                "--out",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "record failed:\n{}", text(&out));
        file
    })
}

fn replay_args<'a>(file: &'a Path, run: &'a Path) -> Vec<&'a str> {
    vec!["replay", file.to_str().unwrap(), "--depth", "10", "--run-dir", run.to_str().unwrap()]
}

/// One uninterrupted replay of [`recording`].
fn reference_replay() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = recording().parent().unwrap().join("reference");
        let _ = std::fs::remove_dir_all(&dir);
        let out = run_cli(&replay_args(recording(), &dir), &[]);
        assert!(out.status.success(), "reference replay failed:\n{}", text(&out));
        assert!(raw_lines(&dir, "fill").len() >= 4, "the reference replay has too few fills");
        dir
    })
}

/// The lines of `kind` without their `seq` (a stop block shifts the seq of later records).
fn without_seq(run: &Path, kind: &str) -> Vec<String> {
    raw_lines(run, kind)
        .into_iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            let mut m = v.as_object().unwrap().clone();
            m.remove("seq");
            serde_json::Value::Object(m).to_string()
        })
        .collect()
}

/// Every seq from 1 to the last, once each, in order.
fn assert_seq_continuous(run: &Path) {
    let recs = valid_journal(run);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1), "seq breaks at line {}: {r}", i + 1);
    }
}

fn run_until_journal(args: &[&str], journal: &Path, target: u64, log: &Path) -> std::process::Child {
    let mut child = spawn_cli(args, &[], log);
    let reached = wait_until(Duration::from_secs(120), || {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "exited ({st}) before the journal reached {target} bytes:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        file_len(journal) >= target
    });
    assert!(reached, "the journal never reached {target} bytes");
    child
}

#[test]
fn replay_killed_midway_resumes_to_the_fills_of_an_uninterrupted_replay() {
    let reference = reference_replay();
    let dir = TempDir::new("replay-kill");
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let full = file_len(&reference.join("journal.jsonl"));
    let mut child = run_until_journal(&replay_args(recording(), &run), &journal, full / 2, &log);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = file_len(&journal);
    assert!(killed_at < full, "the replay finished before it was killed");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("replay.json")).unwrap()).unwrap();
    assert_eq!(saved["file"].as_str(), Some(std::fs::canonicalize(recording()).unwrap().to_str().unwrap()));

    let out = run_cli(&["run", "--resume", run.to_str().unwrap(), "--no-http"], &[]);
    assert!(out.status.success(), "resume of the replay failed:\n{}", text(&out));
    assert_eq!(
        raw_lines(&run, "fill"),
        raw_lines(reference, "fill"),
        "fills differ from the uninterrupted replay's"
    );
    assert_eq!(raw_lines(&run, "run_ended"), raw_lines(reference, "run_ended"));
    assert_eq!(raw_lines(&run, "feed_stats"), raw_lines(reference, "feed_stats"));
    assert!(
        std::fs::read(&journal).unwrap() == std::fs::read(reference.join("journal.jsonl")).unwrap(),
        "the resumed replay's journal is not the uninterrupted replay's"
    );
    assert_balances_follow_fills(&valid_journal(&run));
    assert_eq!(report(&run)["run"]["source"], "replay");

    // Finished now: a second resume has nothing to do and changes nothing.
    let before = std::fs::read(&journal).unwrap();
    let out = run_cli(&["run", "--resume", run.to_str().unwrap(), "--no-http"], &[]);
    assert!(!out.status.success() && text(&out).contains("nothing to resume"), "{}", text(&out));
    assert!(std::fs::read(&journal).unwrap() == before);
}

#[test]
fn replay_stopped_by_sigint_continues_from_the_next_frame() {
    let reference = reference_replay();
    let dir = TempDir::new("replay-int");
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let full = file_len(&reference.join("journal.jsonl"));
    let mut child = run_until_journal(&replay_args(recording(), &run), &journal, full / 3, &log);
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT did not exit 0:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(report(&run)["run"]["end_reason"], "signal");
    let stopped = valid_journal(&run);
    assert_eq!(stopped.last().unwrap()["reason"], "signal");
    let fills_at_stop = records(&stopped, "fill").len();

    let out = run_cli(&["run", "--resume", run.to_str().unwrap(), "--no-http"], &[]);
    assert!(out.status.success(), "resume after SIGINT failed:\n{}", text(&out));
    assert_eq!(
        without_seq(&run, "fill"),
        without_seq(reference, "fill"),
        "fills differ from the uninterrupted replay's"
    );
    assert!(raw_lines(&run, "fill").len() > fills_at_stop, "no fill after the stop");
    assert_seq_continuous(&run);
    let recs = valid_journal(&run);
    let ended = records(&recs, "run_ended");
    assert_eq!(ended.len(), 2, "one run_ended per session");
    assert_eq!(
        (ended[0]["reason"].as_str(), ended[1]["reason"].as_str()),
        (Some("signal"), Some("duration"))
    );
    // The replay ran to the end of the recording: its counters are the reference's.
    assert_eq!(without_seq(&run, "feed_stats").last(), without_seq(reference, "feed_stats").last());
    assert_balances_follow_fills(&recs);
    let r = report(&run);
    assert_eq!(r["run"]["end_reason"], "duration");
    assert_eq!(r["execution"]["fills"].as_u64().unwrap() as usize, raw_lines(reference, "fill").len());
}

#[test]
fn simulated_run_stopped_by_sigterm_twice_continues_on_the_same_seeded_path() {
    let dir = TempDir::new("sim-term");
    let args = |run: &Path| -> Vec<String> {
        ["run", "--no-http", "--duration", "90m", "--seed", "11", "--run-dir", run.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let reference = dir.join("reference");
    let a = args(&reference);
    let out = run_cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(out.status.success(), "reference run failed:\n{}", text(&out));
    let full = file_len(&reference.join("journal.jsonl"));

    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let first = args(&run);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let resume = ["run", "--resume", run.to_str().unwrap(), "--no-http"];
    // Stop the first session, then the first resume once it has gone past the first stop.
    for (i, (args, share)) in [(&first[..], 5), (&resume[..], 2)].into_iter().enumerate() {
        let mut child = run_until_journal(args, &journal, (full / share).max(file_len(&journal) + 1), &log);
        signal(&child, "TERM");
        let status = wait_exit(&mut child, Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "session {i}: SIGTERM did not exit 0");
        assert_eq!(valid_journal(&run).last().unwrap()["reason"], "signal", "session {i}");
    }
    let out = run_cli(&resume, &[]);
    assert!(out.status.success(), "final resume failed:\n{}", text(&out));
    assert_eq!(
        without_seq(&run, "fill"),
        without_seq(&reference, "fill"),
        "fills differ from the uninterrupted run's"
    );
    assert_seq_continuous(&run);
    let recs = valid_journal(&run);
    assert_eq!(records(&recs, "run_ended").len(), 3);
    assert_eq!(without_seq(&run, "run_ended").last(), without_seq(&reference, "run_ended").last());
    assert_eq!(without_seq(&run, "balances").last(), without_seq(&reference, "balances").last());
    assert_balances_follow_fills(&recs);
}
