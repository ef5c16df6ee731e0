//! The simulated exchange drops the feed's connection mid-run: the feed is restarted by its
//! supervisor (an `actor_restarted` JSON event), subscriptions are restored, trading resumes.

use crate::support::*;

#[test]
fn dropped_connection_restarts_the_feed_and_trading_resumes() {
    let dir = TempDir::new("supervision");
    let (run, out) = run_with(
        &dir,
        "sim:\n  drop_connection_after_frames: 20000\nfeed:\n  reconnect:\n    initial_backoff_ms: 100\nhttp:\n  enabled: false\n",
        &["--duration", "6h", "--log-format", "json"],
    );
    let logs = json_logs(&out);
    let restarted: Vec<_> =
        logs.iter().filter(|l| l["event"] == "actor_restarted" && l["actor"] == "market_feed").collect();
    assert!(!restarted.is_empty(), "no actor_restarted event for market_feed in the JSON log");
    assert!(restarted[0].get("attempt").is_some(), "actor_restarted carries no attempt: {}", restarted[0]);
    assert!(logs.iter().any(|l| l["event"] == "feed_reconnect"), "no feed_reconnect event");

    // Trading resumed: fills after the reconnect's event time.
    let journal = journal(&run);
    let reconnect = records(&journal, "feed_reconnect");
    assert_eq!(reconnect.len(), 1, "expected one reconnect record");
    let at = reconnect[0]["event_time"].as_str().unwrap().to_string();
    let later_fills = records(&journal, "fill")
        .into_iter()
        .filter(|f| f["event_time"].as_str().unwrap() > at.as_str())
        .count();
    assert!(later_fills > 0, "no fills after the reconnect at {at}");
    let report = report(&run);
    assert_eq!(report["feed"]["reconnects"], 1, "{}", report["feed"]);
}

// ---- every actor's policy (supervision::ActorName::policy), through the test hook -------

/// A 30-minute simulated run (≈ 32 000 frames, a few fills) with HTTP off.
const SHORT_RUN: &str = "http:\n  enabled: false\n";

/// Runs `run --duration 30m --log-format json` (or `run --resume`) with the test hook set to
/// `hook` (none: unset); returns the exit code and the output.
fn run_hooked(dir: &TempDir, hook: Option<&str>, resume: bool) -> (Option<i32>, std::process::Output) {
    let cfg = write_config(dir.path(), SHORT_RUN);
    let run = dir.join("run");
    let args: Vec<&str> = match resume {
        false => vec![
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "30m",
            "--log-format",
            "json",
            "--run-dir",
            run.to_str().unwrap(),
        ],
        true => vec!["run", "--resume", run.to_str().unwrap(), "--log-format", "json"],
    };
    let mut cmd = std::process::Command::new(bin());
    cmd.args(&args).env_remove("KRAKEN_PAPER_API_TOKEN").env_remove("KRAKEN_PAPER_TEST_PANIC");
    if let Some(h) = hook {
        cmd.env("KRAKEN_PAPER_TEST_PANIC", h);
    }
    let out = cmd.output().expect("run kraken-paper");
    (out.status.code(), out)
}

/// The fills of a journal without their seq (a resumed run's seqs run on past the failed
/// session's end records).
fn fills_without_seq(run: &std::path::Path) -> Vec<String> {
    raw_lines(run, "fill")
        .iter()
        .map(|l| l.split_once(',').map_or(l.clone(), |(_, rest)| rest.to_string()))
        .collect()
}

/// The fills of the same run without the hook.
fn uninterrupted_fills() -> Vec<String> {
    let dir = TempDir::new("supervision-clean");
    let (code, out) = run_hooked(&dir, None, false);
    assert_eq!(code, Some(0), "{}", text(&out));
    fills_without_seq(&dir.join("run"))
}

/// A restarting actor panics: `actor_restarted` for it, and the run ends normally.
fn assert_restarts(hook: &str, actor: &str) {
    let dir = TempDir::new(&format!("supervision-{actor}"));
    let (code, out) = run_hooked(&dir, Some(hook), false);
    assert_eq!(code, Some(0), "a restarting actor's panic must not end the run:\n{}", text(&out));
    let logs = json_logs(&out);
    let restarted: Vec<_> =
        logs.iter().filter(|l| l["event"] == "actor_restarted" && l["actor"] == actor).collect();
    assert_eq!(restarted.len(), 1, "one actor_restarted for {actor}:\n{}", text(&out));
    assert!(restarted[0]["reason"].as_str().unwrap().contains(hook), "{}", restarted[0]);
    assert!(restarted[0].get("attempt").is_some(), "{}", restarted[0]);
    assert!(!logs.iter().any(|l| l["event"] == "actor_failed"), "{}", text(&out));
    let journal = valid_journal(&dir.join("run"));
    assert_eq!(journal.last().unwrap()["reason"], "duration", "{}", journal.last().unwrap());
}

/// An actor holding trading state panics: trading halts, `actor_failed` (actor, reason),
/// `run_ended` (actor_failed) journaled, report written, exit 3; `run --resume` continues the
/// run to its end with the fills of an uninterrupted run.
fn assert_stops_and_resumes(hook: &str, actor: &str, clean: &[String]) {
    let dir = TempDir::new(&format!("supervision-{actor}"));
    let run = dir.join("run");
    let (code, out) = run_hooked(&dir, Some(hook), false);
    assert_eq!(code, Some(3), "exit code 3 after {actor} failed:\n{}", text(&out));
    let failed: Vec<_> = json_logs(&out).into_iter().filter(|l| l["event"] == "actor_failed").collect();
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(failed[0]["actor"], actor, "{}", failed[0]);
    assert!(failed[0]["reason"].as_str().unwrap().contains(hook), "{}", failed[0]);

    let journal = valid_journal(&run);
    let n = journal.len();
    assert_eq!(journal[n - 2]["type"], "actor_failed", "{}", journal[n - 2]);
    assert_eq!(journal[n - 2]["actor"], actor);
    assert_eq!(journal[n - 1]["type"], "run_ended");
    assert_eq!(journal[n - 1]["reason"], "actor_failed");
    assert_eq!(report(&run)["run"]["end_reason"], "actor_failed", "report.json written");
    let partial = fills_without_seq(&run);
    assert!(
        partial.len() < clean.len(),
        "trading halted at the failure: {} fills of {}",
        partial.len(),
        clean.len()
    );

    let (code, out) = run_hooked(&dir, None, true);
    assert_eq!(code, Some(0), "resume after {actor} failed:\n{}", text(&out));
    let journal = valid_journal(&run);
    assert_eq!(journal.last().unwrap()["reason"], "duration");
    assert_eq!(fills_without_seq(&run), clean, "the resumed run's fills are the uninterrupted run's");
}

#[test]
fn feed_panic_restarts_the_feed() {
    assert_restarts("market_feed@20000", "market_feed");
}

#[test]
fn signal_host_panic_restarts_the_signal_actor() {
    assert_restarts("signal_host@20000", "signal_host");
}

#[test]
fn trading_actor_panics_stop_the_run_with_exit_3_and_resume_continues() {
    let clean = uninterrupted_fills();
    assert!(!clean.is_empty(), "the test run must trade");
    assert_stops_and_resumes("position_book@15000", "position_book", &clean);
    assert_stops_and_resumes("risk_manager@15000", "risk_manager", &clean);
    assert_stops_and_resumes("aggregator@15000", "aggregator", &clean);
    // In the first pass: the journal keeps run_started, the resume starts from the first frame.
    assert_stops_and_resumes("position_book@1", "position_book", &clean);
}

#[test]
fn journal_failure_exits_4_without_another_record_and_resumes_once_writable() {
    let clean = uninterrupted_fills();
    let dir = TempDir::new("supervision-journal");
    let run = dir.join("run");
    let (code, out) = run_hooked(&dir, Some("journal@30"), false);
    assert_eq!(code, Some(4), "{}", text(&out));
    let failed: Vec<_> =
        json_logs(&out).into_iter().filter(|l| l["event"] == "journal_write_failed").collect();
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(failed[0]["path"], run.join("journal.jsonl").to_str().unwrap(), "{}", failed[0]);
    assert!(failed[0]["error"].as_str().unwrap().contains("journal@30"), "{}", failed[0]);
    let journal = valid_journal(&run);
    assert!(records(&journal, "run_ended").is_empty(), "nothing is journaled after the failure");

    let (code, out) = run_hooked(&dir, None, true);
    assert_eq!(code, Some(0), "{}", text(&out));
    assert_eq!(valid_journal(&run).last().unwrap()["reason"], "duration");
    assert_eq!(fills_without_seq(&run), clean);
}

#[test]
fn a_bad_test_hook_value_is_refused_at_start() {
    let dir = TempDir::new("supervision-bad-hook");
    let (code, out) = run_hooked(&dir, Some("nobody@3"), false);
    assert_eq!(code, Some(1), "{}", text(&out));
    assert!(text(&out).contains("KRAKEN_PAPER_TEST_PANIC"), "{}", text(&out));
}

/// The external-signals actor restarts (its endpoint stays up).
#[test]
fn external_signals_panic_restarts_the_actor() {
    let dir = TempDir::new("supervision-external");
    let cfg = write_config(
        dir.path(),
        "external_signals:\n  enabled: true\n  bind: 127.0.0.1:0\nhttp:\n  enabled: false\n",
    );
    let run = dir.join("run");
    let (cfg, run) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    let args = ["run", "--config", cfg, "--duration", "30m", "--log-format", "json", "--run-dir", run];
    let out = run_cli(&args, &[("KRAKEN_PAPER_TEST_PANIC", "external_signals@20000")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let logs = json_logs(&out);
    assert!(
        logs.iter().any(|l| l["event"] == "actor_restarted" && l["actor"] == "external_signals"),
        "{}",
        text(&out)
    );
}

/// The rate limiter (only live runs call it) restarts after a panic and answers again; the
/// call that hit the panic is answered too (after the backoff).
#[actix::test]
async fn rate_limiter_panic_restarts_the_limiter() {
    use actix::prelude::*;
    use kraken_paper::actors::rate_limiter::{Acquire, GetUsage, RateLimiter};
    use kraken_paper::core::rate_limit::{RateLimitModel, RestCall, Tier};
    use kraken_paper::supervision::{ActorName, Supervision, TestPanic};

    let (supervision, mut failures) =
        Supervision::new(Some(TestPanic { actor: ActorName::RateLimiter, at: 2 }));
    let watch = supervision.watch(ActorName::RateLimiter);
    let limiter =
        Supervisor::start(move |_| RateLimiter::new(RateLimitModel::new(0.0, Tier::Pro)).supervised(watch));
    for _ in 0..3 {
        let waited =
            limiter.send(Acquire { call: RestCall::Public { endpoint: "Ticker".into(), pair: None } }).await;
        assert!(waited.is_ok(), "every call is answered: {waited:?}");
    }
    assert!(limiter.send(GetUsage).await.is_ok(), "the limiter is alive after its restart");
    assert!(failures.try_recv().is_err(), "a restarted actor is no failure of the run");
}
