//! Helpers shared by the integration tests: running the real binary in a temporary folder,
//! reading journals and reports, waiting for conditions without fixed sleeps.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kraken-paper"))
}

/// A fresh temporary folder (removed when dropped).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("kp-it-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KP_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs the binary with `args` and extra environment, with HTTP off unless asked for.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("KRAKEN_PAPER_API_TOKEN");
    cmd.output().expect("run kraken-paper")
}

/// Text of stdout + stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// All journal records as JSON values.
pub fn journal(run_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join("journal.jsonl")).expect("read journal");
    text.lines().map(|l| serde_json::from_str(l).expect("journal line is JSON")).collect()
}

/// Records of one type.
pub fn records<'a>(journal: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    journal.iter().filter(|r| r["type"] == kind).collect()
}

/// report.json.
pub fn report(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("report.json")).expect("read report.json");
    serde_json::from_str(&text).expect("report is JSON")
}

/// JSON log lines (stderr with --log-format json), flattened.
pub fn json_logs(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    #[allow(clippy::disallowed_methods)] // test polling deadline, not trading logic
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A decimal field of a JSON record (numbers are written as strings in the journal).
pub fn dec(v: &serde_json::Value) -> rust_decimal::Decimal {
    match v {
        serde_json::Value::String(s) => s.parse().expect("decimal string"),
        serde_json::Value::Number(n) => n.to_string().parse().expect("decimal number"),
        other => panic!("not a decimal: {other}"),
    }
}

/// A small config for fast tests: `duration` of simulated market time.
pub fn write_config(dir: &Path, extra_yaml: &str) -> PathBuf {
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.yaml"))
        .expect("read default config");
    // YAML values, not serde_json's: with `arbitrary_precision` a JSON number is a map inside.
    let mut doc: yaml_serde::Value = yaml_serde::from_str(&base).expect("default config parses");
    let extra: yaml_serde::Value = if extra_yaml.trim().is_empty() {
        yaml_serde::Value::Mapping(Default::default())
    } else {
        yaml_serde::from_str(extra_yaml).expect("extra yaml")
    };
    merge(&mut doc, &extra);
    let path = dir.join("test-config.yaml");
    std::fs::write(&path, yaml_serde::to_string(&doc).expect("yaml")).expect("write config");
    path
}

fn merge(a: &mut yaml_serde::Value, b: &yaml_serde::Value) {
    match (a, b) {
        (yaml_serde::Value::Mapping(a), yaml_serde::Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}
