//! The HTTP server of a real `run` (the binary, 127.0.0.1 only) through a real HTTP client:
//! every endpoint answers with its documented JSON shape (docs/dashboard.md), /metrics is
//! valid Prometheus text, the Bearer token guards the control endpoints (and with no token
//! configured they always refuse), an emergency stop halts trading until resumed, SIGTERM
//! ends the run cleanly with a report, and `report RUN_DIR` rebuilds that report byte for
//! byte from the journal.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const TOKEN: &str = "it-secret-token-123";

/// A `run --http` child process and a client for it.
struct Served {
    child: Child,
    base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    run_dir: PathBuf,
    dir: Option<TempDir>,
}

impl Served {
    /// Starts `run --speed 20 --duration 24h --http 127.0.0.1:<free port>` and waits for /health.
    fn start(label: &str, token: Option<&str>) -> Served {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = TempDir::new(label);
        let run_dir = dir.join("run");
        // A free port: bind port 0, read it, drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Equity snapshots every 10 s of event time (the curve grows 2 points/s at speed 20)
        // and a quick EMA cross (1 s samples, 12-sample slow EMA), so trading starts within a
        // second of wall time instead of after the default's 8 minutes of market warm-up.
        let config = write_config(
            dir.path(),
            "run:\n  equity_interval: 10s\nsignals:\n  ema_cross:\n    sample_interval: 1s\n    fast: 4\n    slow: 12\n    vol_samples: 12\n",
        );
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--config", config.to_str().unwrap(), "--speed", "20", "--duration", "24h"])
            .args(["--seed", "5", "--http", &format!("127.0.0.1:{port}")])
            .args(["--run-dir", run_dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.env_remove("KRAKEN_PAPER_API_TOKEN");
        if let Some(t) = token {
            cmd.env("KRAKEN_PAPER_API_TOKEN", t);
        }
        let child = cmd.spawn().expect("spawn kraken-paper");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        let s =
            Served { child, base: format!("http://127.0.0.1:{port}"), rt, client, run_dir, dir: Some(dir) };
        let up = wait_until(Duration::from_secs(20), || s.get("/health").0 == 200);
        assert!(up, "/health never answered 200");
        s
    }

    fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        self.rt.block_on(async {
            match req.send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        })
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    fn get_json(&self, path: &str) -> Value {
        let (code, body) = self.get(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    fn post(&self, path: &str, token: Option<&str>) -> u16 {
        let mut req = self.client.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).0
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> (std::process::ExitStatus, PathBuf, TempDir) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success();
        assert!(ok, "kill -TERM failed");
        let mut status = None;
        wait_until(Duration::from_secs(20), || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let status = status.unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("no exit within 20 s of SIGTERM")
        });
        (status, self.run_dir.clone(), self.dir.take().expect("temp dir"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed assertion must not leave the engine running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A JSON money/statistic value: an exact number, or a numeric string.
fn is_num(v: &Value) -> bool {
    v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
}

fn has_keys(v: &Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(v.get(k).is_some(), "{what} lacks `{k}`: {v}");
    }
}

fn check_dashboard_shape(d: &Value) {
    has_keys(
        d,
        &[
            "currency",
            "portfolio_value",
            "starting_equity",
            "return_pct",
            "positions",
            "open_positions",
            "trades",
            "win_rate",
            "sharpe",
            "drawdown",
            "exposure",
            "correlation_exposure",
            "risk",
            "execution",
            "feed",
            "equity_curve",
            "recent_trades",
            "time",
        ],
        "/api/dashboard",
    );
    assert_eq!(d["currency"], "USD");
    assert!(is_num(&d["portfolio_value"]), "portfolio_value: {}", d["portfolio_value"]);
    assert!(is_num(&d["starting_equity"]), "starting_equity: {}", d["starting_equity"]);
    assert!(d["return_pct"].is_number());
    assert!(d["drawdown"].is_number());
    assert!(d["exposure"].is_number(), "exposure is the risk manager's total_exposure: {}", d["exposure"]);
    assert!(d["trades"].is_u64() && d["open_positions"].is_u64());
    assert!(d["win_rate"].is_null() || d["win_rate"].is_number());
    assert!(d["sharpe"].is_null() || d["sharpe"].is_number());
    assert!(d["time"].is_string());
    assert!(d["risk"].is_object() && d["risk"]["halted"].is_boolean());
    assert!(d["execution"].is_object() && d["feed"]["connected"].is_boolean());
    for p in d["positions"].as_array().expect("positions array") {
        check_position(p);
    }
    for pt in d["equity_curve"].as_array().expect("equity_curve array") {
        let pt = pt.as_array().expect("curve point is [time, equity]");
        assert!(pt.len() == 2 && pt[0].is_string() && is_num(&pt[1]), "curve point {pt:?}");
        assert!(pt[0].as_str().unwrap() > "2000", "a curve point dated before the market: {pt:?}");
    }
    for t in d["recent_trades"].as_array().expect("recent_trades array") {
        has_keys(t, &["pair", "side", "qty", "entry_price", "exit_price", "pnl", "exit_reason"], "trade");
    }
}

fn check_position(p: &Value) {
    has_keys(p, &["pair", "qty", "avg_price", "mark", "notional", "unrealized_pnl"], "position");
    assert!(p["pair"].is_string() && is_num(&p["qty"]), "position {p}");
}

/// Prometheus text exposition format (0.0.4), checked line by line: every sample is
/// `name{labels} value [timestamp]`, HELP/TYPE comments are well formed and come before
/// the samples of their metric, one TYPE per metric, names are valid. Returns the samples.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    fn valid_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    fn valid_label_name(s: &str) -> bool {
        valid_name(s) && !s.contains(':')
    }
    fn value(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => s.parse().ok(),
        }
    }
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut sampled = BTreeSet::new();
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_name(name), "line {n}: bad HELP name: {line}");
            assert!(helped.insert(name.to_string()), "line {n}: second HELP for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) =
                rest.split_once(' ').unwrap_or_else(|| panic!("line {n}: TYPE without a type"));
            assert!(valid_name(name), "line {n}: bad TYPE name: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "line {n}: bad type {kind:?}"
            );
            assert!(!sampled.contains(name), "line {n}: TYPE of {name} after its samples");
            assert!(typed.insert(name.to_string()), "line {n}: second TYPE for {name}");
            continue;
        }
        if line.starts_with('#') {
            continue; // a plain comment
        }
        // name{labels} value [timestamp]
        let (name, rest) = match line.find(['{', ' ']) {
            Some(j) => line.split_at(j),
            None => panic!("line {n}: sample without a value: {line}"),
        };
        assert!(valid_name(name), "line {n}: bad metric name {name:?}");
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            let close = labels.find('}').unwrap_or_else(|| panic!("line {n}: unclosed labels"));
            let body = &labels[..close];
            for pair in body.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("line {n}: bad label {pair}"));
                assert!(valid_label_name(k), "line {n}: bad label name {k:?}");
                assert!(
                    v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                    "line {n}: unquoted label value"
                );
            }
            &labels[close + 1..]
        } else {
            rest
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        assert!(
            (1..=2).contains(&parts.len()) && rest.starts_with(' '),
            "line {n}: expected ` value [timestamp]`: {line}"
        );
        let v = value(parts[0]).unwrap_or_else(|| panic!("line {n}: bad value {:?}", parts[0]));
        if let Some(ts) = parts.get(1) {
            assert!(ts.parse::<i64>().is_ok(), "line {n}: bad timestamp {ts:?}");
        }
        sampled.insert(name.to_string());
        samples.push((name.to_string(), v));
    }
    samples
}

#[test]
fn prometheus_parser_rejects_malformed_text() {
    // The checker itself must be able to fail.
    assert_eq!(parse_prometheus("# HELP a_b x\n# TYPE a_b gauge\na_b 1.5\nc{l=\"v\"} 2 17\n").len(), 2);
    for bad in ["1abc 2", "a_b", "a_b x", "# TYPE a_b gauges\na_b 1", "a{l=v} 1", "a 1\n# TYPE a gauge"] {
        assert!(std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn http_api_shapes_token_halt_and_clean_sigterm() {
    let s = Served::start("http-token", Some(TOKEN));

    // Some market time passes first, so the figures are not all zero.
    let grown = wait_until(Duration::from_secs(15), || {
        let d = s.get_json("/api/dashboard");
        d["equity_curve"].as_array().is_some_and(|c| c.len() >= 5)
    });
    assert!(grown, "the equity curve did not grow");

    // The dashboard page: self-contained, no request outside this origin.
    let (code, page) = s.get("/");
    assert_eq!(code, 200);
    assert!(page.contains("<polyline") && page.contains("/api/dashboard"));
    assert!(!page.contains("http://") && !page.contains("https://"), "the page refers to another origin");

    let h = s.get_json("/health");
    has_keys(&h, &["status", "feed", "actor_restarts"], "/health");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["feed"]["connected"], true);
    has_keys(&h["feed"], &["pairs", "last_event_time", "reconnects", "resyncs"], "/health feed");
    assert!(!h["feed"]["pairs"].as_object().unwrap().is_empty());
    for (_, p) in h["feed"]["pairs"].as_object().unwrap() {
        assert!(p["book"] == "ok" || p["book"] == "untrusted", "{p}");
    }

    check_dashboard_shape(&s.get_json("/api/dashboard"));

    let p = s.get_json("/api/positions");
    has_keys(&p, &["positions", "open_positions"], "/api/positions");
    let list = p["positions"].as_array().unwrap();
    list.iter().for_each(check_position);
    let t = s.get_json("/api/trades");
    has_keys(&t, &["trades", "total"], "/api/trades");
    assert!(t["trades"].is_array() && t["total"].is_u64());

    let (code, metrics) = s.get("/metrics");
    assert_eq!(code, 200);
    let samples = parse_prometheus(&metrics);
    let names: BTreeSet<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    for m in ["kraken_paper_equity", "kraken_paper_feed_events_total", "kraken_paper_feed_connected"] {
        assert!(names.contains(m), "/metrics lacks {m}:\n{metrics}");
    }
    let events = samples.iter().find(|(n, _)| n == "kraken_paper_feed_events_total").unwrap().1;
    assert!(events > 0.0, "no market events counted");

    // The token guards the control endpoints.
    assert_eq!(s.post("/api/emergency-stop", None), 401);
    assert_eq!(s.post("/api/emergency-stop", Some("wrong")), 401);
    assert_eq!(s.post("/api/emergency-stop", Some(&format!("{TOKEN}x"))), 401);
    assert_eq!(s.post("/api/resume", Some("wrong")), 401);
    assert_eq!(s.get_json("/api/dashboard")["risk"]["halted"], false, "a refused call halted trading");

    // Trading has started (an entry order in the journal) before the operator stops it.
    let journal_path = s.run_dir.join("journal.jsonl");
    let orders_after = |seq: u64| {
        // The journal is read while it is written: a torn last line is skipped.
        let text = std::fs::read_to_string(&journal_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["type"] == "order" && r["origin"]["kind"] == "intent")
            .filter(|r| r["seq"].as_u64().unwrap_or(0) > seq)
            .count()
    };
    assert!(wait_until(Duration::from_secs(15), || orders_after(0) > 0), "no order before the stop");

    assert_eq!(s.post("/api/emergency-stop", Some(TOKEN)), 200);
    let d = s.get_json("/api/dashboard");
    assert_eq!(d["risk"]["halted"], true);
    // Halted for a minute of market time: data flows, nothing is opened.
    let halted_at = d["feed"]["last_event_time"].as_str().unwrap().to_string();
    let minute_later = |t: &str| {
        let secs = |x: &str| chrono::DateTime::parse_from_rfc3339(x).unwrap().timestamp();
        secs(t) - secs(&halted_at) >= 60
    };
    assert!(wait_until(Duration::from_secs(15), || minute_later(
        s.get_json("/health")["feed"]["last_event_time"].as_str().unwrap()
    )));
    assert_eq!(s.get_json("/api/positions")["open_positions"], 0, "emergency stop flattens");
    assert_eq!(s.post("/api/emergency-stop", Some(TOKEN)), 200, "a second stop is a no-op");
    assert_eq!(s.post("/api/resume", Some(TOKEN)), 200);
    assert_eq!(s.get_json("/api/dashboard")["risk"]["halted"], false);
    // Trading resumes: a new entry order after the halt was lifted.
    let lifted_seq = || {
        let text = std::fs::read_to_string(&journal_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["type"] == "halt_lifted")
            .and_then(|r| r["seq"].as_u64())
    };
    assert!(
        wait_until(Duration::from_secs(15), || lifted_seq().is_some_and(|q| orders_after(q) > 0)),
        "no entry order after the resume"
    );

    let (status, run_dir, _dir) = s.terminate();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(run_dir.join("report.json").exists(), "no report.json after SIGTERM");

    // The journal: the operator's stop, then only refusals or flattening until it lifted.
    let j = journal(&run_dir);
    let seq = |r: &Value| r["seq"].as_u64().unwrap();
    let stop = records(&j, "emergency_stop");
    assert_eq!(stop.len(), 1, "one emergency_stop record (the second stop was a no-op)");
    let lifted = records(&j, "halt_lifted");
    assert_eq!(lifted.len(), 1, "one halt_lifted record");
    assert_eq!(lifted[0]["by"], "operator");
    let (from, to) = (seq(stop[0]), seq(lifted[0]));
    assert!(from < to);
    for r in j.iter().filter(|r| (from..to).contains(&seq(r))) {
        if r["type"] == "risk_refusal" {
            assert_eq!(r["reason"], "halted", "{r}");
        }
        if r["type"] == "order" {
            assert_ne!(r["origin"]["kind"], "intent", "an entry order during the halt: {r}");
            assert_eq!(r["spec"]["reduce_only"], true, "a non-reducing order during the halt: {r}");
        }
    }

    // `report RUN_DIR` rebuilds the same files from the journal alone.
    let json_before = std::fs::read(run_dir.join("report.json")).unwrap();
    let html_before = std::fs::read(run_dir.join("report.html")).unwrap();
    let out = run_cli(&["report", run_dir.to_str().unwrap()], &[]);
    assert!(out.status.success(), "report failed:\n{}", text(&out));
    assert!(std::fs::read(run_dir.join("report.json")).unwrap() == json_before, "report.json differs");
    assert!(std::fs::read(run_dir.join("report.html")).unwrap() == html_before, "report.html differs");
}

#[test]
fn control_endpoints_refuse_everything_without_a_configured_token() {
    let s = Served::start("http-notoken", None);
    for path in ["/api/emergency-stop", "/api/resume"] {
        assert_eq!(s.post(path, None), 401, "{path} without a header");
        assert_eq!(s.post(path, Some("")), 401, "{path} with an empty token");
        assert_eq!(s.post(path, Some("anything")), 401, "{path} with a token");
    }
    assert_eq!(s.get_json("/api/dashboard")["risk"]["halted"], false);
    assert_eq!(s.get_json("/api/dashboard")["risk"]["emergency_stops"], 0);
    let (status, run_dir, _dir) = s.terminate();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(records(&journal(&run_dir), "emergency_stop").is_empty());
}
