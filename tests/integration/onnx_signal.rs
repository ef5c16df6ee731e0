//! The `onnx` signal (built with `--features onnx`) in a real run against the simulated
//! exchange, and its config errors through `validate-config`.

use crate::support::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/onnx/onnx_signal.yaml");
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/onnx/signal_model.onnx");

#[test]
fn example_onnx_config_signals_and_trades_on_the_simulator() {
    let dir = TempDir::new("onnx-run");
    let run = dir.join("run");
    let out = run_cli(
        &[
            "run",
            "--no-http",
            "--config",
            EXAMPLE,
            "--duration",
            "3h",
            "--seed",
            "2",
            "--run-dir",
            run.to_str().unwrap(),
        ],
        &[("KRAKEN_PAPER__SIGNALS__ONNX__MODEL", MODEL)],
    );
    assert!(out.status.success(), "run failed:\n{}", text(&out));
    let journal = journal(&run);
    let decisions = records(&journal, "signal_decision");
    let from_onnx = |d: &serde_json::Value| {
        d["intent"]["contributions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["source"] == "onnx"))
    };
    assert!(
        decisions.iter().filter(|d| from_onnx(d)).count() >= 10,
        "too few onnx decisions: {}",
        decisions.len()
    );
    assert!(decisions.iter().all(|d| from_onnx(d)), "onnx is the only signal of the example");
    assert!(!records(&journal, "fill").is_empty(), "the onnx signal led to no fill");
    assert!(report(&run)["trades"].as_u64().unwrap() > 0);
}

#[test]
fn validate_config_names_the_model_key_file_and_shapes() {
    let dir = TempDir::new("onnx-cfg");
    let check = |name: &str, onnx_yaml: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("signals:\n  enabled: [onnx]\n  onnx:\n{onnx_yaml}")).unwrap();
        let out = run_cli(&["validate-config", path.to_str().unwrap()], &[]);
        assert!(!out.status.success());
        text(&out)
    };
    let msg = check("lags.yaml", &format!("    model: {MODEL}\n    lags: [1, 2]\n"));
    assert!(msg.contains("signals.onnx.model") && msg.contains("signal_model.onnx"), "{msg}");
    assert!(msg.contains(", 7]") && msg.contains("[1, 6]"), "{msg}");
    let msg = check("missing.yaml", "    model: /nonexistent/model.onnx\n");
    assert!(msg.contains("signals.onnx.model: cannot read ONNX model /nonexistent/model.onnx"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}
