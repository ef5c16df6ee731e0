//! The Kraken REST client and the RateLimiter against mock Kraken REST servers, never the
//! real exchange:
//!
//! - over real HTTP (an actix-web app on 127.0.0.1:0, real time): the envelope, every
//!   error string and HTTP status → the right typed error, which errors are retried, the
//!   AssetPairs/Ticker/OHLC/Depth/Trades parsing and naming, a private POST, timeouts;
//! - on paused tokio time, through an in-process mock *transport* that enforces Kraken's
//!   limits and records virtual call times: a burst of 200 public and 200 private calls
//!   finishes with zero refusals, spaced exactly as Kraken requires (paused time cannot
//!   drive a server on another thread, so the limits test uses a transport, not HTTP).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use kraken_paper::actors::rate_limiter::{Acquire, RateLimiter};
use kraken_paper::core::instrument::PairStatus;
use kraken_paper::core::market::Side;
use kraken_paper::core::rate_limit::{RateLimitModel, Tier};
use kraken_paper::sources::kraken_rest::{
    KrakenRest, RestError, RestMethod, RestRequest, RestResponse, RestSettings, RestTransport,
    TransportFuture,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

// ---------------------------------------------------------------------------------------------
// Fixtures (shapes from shared/kraken/rest.md)
// ---------------------------------------------------------------------------------------------

const ASSET_PAIRS: &str = r#"{"error":[],"result":{
 "XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","aclass_base":"currency","base":"XXBT","aclass_quote":"currency",
  "quote":"ZUSD","lot":"unit","cost_decimals":5,"pair_decimals":1,"lot_decimals":8,"lot_multiplier":1,
  "leverage_buy":[2,3,4,5],"leverage_sell":[2,3,4,5],
  "fees":[[0,0.4],[10000,0.35],[50000,0.24],[500000000,0.05]],
  "fees_maker":[[0,0.25],[10000,0.2],[10000000,0.0],[500000000,0.0]],
  "fee_volume_currency":"ZUSD","margin_call":80,"margin_stop":40,"ordermin":"0.00005","costmin":"0.5",
  "tick_size":"0.1","status":"online","execution_venue":"international","long_position_limit":350,"short_position_limit":250},
 "XETHZUSD":{"altname":"ETHUSD","wsname":"ETH/USD","base":"XETH","quote":"ZUSD","cost_decimals":5,"pair_decimals":2,
  "lot_decimals":8,"leverage_buy":[],"leverage_sell":[],"fees":[[0,0.4]],"fees_maker":[[0,0.25]],
  "fee_volume_currency":"ZUSD","ordermin":"0.001","costmin":"0.5","tick_size":"0.01","status":"post_only"},
 "XDGUSD":{"altname":"XDGUSD","wsname":"XDG/USD","base":"XXDG","quote":"ZUSD","cost_decimals":5,"pair_decimals":7,
  "lot_decimals":8,"fees":[[0,0.4]],"fees_maker":[[0,0.23],[10000000,-0.02]],"fee_volume_currency":"ZUSD",
  "ordermin":"13","costmin":"0.5","tick_size":"0.0000001","status":"online"},
 "XXBTZUSD.d":{"altname":"XBTUSD.d","base":"XXBT","quote":"ZUSD","pair_decimals":1,"lot_decimals":8}}}"#;

fn ticker_body(key: &str) -> String {
    format!(
        r#"{{"error":[],"result":{{"{key}":{{"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],
        "c":["30303.20000","0.00067643"],"v":["4083.67001100","4412.73601799"],"p":["30706.77771","30689.13205"],
        "t":[34619,38907],"l":["29868.30000","29868.30000"],"h":["31631.00000","31631.00000"],"o":"30502.80000"}}}}}}"#
    )
}

fn ohlc_body(key: &str) -> String {
    format!(
        r#"{{"error":[],"result":{{"{key}":[[1688671200,"30306.1","30306.2","30305.7","30305.7","30306.1","3.39243896",23],
        [1688671260,"30304.5","30304.5","30300.0","30300.0","30300.0","4.42996871",18]],"last":1688672160}}}}"#
    )
}

fn trades_body(key: &str) -> String {
    format!(
        r#"{{"error":[],"result":{{"{key}":[["30243.40000","0.34507674",1688669597.8277369,"b","m","",61044952],
        ["30243.30000","0.00376960",1688669598.2804112,"s","l","",61044953]],"last":"1688671969993150842"}}}}"#
    )
}

const DEPTH: &str = r#"{"error":[],"result":{"XXBTZUSD":{"asks":[["30384.10000","2.059",1688671659],["30387.90000","1.500",1688671380]],
 "bids":[["30297.00000","1.115",1688671636],["30296.70000","2.002",1688671674]]}}}"#;

const TIME: &str =
    r#"{"error":[],"result":{"unixtime":1688669448,"rfc1123":"Thu, 06 Jul 23 18:50:48 +0000"}}"#;

/// A limiter that does not space calls (tests of errors and parsing need no waiting).
fn free_limiter() -> Recipient<Acquire> {
    RateLimiter::new(RateLimitModel::new(0.0, Tier::Pro)).start().recipient()
}

fn fast_settings(retries: u32) -> RestSettings {
    RestSettings {
        retries,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        timeout_ms: 2_000,
        ..RestSettings::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Real-HTTP mock (actix-web on 127.0.0.1:0)
// ---------------------------------------------------------------------------------------------

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay_ms: u64,
}

fn ok(body: &str) -> Reply {
    Reply { status: 200, body: body.to_string(), delay_ms: 0 }
}

fn kraken_error(e: &str) -> Reply {
    ok(&format!(r#"{{"error":["{e}"]}}"#))
}

fn status(code: u16) -> Reply {
    Reply { status: code, body: "<html>error</html>".into(), delay_ms: 0 }
}

/// A request as the mock saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    at: tokio::time::Instant,
}

#[derive(Default)]
struct HttpMockState {
    /// Per path: answers used in order; the last one repeats.
    script: BTreeMap<String, VecDeque<Reply>>,
    seen: Vec<Seen>,
}

struct HttpMock {
    state: Arc<Mutex<HttpMockState>>,
    url: String,
    handle: actix_web::dev::ServerHandle,
}

impl HttpMock {
    fn start() -> HttpMock {
        let state = Arc::new(Mutex::new(HttpMockState::default()));
        let data = web::Data::new(state.clone());
        let server =
            HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(mock_handler)))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind mock Kraken");
        let addr = server.addrs()[0];
        let running = server.run();
        let handle = running.handle();
        actix::spawn(async move {
            let _ = running.await;
        });
        HttpMock { state, url: format!("http://{addr}"), handle }
    }

    fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state.lock().unwrap().script.insert(path.to_string(), replies.into());
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.state.lock().unwrap().seen.iter().filter(|s| s.path == path).cloned().collect()
    }

    fn client(&self, limiter: Recipient<Acquire>, settings: RestSettings) -> KrakenRest {
        KrakenRest::new(&self.url, limiter, settings).expect("client builds")
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn mock_handler(req: HttpRequest, data: web::Data<Arc<Mutex<HttpMockState>>>) -> HttpResponse {
    let reply = {
        let mut st = data.lock().unwrap();
        st.seen.push(Seen {
            method: req.method().to_string(),
            path: req.path().to_string(),
            query: req.query_string().to_string(),
            at: tokio::time::Instant::now(),
        });
        match st.script.get_mut(req.path()) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| kraken_error("EGeneral:Unknown method"));
    if reply.delay_ms > 0 {
        actix_rt::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    // actix-web uses http 0.2: build its own StatusCode from the number.
    let code = actix_web::http::StatusCode::from_u16(reply.status).unwrap();
    HttpResponse::build(code).content_type("application/json").body(reply.body)
}

// ---------------------------------------------------------------------------------------------
// Real-HTTP tests
// ---------------------------------------------------------------------------------------------

#[actix::test]
async fn every_kraken_error_string_and_status_becomes_its_typed_error() {
    let mock = HttpMock::start();
    let client = mock.client(free_limiter(), fast_settings(0));
    type Kind = fn(String) -> RestError;
    let cases: Vec<(Reply, Kind, &str)> = vec![
        (kraken_error("EGeneral:Too many requests"), RestError::RateLimited, "EGeneral:Too many requests"),
        (kraken_error("EAPI:Rate limit exceeded"), RestError::RateLimited, "EAPI:Rate limit exceeded"),
        (
            kraken_error("EGeneral:Invalid arguments:pair"),
            RestError::InvalidArguments,
            "EGeneral:Invalid arguments:pair",
        ),
        (kraken_error("EQuery:Unknown asset pair"), RestError::UnknownPair, "EQuery:Unknown asset pair"),
        (kraken_error("EService:Unavailable"), RestError::ServiceUnavailable, "EService:Unavailable"),
        (kraken_error("EService:Busy"), RestError::Busy, "EService:Busy"),
        (kraken_error("EService: Throttled: 1688671969"), RestError::Busy, "EService: Throttled: 1688671969"),
        (kraken_error("EGeneral:Permission denied"), RestError::Other, "EGeneral:Permission denied"),
        (status(429), RestError::RateLimited, "HTTP 429"),
        (status(502), RestError::ServiceUnavailable, "HTTP 502"),
        (status(503), RestError::ServiceUnavailable, "HTTP 503"),
        (status(404), RestError::Transport, "HTTP 404"),
        (ok("not json"), RestError::Decode, ""),
    ];
    for (reply, kind, text) in cases {
        mock.script("/0/public/Time", vec![reply]);
        let err = client.server_time().await.expect_err("scripted to fail");
        if text.is_empty() {
            assert!(matches!(err, RestError::Decode(_)), "{err:?}");
        } else {
            assert_eq!(err, kind(text.to_string()));
        }
    }
    // And the envelope on success.
    mock.script("/0/public/Time", vec![ok(TIME)]);
    let t = client.server_time().await.expect("time");
    assert_eq!(t.time.as_micros(), 1_688_669_448_000_000);
    mock.stop().await;
}

#[actix::test]
async fn http_429_is_retried_with_backoff_until_it_succeeds() {
    let mock = HttpMock::start();
    let client = mock.client(
        free_limiter(),
        RestSettings { initial_backoff_ms: 50, max_backoff_ms: 400, ..fast_settings(3) },
    );
    mock.script(
        "/0/public/Time",
        vec![status(429), kraken_error("EGeneral:Too many requests"), status(503), ok(TIME)],
    );
    let t = client.server_time().await.expect("succeeds on the 4th attempt");
    assert_eq!(t.rfc1123, "Thu, 06 Jul 23 18:50:48 +0000");
    let seen = mock.seen("/0/public/Time");
    assert_eq!(seen.len(), 4, "1 attempt + 3 retries");
    // Exponential backoff: 50, 100, 200 ms between the attempts.
    for (w, backoff_ms) in seen.windows(2).zip([50, 100, 200]) {
        let gap = w[1].at - w[0].at;
        assert!(gap >= Duration::from_millis(backoff_ms), "gap {gap:?} < backoff {backoff_ms} ms");
    }
    mock.stop().await;
}

#[actix::test]
async fn retries_stop_after_the_configured_count() {
    let mock = HttpMock::start();
    let client = mock.client(free_limiter(), fast_settings(2));
    mock.script("/0/public/Time", vec![kraken_error("EAPI:Rate limit exceeded")]);
    let err = client.server_time().await.expect_err("always refused");
    assert_eq!(err, RestError::RateLimited("EAPI:Rate limit exceeded".into()));
    assert_eq!(mock.seen("/0/public/Time").len(), 3, "1 attempt + 2 retries");
    mock.stop().await;
}

#[actix::test]
async fn invalid_arguments_and_unknown_pairs_are_not_retried() {
    let mock = HttpMock::start();
    let client = mock.client(free_limiter(), fast_settings(5));
    mock.script(
        "/0/public/Ticker",
        vec![kraken_error("EGeneral:Invalid arguments"), ok(&ticker_body("XXBTZUSD"))],
    );
    let err = client.ticker("XBTUSD").await.expect_err("refused");
    assert_eq!(err, RestError::InvalidArguments("EGeneral:Invalid arguments".into()));
    assert_eq!(mock.seen("/0/public/Ticker").len(), 1, "InvalidArguments must not be retried");

    mock.script("/0/public/Depth", vec![kraken_error("EQuery:Unknown asset pair"), ok(DEPTH)]);
    let err = client.depth("NOPEUSD", 10).await.expect_err("refused");
    assert_eq!(err, RestError::UnknownPair("EQuery:Unknown asset pair".into()));
    assert_eq!(mock.seen("/0/public/Depth").len(), 1, "UnknownPair must not be retried");
    mock.stop().await;
}

#[actix::test]
async fn asset_pairs_parse_exactly_and_teach_the_client_v2_names() {
    let mock = HttpMock::start();
    let client = mock.client(free_limiter(), fast_settings(0));
    mock.script("/0/public/AssetPairs", vec![ok(ASSET_PAIRS)]);
    mock.script("/0/public/Ticker", vec![ok(&ticker_body("XXBTZUSD"))]);
    mock.script("/0/public/OHLC", vec![ok(&ohlc_body("XXBTZUSD"))]);
    mock.script("/0/public/Depth", vec![ok(DEPTH)]);
    mock.script("/0/public/Trades", vec![ok(&trades_body("XXBTZUSD"))]);

    let pairs = client.asset_pairs().await.expect("asset pairs");
    assert_eq!(pairs.skipped, vec!["XXBTZUSD.d".to_string()], "dark pool has no wsname");
    let symbols: Vec<&str> = pairs.pairs.iter().map(|p| &*p.instrument.symbol).collect();
    assert_eq!(
        symbols,
        vec!["DOGE/USD", "ETH/USD", "BTC/USD"],
        "sorted by REST key: XDGUSD < XETHZUSD < XXBTZUSD"
    );
    let btc = pairs.get("BTC/USD").expect("BTC/USD");
    assert_eq!(btc.key, "XXBTZUSD");
    assert_eq!(btc.instrument.qty_min, dec!(0.00005));
    assert_eq!(btc.instrument.cost_min, dec!(0.5));
    assert_eq!(btc.instrument.price_increment, dec!(0.1));
    assert_eq!(
        (btc.instrument.price_precision, btc.instrument.qty_precision, btc.instrument.cost_precision),
        (1, 8, 5)
    );
    assert_eq!(btc.fees_taker[1], (dec!(10000), dec!(0.35)));
    assert_eq!(btc.fees_maker[2].1.to_string(), "0.0", "scale kept: no f64 round trip");
    assert_eq!(pairs.get("ETH/USD").unwrap().instrument.status, PairStatus::PostOnly);
    let doge = pairs.get("XDG/USD").expect("by wsname");
    assert_eq!(doge.instrument.price_increment, dec!(0.0000001));
    assert_eq!(doge.fees_maker[1], (dec!(10000000), dec!(-0.02)), "maker rebate is negative");

    // After AssetPairs, v2 symbols are accepted and sent as altnames.
    let t = client.ticker("BTC/USD").await.expect("ticker");
    assert_eq!(
        (&*t.symbol, t.bid, t.ask, t.last),
        ("BTC/USD", dec!(30300.00000), dec!(30300.10000), dec!(30303.20000))
    );
    assert_eq!(mock.seen("/0/public/Ticker")[0].query, "pair=XBTUSD");

    let o = client.ohlc("BTC/USD", 1, Some(1_688_671_000)).await.expect("ohlc");
    assert_eq!((o.candles.len(), o.last), (2, 1_688_672_160));
    assert_eq!(o.candles[1].close, dec!(30300.0));
    assert_eq!(mock.seen("/0/public/OHLC")[0].query, "pair=XBTUSD&interval=1&since=1688671000");
    assert!(matches!(client.ohlc("BTC/USD", 7, None).await, Err(RestError::InvalidArguments(_))));

    let d = client.depth("BTC/USD", 10).await.expect("depth");
    assert_eq!(d.asks[0].price.to_string(), "30384.10000");
    assert_eq!(d.bids[1].qty, dec!(2.002));

    let tr = client.trades("BTC/USD", Some("1688669597000000000")).await.expect("trades");
    assert_eq!(tr.last, "1688671969993150842", "the cursor for the next call");
    assert_eq!(tr.trades.len(), 2);
    assert_eq!(
        (&*tr.trades[0].symbol, tr.trades[0].side, tr.trades[0].trade_id),
        ("BTC/USD", Side::Buy, 61044952)
    );
    assert_eq!(tr.trades[0].price, dec!(30243.40000));
    assert_eq!(tr.trades[1].time.as_micros(), 1_688_669_598_280_411);
    assert_eq!(mock.seen("/0/public/Trades")[0].query, "pair=XBTUSD&since=1688669597000000000");
    mock.stop().await;
}

#[actix::test]
async fn private_call_posts_through_the_limiter_and_is_not_retried() {
    let mock = HttpMock::start();
    let client = mock.client(free_limiter(), fast_settings(5));
    mock.script("/0/private/Balance", vec![ok(r#"{"error":[],"result":{"ZUSD":"171288.6158"}}"#)]);
    let v = client.private_call("Balance").await.expect("balance");
    assert_eq!(v["ZUSD"], "171288.6158");
    let seen = mock.seen("/0/private/Balance");
    assert_eq!((seen.len(), seen[0].method.as_str()), (1, "POST"));

    mock.script("/0/private/Ledgers", vec![kraken_error("EAPI:Rate limit exceeded")]);
    assert!(matches!(client.private_call("Ledgers").await, Err(RestError::RateLimited(_))));
    assert_eq!(mock.seen("/0/private/Ledgers").len(), 1, "private calls are never retried");
    assert!(matches!(client.private_call("../public/Time").await, Err(RestError::InvalidArguments(_))));
    mock.stop().await;
}

#[actix::test]
async fn slow_answers_time_out_and_dead_ports_are_transport_errors() {
    let mock = HttpMock::start();
    let client = mock.client(free_limiter(), RestSettings { timeout_ms: 100, ..fast_settings(1) });
    mock.script("/0/public/Time", vec![Reply { delay_ms: 1_000, ..ok(TIME) }]);
    assert!(matches!(client.server_time().await, Err(RestError::Timeout(_))));
    assert_eq!(mock.seen("/0/public/Time").len(), 2, "a timeout is retried (idempotent GET)");
    mock.stop().await;

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead =
        KrakenRest::new(&format!("http://127.0.0.1:{port}"), free_limiter(), fast_settings(0)).unwrap();
    assert!(matches!(dead.server_time().await, Err(RestError::Transport(_))));
}

#[actix::test]
async fn real_http_calls_are_spaced_by_the_limiter() {
    // Real time, small: 3 public calls on the IP slot arrive ≥ 1 s apart; OHLC on two
    // other pairs has its own slots and does not wait behind them (it arrives before the
    // second public call, which the limiter holds for 1 s). Lower bounds only: a slow
    // machine can only widen the gaps.
    let mock = HttpMock::start();
    let limiter = RateLimiter::new(RateLimitModel::new(1.0, Tier::Intermediate)).start();
    let client = mock.client(limiter.recipient(), fast_settings(0));
    mock.script("/0/public/Time", vec![ok(TIME)]);
    mock.script("/0/public/OHLC", vec![ok(&ohlc_body("XETHZUSD"))]);
    let times = futures_util::future::join_all((0..3).map(|_| client.server_time()));
    let ohlc = futures_util::future::join_all(["ETHUSD", "SOLUSD"].map(|p| client.ohlc(p, 1, None)));
    let (times, ohlc) = futures_util::future::join(times, ohlc).await;
    assert!(times.iter().all(Result::is_ok), "{times:?}");
    assert!(ohlc.iter().all(Result::is_ok), "{ohlc:?}");
    let seen = mock.seen("/0/public/Time");
    for w in seen.windows(2) {
        let gap = w[1].at - w[0].at;
        // The limiter sends exactly 1 s apart; allow loopback jitter on arrival.
        assert!(gap >= Duration::from_millis(990), "public calls only {gap:?} apart");
    }
    let second_public = seen[1].at;
    for s in mock.seen("/0/public/OHLC") {
        assert!(s.at < second_public, "per-pair OHLC waited behind the IP slot");
    }
    mock.stop().await;
}

#[actix::test]
async fn real_private_calls_are_spaced_by_the_counter() {
    // Real time, small: Intermediate (max 20, decay 0.5/s): 20 Balance calls go at once, the
    // 21st waits for one unit of decay (2 s), the 22nd for another (4 s). Lower bounds only
    // (a slow machine can only delay calls); that the first 20 go at once is checked in
    // virtual time below.
    let mock = HttpMock::start();
    let limiter = RateLimiter::new(RateLimitModel::new(1.0, Tier::Intermediate)).start();
    let client = mock.client(limiter.recipient(), fast_settings(0));
    mock.script("/0/private/Balance", vec![ok(r#"{"error":[],"result":{"ZUSD":"1.0"}}"#)]);
    let start = tokio::time::Instant::now();
    let results = futures_util::future::join_all((0..22).map(|_| client.private_call("Balance"))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut at: Vec<Duration> = mock.seen("/0/private/Balance").iter().map(|s| s.at - start).collect();
    at.sort();
    assert!(at[20] >= Duration::from_millis(1_990), "21st after one unit of decay: {:?}", at[20]);
    assert!(at[21] >= Duration::from_millis(3_990), "22nd after two: {:?}", at[21]);
    mock.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Virtual time: Kraken's limits enforced on the slots the model hands out
// ---------------------------------------------------------------------------------------------
//
// tokio's paused clock needs tokio's `test-util` feature, which the crate does not enable.
// Instead a test limiter answers `Acquire` from the real `RateLimitModel` on a virtual clock:
// it holds every caller until the test releases the earliest slot, sets the virtual clock to
// that slot, and waits until the released call reached the transport before releasing the
// next. The calls therefore reach the mock exactly at their slots, in slot order.

/// Virtual now in µs, shared by the test limiter (writer) and the mock transport (reader).
type VirtualClock = Arc<std::sync::atomic::AtomicI64>;

/// `Acquire` on virtual time (the real model, no sleeping).
struct VirtualLimiter {
    model: RateLimitModel,
    clock: VirtualClock,
    pending: BTreeMap<(i64, u64), tokio::sync::oneshot::Sender<()>>,
    seq: u64,
}

impl Actor for VirtualLimiter {
    type Context = Context<Self>;
}

impl Handler<Acquire> for VirtualLimiter {
    type Result = ResponseFuture<f64>;
    fn handle(&mut self, msg: Acquire, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.load(std::sync::atomic::Ordering::SeqCst);
        let wait = self.model.reserve_micros(&msg.call, now);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.seq += 1;
        self.pending.insert((now + wait, self.seq), tx);
        Box::pin(async move {
            let _ = rx.await;
            wait as f64 / 1e6
        })
    }
}

/// Releases the earliest held caller; answers its slot (None when nobody waits).
#[derive(Message)]
#[rtype(result = "Option<i64>")]
struct ReleaseNext;

impl Handler<ReleaseNext> for VirtualLimiter {
    type Result = Option<i64>;
    fn handle(&mut self, _msg: ReleaseNext, _ctx: &mut Self::Context) -> Option<i64> {
        let ((slot, _), tx) = self.pending.pop_first()?;
        self.clock.store(slot, std::sync::atomic::Ordering::SeqCst);
        let _ = tx.send(());
        Some(slot)
    }
}

/// Calls admitted by the model so far.
#[derive(Message)]
#[rtype(result = "u64")]
struct Admitted;

impl Handler<Admitted> for VirtualLimiter {
    type Result = u64;
    fn handle(&mut self, _msg: Admitted, _ctx: &mut Self::Context) -> u64 {
        let u = self.model.usage();
        u.public_calls + u.private_calls
    }
}

/// Yields until `cond` holds (a bounded number of scheduler turns, then fails loudly).
async fn settle(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..100_000 {
        if cond().await {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Waits until `calls` callers are held, then releases them one by one in slot order, each
/// only after the previous one reached the transport.
async fn drive(limiter: &Addr<VirtualLimiter>, kraken: &LimitEnforcingKraken, calls: u64) {
    settle("all calls asked for a slot", async || limiter.send(Admitted).await.unwrap() >= calls).await;
    let mut released = kraken.requests();
    while limiter.send(ReleaseNext).await.unwrap().is_some() {
        released += 1;
        settle("the released call reached the mock", async || kraken.requests() >= released).await;
    }
}

/// Kraken's limits as the exchange would apply them, written independently of the model:
/// public calls ≥ 1 s apart per IP (per IP + pair for OHLC/Trades); private counter with
/// maximum 20 and decay 0.5/s (Intermediate), cost 2 for Ledgers, else 1, kept in Decimal.
struct LimitEnforcingKraken {
    clock: VirtualClock,
    state: Mutex<Enforcer>,
}

#[derive(Default)]
struct Enforcer {
    requests: usize,
    last_public: BTreeMap<String, i64>,
    counter: Decimal,
    counter_at: i64,
    max_counter_seen: Decimal,
    refusals: Vec<String>,
    /// (slot key, virtual µs) per accepted call, in arrival order.
    calls: Vec<(String, i64)>,
}

impl LimitEnforcingKraken {
    fn new(clock: VirtualClock) -> Arc<LimitEnforcingKraken> {
        Arc::new(LimitEnforcingKraken { clock, state: Mutex::new(Enforcer::default()) })
    }
    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

impl RestTransport for LimitEnforcingKraken {
    fn send(&self, req: RestRequest) -> TransportFuture {
        let now = self.clock.load(std::sync::atomic::Ordering::SeqCst);
        let endpoint = req.path.rsplit('/').next().unwrap_or_default().to_string();
        let pair = req.params.iter().find(|(k, _)| k == "pair").map(|(_, v)| v.clone()).unwrap_or_default();
        let key_of = |p: &str| match p {
            "XBTUSD" => "XXBTZUSD",
            "ETHUSD" => "XETHZUSD",
            _ => "XDGUSD",
        };
        let mut st = self.state.lock().unwrap();
        st.requests += 1;
        let body = if req.method == RestMethod::Post {
            let cost = if endpoint == "Ledgers" { dec!(2) } else { dec!(1) };
            let decayed = (st.counter - dec!(0.5) * Decimal::new(now - st.counter_at, 6)).max(Decimal::ZERO);
            if decayed + cost > dec!(20) {
                st.refusals.push(format!("{endpoint} at {now} µs: counter {decayed} + {cost} > 20"));
                r#"{"error":["EAPI:Rate limit exceeded"]}"#.to_string()
            } else {
                st.counter = decayed + cost;
                st.counter_at = now;
                st.max_counter_seen = st.max_counter_seen.max(st.counter);
                st.calls.push(("private".into(), now));
                r#"{"error":[],"result":{"ZUSD":"1000.0000"}}"#.to_string()
            }
        } else {
            let slot = if endpoint == "OHLC" || endpoint == "Trades" {
                format!("{endpoint}:{pair}")
            } else {
                "ip".into()
            };
            let too_soon = st.last_public.get(&slot).is_some_and(|&last| now - last < 1_000_000);
            if too_soon {
                st.refusals.push(format!("{slot} at {now} µs"));
                r#"{"error":["EGeneral:Too many requests"]}"#.to_string()
            } else {
                st.last_public.insert(slot.clone(), now);
                st.calls.push((slot, now));
                match endpoint.as_str() {
                    "AssetPairs" => ASSET_PAIRS.to_string(),
                    "Ticker" => ticker_body(key_of(&pair)),
                    "OHLC" => ohlc_body(key_of(&pair)),
                    "Trades" => trades_body(key_of(&pair)),
                    _ => TIME.to_string(),
                }
            }
        };
        Box::pin(async move { Ok(RestResponse { status: 200, body }) })
    }
}

fn virtual_setup(
    model: RateLimitModel,
    retries: u32,
) -> (Addr<VirtualLimiter>, Arc<LimitEnforcingKraken>, KrakenRest) {
    let clock: VirtualClock = Arc::default();
    let limiter = VirtualLimiter { model, clock: clock.clone(), pending: BTreeMap::new(), seq: 0 }.start();
    let kraken = LimitEnforcingKraken::new(clock);
    let client =
        KrakenRest::with_transport(kraken.clone(), limiter.clone().recipient(), fast_settings(retries));
    (limiter, kraken, client)
}

#[actix::test]
async fn burst_of_400_calls_gets_zero_rate_limit_errors() {
    let (limiter, kraken, client) = virtual_setup(RateLimitModel::new(1.0, Tier::Intermediate), 0);
    // No retries: a single refusal would surface as an error.
    let (pairs, ()) = futures_util::future::join(client.asset_pairs(), drive(&limiter, &kraken, 1)).await;
    pairs.expect("asset pairs");

    // 200 public: 80 Ticker (IP slot), 60 OHLC and 60 Trades over 3 pairs (20 per pair each).
    let symbols = ["BTC/USD", "ETH/USD", "DOGE/USD"];
    let public = futures_util::future::join_all((0..200).map(|i| {
        let c = client.clone();
        async move {
            let pair = symbols[i % 3];
            match i % 10 {
                0..=3 => c.ticker(pair).await.map(|_| ()),
                4..=6 => c.ohlc(pair, 1, None).await.map(|_| ()),
                _ => c.trades(pair, None).await.map(|_| ()),
            }
        }
    }));
    // 200 private: B, B, B, Ledgers repeated → 150 × 1 + 50 × 2 = 250 counter units.
    let private = futures_util::future::join_all((0..200).map(|i| {
        let c = client.clone();
        async move { c.private_call(if i % 4 == 3 { "Ledgers" } else { "Balance" }).await.map(|_| ()) }
    }));
    let ((public, private), ()) = futures_util::future::join(
        futures_util::future::join(public, private),
        drive(&limiter, &kraken, 401),
    )
    .await;
    let errors: Vec<_> = public.iter().chain(private.iter()).filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "errors: {errors:?}");

    let st = kraken.state.lock().unwrap();
    assert!(st.refusals.is_empty(), "the mock refused: {:?}", st.refusals);
    assert_eq!(st.calls.len(), 401, "AssetPairs + 400");
    assert_eq!(st.max_counter_seen, dec!(20), "the counter is used up to, never past, its maximum");

    // Spacing per slot: ≥ 1 s between consecutive calls, and no slower than needed.
    let mut by_slot: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (slot, t) in &st.calls {
        by_slot.entry(slot.as_str()).or_default().push(*t);
    }
    let ip = &by_slot["ip"];
    assert_eq!(ip.len(), 81, "AssetPairs + 80 Ticker");
    for w in ip.windows(2) {
        assert!(w[1] - w[0] >= 1_000_000, "IP slot calls {} µs apart", w[1] - w[0]);
    }
    // AssetPairs at 0, then 80 Tickers one second apart from t=1 s: the last at 80 s.
    assert_eq!(ip[80] - ip[0], 80_000_000, "IP slot span");
    for pair in ["XBTUSD", "ETHUSD", "XDGUSD"] {
        for ep in ["OHLC", "Trades"] {
            let t = &by_slot[format!("{ep}:{pair}").as_str()];
            assert_eq!(t.len(), 20, "{ep}:{pair}");
            assert!(t.windows(2).all(|w| w[1] - w[0] == 1_000_000), "{ep}:{pair} spacing: {t:?}");
            // Own slot: 20 calls span 19 s, not queued behind the Tickers.
            assert_eq!(t[19] - t[0], 19_000_000, "{ep}:{pair} span");
        }
    }
    // Private: 20 units fit at once (16 calls of B,B,B,L), the other 230 units come at the
    // decay rate 0.5/s → the last call at 460 s.
    let p = &by_slot["private"];
    assert_eq!(p.len(), 200);
    assert_eq!(p.iter().filter(|&&t| t == p[0]).count(), 16, "16 calls (4 × B,B,B,L = 20 units) go at once");
    assert_eq!(p[199] - p[0], 460_000_000, "private span");
}

#[actix::test]
async fn the_enforcing_mock_refuses_unspaced_calls() {
    // Control for the test above: without public spacing, the same mock refuses, so "zero
    // refusals" there is earned by the limiter.
    let (limiter, kraken, client) = virtual_setup(RateLimitModel::new(0.0, Tier::Intermediate), 0);
    let calls = futures_util::future::join_all((0..3).map(|_| client.server_time()));
    let (results, ()) = futures_util::future::join(calls, drive(&limiter, &kraken, 3)).await;
    let refused = results.iter().filter(|r| matches!(r, Err(RestError::RateLimited(_)))).count();
    assert_eq!(refused, 2, "{results:?}");
    assert_eq!(kraken.state.lock().unwrap().refusals.len(), 2);
}
