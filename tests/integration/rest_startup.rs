//! Live start-up over REST against mocks on 127.0.0.1 (support::MockKraken for WS v2, a small
//! support::mock_rest for REST): the pair's AssetPairs fee schedule replaces the built-in
//! one (`fee_schedule`), OHLC history warms the signal models up so that they call a move
//! the cold model cannot yet see, both are recorded in `feed.jsonl` before the first frame
//! and re-executed byte for byte by `run --resume`; an unreachable REST API leaves the run
//! trading cold on the WS feed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// BTC/USD with a fee schedule unlike the built-in one (0.30 / 0.20 % at 0 volume).
const ASSET_PAIRS: &str = r#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD","cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"fees":[[0,0.30],[50000,0.26]],"fees_maker":[[0,0.20],[50000,0.14]],"fee_volume_currency":"ZUSD","ordermin":"0.00005","costmin":"0.5","tick_size":"0.1","status":"online"}}}"#;

/// One-minute candles for the hour before the mock's first event, closing around 49,000 —
/// a thousand below the mock's book (mid 49,999.75). The last candle is the open one.
fn ohlc_body() -> String {
    let start = MOCK_START_US / 1_000_000 - 3600;
    let rows: Vec<String> = (0..61)
        .map(|i| {
            let close = 49_000 + (i * 7) % 11 - 5;
            format!(
                r#"[{},"{close}.0","{close}.0","{close}.0","{close}.0","{close}.0","1.0",3]"#,
                start + 60 * i
            )
        })
        .collect();
    format!(r#"{{"error":[],"result":{{"XXBTZUSD":[{}],"last":{}}}}}"#, rows.join(","), start + 3600)
}

/// The REST mock: answers SystemStatus, AssetPairs, OHLC and (for a resume's catch-up) an
/// empty Trades page; keeps every request target.
fn start_rest(requests: Arc<Mutex<Vec<String>>>) -> String {
    mock_rest(move |req| {
        requests.lock().unwrap().push(req.target.to_string());
        match req.path {
            "/0/public/SystemStatus" => (
                200,
                r#"{"error":[],"result":{"status":"online","timestamp":"2025-01-01T00:00:00Z"}}"#.into(),
            ),
            "/0/public/AssetPairs" => (200, ASSET_PAIRS.to_string()),
            "/0/public/OHLC" => (200, ohlc_body()),
            "/0/public/Trades" => (200, r#"{"error":[],"result":{"XXBTZUSD":[],"last":"0"}}"#.into()),
            _ => (404, REST_UNKNOWN_METHOD.to_string()),
        }
    })
}

/// RSI on the default 10 s grid: the mock's book barely moves, so a cold RSI (14 changes
/// needed) sees nothing; warmed up on closes around 49,000, the first live mid is a jump.
fn config(dir: &TempDir, warmup: &str) -> std::path::PathBuf {
    write_config(
        dir.path(),
        &format!(
            "feed:\n  source: kraken\n  pairs: [BTC/USD]\n  reconnect:\n    initial_backoff_ms: 100\n  warmup:\n{warmup}\nsignals:\n  enabled: [rsi]\nhttp:\n  enabled: false\n"
        ),
    )
}

fn live_args<'a>(cfg: &'a str, ws: &'a str, rest: &'a str, run: &'a str, duration: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--live",
        "--config",
        cfg,
        "--ws-url",
        ws,
        "--rest-url",
        rest,
        "--duration",
        duration,
        "--log-format",
        "json",
        "--run-dir",
        run,
    ]
}

fn feed_lines(run: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("feed.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("feed.jsonl line is JSON"))
        .collect()
}

#[test]
fn rest_fee_schedule_and_ohlc_warm_up_are_recorded_applied_and_re_executed() {
    let mock = MockKraken::start(MockScript { pace: Duration::from_millis(20), ..MockScript::default() });
    let requests = Arc::new(Mutex::new(Vec::new()));
    let rest = start_rest(requests.clone());
    let dir = TempDir::new("rest-warm");
    let cfg = config(&dir, "    enabled: true\n    timeout_ms: 20000");
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let args = live_args(cfg.to_str().unwrap(), &mock.url, &rest, run.to_str().unwrap(), "20m");
    let mut child = spawn_cli(&args, &[], &log);
    let has = |kind: &str| {
        std::fs::read_to_string(&journal).unwrap_or_default().contains(&format!(r#""type":"{kind}""#))
    };
    assert!(
        wait_until(Duration::from_secs(60), || has("signal_decision")),
        "the warmed-up RSI never signalled:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::fs::read(&journal).unwrap();
    let recs = valid_journal(&run);

    // The pair's fee schedule from AssetPairs, at the account's volume (0): 0.30 / 0.20 %.
    let fees = records(&recs, "fee_schedule");
    assert_eq!(fees.len(), 1, "{fees:?}");
    assert_eq!(fees[0]["pair"], "BTC/USD");
    assert_eq!(dec(&fees[0]["taker_rate"]), rust_decimal_macros::dec!(0.003));
    assert_eq!(dec(&fees[0]["maker_rate"]), rust_decimal_macros::dec!(0.002));
    // The history: 60 closed one-minute candles (the open one left out), fetched by altname.
    let warm = records(&recs, "ohlc_warmup");
    assert_eq!(warm.len(), 1, "{warm:?}");
    assert_eq!((warm[0]["pair"].as_str(), warm[0]["interval_minutes"].as_u64()), (Some("BTC/USD"), Some(1)));
    assert_eq!(warm[0]["candles"], 60);
    let reqs = requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|r| r.starts_with("/0/public/OHLC")
            && r.contains("interval=1")
            && r.contains("pair=XBTUSD")),
        "{reqs:?}"
    );
    // Both were recorded before the first frame of the feed, fees first.
    let lines = feed_lines(&run);
    let pos = |dir: &str| lines.iter().position(|l| l["dir"] == dir);
    let (f, o, r) = (pos("fees").unwrap(), pos("ohlc").unwrap(), pos("recv").unwrap());
    assert!(f < o && o < r, "fees at {f}, ohlc at {o}, first frame at {r}");
    // The warmed-up RSI called the jump from the history to the live book at once: overbought.
    let first = records(&recs, "signal_decision")[0];
    let t =
        kraken_paper::core::time::EventTime::parse_rfc3339(first["event_time"].as_str().unwrap()).unwrap();
    assert!(t <= mock_time(30), "first signal at {t:?}: {first}");

    // A resume re-executes feed.jsonl, the REST lines at their place: every record checked.
    let resume = ["run", "--resume", run.to_str().unwrap(), "--no-http", "--log-format", "json"];
    run_until_logged(&resume, &dir.join("resume.log"), "resume caught up with the journal");
    assert!(std::fs::read(&journal).unwrap().starts_with(&killed), "the resume rewrote journaled records");
    assert_eq!(records(&valid_journal(&run), "ohlc_warmup").len(), 1, "a resume does not warm up again");
}

#[test]
fn without_warm_up_the_same_feed_gives_no_early_signal() {
    let mock = MockKraken::start(MockScript::default());
    let rest = start_rest(Arc::new(Mutex::new(Vec::new())));
    let dir = TempDir::new("rest-cold");
    let cfg = config(&dir, "    enabled: false");
    let run = dir.join("run");
    let out = run_cli_timeout(
        &live_args(cfg.to_str().unwrap(), &mock.url, &rest, run.to_str().unwrap(), "60s"),
        &[],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    let recs = valid_journal(&run);
    assert!(records(&recs, "ohlc_warmup").is_empty());
    assert!(!feed_lines(&run).iter().any(|l| l["dir"] == "ohlc"));
    // Cold, RSI needs 14 changes (150 s of 10 s samples): nothing in 60 s.
    assert!(records(&recs, "signal_decision").is_empty(), "{:?}", records(&recs, "signal_decision"));
}

#[test]
fn unreachable_rest_trades_cold_on_the_ws_feed() {
    let mock = MockKraken::start(MockScript::default());
    let dir = TempDir::new("rest-down");
    let cfg = config(&dir, "    enabled: true\n    timeout_ms: 1000");
    let run = dir.join("run");
    // Nothing listens on port 9.
    let out = run_cli_timeout(
        &live_args(cfg.to_str().unwrap(), &mock.url, "http://127.0.0.1:9", run.to_str().unwrap(), "60s"),
        &[],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    let logs = json_logs(&out);
    // Said once, as a structured event (the log line is the feature here).
    let cold: Vec<_> = logs.iter().filter(|l| l["event"] == "warmup_skipped").collect();
    assert_eq!(cold.len(), 1, "{cold:?}");
    assert!(cold[0]["message"].as_str().is_some_and(|m| m.contains("trading cold")), "{}", cold[0]);
    let recs = valid_journal(&run);
    assert!(records(&recs, "fee_schedule").is_empty() && records(&recs, "ohlc_warmup").is_empty());
    // The whole duration ran on the WS feed.
    let ended = records(&recs, "run_ended");
    assert_eq!(ended[0]["reason"], "duration", "{ended:?}");
    let stats = records(&recs, "feed_stats");
    assert!(stats[0]["events"].as_u64().unwrap() >= 60, "{stats:?}");
    assert_eq!(stats[0]["checksum_mismatches"], 0);
}
