//! Live runs against a mock Kraken on 127.0.0.1 (WS v2 + REST): `record` from the WebSocket
//! writes a file `replay` verifies; a live run records its feed in `feed.jsonl`, and after a
//! SIGKILL `run --resume` re-executes it (the journal checks every record), fetches the
//! trades that happened while it was down over REST `Trades` `since`, fills the resting
//! order they crossed, reports the stop they triggered, and reconnects. A live run whose
//! connection drops does the same on its reconnect (the gap fill), and a resume re-executes
//! that too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kraken_paper::core::book::L2Book;
use kraken_paper::core::market::Side;
use rust_decimal::Decimal;

use crate::support::*;

#[test]
fn record_from_the_websocket_replays_with_every_checksum_verified() {
    let mock = MockKraken::start(MockScript::default());
    let dir = TempDir::new("record-ws");
    let file = dir.join("ws.jsonl");
    let out = run_cli_timeout(
        &[
            "record",
            "--ws-url",
            &mock.url,
            "--pairs",
            "BTC/USD",
            "--events",
            "300",
            "--out",
            file.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "record failed:\n{}", text(&out));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record line is JSON"))
        .collect();
    // The subscriptions first, as sent, then what came back (the instrument snapshot too).
    let sent: Vec<&serde_json::Value> = lines.iter().take(4).map(|l| &l["msg"]).collect();
    assert!(lines.iter().take(4).all(|l| l["dir"] == "sent"), "{:?}", &lines[..4]);
    assert!(is_request(sent[0], "subscribe", "instrument", None));
    assert!(is_request(sent[3], "subscribe", "book", Some("BTC/USD")));
    assert!(lines.iter().any(|l| l["dir"] == "recv" && l["msg"]["channel"] == "instrument"));
    // ts: Unix seconds with microseconds, the wall time of receipt (after the mock's 2025 data).
    let ts = lines[5]["ts"].to_string();
    assert!(ts.split_once('.').is_some_and(|(s, us)| s.len() == 10 && us.len() == 6), "{ts}");
    assert!(lines[5]["ts"].as_f64().unwrap() > 1_735_689_600.0);

    let run = dir.join("replay");
    let out = run_cli(&["replay", file.to_str().unwrap(), "--run-dir", run.to_str().unwrap()], &[]);
    assert!(out.status.success(), "replay failed:\n{}", text(&out));
    let feed = &report(&run)["feed"];
    assert!(feed["events"].as_u64().unwrap() >= 300, "{feed}");
    let updates = lines.iter().filter(|l| l["msg"]["channel"] == "book").count() as u64;
    assert_eq!(feed["checksums_verified"].as_u64(), Some(updates), "{feed}");
    assert_eq!(feed["checksum_mismatches"], 0, "{feed}");
    assert_eq!(feed["malformed"], 0, "{feed}");
}

// ---- a market that makes the engine rest a buy -------------------------------------------

/// 2025-01-01T00:00:00Z.
const START_S: i64 = 1_735_689_600;

/// What the mock shares between its WebSocket and REST halves.
struct Market {
    /// Updates sent so far; event time = START + 2 s × step.
    step: i64,
    book: L2Book,
    /// Trades to print in the gap, relative to the time of the REST request: (ms after, price, qty).
    gap: Vec<(i64, &'static str, &'static str)>,
    /// `since` of every Trades request.
    trades_since: Vec<String>,
    next_trade_id: u64,
    /// Trades requests fail (Kraken's error for an unknown pair).
    trades_fail: bool,
}

impl Market {
    fn new() -> Market {
        // Bids far deeper than asks: the imbalance signal wants to buy at once.
        let mut book = L2Book::new(10, Some(1), Some(8));
        for k in 0..10i64 {
            book.apply(Side::Buy, Decimal::new(499_995 - 5 * k, 1), Decimal::new(5, 0));
            book.apply(Side::Sell, Decimal::new(500_000 + 5 * k, 1), Decimal::new(1, 1));
        }
        Market {
            step: 0,
            book,
            gap: Vec::new(),
            trades_since: Vec::new(),
            next_trade_id: 100,
            trades_fail: false,
        }
    }

    fn time_us(&self) -> i64 {
        (START_S + 2 * self.step) * 1_000_000
    }

    fn rfc3339(us: i64) -> String {
        kraken_paper::core::time::EventTime::from_micros(us).to_rfc3339()
    }

    fn levels(&self, side: Side) -> String {
        self.book
            .levels(side)
            .map(|l| {
                let mut q = l.qty;
                q.rescale(8);
                format!(r#"{{"price":{},"qty":{q}}}"#, l.price)
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The WebSocket half is the shared mock ([`MockKraken::start_with`]) streaming this market.
impl MockMarket for Market {
    fn now(&self) -> kraken_paper::core::time::EventTime {
        kraken_paper::core::time::EventTime::from_micros(self.time_us())
    }

    fn snapshot_frame(&mut self) -> String {
        let (b, a) = (self.levels(Side::Buy), self.levels(Side::Sell));
        format!(
            r#"{{"channel":"book","type":"snapshot","data":[{{"symbol":"BTC/USD","bids":[{b}],"asks":[{a}],"checksum":{},"timestamp":"{}"}}]}}"#,
            self.book.checksum(),
            Self::rfc3339(self.time_us())
        )
    }

    /// The deepest bid's size changes; the touch never moves.
    fn update_frame(&mut self, _corrupt: bool) -> String {
        self.step += 1;
        let price = Decimal::new(499_995 - 5 * 9, 1);
        let mut qty = Decimal::new(5 + self.step % 3, 0);
        self.book.apply(Side::Buy, price, qty);
        qty.rescale(8);
        format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":"BTC/USD","bids":[{{"price":{price},"qty":{qty}}}],"asks":[],"checksum":{},"timestamp":"{}"}}]}}"#,
            self.book.checksum(),
            Self::rfc3339(self.time_us())
        )
    }
}

/// The REST half (HTTP/1.1, one request per connection): AssetPairs and Trades `since`.
fn start_rest(market: Arc<Mutex<Market>>) -> String {
    mock_rest(move |req| match req.path {
        "/0/public/AssetPairs" => (200, ASSET_PAIRS.to_string()),
        "/0/public/Trades" => {
            let mut m = market.lock().unwrap();
            let since = req.param("since").unwrap_or_default();
            m.trades_since.push(since.clone());
            if m.trades_fail {
                return (200, r#"{"error":["EQuery:Unknown asset pair"]}"#.to_string());
            }
            let since_ns: i128 = since.parse().unwrap_or(0);
            let base = m.time_us();
            let gap = m.gap.clone();
            let mut rows = Vec::new();
            let mut last = since.clone();
            for (ms, price, qty) in gap {
                let us = base + ms * 1000;
                if i128::from(us) * 1000 <= since_ns {
                    continue;
                }
                m.next_trade_id += 1;
                rows.push(format!(
                    r#"["{price}","{qty}",{}.{:06},"s","m","",{}]"#,
                    us / 1_000_000,
                    us % 1_000_000,
                    m.next_trade_id
                ));
                last = (i128::from(us) * 1000).to_string();
            }
            // The market moved on while the trades printed.
            m.step += 2;
            (200, format!(r#"{{"error":[],"result":{{"XXBTZUSD":[{}],"last":"{last}"}}}}"#, rows.join(",")))
        }
        _ => (404, REST_UNKNOWN_METHOD.to_string()),
    })
}

const ASSET_PAIRS: &str = r#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD","cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"fees":[[0,0.4]],"fees_maker":[[0,0.25]],"fee_volume_currency":"ZUSD","ordermin":"0.00005","costmin":"0.5","tick_size":"0.1","status":"online"}}}"#;

const LIVE_CONFIG: &str = r#"
feed:
  source: kraken
  pairs: [BTC/USD]
signals:
  enabled: [imbalance]
  imbalance:
    half_life: 2s
    cooldown: 1h
run:
  duration: 20m
"#;

#[test]
fn live_run_killed_then_resumed_fills_from_the_trades_it_missed() {
    let market = Arc::new(Mutex::new(Market::new()));
    let ws = MockKraken::start_with(
        MockScript { pace: Duration::from_millis(40), ..MockScript::default() },
        market.clone(),
    );
    let ws_url = ws.url.clone();
    let rest_url = start_rest(market.clone());
    let dir = TempDir::new("live-resume");
    let config = write_config(dir.path(), LIVE_CONFIG);
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let log = dir.join("run.log");
    let args = [
        "run",
        "--live",
        "--no-http",
        "--config",
        config.to_str().unwrap(),
        "--ws-url",
        &ws_url,
        "--rest-url",
        &rest_url,
        "--run-dir",
        run.to_str().unwrap(),
    ];
    let mut child = spawn_cli(&args, &[], &log);
    // Wait for a resting buy at the touch, then a few more frames.
    let resting = || {
        std::fs::read_to_string(&journal).unwrap_or_default().lines().any(|l| {
            l.contains(r#""type":"order""#)
                && l.contains(r#""kind":"intent""#)
                && l.contains(r#""side":"buy""#)
        })
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the live run exited:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            resting()
        }),
        "the live run placed no buy:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::fs::read(&journal).unwrap();
    let recs = valid_journal(&run);
    assert!(records(&recs, "fill").is_empty(), "filled before the kill; the mock never crosses the bid");
    let order =
        records(&recs, "order").into_iter().find(|o| o["origin"]["kind"] == "intent").unwrap().clone();
    let bid = dec(&order["spec"]["price"]);
    assert!(std::fs::metadata(run.join("feed.jsonl")).unwrap().len() > 0, "no feed recording");

    // While it is down: a sell prints through the bid (fills the buy), then one far below
    // the stop-loss (triggers it; no book to fill it on in the gap).
    market.lock().unwrap().gap = vec![(300, "49900.0", "20.00000000"), (3000, "45000.0", "5.00000000")];
    let resume = ["run", "--resume", run.to_str().unwrap(), "--no-http", "--log-format", "json"];
    let mut child = spawn_cli(&resume, &[], &log);
    let filled = || std::fs::read_to_string(&journal).unwrap_or_default().contains(r#""type":"fill""#);
    assert!(
        wait_until(Duration::from_secs(60), || filled() && ws.log().connections.len() >= 2),
        "no fill after the resume:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Let it run on the reconnected feed, then stop it gracefully.
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)).code(), Some(0));

    let after = std::fs::read(&journal).unwrap();
    assert!(after.starts_with(&killed), "the resume rewrote journaled records");
    let recs = valid_journal(&run);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1), "seq breaks at {r}");
    }
    let fills = records(&recs, "fill");
    let entry = fills.iter().find(|f| f["order_id"] == order["order_id"]).expect("the resting buy filled");
    assert_eq!(entry["cause"]["kind"], "trade", "{entry}");
    assert_eq!(dec(&entry["price"]), bid, "a maker fill at our price");
    assert_eq!(entry["liquidity"], "maker");
    unique_fill_ids(&recs);
    assert_balances_follow_fills(&recs);
    // The REST catch-up started at the last event the first session had seen.
    let since = market.lock().unwrap().trades_since.clone();
    assert_eq!(since.len(), 1, "{since:?}");
    let last_before: i64 = killed
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter_map(|r| {
            r["event_time"]
                .as_str()
                .map(|t| kraken_paper::core::time::EventTime::parse_rfc3339(t).unwrap().as_micros())
        })
        .max()
        .unwrap();
    assert!(
        since[0].parse::<i64>().unwrap() / 1000 >= last_before,
        "since {} is before {last_before}",
        since[0]
    );
    // The stop the second gap trade triggered: reported, in the journal and report.json.
    let unknown = records(&recs, "order_fate_unknown");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let r = report(&run);
    assert_eq!(r["orders_fate_unknown"].as_array().map(Vec::len), Some(1), "{}", r["orders_fate_unknown"]);

    // Resuming again re-executes feed.jsonl, REST catch-up lines included, and changes nothing
    // journaled before: the stop block, then a new catch-up (no more trades), then live again.
    // It runs live until stopped: up to the catch-up line, then stopped gracefully.
    run_until_logged(&resume, &dir.join("run2.log"), "resume caught up with the journal");
    let again = std::fs::read(&journal).unwrap();
    assert!(again.starts_with(&after), "the second resume rewrote journaled records");
    unique_fill_ids(&valid_journal(&run));
}

// ---- gaps filled on every reconnect ------------------------------------------------------

/// A live run on [`Market`] whose first connection drops after 8 updates (16 s of event time:
/// the buy placed on the first snapshot still rests, its chase is due at 30 s), with the
/// REST mock; runs (JSON logs in `log`) until `done` holds on the journal's text and the
/// mock has seen a second connection, then is stopped with SIGTERM.
fn live_run_with_a_drop(
    market: &Arc<Mutex<Market>>,
    dir: &TempDir,
    log: &std::path::Path,
    done: impl Fn(&str) -> bool,
) -> (MockKraken, std::path::PathBuf) {
    let ws = MockKraken::start_with(
        MockScript { pace: Duration::from_millis(40), drop_after: Some(8), ..MockScript::default() },
        market.clone(),
    );
    let rest_url = start_rest(market.clone());
    let config = write_config(dir.path(), LIVE_CONFIG);
    let run = dir.join("run");
    let journal = run.join("journal.jsonl");
    let args = [
        "run",
        "--live",
        "--no-http",
        "--log-format",
        "json",
        "--config",
        config.to_str().unwrap(),
        "--ws-url",
        &ws.url,
        "--rest-url",
        &rest_url,
        "--run-dir",
        run.to_str().unwrap(),
    ];
    let mut child = spawn_cli(&args, &[], log);
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(300), || {
            assert!(child.try_wait().unwrap().is_none(), "the live run exited:\n{}", read_log());
            ws.log().connections.len() >= 2 && done(&std::fs::read_to_string(&journal).unwrap_or_default())
        }),
        "the live run did not reconnect and catch up:\n{}",
        read_log()
    );
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(120)).code(), Some(0), "{}", read_log());
    (ws, run)
}

/// The JSON log lines of a log file.
fn log_events(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The resting buy the imbalance signal placed, checked to be in the journal before the
/// disconnect.
fn resting_buy_before_the_drop(recs: &[serde_json::Value]) -> serde_json::Value {
    let order = records(recs, "order")
        .into_iter()
        .find(|o| o["origin"]["kind"] == "intent" && o["spec"]["side"] == "buy")
        .expect("a resting buy")
        .clone();
    let drop =
        records(recs, "feed_reconnect").first().map(|r| r["seq"].as_u64().unwrap()).expect("a reconnect");
    assert!(order["seq"].as_u64().unwrap() < drop, "the buy was placed after the drop: {order}");
    order
}

#[test]
fn live_reconnect_fills_the_gap_from_rest_trades_before_the_new_snapshot() {
    let market = Arc::new(Mutex::new(Market::new()));
    // While disconnected: a sell prints through the bid (fills the buy), then one far below
    // the stop-loss (triggers it; no book to fill it on in the gap).
    market.lock().unwrap().gap = vec![(300, "49900.0", "20.00000000"), (3000, "45000.0", "5.00000000")];
    let dir = TempDir::new("live-gap");
    let log = dir.join("run.log");
    let (ws, run) = live_run_with_a_drop(&market, &dir, &log, |j| {
        j.contains(r#""type":"fill""#) && j.contains(r#""type":"feed_gap""#)
    });
    drop(ws);
    let recs = valid_journal(&run);
    let order = resting_buy_before_the_drop(&recs);
    let bid = dec(&order["spec"]["price"]);

    // The gap was fetched once (on the reconnect), from the last event seen.
    assert_eq!(market.lock().unwrap().trades_since.len(), 1, "{:?}", market.lock().unwrap().trades_since);
    let events = log_events(&log);
    let filled: Vec<_> = events.iter().filter(|e| e["event"] == "feed_gap_filled").collect();
    assert_eq!(filled.len(), 1, "{filled:?}");
    assert_eq!(filled[0]["pair"], "BTC/USD");
    assert_eq!(filled[0]["trades"], 2, "{}", filled[0]);
    let since = filled[0]["since"].as_str().expect("since");
    assert!(kraken_paper::core::time::EventTime::parse_rfc3339(since).is_ok(), "{since}");

    // The buy filled from the first gap trade, at our price, as a maker.
    let gap = records(&recs, "feed_gap");
    assert_eq!(gap.len(), 1, "{gap:?}");
    let (first, last) = (gap[0]["first_seq"].as_u64().unwrap(), gap[0]["last_seq"].as_u64().unwrap());
    assert_eq!(last - first, 1, "{}", gap[0]);
    let fills = records(&recs, "fill");
    let entry = fills.iter().find(|f| f["order_id"] == order["order_id"]).expect("the resting buy filled");
    assert_eq!(entry["cause"]["kind"], "trade", "{entry}");
    assert!((first..=last).contains(&entry["cause"]["event_seq"].as_u64().unwrap()), "{entry}");
    assert_eq!(dec(&entry["price"]), bid, "a maker fill at our price");
    unique_fill_ids(&recs);
    assert_balances_follow_fills(&recs);
    // The stop the second gap trade triggered is reported.
    assert_eq!(records(&recs, "order_fate_unknown").len(), 1, "{:?}", records(&recs, "order_fate_unknown"));
    let r = report(&run);
    assert_eq!(r["feed"]["gap_trades"], 2, "{}", r["feed"]);
    assert!(r["feed"]["gap_fills"].as_u64().unwrap() >= 1, "{}", r["feed"]);

    // feed.jsonl: the REST trades and the gap's end come after the first connection's last
    // frame and before the second connection's first, then the disconnect.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("feed.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a feed line is JSON"))
        .collect();
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Vec<usize> {
        lines.iter().enumerate().filter(|(_, l)| pred(l)).map(|(i, _)| i).collect()
    };
    let statuses = at(&|l| l["dir"] == "recv" && l["msg"]["channel"] == "status");
    let rest = at(&|l| l["dir"] == "rest");
    let gap_end = at(&|l| l["dir"] == "gap_end");
    let reconnect = at(&|l| l["dir"] == "reconnect");
    assert!(statuses.len() >= 2 && rest.len() == 2 && gap_end.len() == 1 && reconnect.len() == 1);
    assert!(statuses[0] < rest[0] && rest[1] < gap_end[0] && gap_end[0] < reconnect[0]);
    assert!(reconnect[0] < statuses[1], "the gap lines come before the new connection's frames");

    // A resume re-executes all of it (every regenerated record checked) and appends.
    let before = std::fs::read(run.join("journal.jsonl")).unwrap();
    let resume = ["run", "--resume", run.to_str().unwrap(), "--no-http", "--log-format", "json"];
    run_until_logged(&resume, &dir.join("resume.log"), "resume caught up with the journal");
    let after = std::fs::read(run.join("journal.jsonl")).unwrap();
    assert!(after.starts_with(&before), "the resume rewrote journaled records");
    unique_fill_ids(&valid_journal(&run));
}

#[test]
fn live_reconnect_without_the_gap_trades_reports_resting_orders_unknown() {
    let market = Arc::new(Mutex::new(Market::new()));
    market.lock().unwrap().trades_fail = true;
    let dir = TempDir::new("live-gap-unfetched");
    let log = dir.join("run.log");
    let (ws, run) =
        live_run_with_a_drop(&market, &dir, &log, |j| j.contains(r#""type":"order_fate_unknown""#));
    drop(ws);
    let recs = valid_journal(&run);
    let order = resting_buy_before_the_drop(&recs);
    let unknown = records(&recs, "order_fate_unknown");
    assert!(
        unknown.iter().any(|u| u["order_id"] == order["order_id"] && u["pair"] == "BTC/USD"),
        "{unknown:?}"
    );
    assert!(!market.lock().unwrap().trades_since.is_empty());
    assert!(log_events(&log).iter().all(|e| e["event"] != "feed_gap_filled"));
    let gap = records(&recs, "feed_gap");
    assert_eq!(gap[0]["pairs_unfetched"], serde_json::json!(["BTC/USD"]), "{gap:?}");
    assert_eq!(report(&run)["feed"]["gap_trades"], 0);
}
