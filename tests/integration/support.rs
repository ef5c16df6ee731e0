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

// ---- crash, resume and risk tests -------------------------------------------------------

/// Starts the binary with `args` (HTTP token removed), stdout and stderr appended to `log`.
pub fn spawn_cli(args: &[&str], env: &[(&str, &str)], log: &Path) -> std::process::Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open log");
    let err = out.try_clone().expect("clone log handle");
    let mut cmd = Command::new(bin());
    cmd.args(args).stdout(out).stderr(err).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("KRAKEN_PAPER_API_TOKEN");
    cmd.spawn().expect("spawn kraken-paper")
}

/// Sends a signal by name (`TERM`, `INT`) to a child process.
pub fn signal(child: &std::process::Child, name: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name} {} failed", child.id());
}

/// Waits for a child to exit, killing it and failing after `timeout`.
pub fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kraken-paper (pid {}) did not exit within {timeout:?}", child.id());
        }
    }
}

/// Length of a file in bytes (0 if it does not exist yet).
pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Deterministic pseudo-random numbers for test schedules (SplitMix64).
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The journal's raw lines (without newlines) of one record type, byte for byte.
pub fn raw_lines(run_dir: &Path, kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("journal.jsonl")).expect("read journal");
    let tag = format!("\"type\":\"{kind}\"");
    text.lines().filter(|l| l.contains(&tag)).map(str::to_string).collect()
}

/// Every line of the journal is a complete record (ends in a newline, parses as a JSON
/// object with `seq`, `event_time`, `type`), and `seq` increases strictly; returns the records.
pub fn valid_journal(run_dir: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(run_dir.join("journal.jsonl")).expect("read journal");
    assert!(bytes.last() == Some(&b'\n'), "journal does not end in a complete line");
    let mut prev = 0u64;
    let mut out = Vec::new();
    for (i, line) in String::from_utf8(bytes).expect("journal is UTF-8").lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("journal line {}: {e}: {line}", i + 1));
        let seq = v["seq"].as_u64().unwrap_or_else(|| panic!("journal line {} has no seq", i + 1));
        assert!(seq > prev, "journal line {}: seq {seq} after {prev}", i + 1);
        assert!(v["event_time"].is_string() && v["type"].is_string(), "line {}: {line}", i + 1);
        prev = seq;
        out.push(v);
    }
    out
}

/// No fill id twice; returns the ids in journal order.
pub fn unique_fill_ids(journal: &[serde_json::Value]) -> Vec<u64> {
    let ids: Vec<u64> =
        records(journal, "fill").iter().map(|f| f["fill_id"].as_u64().expect("fill_id")).collect();
    let set: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "a fill id appears twice");
    ids
}

/// The final `balances` record equals the starting balances plus every fill (base ± qty,
/// quote ∓ price × qty, minus fees).
pub fn assert_balances_follow_fills(journal: &[serde_json::Value]) {
    use rust_decimal::Decimal;
    let start = &records(journal, "run_started")[0]["starting_balances"];
    let mut balances: std::collections::BTreeMap<String, Decimal> = std::collections::BTreeMap::new();
    for (asset, v) in start.as_object().expect("starting_balances is an object") {
        balances.insert(asset.clone(), dec(v));
    }
    for f in records(journal, "fill") {
        let (base, quote) = f["pair"].as_str().unwrap().split_once('/').unwrap();
        let (price, qty, fee) = (dec(&f["price"]), dec(&f["qty"]), dec(&f["fee"]));
        let sign = if f["side"] == "buy" { Decimal::ONE } else { -Decimal::ONE };
        *balances.entry(base.to_string()).or_default() += sign * qty;
        *balances.entry(quote.to_string()).or_default() -= sign * price * qty;
        *balances.entry(f["fee_currency"].as_str().unwrap().to_string()).or_default() -= fee;
    }
    let recorded = records(journal, "balances");
    let last = recorded.last().expect("a final balances record");
    for (asset, expected) in &balances {
        let got = last["balances"].get(asset).map(dec).unwrap_or_default();
        assert_eq!(got, *expected, "balance of {asset}: the fills imply {expected}, the journal says {got}");
    }
}

/// Rows of a CSV file without its header (the exports quote no field these tests read).
pub fn csv_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines().skip(1).map(str::to_string).collect()
}
