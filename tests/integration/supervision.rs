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
