//! Crash and resume: a run killed with SIGKILL over and over and resumed each time
//! (`run --resume DIR`) ends with exactly the fills of one uninterrupted run; a torn last
//! record is cut off and reported; a finished run and a journal corrupt in the middle are
//! refused; exports before and after a resume agree; SIGTERM stops gracefully.
//!
//! Resume is deterministic re-execution: the resumed process regenerates the journal's
//! records from the same config and seed, checks them against the file, and appends past
//! its end. So the strongest check is a byte comparison with a run that was never killed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::*;

/// Market time of every run here: long enough for trades, short enough that the many
/// re-executions of the kill loop stay within the test budget.
const DURATION: &str = "2h";
const SEED: &str = "11";

/// One uninterrupted run with [`DURATION`] and [`SEED`], shared by the tests (in the cargo
/// target's temporary folder, replaced on each test run).
struct Reference {
    dir: PathBuf,
    journal_len: u64,
    fills: Vec<String>,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kp-crash-ref-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = run_cli(&run_args(&dir), &[]);
        assert!(out.status.success(), "reference run failed:\n{}", text(&out));
        let fills = raw_lines(&dir, "fill");
        assert!(fills.len() >= 10, "reference run has only {} fills", fills.len());
        Reference { journal_len: file_len(&dir.join("journal.jsonl")), fills, dir }
    })
}

fn run_args(dir: &Path) -> Vec<&str> {
    vec!["run", "--no-http", "--duration", DURATION, "--seed", SEED, "--run-dir", dir.to_str().unwrap()]
}

fn resume_args(dir: &Path) -> Vec<&str> {
    // JSON logs: info lines (the resume's start) reach the log with or without -v.
    vec!["run", "--resume", dir.to_str().unwrap(), "--no-http", "--log-format", "json"]
}

/// Polls (1 ms) until the journal has at least `target` bytes, then kills the child with
/// SIGKILL. Fails if the child exits by itself first.
fn kill_at_size(child: &mut std::process::Child, journal: &Path, target: u64, log: &Path) {
    let reached = wait_fine(Duration::from_secs(60), || {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!(
                "run exited ({st}) before its journal reached {target} bytes:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        file_len(journal) >= target
    });
    assert!(reached, "journal never reached {target} bytes");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Kills `child` as soon as its log grows past `from` bytes (it has started).
fn kill_when_logging(child: &mut std::process::Child, log: &Path, from: u64) {
    let started = wait_fine(Duration::from_secs(120), || {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!(
                "resume exited ({st}) before logging:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        file_len(log) > from
    });
    assert!(started, "the resume never logged");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// `wait_until` with a 1 ms step: the kill point should not snap to a 20 ms grid.
fn wait_fine(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let mut n = 0u64;
    while n < timeout.as_millis() as u64 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
        n += 1;
    }
    cond()
}

#[test]
fn repeated_sigkill_and_resume_loses_and_duplicates_no_fill() {
    let r = reference();
    let dir = TempDir::new("crash");
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let mut rng = TestRng(0x5EED_C0DE);

    // Kill points: most at a journal size (a schedule over the first quarter of the run, so each
    // resume must re-execute its way past the previous kill and then make progress); every
    // fourth as soon as the resume has logged its start, while it is still re-checking the
    // existing records (an event, not a delay: no assumption on the machine's speed).
    const KILLS: u64 = 24;
    let mut child = spawn_cli(&run_args(&run), &[], &log);
    let first_target = r.journal_len / 25;
    kill_at_size(&mut child, &journal, first_target, &log);
    let first_kill_len = file_len(&journal);
    let first_kill_fills = raw_lines(&run, "fill").len();

    // Export of the crashed run, before any resume.
    let out = run_cli(&["export", run.to_str().unwrap(), "--format", "csv"], &[]);
    assert!(out.status.success(), "export of the crashed run failed:\n{}", text(&out));
    let fills_before = csv_rows(&run.join("fills.csv"));

    let mut size_kills = 0u64;
    for i in 1..KILLS {
        let log_len_before = file_len(&log);
        let mut child = spawn_cli(&resume_args(&run), &[], &log);
        if i % 4 == 3 {
            kill_when_logging(&mut child, &log, log_len_before);
        } else {
            size_kills += 1;
            // From 4 % to ~27 % of the full journal, plus a random share of a step.
            let step = r.journal_len / 80;
            let target = first_target + size_kills * step + rng.range(0, step);
            kill_at_size(&mut child, &journal, target.max(file_len(&journal) + 1), &log);
        }
    }
    assert!(file_len(&journal) < r.journal_len, "the run finished during the kill loop");

    // Finally resume to the end.
    let out = run_cli(&resume_args(&run), &[]);
    assert!(
        out.status.success(),
        "final resume failed:\n{}\n--- earlier sessions ---\n{}",
        text(&out),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let recs = valid_journal(&run);
    let ids = unique_fill_ids(&recs);
    assert_eq!(
        raw_lines(&run, "fill"),
        r.fills,
        "the fills of the killed-and-resumed run differ from the uninterrupted run's"
    );
    assert!(ids.len() > first_kill_fills, "no fills after the first kill (the resumes did not continue)");
    assert!(file_len(&journal) > first_kill_len);
    assert_balances_follow_fills(&recs);
    // The end-of-run records match too: balances and the final equity.
    assert_eq!(raw_lines(&run, "balances"), raw_lines(&r.dir, "balances"));
    assert_eq!(raw_lines(&run, "run_ended"), raw_lines(&r.dir, "run_ended"));
    assert_eq!(records(&recs, "run_ended").len(), 1);

    // Export after the resumes: the fills exported from the crashed journal are unchanged at
    // the head, no fill id twice, one row per fill of the report.
    let out = run_cli(&["export", run.to_str().unwrap(), "--format", "csv"], &[]);
    assert!(out.status.success(), "export failed:\n{}", text(&out));
    let fills_after = csv_rows(&run.join("fills.csv"));
    assert!(!fills_before.is_empty(), "no fills before the first kill; kill later");
    assert_eq!(
        &fills_after[..fills_before.len()],
        &fills_before[..],
        "exported fills changed across the resume"
    );
    let mut csv_ids: Vec<&str> = fills_after.iter().map(|l| l.split(',').next().unwrap()).collect();
    csv_ids.sort_unstable();
    csv_ids.dedup();
    assert_eq!(csv_ids.len(), fills_after.len(), "a fill_id twice in fills.csv");
    let report = report(&run);
    assert_eq!(report["execution"]["fills"].as_u64().unwrap() as usize, fills_after.len());
    assert_eq!(fills_after.len(), ids.len());
    let out = run_cli(&["export", run.to_str().unwrap(), "--format", "json"], &[]);
    assert!(out.status.success(), "json export failed:\n{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("fills.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), ids.len());
}

#[test]
fn torn_last_record_is_cut_off_reported_and_the_run_finishes() {
    let r = reference();
    let dir = TempDir::new("torn");
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let mut child = spawn_cli(&run_args(&run), &[], &log);
    kill_at_size(&mut child, &journal, r.journal_len * 2 / 5, &log);

    // Tear the last record: keep half of it, no newline (a write cut by a power failure).
    let bytes = std::fs::read(&journal).unwrap();
    let body = &bytes[..bytes.len() - 1];
    let last_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let cut = last_start + (bytes.len() - last_start) / 2;
    std::fs::write(&journal, &bytes[..cut]).unwrap();

    let out = run_cli(&["run", "--resume", run.to_str().unwrap(), "--no-http", "--log-format", "json"], &[]);
    assert!(out.status.success(), "resume after a torn tail failed:\n{}", text(&out));
    let logs = json_logs(&out);
    let torn: Vec<_> = logs
        .iter()
        .filter(|l| l["level"] == "WARN" && l["message"].as_str().is_some_and(|m| m.contains("torn")))
        .collect();
    assert_eq!(torn.len(), 1, "expected one torn-record warning in the log:\n{}", text(&out));
    assert_eq!(torn[0]["offset"].as_u64(), Some(last_start as u64), "{}", torn[0]);

    let recs = valid_journal(&run);
    unique_fill_ids(&recs);
    assert_eq!(raw_lines(&run, "fill"), r.fills, "fills differ from the uninterrupted run's");
    assert_balances_follow_fills(&recs);
    assert_eq!(recs.last().unwrap()["type"], "run_ended");
}

/// A run folder holding a copy of the reference run's config and the given journal bytes.
fn copy_of_reference(dir: &TempDir, name: &str, journal: &[u8]) -> PathBuf {
    let r = reference();
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(r.dir.join("config.yaml"), run.join("config.yaml")).unwrap();
    std::fs::write(run.join("journal.jsonl"), journal).unwrap();
    run
}

#[test]
fn finished_run_and_corrupt_journal_are_refused() {
    let r = reference();
    let dir = TempDir::new("refuse");
    let full = std::fs::read(r.dir.join("journal.jsonl")).unwrap();

    // A finished run: nothing to resume.
    let done = copy_of_reference(&dir, "done", &full);
    let out = run_cli(&resume_args(&done), &[]);
    assert!(!out.status.success(), "resuming a finished run succeeded:\n{}", text(&out));
    assert!(text(&out).contains("finished run"), "no clear message:\n{}", text(&out));
    assert_eq!(
        std::fs::read(done.join("journal.jsonl")).unwrap(),
        full,
        "a refused resume changed the journal"
    );

    // Corruption in the middle (not the last line) is an error naming the line, never
    // skipped; the journal is left as it was. The run_ended line is dropped so that the
    // refusal is about the corruption.
    let lines: Vec<&[u8]> = full.split_inclusive(|&b| b == b'\n').collect();
    let mut bad = Vec::new();
    let middle = lines.len() / 2;
    for (i, l) in lines[..lines.len() - 1].iter().enumerate() {
        if i == middle {
            bad.extend_from_slice(&l[..l.len() / 2]);
            bad.push(b'\n');
        } else {
            bad.extend_from_slice(l);
        }
    }
    let corrupt = copy_of_reference(&dir, "corrupt", &bad);
    let out = run_cli(&resume_args(&corrupt), &[]);
    assert!(!out.status.success(), "resuming a corrupt journal succeeded:\n{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("corrupt") && msg.contains(&format!("line {}", middle + 1)),
        "the error does not say which line is corrupt:\n{msg}"
    );
    assert_eq!(
        std::fs::read(corrupt.join("journal.jsonl")).unwrap(),
        bad,
        "a refused resume changed the journal"
    );
    // Reports and exports refuse it too.
    let out = run_cli(&["export", corrupt.to_str().unwrap()], &[]);
    assert!(!out.status.success() && text(&out).contains("corrupt"), "export:\n{}", text(&out));
}

#[test]
fn sigterm_mid_run_stops_gracefully_with_a_complete_journal_and_report() {
    let dir = TempDir::new("sigterm");
    let run = dir.join("run");
    let log = dir.join("run.log");
    let mut args = run_args(&run);
    args.extend(["--speed", "20"]);
    let mut child = spawn_cli(&args, &[], &log);
    // Mid-run: the journal holds market-driven records (equity snapshots every minute of
    // market time, i.e. every 3 s of wall time at speed 20).
    let journal = run.join("journal.jsonl");
    assert!(
        wait_until(Duration::from_secs(30), || raw_lines_if_any(&run, "equity") >= 2),
        "the run made no progress:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let before = file_len(&journal);
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "SIGTERM did not exit 0:\n{out}");
    let recs = valid_journal(&run);
    assert!(file_len(&journal) > before);
    let last = recs.last().unwrap();
    assert_eq!(last["type"], "run_ended", "the journal does not end with run_ended: {last}");
    assert_eq!(last["reason"], "signal");
    assert_balances_follow_fills(&recs);
    let report = report(&run);
    assert_eq!(report["run"]["end_reason"], "signal");
    assert_eq!(report["run"]["ended"], true);
    // Stopped long before its 2 h of market time.
    let hours = report["run"]["duration_s"].as_f64().unwrap() / 3600.0;
    assert!(hours < 1.0, "run.duration_s {hours} h");
}

#[test]
fn second_signal_exits_at_once() {
    let dir = TempDir::new("sigterm2");
    let run = dir.join("run");
    let log = dir.join("run.log");
    // At speed 0.0001 the next market frame is minutes away, so the graceful stop (which ends
    // the feed after its batch in flight) waits up to its 15 s deadline: a second signal sent
    // meanwhile must end the process at once, with 130.
    let mut args = run_args(&run);
    // -v: the info lines this test waits for reach stderr.
    args.extend(["--speed", "0.0001", "-v"]);
    let mut child = spawn_cli(&args, &[], &log);
    let logged = |s: &str| std::fs::read_to_string(&log).unwrap_or_default().contains(s);
    // The feed connects after the engine watches for signals. Then the opening burst (the
    // snapshots, all at the start time) is processed at once; wait until the journal has been
    // quiet for 300 ms, i.e. the feed waits for the next (slowed-down) frame.
    assert!(wait_until(Duration::from_secs(20), || logged("client connected")), "the feed never connected");
    let journal = run.join("journal.jsonl");
    let (mut len, mut quiet) = (0, 0);
    let settled = wait_fine(Duration::from_secs(20), || {
        let now = file_len(&journal);
        if now != len || raw_lines_if_any(&run, "equity") == 0 {
            (len, quiet) = (now, 0);
        } else {
            quiet += 1;
        }
        quiet >= 300
    });
    assert!(settled, "the journal never settled");
    signal(&child, "TERM");
    assert!(wait_fine(Duration::from_secs(10), || logged("stopping gracefully")), "no graceful-stop log");
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "the second signal did not exit at once:\n{out}");
    assert!(out.contains("second signal: exiting now"), "{out}");
}

/// Count of records of `kind` in a journal that may not exist yet or may end mid-line.
fn raw_lines_if_any(run: &Path, kind: &str) -> usize {
    let tag = format!("\"type\":\"{kind}\"");
    std::fs::read_to_string(run.join("journal.jsonl")).map(|t| t.matches(&tag).count()).unwrap_or(0)
}
