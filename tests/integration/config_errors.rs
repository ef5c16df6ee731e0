//! Bad configs are clear errors naming the key and the file — never a panic.

use crate::support::*;

fn validate(dir: &TempDir, name: &str, yaml: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    let out = run_cli(&["validate-config", path.to_str().unwrap()], &[]);
    (out.status.success(), text(&out))
}

#[test]
fn typo_key_is_named() {
    let dir = TempDir::new("cfg-typo");
    let (ok, msg) = validate(&dir, "typo.yaml", "risk:\n  max_drawdwn: 0.2\n");
    assert!(!ok, "accepted a typo'd key");
    assert!(msg.contains("risk.max_drawdwn"), "{msg}");
    assert!(msg.contains("typo.yaml"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}

#[test]
fn negative_max_drawdown_is_named() {
    let dir = TempDir::new("cfg-neg");
    let (ok, msg) = validate(&dir, "neg.yaml", "risk:\n  max_drawdown: -0.1\n");
    assert!(!ok, "accepted a negative max_drawdown");
    assert!(msg.contains("risk.max_drawdown"), "{msg}");
}

#[test]
fn environment_override_is_validated_too() {
    let out =
        run_cli(&["run", "--no-http", "--duration", "1m"], &[("KRAKEN_PAPER__RISK__MAX_DRAWDOWN", "-1")]);
    assert!(!out.status.success());
    assert!(text(&out).contains("risk.max_drawdown"), "{}", text(&out));
}

#[test]
fn malformed_yaml_and_wrong_types_are_errors_not_panics() {
    let dir = TempDir::new("cfg-bad");
    let (ok, msg) = validate(&dir, "bad.yaml", "garbage: [unclosed\n");
    assert!(!ok && !msg.contains("panicked"), "{msg}");
    let (ok, msg) = validate(&dir, "type.yaml", "feed:\n  book_depth: deep\n");
    assert!(!ok && msg.contains("feed.book_depth"), "{msg}");
    let (ok, _) = validate(
        &dir,
        "good.yaml",
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.yaml")).unwrap(),
    );
    assert!(ok, "the shipped default config must validate");
    let (ok, msg) = validate(
        &dir,
        "reference.yaml",
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/kraken_paper_trading.yaml"))
            .unwrap(),
    );
    assert!(ok, "the reference config must validate: {msg}");
}

#[test]
fn bad_endpoints_are_refused_at_start_up_naming_the_option_or_key() {
    // Without the check, each of these retried a connection with backoff for ever.
    let dir = TempDir::new("cfg-url");
    let run_dir = dir.join("run");
    let out_file = dir.join("rec.jsonl");
    let cases: [(&[&str], &str, &str); 4] = [
        (&["record", "--ws-url", "notaurl", "--out", out_file.to_str().unwrap()], "--ws-url", "notaurl"),
        (
            &["run", "--live", "--no-http", "--ws-url", "notaurl", "--run-dir", run_dir.to_str().unwrap()],
            "--ws-url",
            "notaurl",
        ),
        (
            &[
                "run",
                "--live",
                "--no-http",
                "--rest-url",
                "ws://127.0.0.1:1",
                "--run-dir",
                run_dir.to_str().unwrap(),
            ],
            "--rest-url",
            "ws://127.0.0.1:1",
        ),
        (&["record", "--ws-url", "wss://", "--out", out_file.to_str().unwrap()], "--ws-url", "wss://"),
    ];
    for (args, option, value) in cases {
        let out = run_cli_timeout(args, &[], std::time::Duration::from_secs(20));
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {msg}");
        assert!(msg.contains(option) && msg.contains(&format!("{value:?}")), "{args:?}: {msg}");
        assert!(!msg.contains("panicked"), "{msg}");
    }
    assert!(!out_file.exists(), "record refused before creating its output");
    assert!(!run_dir.exists(), "run refused before creating its run folder");
    // The same in a config file: the key is named.
    let cfg = dir.join("bad.yaml");
    std::fs::write(&cfg, "feed:\n  source: kraken\n  ws_url: notaurl\n").unwrap();
    for args in [
        vec!["record", "--config", cfg.to_str().unwrap(), "--out", out_file.to_str().unwrap()],
        vec!["run", "--no-http", "--config", cfg.to_str().unwrap(), "--run-dir", run_dir.to_str().unwrap()],
    ] {
        let out = run_cli_timeout(&args, &[], std::time::Duration::from_secs(20));
        let msg = text(&out);
        assert!(!out.status.success(), "{args:?}: {msg}");
        assert!(msg.contains("feed.ws_url") && msg.contains("\"notaurl\""), "{args:?}: {msg}");
    }
}

#[test]
fn environment_variable_naming_no_key_stops_run_and_validate_config() {
    // Before: the typo was dropped without a word and the run went on with the file's value.
    let dir = TempDir::new("cfg-env-typo");
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, "risk:\n  max_drawdown: 0.2\n").unwrap();
    let run_dir = dir.join("run");
    let env = [("KRAKEN_PAPER__RISK__MAX_DRAWDWN", "0.05"), ("KRAKEN_PAPER__RISK__RISK_PER_TRADE", "0.02")];
    let expected = "unknown environment variable KRAKEN_PAPER__RISK__MAX_DRAWDWN: no key risk.max_drawdwn \
                    (did you mean risk.max_drawdown?)";
    for args in [
        vec!["validate-config", cfg.to_str().unwrap()],
        vec!["run", "--no-http", "--duration", "1m", "--run-dir", run_dir.to_str().unwrap()],
    ] {
        let out = run_cli_timeout(&args, &env, std::time::Duration::from_secs(60));
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {msg}");
        assert!(msg.contains(expected), "{args:?}: {msg}");
        assert!(!msg.contains("panicked"), "{msg}");
    }
    assert!(!run_dir.exists(), "run refused before creating its run folder");
}

#[test]
fn environment_overrides_are_printed_and_reach_map_and_list_keys() {
    // Before: BALANCES__USD added an asset `usd` beside USD, FEED__PAIRS could not be set,
    // and nothing said which overrides were in force.
    let dir = TempDir::new("cfg-env-ok");
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, "account:\n  balances:\n    USD: 10000\n").unwrap();
    let env = [
        ("KRAKEN_PAPER__ACCOUNT__BALANCES__USD", "5000"),
        ("KRAKEN_PAPER__FEED__PAIRS", "BTC/USD,ETH/USD"),
        ("KRAKEN_PAPER__RISK__MAX_DRAWDOWN", "0.05"),
    ];
    let lines = [
        "env: account.balances.USD = 5000 (KRAKEN_PAPER__ACCOUNT__BALANCES__USD)",
        "env: feed.pairs = BTC/USD,ETH/USD (KRAKEN_PAPER__FEED__PAIRS)",
        "env: risk.max_drawdown = 0.05 (KRAKEN_PAPER__RISK__MAX_DRAWDOWN)",
    ];
    let out = run_cli_timeout(
        &["validate-config", cfg.to_str().unwrap()],
        &env,
        std::time::Duration::from_secs(60),
    );
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    for l in lines {
        assert!(msg.lines().any(|m| m == l), "missing {l:?} in:\n{msg}");
    }
    // A short run: the run folder's effective config holds the overridden values.
    let run_dir = dir.join("run");
    let out = run_cli_timeout(
        &[
            "run",
            "--no-http",
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            "1m",
            "--run-dir",
            run_dir.to_str().unwrap(),
        ],
        &env,
        std::time::Duration::from_secs(120),
    );
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    for l in lines {
        assert!(msg.lines().any(|m| m == l), "missing {l:?} in:\n{msg}");
    }
    let effective: serde_json::Value =
        yaml_to_json(&std::fs::read_to_string(run_dir.join("config.yaml")).unwrap());
    assert_eq!(effective["account"]["balances"], serde_json::json!({ "USD": "5000" }), "{effective}");
    assert_eq!(effective["feed"]["pairs"], serde_json::json!(["BTC/USD", "ETH/USD"]));
}

/// The run folder's config.yaml as JSON (numbers as the YAML writes them).
fn yaml_to_json(text: &str) -> serde_json::Value {
    yaml_serde::from_str(text).unwrap()
}
