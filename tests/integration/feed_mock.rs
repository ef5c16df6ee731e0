//! The live feed path against a mock Kraken WS v2 exchange (support::MockKraken): the real
//! binary runs `run --live --ws-url ws://127.0.0.1:PORT` with a dead REST URL (live mode must
//! not need REST). The mock's event time advances 1 s per book update, so `--duration 60s`
//! is 60 updates after the first snapshot.
//!
//! - the decoder rebuilds the mock's book exactly from a snapshot and updates;
//! - end to end, every checksum is verified and none mismatches;
//! - a corrupted update is detected and the pair's book resubscribed;
//! - a dropped and a silent connection each lead to a reconnect with restored subscriptions;
//! - malformed and unknown frames are logged and skipped.

use std::process::Output;
use std::time::Duration;

use kraken_paper::core::kraken::decode::{FeedDecoder, FeedNotice};
use kraken_paper::core::market::{MarketEvent, Side};

use crate::support::*;

/// Runs the binary live against `mock` for `duration` of event time. `feed_yaml` is extra
/// lines under `feed:` (indented two spaces).
fn run_live(
    mock: &MockKraken,
    dir: &TempDir,
    feed_yaml: &str,
    duration: &str,
    env: &[(&str, &str)],
) -> Output {
    let cfg = write_config(
        dir.path(),
        &format!(
            "feed:\n  pairs: [BTC/USD]\n  reconnect:\n    initial_backoff_ms: 100\n{feed_yaml}http:\n  enabled: false\n"
        ),
    );
    let run = dir.join("run");
    run_cli_timeout(
        &[
            "run",
            "--live",
            "--ws-url",
            &mock.url,
            // Nothing listens on port 9: any REST call at start-up would fail.
            "--rest-url",
            "http://127.0.0.1:9",
            "--config",
            cfg.to_str().unwrap(),
            "--duration",
            duration,
            "--log-format",
            "json",
            "--run-dir",
            run.to_str().unwrap(),
        ],
        env,
        Duration::from_secs(60),
    )
}

fn events<'a>(logs: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    logs.iter().filter(|l| l["event"] == name).collect()
}

/// Index of the first request of connection `conn` matching, if any.
fn find(reqs: &[serde_json::Value], method: &str, channel: &str) -> Option<usize> {
    reqs.iter().position(|r| is_request(r, method, channel, Some(MOCK_PAIR)))
}

#[test]
fn decoder_rebuilds_the_mock_exchange_book_from_snapshot_and_updates() {
    let mut mock = MockBook::new();
    let mut dec = FeedDecoder::new(10);
    let (mut ev, mut notices) = (Vec::new(), Vec::new());
    dec.decode(&mock_instrument_frame(), &mut ev, &mut notices);
    assert!(dec.instrument(MOCK_PAIR).is_some(), "instrument frame not understood: {notices:?}");
    dec.decode(&mock.snapshot_frame(), &mut ev, &mut notices);
    for _ in 0..500 {
        let f = mock.update_frame(false);
        dec.decode(&f, &mut ev, &mut notices);
        assert!(mock.window_is_top_of_full(), "the mock's window left its full book at step {}", mock.step);
    }
    let c = dec.counters().clone();
    // One checksum per snapshot and per update: 1 + 500.
    assert_eq!(c.checksums_verified, 501, "{c:?} {notices:?}");
    assert_eq!((c.checksum_mismatches, c.resyncs, c.malformed), (0, 0, 0), "{c:?} {notices:?}");
    let book = dec.book(MOCK_PAIR).expect("the book is trusted");
    for side in [Side::Buy, Side::Sell] {
        let got: Vec<_> = book.levels(side).collect();
        let want: Vec<_> = mock.window().levels(side).collect();
        assert_eq!(got, want, "{side:?} side differs from the exchange's top 10");
    }
    // Deletes happened and levels came back from below: the mock exercised both paths.
    let books = ev.iter().filter(|e| matches!(e, MarketEvent::Book(_))).count();
    assert_eq!(books, 501);

    // One wrong checksum: mismatch, book dropped, a resync requested for the pair.
    notices.clear();
    dec.decode(&mock.update_frame(true), &mut ev, &mut notices);
    assert_eq!(dec.counters().checksum_mismatches, 1);
    assert!(dec.book(MOCK_PAIR).is_none(), "a book that failed its checksum is still trusted");
    assert!(
        notices.iter().any(|n| matches!(n, FeedNotice::Resync { symbol, .. } if symbol == MOCK_PAIR)),
        "{notices:?}"
    );
    // The next snapshot rebuilds it.
    dec.decode(&mock.snapshot_frame(), &mut ev, &mut notices);
    assert!(dec.book(MOCK_PAIR).is_some());
}

#[test]
fn live_run_against_the_mock_verifies_every_checksum() {
    let mock = MockKraken::start(MockScript::default());
    let dir = TempDir::new("feed-mock-ok");
    let out = run_live(&mock, &dir, "", "60s", &[]);
    assert!(out.status.success(), "run failed:\n{}", text(&out));
    let report = report(&dir.join("run"));
    let feed = &report["feed"];
    // The snapshot and the 60 updates up to the end of the duration, each verified once.
    assert_eq!(feed["checksums_verified"], 61, "{feed}");
    assert_eq!(feed["events"], 61, "{feed}");
    assert_eq!(feed["checksum_mismatches"], 0, "{feed}");
    assert_eq!(feed["resyncs"], 0, "{feed}");
    assert_eq!(feed["reconnects"], 0, "{feed}");
    assert_eq!(report["run"]["source"], "kraken");
    assert_eq!(report["run"]["end_reason"], "duration");
    let log = mock.log();
    assert_eq!(log.connections.len(), 1, "one connection expected");
    let reqs = log.requests(0);
    let sub = find(&reqs, "subscribe", "book").expect("no book subscription");
    assert_eq!(reqs[sub]["params"]["depth"], 10);
    assert!(reqs.iter().any(|r| is_request(r, "subscribe", "instrument", None)));
}

#[test]
fn corrupted_update_resubscribes_the_pairs_book_and_the_feed_continues() {
    let mock = MockKraken::start(MockScript { corrupt_update: Some(30), ..MockScript::default() });
    let dir = TempDir::new("feed-mock-resync");
    let out = run_live(&mock, &dir, "", "120s", &[]);
    assert!(out.status.success(), "run failed:\n{}", text(&out));
    let logs = json_logs(&out);
    let resync = events(&logs, "book_resync");
    assert_eq!(resync.len(), 1, "expected one book_resync event");
    assert_eq!(resync[0]["pair"], MOCK_PAIR, "{}", resync[0]);

    // The mock got an unsubscribe of the pair's book, then a new subscribe, on the same
    // connection, and answered with a second snapshot.
    let log = mock.log();
    assert_eq!(log.connections.len(), 1);
    let reqs = log.requests(0);
    let first = find(&reqs, "subscribe", "book").expect("first subscribe");
    let unsub = find(&reqs, "unsubscribe", "book").expect("no unsubscribe after the mismatch");
    let resub = reqs
        .iter()
        .enumerate()
        .skip(unsub + 1)
        .find(|(_, r)| is_request(r, "subscribe", "book", Some(MOCK_PAIR)))
        .map(|(i, _)| i)
        .expect("no subscribe after the unsubscribe");
    assert!(first < unsub && unsub < resub);
    assert_eq!(reqs[resub]["req_id"].as_u64(), reqs[unsub]["req_id"].as_u64().map(|i| i + 1));
    assert_eq!(log.snapshots_sent, 2);

    let report = report(&dir.join("run"));
    let feed = &report["feed"];
    assert_eq!(feed["checksum_mismatches"], 1, "{feed}");
    assert_eq!(feed["resyncs"], 1, "{feed}");
    // Before the resync: snapshot + 30 updates (the last one the mismatch) = 31 compared.
    // Going on past the resync needs the new snapshot and at least one update after it.
    assert!(feed["checksums_verified"].as_u64().unwrap() >= 33, "{feed}");
    assert_eq!(report["run"]["end_reason"], "duration");
}

fn assert_reconnected(out: &Output, mock: &MockKraken, dir: &TempDir) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "run failed:\n{}", text(out));
    let logs = json_logs(out);
    assert!(!events(&logs, "feed_reconnect").is_empty(), "no feed_reconnect event");
    let restarted: Vec<_> =
        events(&logs, "actor_restarted").into_iter().filter(|l| l["actor"] == "market_feed").collect();
    assert_eq!(restarted.len(), 1, "expected one actor_restarted for market_feed");
    let log = mock.log();
    assert_eq!(log.connections.len(), 2, "expected exactly two connections");
    let second = log.requests(1);
    for ch in ["instrument", "ticker", "trade", "book"] {
        let pair = (ch != "instrument").then_some(MOCK_PAIR);
        assert!(
            second.iter().any(|r| is_request(r, "subscribe", ch, pair)),
            "subscription to {ch} not restored on the second connection: {second:?}"
        );
    }
    assert_eq!(log.snapshots_sent, 2, "the second connection's snapshot was not sent");
    let report = report(&dir.join("run"));
    let feed = &report["feed"];
    assert_eq!(feed["reconnects"], 1, "{feed}");
    assert_eq!(feed["checksum_mismatches"], 0, "{feed}");
    // Checksums went on being verified after the reconnect: 1 + 40 before it.
    assert!(feed["checksums_verified"].as_u64().unwrap() > 42, "{feed}");
    assert_eq!(report["run"]["end_reason"], "duration");
    log.requests(0)
}

#[test]
fn dropped_connection_reconnects_and_restores_subscriptions() {
    let mock = MockKraken::start(MockScript { drop_after: Some(40), ..MockScript::default() });
    let dir = TempDir::new("feed-mock-drop");
    let out = run_live(&mock, &dir, "", "120s", &[]);
    assert_reconnected(&out, &mock, &dir);
}

#[test]
fn silent_connection_is_declared_dead_and_reconnected() {
    let mock = MockKraken::start(MockScript { silent_after: Some(40), ..MockScript::default() });
    let dir = TempDir::new("feed-mock-silent");
    let out = run_live(&mock, &dir, "  liveness_timeout_ms: 1500\n  ping_interval_ms: 500\n", "120s", &[]);
    let first = assert_reconnected(&out, &mock, &dir);
    // The client pinged the silent server before giving up on it.
    assert!(first.iter().any(|r| r["method"] == "ping"), "no ping on the silent connection");
    let logs = json_logs(&out);
    let reason = events(&logs, "feed_reconnect")[0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("no message"), "reconnect reason: {reason}");
}

#[test]
fn malformed_and_unknown_frames_are_logged_and_skipped() {
    let junk = [
        "this is not JSON",
        r#"{"channel":"book","type":"upd"#,
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"abc","qty":1.0}],"asks":[],"checksum":1,"timestamp":"2025-01-01T00:00:10.000000Z"}]}"#,
        "",
        r#"{"channel":"ohlc","type":"update","timestamp":"2025-01-01T00:00:12.000000Z","data":[]}"#,
        r#"{"Error":"Exceeded msg rate"}"#,
        r#"{"channel":"level3","type":"snapshot","data":[]}"#,
        r#"{"error":"Currency pair not supported XYZ/USD","method":"subscribe","req_id":77,"success":false,"symbol":"XYZ/USD","time_in":"2025-01-01T00:00:13.000000Z","time_out":"2025-01-01T00:00:13.000000Z"}"#,
    ];
    let script = MockScript {
        junk: junk.iter().enumerate().map(|(i, j)| (10 + i as u64, j.to_string())).collect(),
        ..MockScript::default()
    };
    let mock = MockKraken::start(script);
    let dir = TempDir::new("feed-mock-junk");
    let out =
        run_live(&mock, &dir, "", "60s", &[("RUST_LOG", "info,kraken_paper::actors::market_feed=debug")]);
    assert!(out.status.success(), "run failed:\n{}", text(&out));
    let logs = json_logs(&out);
    let msg = |m: &str| logs.iter().filter(|l| l["message"] == m).count();
    // Not JSON, truncated, bad price, empty: malformed. ohlc, {"Error"}, level3: unknown.
    assert_eq!(msg("malformed frame skipped"), 4, "{}", text(&out));
    assert_eq!(msg("unknown frame skipped"), 3, "{}", text(&out));
    assert_eq!(msg("subscription refused by the exchange"), 1);
    let report = report(&dir.join("run"));
    let feed = &report["feed"];
    assert_eq!(feed["malformed"], 4, "{feed}");
    assert_eq!(feed["unknown"], 3, "{feed}");
    // The book never noticed: all 61 checksums verified, none wrong.
    assert_eq!(feed["checksums_verified"], 61, "{feed}");
    assert_eq!(feed["checksum_mismatches"], 0, "{feed}");
    assert_eq!(report["run"]["end_reason"], "duration");
}
