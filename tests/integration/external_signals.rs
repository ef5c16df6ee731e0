//! An outside process pushes signals over the external-signal WebSocket: with the built-in
//! models off, a strong signal on BTC/USD makes a trade whose decision names the external
//! source; bad messages get an error reply naming the field and the run goes on; a wrong
//! token is refused at the upgrade.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

const TOKEN: &str = "it-external-token";
const SOURCE: &str = "it_outside";

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, token: &str) -> Result<Ws, String> {
    let mut req = format!("ws://{addr}/").into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws).map_err(|e| e.to_string())
}

async fn ask(ws: &mut Ws, text: &str) -> serde_json::Value {
    ws.send(Message::text(text.to_string())).await.expect("send");
    loop {
        match ws.next().await.expect("reply").expect("reply frame") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("reply is JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Journal lines written so far (a torn last line is skipped).
fn journal_so_far(run: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Fills of orders placed for an intent whose decision counted `SOURCE`.
fn fills_caused_by_source(journal: &[serde_json::Value]) -> usize {
    let intents: Vec<u64> = records(journal, "signal_decision")
        .into_iter()
        .filter(|d| {
            d["intent"]["contributions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["source"] == SOURCE))
        })
        .filter_map(|d| d["intent"]["intent_id"].as_u64())
        .collect();
    let orders: Vec<u64> = records(journal, "order")
        .into_iter()
        .filter(|o| o["origin"]["intent_id"].as_u64().is_some_and(|i| intents.contains(&i)))
        .filter_map(|o| o["order_id"].as_u64())
        .collect();
    records(journal, "fill")
        .into_iter()
        .filter(|f| f["order_id"].as_u64().is_some_and(|o| orders.contains(&o)))
        .count()
}

/// The child's stderr lines, collected as they come by a thread (joined once the child ends).
fn collect_stderr(child: &mut std::process::Child) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (sink, stderr) = (lines.clone(), child.stderr.take().expect("piped stderr"));
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    (lines, reader)
}

/// The endpoint's address from its `external_signals_listening` log line (the run is killed
/// and the test fails when it never comes).
fn listening_addr(child: &mut std::process::Child, lines: &Mutex<Vec<String>>) -> String {
    let listening = || {
        lines.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "external_signals_listening").then(|| v["addr"].as_str().unwrap().to_string())
        })
    };
    let mut addr = None;
    if !wait_until(Duration::from_secs(20), || {
        addr = listening();
        addr.is_some()
    }) {
        let _ = child.kill();
        panic!("no external_signals_listening log line:\n{}", lines.lock().unwrap().join("\n"));
    }
    addr.unwrap()
}

#[test]
fn pushed_signals_trade_and_bad_ones_get_an_error_reply() {
    let dir = TempDir::new("external-signals");
    // Built-ins off, so every trade comes from outside; 20 × real time, so the run lasts
    // long enough to connect (it is ended with SIGTERM once the fill is seen).
    let cfg = write_config(
        dir.path(),
        "external_signals:\n  enabled: true\n  bind: 127.0.0.1:0\nsignals:\n  enabled: []\nhttp:\n  enabled: false\nrun:\n  speed: 20\n  duration: 2h\n",
    );
    let run = dir.join("run");
    let mut child = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap(), "--log-format", "json", "--run-dir"])
        .arg(&run)
        .env("KRAKEN_PAPER_SIGNAL_TOKEN", TOKEN)
        .env_remove("KRAKEN_PAPER_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kraken-paper");
    let (lines, reader) = collect_stderr(&mut child);
    let addr = listening_addr(&mut child, &lines);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fills = rt.block_on(async {
        assert!(connect(&addr, "wrong").await.is_err(), "a wrong token must be refused at the upgrade");
        let mut ws = connect(&addr, TOKEN).await.expect("connect with the token");

        let r = ask(&mut ws, "{\"source\": oops").await;
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"].as_str().unwrap().contains("malformed JSON"), "{r}");
        let r = ask(
            &mut ws,
            &format!(r#"{{"source":"{SOURCE}","pair":"BTC/USD","score":5,"confidence":1,"horizon":"5m"}}"#),
        )
        .await;
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"].as_str().unwrap().starts_with("score 5"), "the error names the field: {r}");

        // A strong buy; pushed again while no fill shows (a signal arriving before the first
        // market event is refused with a "no market event" reply, which is retried too).
        let good = format!(
            r#"{{"source":"{SOURCE}","pair":"BTC/USD","score":1,"confidence":1,"horizon":"5m","explanation":"integration test"}}"#
        );
        // Until a fill shows or the run reaches its end (event time, 2 h): no wall-clock bound.
        let mut accepted = 0;
        let fills = loop {
            let r = ask(&mut ws, &good).await;
            if r["ok"] == true {
                accepted += 1;
            } else {
                assert!(r["error"].as_str().unwrap().contains("no market event"), "{r}");
            }
            let journal = journal_so_far(&run);
            let fills = fills_caused_by_source(&journal);
            if fills > 0 || journal.iter().any(|r| r["type"] == "run_ended") {
                break fills;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(accepted > 0, "no signal was accepted");
        let _ = ws.close(None).await;
        fills
    });

    // End the run gracefully and check the finished journal.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "the engine did not stop on SIGTERM"
    );
    let _ = reader.join();
    assert!(status.unwrap().success(), "run failed:\n{}", lines.lock().unwrap().join("\n"));
    assert!(fills > 0, "no fill caused by the external source within the polling window");
    let journal = journal(&run);
    assert!(fills_caused_by_source(&journal) > 0);
    let ext = records(&journal, "external_signal");
    assert!(!ext.is_empty() && ext.iter().all(|s| s["source"] == SOURCE && s["score"] == 1.0), "{ext:?}");
    assert!(
        records(&journal, "signal_decision").iter().all(|d| d["intent"]["contributions"]
            .as_array()
            .is_none_or(|cs| cs.iter().all(|c| c["source"] == SOURCE))),
        "with the built-ins off only the external source may contribute"
    );
}

/// An emergency stop reaches the external-signal actor: pushes during the halt are answered
/// `{"ok":false,"error":"halted"}`; after the halt is lifted they are taken again.
#[test]
fn pushes_during_a_halt_answer_halted() {
    const API_TOKEN: &str = "it-api-token-halt";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = TempDir::new("external-halted");
    let cfg = write_config(
        dir.path(),
        "external_signals:\n  enabled: true\n  bind: 127.0.0.1:0\nsignals:\n  enabled: []\nrun:\n  speed: 20\n  duration: 2h\n",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = dir.join("run");
    let mut child = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap(), "--log-format", "json", "--run-dir"])
        .arg(&run)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("KRAKEN_PAPER_SIGNAL_TOKEN", TOKEN)
        .env("KRAKEN_PAPER_API_TOKEN", API_TOKEN)
        .env_remove("KRAKEN_PAPER_TEST_PANIC")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kraken-paper");
    let (lines, _reader) = collect_stderr(&mut child);
    let addr = listening_addr(&mut child, &lines);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let replies = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        let post =
            |path: &str| client.post(format!("http://127.0.0.1:{port}{path}")).bearer_auth(API_TOKEN).send();
        let mut ws = connect(&addr, TOKEN).await.expect("connect with the token");
        let weak = format!(
            r#"{{"source":"{SOURCE}","pair":"BTC/USD","score":0.1,"confidence":0.1,"horizon":"5m"}}"#
        );
        // Taken once the engine has seen a market event.
        let mut before = serde_json::Value::Null;
        for _ in 0..200 {
            before = ask(&mut ws, &weak).await;
            if before["ok"] == true {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stop = post("/api/emergency-stop").await.map(|r| r.status().as_u16());
        let during = ask(&mut ws, &weak).await;
        let resume = post("/api/resume").await.map(|r| r.status().as_u16());
        let after = ask(&mut ws, &weak).await;
        (before, stop.ok(), during, resume.ok(), after)
    });
    let _ = child.kill();
    let _ = child.wait();
    let (before, stop, during, resume, after) = replies;
    assert_eq!(before["ok"], true, "{before}");
    assert_eq!(stop, Some(200));
    assert_eq!(during, serde_json::json!({"ok": false, "error": "halted"}), "a push during the halt");
    assert_eq!(resume, Some(200));
    assert_eq!(after["ok"], true, "pushes are taken again once the halt is lifted: {after}");
}
