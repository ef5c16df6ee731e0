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

/// The usual simulated run: writes `extra_yaml` over the test config in `dir`, runs
/// `run --config <it> ARGS --run-dir <dir>/run` and asserts that it succeeded. Returns the run
/// folder and the output (for its logs).
pub fn run_with(dir: &TempDir, extra_yaml: &str, args: &[&str]) -> (PathBuf, Output) {
    let cfg = write_config(dir.path(), extra_yaml);
    let run = dir.join("run");
    let mut all = vec!["run", "--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--run-dir", run.to_str().unwrap()]);
    let out = run_cli(&all, &[]);
    assert!(out.status.success(), "run failed:\n{}", text(&out));
    (run, out)
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

/// One request the REST mock received (HTTP/1.1, one request per connection).
pub struct RestRequest<'a> {
    /// The request target as sent: path and query.
    pub target: &'a str,
    /// The path (`/0/public/Trades`).
    pub path: &'a str,
    /// The query without its `?` (empty when there is none).
    pub query: &'a str,
}

impl RestRequest<'_> {
    /// The value of query parameter `key`, as sent (not decoded).
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).map(str::to_string)
    }
}

/// A loopback REST mock (`http://127.0.0.1:PORT`): answers every request with
/// `answer(request)` → (status code, JSON body), one request per connection, on a thread of
/// its own for the rest of the test binary's life.
pub fn mock_rest(mut answer: impl FnMut(&RestRequest) -> (u16, String) + Send + 'static) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req).to_string();
            let target = req.split_whitespace().nth(1).unwrap_or("");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let (code, body) = answer(&RestRequest { target, path, query });
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// REST mock answer for a method it does not know (Kraken's wording).
pub const REST_UNKNOWN_METHOD: &str = r#"{"error":["EGeneral:Unknown method"]}"#;

/// Deterministic pseudo-random numbers for test schedules (SplitMix64).
///
/// Not `kraken_paper::core::rng::Rng`: that one is xoshiro256** (seeded by SplitMix64), so
/// the same seed gives other numbers, and the crash test's kill schedule would change.
pub struct TestRng(pub u64);

impl TestRng {
    /// Next 64 random bits.
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

// ---------------------------------------------------------------------------------------
// Mock Kraken WebSocket v2 exchange (tests/integration/feed_mock.rs)
// ---------------------------------------------------------------------------------------
//
// A tokio-tungstenite server on 127.0.0.1:0, on its own thread with its own runtime, speaking
// Kraken WS v2 (shared/kraken/websocket-v2.md): `status` on connect, acks for subscribe /
// unsubscribe, `pong` for `ping`, an `instrument` snapshot, a `book` snapshot and then one
// `book` update per tick for BTC/USD. Event time advances exactly 1 s per update frame.
//
// Book fidelity: the mock keeps the exchange's full book (13 price slots per side) and sends
// what Kraken sends for a depth-10 subscription: the changed level, plus any level that
// enters the top 10 because one above it was deleted; no delete for a level pushed out of
// the window. Checksums are computed with `L2Book` at the pair's precisions (price 1,
// qty 8); snapshots are written without trailing zeros (as the re-serialised recordings),
// updates with them (as captured live), so the decoder must pad from the instrument.

use std::sync::{Arc, Mutex};

use kraken_paper::core::book::L2Book;
use kraken_paper::core::market::{Level, Side};
use kraken_paper::core::time::EventTime;
use rust_decimal::Decimal;

/// The one pair the mock trades.
pub const MOCK_PAIR: &str = "BTC/USD";
/// 2025-01-01T00:00:00Z, the mock's first event time.
pub const MOCK_START_US: i64 = 1_735_689_600 * 1_000_000;
/// Price slots per side of the mock's full book (more than the depth of 10).
const MOCK_SLOTS: i64 = 13;

/// The WS v2 `instrument` snapshot the mock sends (BTC/USD as on Kraken: price precision 1,
/// qty precision 8).
pub fn mock_instrument_frame() -> String {
    r#"{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","status":"enabled","precision":10,"precision_display":5,"borrowable":true,"collateral_value":1.0},{"id":"USD","status":"enabled","precision":4,"precision_display":2,"borrowable":true,"collateral_value":1.0}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,"qty_min":0.00005,"price_precision":1,"price_increment":0.1,"cost_precision":5,"cost_min":0.5,"marginable":true,"has_index":true,"tick_size":0.1}]}}"#.to_string()
}

/// Event time of update `step` (step 0 = the first snapshot).
pub fn mock_time(step: u64) -> EventTime {
    EventTime::from_micros(MOCK_START_US + step as i64 * 1_000_000)
}

/// The mock exchange's BTC/USD book: full book and the depth-10 window clients see.
pub struct MockBook {
    full: L2Book,
    window: L2Book,
    /// Updates generated so far (the current event time is `mock_time(step)`).
    pub step: u64,
}

impl Default for MockBook {
    fn default() -> Self {
        Self::new()
    }
}

impl MockBook {
    /// A book with every slot filled.
    pub fn new() -> MockBook {
        let mut full = L2Book::new(1000, Some(1), Some(8));
        for k in 0..MOCK_SLOTS {
            full.apply(Side::Buy, Self::slot_price(Side::Buy, k), Decimal::new(1000 + 17 * k, 4));
            full.apply(Side::Sell, Self::slot_price(Side::Sell, k), Decimal::new(2000 + 31 * k, 4));
        }
        let mut window = L2Book::new(10, Some(1), Some(8));
        for side in [Side::Buy, Side::Sell] {
            for l in full.levels(side).take(10) {
                window.apply(side, l.price, l.qty);
            }
        }
        MockBook { full, window, step: 0 }
    }

    /// Bids 49999.5, 49999.0, …; asks 50000.0, 50000.5, … (never crossed).
    fn slot_price(side: Side, k: i64) -> Decimal {
        match side {
            Side::Buy => Decimal::new(500_000 - 5 * (k + 1), 1),
            Side::Sell => Decimal::new(500_000 + 5 * k, 1),
        }
    }

    /// The top-10 book a client must hold.
    pub fn window(&self) -> &L2Book {
        &self.window
    }

    /// Current event time.
    pub fn now(&self) -> EventTime {
        mock_time(self.step)
    }

    /// The `book` snapshot of the window at the current time, with its checksum.
    pub fn snapshot_frame(&mut self) -> String {
        let side = |b: &L2Book, s: Side| {
            b.levels(s)
                .map(|l| format!(r#"{{"price":{},"qty":{}}}"#, l.price, l.qty.normalize()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (bids, asks) = (side(&self.window, Side::Buy), side(&self.window, Side::Sell));
        format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"{MOCK_PAIR}","bids":[{bids}],"asks":[{asks}],"checksum":{},"timestamp":"{}"}}]}}"#,
            self.window.checksum(),
            self.now().to_rfc3339()
        )
    }

    /// The next update (one change on each side), 1 s after the previous one. With
    /// `corrupt`, the frame's checksum is off by one (the levels are right).
    pub fn update_frame(&mut self, corrupt: bool) -> String {
        self.step += 1;
        let s = self.step as i64;
        let changes = [
            // Every 5th bid change and every 4th ask change is a delete.
            (Side::Buy, (s * 7) % MOCK_SLOTS, if s % 5 == 0 { 0 } else { (s * 37) % 997 + 1 }, 4),
            (Side::Sell, (s * 11) % MOCK_SLOTS, if s % 4 == 0 { 0 } else { (s * 53) % 991 + 1 }, 3),
        ];
        let mut bids = Vec::new();
        let mut asks = Vec::new();
        for (side, slot, units, scale) in changes {
            let price = Self::slot_price(side, slot);
            let qty = Decimal::new(units, scale);
            let before: Vec<Level> = self.full.levels(side).take(10).collect();
            self.full.apply(side, price, qty);
            let after: Vec<Level> = self.full.levels(side).take(10).collect();
            let out = if side == Side::Buy { &mut bids } else { &mut asks };
            // The change itself, when the client can see it (before or after).
            if before.iter().chain(after.iter()).any(|l| l.price == price) {
                out.push((price, qty));
            }
            // Levels entering the window from below (a level above was deleted).
            for l in &after {
                if l.price != price && !before.iter().any(|b| b.price == l.price) {
                    out.push((l.price, l.qty));
                }
            }
        }
        for (side, levels) in [(Side::Buy, &bids), (Side::Sell, &asks)] {
            for &(p, q) in levels {
                self.window.apply(side, p, q);
            }
        }
        self.window.truncate();
        let write = |levels: &[(Decimal, Decimal)]| {
            levels
                .iter()
                .map(|(p, q)| {
                    let mut q = *q;
                    q.rescale(8);
                    format!(r#"{{"price":{p},"qty":{q}}}"#)
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let checksum = self.window.checksum().wrapping_add(u32::from(corrupt));
        format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":"{MOCK_PAIR}","bids":[{}],"asks":[{}],"checksum":{checksum},"timestamp":"{}"}}]}}"#,
            write(&bids),
            write(&asks),
            self.now().to_rfc3339()
        )
    }

    /// True when the window is exactly the full book's top 10 (the mock's own invariant).
    pub fn window_is_top_of_full(&self) -> bool {
        [Side::Buy, Side::Sell].into_iter().all(|s| {
            let a: Vec<Level> = self.full.levels(s).take(10).collect();
            let b: Vec<Level> = self.window.levels(s).collect();
            a == b
        })
    }
}

/// The market a [`MockKraken`] streams: its clock, its `book` snapshot and its next update.
/// [`MockBook`] is the default; a test that needs another market (or shares it with a REST
/// mock) passes its own to [`MockKraken::start_with`].
pub trait MockMarket: Send + 'static {
    /// Current event time (acks and pongs carry it).
    fn now(&self) -> EventTime;
    /// The `book` snapshot frame at the current time.
    fn snapshot_frame(&mut self) -> String;
    /// The next `book` update frame; with `corrupt`, its checksum is off.
    fn update_frame(&mut self, corrupt: bool) -> String;
}

impl MockMarket for MockBook {
    fn now(&self) -> EventTime {
        MockBook::now(self)
    }
    fn snapshot_frame(&mut self) -> String {
        MockBook::snapshot_frame(self)
    }
    fn update_frame(&mut self, corrupt: bool) -> String {
        MockBook::update_frame(self, corrupt)
    }
}

/// What the mock does besides streaming updates.
#[derive(Clone, Debug)]
pub struct MockScript {
    /// Wall time between update frames.
    pub pace: Duration,
    /// Update step whose checksum is wrong.
    pub corrupt_update: Option<u64>,
    /// First connection only: drop the TCP connection (no close frame) after this many updates.
    pub drop_after: Option<u64>,
    /// First connection only: after this many updates send nothing more (pings unanswered).
    pub silent_after: Option<u64>,
    /// Extra raw frames sent just before update step N.
    pub junk: Vec<(u64, String)>,
}

impl Default for MockScript {
    fn default() -> Self {
        MockScript {
            pace: Duration::from_millis(3),
            corrupt_update: None,
            drop_after: None,
            silent_after: None,
            junk: Vec::new(),
        }
    }
}

/// What the mock saw and sent.
#[derive(Clone, Debug, Default)]
pub struct MockLog {
    /// Text frames received, per connection, in order.
    pub connections: Vec<Vec<String>>,
    /// Book snapshots sent (all connections).
    pub snapshots_sent: u64,
    /// Book updates sent (all connections).
    pub updates_sent: u64,
}

impl MockLog {
    /// The requests of connection `i` as JSON (unparsable ones left out).
    pub fn requests(&self, i: usize) -> Vec<serde_json::Value> {
        self.connections
            .get(i)
            .map(|c| c.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
            .unwrap_or_default()
    }
}

/// `method` request for `channel` naming `pair` (or any pair when `pair` is None).
pub fn is_request(r: &serde_json::Value, method: &str, channel: &str, pair: Option<&str>) -> bool {
    r["method"] == method
        && r["params"]["channel"] == channel
        && pair.is_none_or(|p| r["params"]["symbol"].as_array().is_some_and(|s| s.iter().any(|x| x == p)))
}

/// The running mock exchange; stopped when dropped.
pub struct MockKraken {
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<MockLog>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockKraken {
    /// Starts the server on 127.0.0.1:0, streaming a [`MockBook`].
    pub fn start(script: MockScript) -> MockKraken {
        MockKraken::start_with(script, Arc::new(Mutex::new(MockBook::new())))
    }

    /// Starts the server on 127.0.0.1:0, streaming `market` (which the caller may share).
    pub fn start_with<M: MockMarket>(script: MockScript, market: Arc<Mutex<M>>) -> MockKraken {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(MockLog::default()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let log2 = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(mock_accept_loop(listener, script, market, log2, stop_rx));
        });
        MockKraken { url, log, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// A copy of the log so far.
    pub fn log(&self) -> MockLog {
        self.log.lock().expect("mock log").clone()
    }
}

impl Drop for MockKraken {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connections are served one after the other: a client reconnects only after dropping the
/// previous connection, and a pending connection waits in the listen backlog.
async fn mock_accept_loop<M: MockMarket>(
    listener: std::net::TcpListener,
    script: MockScript,
    market: Arc<Mutex<M>>,
    log: Arc<Mutex<MockLog>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let mut conn = 0usize;
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { continue };
        log.lock().expect("mock log").connections.push(Vec::new());
        tokio::select! {
            _ = &mut stop => return,
            _ = mock_serve(ws, conn, &market, &script, &log) => {}
        }
        conn += 1;
    }
}

fn mock_ack(method: &str, req_id: &serde_json::Value, result: serde_json::Value, now: EventTime) -> String {
    let t = now.to_rfc3339();
    serde_json::json!({
        "method": method, "req_id": req_id, "result": result, "success": true,
        "time_in": t, "time_out": t,
    })
    .to_string()
}

/// Answers to one request (and whether it (un)subscribes the book).
fn mock_answer(text: &str, book: &mut impl MockMarket, book_on: &mut bool) -> Vec<String> {
    let Ok(r) = serde_json::from_str::<serde_json::Value>(text) else { return Vec::new() };
    let now = book.now();
    let method = r["method"].as_str().unwrap_or_default();
    let req_id = &r["req_id"];
    let channel = r["params"]["channel"].as_str().unwrap_or_default();
    let symbols: Vec<String> = r["params"]["symbol"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    match (method, channel) {
        ("ping", _) => {
            let t = now.to_rfc3339();
            out.push(
                serde_json::json!({"method":"pong","req_id":req_id,"time_in":t,"time_out":t}).to_string(),
            );
        }
        ("subscribe", "instrument") => {
            out.push(mock_ack(
                "subscribe",
                req_id,
                serde_json::json!({"channel":"instrument","snapshot":true}),
                now,
            ));
            out.push(mock_instrument_frame());
        }
        ("subscribe" | "unsubscribe", _) => {
            for s in &symbols {
                let mut result = serde_json::json!({"channel": channel, "symbol": s});
                if channel == "book" {
                    result["depth"] = serde_json::json!(10);
                }
                if method == "subscribe" {
                    result["snapshot"] = serde_json::json!(channel != "trade");
                }
                out.push(mock_ack(method, req_id, result, now));
                if channel == "book" && s == MOCK_PAIR {
                    *book_on = method == "subscribe";
                    if *book_on {
                        out.push(book.snapshot_frame());
                    }
                }
            }
        }
        _ => {}
    }
    out
}

async fn mock_serve<M: MockMarket>(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    conn: usize,
    market: &Mutex<M>,
    script: &MockScript,
    log: &Arc<Mutex<MockLog>>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut tx, mut rx) = ws.split();
    let status = r#"{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.10"}],"type":"update"}"#;
    if tx.send(Message::text(status)).await.is_err() {
        return;
    }
    let mut book_on = false;
    let mut silent = false;
    let mut sent_here = 0u64;
    let mut tick = tokio::time::interval(script.pace);
    loop {
        tokio::select! {
            msg = rx.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                log.lock().expect("mock log").connections[conn].push(text.clone());
                if silent {
                    continue;
                }
                let answers = mock_answer(&text, &mut *market.lock().expect("mock market"), &mut book_on);
                for f in answers {
                    if f.contains(r#""type":"snapshot""#) && f.contains(r#""channel":"book""#) {
                        log.lock().expect("mock log").snapshots_sent += 1;
                    }
                    if tx.send(Message::text(f)).await.is_err() {
                        return;
                    }
                }
            }
            _ = tick.tick() => {
                if silent || !book_on {
                    continue;
                }
                let step = log.lock().expect("mock log").updates_sent + 1;
                for (_, junk) in script.junk.iter().filter(|(n, _)| *n == step) {
                    if tx.send(Message::text(junk.clone())).await.is_err() {
                        return;
                    }
                }
                let frame = market.lock().expect("mock market").update_frame(script.corrupt_update == Some(step));
                if tx.send(Message::text(frame)).await.is_err() {
                    return;
                }
                log.lock().expect("mock log").updates_sent += 1;
                sent_here += 1;
                if conn == 0 && script.drop_after == Some(sent_here) {
                    // Dropping both halves closes the TCP connection without a close frame.
                    return;
                }
                if conn == 0 && script.silent_after == Some(sent_here) {
                    silent = true;
                }
            }
        }
    }
}

/// Runs the binary (logging to `log`) until its log shows `needle`, then stops it with
/// SIGTERM and asserts a clean exit; returns the log. For runs that go on until stopped (live
/// feeds): no wall-clock bound but a guard against hanging; it fails if the run exits first.
pub fn run_until_logged(args: &[&str], log: &Path, needle: &str) -> String {
    let mut child = spawn_cli(args, &[], log);
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    let seen = wait_until(Duration::from_secs(600), || {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "exited before logging {needle:?}:\n{}",
            read()
        );
        read().contains(needle)
    });
    assert!(seen, "never logged {needle:?}:\n{}", read());
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(120)).code(), Some(0), "{}", read());
    read()
}

/// Like [`run_cli`], but kills the binary after `timeout` (a hung feed fails the test
/// instead of hanging the suite).
pub fn run_cli_timeout(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut cmd = Command::new(bin());
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("KRAKEN_PAPER_API_TOKEN");
    let mut child = cmd.spawn().expect("spawn kraken-paper");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().expect("wait for killed kraken-paper")
        }
    };
    Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }
}
