//! Unit tests of the simulated market: determinism, checksums, liquidity, correlation,
//! rates, number formats, profiles, heartbeats and settings validation.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::wire::push_fixed;
use super::*;
use crate::core::book::L2Book;
use crate::core::market::Side;
use crate::core::money::parse_decimal;
use crate::core::time::MICROS_PER_SEC;
use crate::core::validate::Issues;

fn pairs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn run(cfg: &SimConfig, ps: &[&str], depth: u16, steps: usize) -> (SimMarket, Vec<SimFrame>) {
    let mut m = SimMarket::new(cfg, &pairs(ps), depth).unwrap();
    let mut out = Vec::new();
    for _ in 0..steps {
        m.step(&mut out);
    }
    (m, out)
}

/// A client-side book rebuilt from the frames, like MarketFeed does.
struct Client {
    book: L2Book,
}

impl Client {
    fn new(depth: usize, pp: u32, qp: u32) -> Client {
        Client { book: L2Book::new(depth, Some(pp), Some(qp)) }
    }
    /// Applies a book frame; returns (checksum in frame, checksum computed).
    fn apply(&mut self, text: &str) -> (u32, u32) {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        if v["type"] == "snapshot" {
            self.book.clear();
        }
        let d = &v["data"][0];
        for (key, side) in [("bids", Side::Buy), ("asks", Side::Sell)] {
            for l in d[key].as_array().unwrap() {
                let p = parse_decimal(&l["price"].to_string()).unwrap();
                let q = parse_decimal(&l["qty"].to_string()).unwrap();
                self.book.apply(side, p, q);
            }
        }
        self.book.truncate();
        (d["checksum"].as_u64().unwrap() as u32, self.book.checksum())
    }
}

#[test]
fn same_seed_gives_the_same_frames_byte_for_byte() {
    let cfg = SimConfig::default();
    let (_, a) = run(&cfg, &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 3000);
    let (_, b) = run(&cfg, &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 3000);
    assert!(a.len() > 3000);
    assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text && x.time == y.time));
    assert_eq!(a.len(), b.len());
    let other = SimConfig { seed: 2, ..SimConfig::default() };
    let (_, c) = run(&other, &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 3000);
    assert_ne!(a[10].text, c[10].text, "another seed gives another market");
}

#[test]
fn checksums_verify_on_a_client_rebuilt_book_and_book_never_crosses() {
    for depth in [10u16, 25] {
        let (m, frames) = run(&SimConfig::default(), &["BTC/USD", "XRP/USD", "ETH/BTC"], depth, 6000);
        // Start clients from the initial snapshot of a fresh market with the same seed.
        let fresh = SimMarket::new(
            &SimConfig::default(),
            &m.symbols().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            depth,
        )
        .unwrap();
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        for inst in fresh.instruments() {
            let mut c = Client::new(usize::from(depth), inst.price_precision, inst.qty_precision);
            let (want, got) = c.apply(&fresh.book_snapshot_frame(&inst.symbol).unwrap());
            assert_eq!(want, got, "snapshot checksum of {}", inst.symbol);
            clients.insert(inst.symbol.to_string(), c);
        }
        let mut checked = 0;
        for f in frames.iter().filter(|f| f.channel == "book") {
            let c = clients.get_mut(f.symbol.as_deref().unwrap()).unwrap();
            let (want, got) = c.apply(&f.text);
            assert_eq!(want, got, "checksum mismatch on {}", f.text);
            assert!(!c.book.is_crossed(), "crossed book after {}", f.text);
            let (nb, na) = c.book.len();
            assert!(nb >= 1 && na >= 1 && nb <= usize::from(depth) && na <= usize::from(depth));
            checked += 1;
        }
        assert!(checked > 4000, "only {checked} book updates");
        // The final client books equal the market's own snapshot.
        for (sym, c) in clients.iter_mut() {
            let mut again = Client::new(usize::from(depth), 0, 0);
            let inst = m.instruments().into_iter().find(|i| &*i.symbol == sym).unwrap();
            again.book.set_precision(Some(inst.price_precision), Some(inst.qty_precision));
            let (want, got) = again.apply(&m.book_snapshot_frame(sym).unwrap());
            assert_eq!(want, got);
            assert_eq!(c.book.checksum(), want, "{sym} client book drifted from the market's");
        }
    }
}

#[test]
fn trades_take_liquidity_from_the_touch() {
    let (_, frames) = run(&SimConfig::default(), &["BTC/USD"], 10, 4000);
    let mut n_trades = 0;
    let fresh = SimMarket::new(&SimConfig::default(), &pairs(&["BTC/USD"]), 10).unwrap();
    let mut c = Client::new(10, 1, 8);
    c.apply(&fresh.book_snapshot_frame("BTC/USD").unwrap());
    for (i, f) in frames.iter().enumerate() {
        if f.channel == "trade" {
            let v: serde_json::Value = serde_json::from_str(&f.text).unwrap();
            let first = &v["data"][0];
            let side = first["side"].as_str().unwrap();
            let price = parse_decimal(&first["price"].to_string()).unwrap();
            let total: Decimal = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| parse_decimal(&t["qty"].to_string()).unwrap())
                .sum();
            // The first trade is at the touch of the side it hit, before the update.
            let (touch, touch_qty_before) = if side == "buy" {
                let a = c.book.best_ask().unwrap();
                (a.price, a.qty)
            } else {
                let b = c.book.best_bid().unwrap();
                (b.price, b.qty)
            };
            assert_eq!(price, touch, "trade not at the touch: {}", f.text);
            // The next frame is the book update that shows the depletion.
            let upd = &frames[i + 1];
            assert_eq!(upd.channel, "book");
            let top_before: Decimal = if side == "buy" {
                c.book.levels(Side::Sell).take(3).map(|l| l.qty).sum()
            } else {
                c.book.levels(Side::Buy).take(3).map(|l| l.qty).sum()
            };
            c.apply(&upd.text);
            let hit = if side == "buy" { Side::Sell } else { Side::Buy };
            let after = c.book.qty_at(hit, touch);
            if total >= touch_qty_before {
                assert!(after.is_zero(), "touch fully taken must be deleted");
            } else {
                // Hand check: remaining = before − traded.
                assert_eq!(after, touch_qty_before - total);
            }
            assert!(total <= top_before, "a trade never takes more than the three best levels");
            n_trades += 1;
        } else if f.channel == "book" && (i == 0 || frames[i - 1].channel != "trade") {
            c.apply(&f.text);
        }
    }
    assert!(n_trades > 100, "only {n_trades} trades");
}

/// Log returns of mids sampled every `every_s` seconds of event time.
fn sampled_returns(m: &mut SimMarket, syms: &[&str], every_s: i64, samples: usize) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    let mut last: Vec<f64> = syms.iter().map(|s| libm::log(m.fair_price(s).unwrap())).collect();
    let mut rets = vec![Vec::new(); syms.len()];
    let mut next = m.now().plus_micros(every_s * MICROS_PER_SEC);
    while rets[0].len() < samples {
        m.step(&mut out);
        out.clear();
        if m.now() >= next {
            next = next.plus_micros(every_s * MICROS_PER_SEC);
            for (k, s) in syms.iter().enumerate() {
                let (b, a) = m.best(s).unwrap();
                let mid = (crate::core::money::to_f64(b) + crate::core::money::to_f64(a)) / 2.0;
                rets[k].push(libm::log(mid) - last[k]);
                last[k] = libm::log(mid);
            }
        }
    }
    for r in &mut rets {
        r.remove(0); // first return mixes fair and mid
    }
    rets
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| libm::pow(x - ma, 2.0)).sum();
    let vb: f64 = b.iter().map(|y| libm::pow(y - mb, 2.0)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn btc_and_eth_returns_are_clearly_positively_correlated() {
    // Fewer frames per second keep the test fast; prices do not depend on the rates.
    let cfg = SimConfig { book_updates_per_sec: 1.0, trades_per_sec: 0.2, ..SimConfig::default() };
    let mut m = SimMarket::new(&cfg, &pairs(&["BTC/USD", "ETH/USD", "ETH/BTC"]), 10).unwrap();
    let r = sampled_returns(&mut m, &["BTC/USD", "ETH/USD", "ETH/BTC"], 60, 400);
    let c = corr(&r[0], &r[1]);
    println!("BTC/ETH 1-min correlation {c:.3}, BTC/ETH-BTC {:.3}", corr(&r[0], &r[2]));
    // Model: 0.92 × 0.85 = 0.78; with book discreteness and 400 samples, well above 0.5.
    assert!(c > 0.5 && c < 0.95, "BTC/ETH 1-min return correlation {c}");
    let sd = (r[0].iter().map(|x| x * x).sum::<f64>() / r[0].len() as f64).sqrt();
    // 2.8 %/day → 0.074 % per minute; allow the clustering/trend range.
    assert!(sd > 0.0003 && sd < 0.002, "BTC 1-min return sd {sd}");
}

#[test]
fn rates_and_event_time_follow_the_config() {
    let (m, frames) = run(&SimConfig::default(), &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 20_000);
    let secs = m.now().micros_since(SimConfig::default().start_time) as f64 / 1e6;
    let per_pair = |ch: &str| frames.iter().filter(|f| f.channel == ch).count() as f64 / secs / 3.0;
    let (book, trade) = (per_pair("book"), per_pair("trade"));
    // Defaults: 4 + 0.75 book updates/s, 0.75 trade messages/s per pair (±35 % for clustering).
    assert!((3.0..6.5).contains(&book), "book updates per pair per second {book}");
    assert!((0.45..1.1).contains(&trade), "trade messages per pair per second {trade}");
    assert!(frames.windows(2).all(|w| w[0].time <= w[1].time), "frames in time order");
    assert!(frames[0].time > SimConfig::default().start_time);
    let events: u64 = frames.iter().map(|f| u64::from(f.events)).sum();
    let book_events = frames.iter().filter(|f| f.channel == "book").count() as f64;
    assert!(book_events / events as f64 >= 0.7, "book share {}", book_events / events as f64);
}

#[test]
fn frames_use_kraken_number_formats() {
    let m = SimMarket::new(&SimConfig::default(), &pairs(&["BTC/USD", "XRP/USD"]), 10).unwrap();
    let snap = m.book_snapshot_frame("BTC/USD").unwrap();
    // price with 1 decimal, qty with 8: e.g. {"price":93123.4,"qty":0.01234567}
    let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
    let lvl = &v["data"][0]["bids"][0];
    let (p, q) = (lvl["price"].to_string(), lvl["qty"].to_string());
    assert_eq!(p.split('.').nth(1).map(str::len), Some(1), "{p}");
    assert_eq!(q.split('.').nth(1).map(str::len), Some(8), "{q}");
    assert_eq!(v["data"][0]["timestamp"], "2025-01-01T00:00:00.000000Z");
    let inst = m.instrument_snapshot_frame();
    assert!(inst.contains(r#""symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,"price_precision":1,"cost_precision":5,"marginable":true,"has_index":true,"cost_min":0.5,"margin_initial":0.20,"position_limit_long":300,"position_limit_short":240,"tick_size":0.1,"price_increment":0.1,"qty_min":0.00010000}"#), "{inst}");
    assert!(inst.contains(r#""qty_min":10.00000000"#));
    let _: serde_json::Value = serde_json::from_str(&inst).unwrap();
    let t: serde_json::Value = serde_json::from_str(&m.ticker_snapshot_frame("XRP/USD").unwrap()).unwrap();
    assert_eq!(t["data"][0]["bid"].to_string().split('.').nth(1).map(str::len), Some(5));
    assert_eq!(push_fixed_str(-1234, 2), "-12.34");
    assert_eq!(push_fixed_str(5, 3), "0.005");
    assert_eq!(push_fixed_str(7, 0), "7");
}

fn push_fixed_str(m: i128, s: u32) -> String {
    let mut out = String::new();
    push_fixed(&mut out, m, s);
    out
}

#[test]
fn unknown_pairs_get_a_generic_profile_and_bad_symbols_fail() {
    let m = SimMarket::new(&SimConfig::default(), &pairs(&["DOGE/EUR", "FOO/BTC"]), 10).unwrap();
    for inst in m.instruments() {
        let (b, a) = m.best(&inst.symbol).unwrap();
        assert!(b > Decimal::ZERO && a > b, "{}: {b} {a}", inst.symbol);
        // The tick is at most ~1 bp of the price.
        assert!(inst.price_increment <= a / Decimal::from(5000), "{}", inst.symbol);
    }
    assert!(
        SimMarket::new(&SimConfig::default(), &pairs(&["BTCUSD"]), 10)
            .unwrap_err()
            .to_string()
            .contains("BTCUSD")
    );
    assert!(
        SimMarket::new(&SimConfig::default(), &pairs(&["BTC/USD"]), 11)
            .unwrap_err()
            .to_string()
            .contains("11")
    );
    assert!(SimMarket::new(&SimConfig::default(), &[], 10).is_err());
}

#[test]
fn heartbeats_fill_quiet_seconds() {
    let cfg = SimConfig { book_updates_per_sec: 0.2, trades_per_sec: 0.0, ..SimConfig::default() };
    let (_, frames) = run(&cfg, &["ETH/BTC"], 10, 200);
    let hb: Vec<&SimFrame> = frames.iter().filter(|f| f.channel == "heartbeat").collect();
    assert!(hb.len() > 100, "{} heartbeats", hb.len());
    // No gap in the stream exceeds one second of event time.
    let mut prev = SimConfig::default().start_time;
    for f in &frames {
        assert!(f.time.micros_since(prev) <= MICROS_PER_SEC, "gap before {}", f.time);
        prev = f.time;
    }
}

#[test]
fn validate_names_every_bad_key() {
    let cfg = SimConfig {
        book_updates_per_sec: 0.0,
        trades_per_sec: -1.0,
        volatility_scale: f64::NAN,
        jumps_per_hour: 100.0,
        trend_strength: 5.0,
        drop_connection_after_frames: Some(0),
        ..SimConfig::default()
    };
    let mut is = Issues::default();
    cfg.validate(&mut is);
    let keys: Vec<&str> = is.list.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "sim.book_updates_per_sec",
            "sim.trades_per_sec",
            "sim.volatility_scale",
            "sim.jumps_per_hour",
            "sim.trend_strength",
            "sim.drop_connection_after_frames"
        ]
    );
    let mut ok = Issues::default();
    SimConfig::default().validate(&mut ok);
    assert!(ok.is_empty());
    assert!(
        SimMarket::new(&cfg, &pairs(&["BTC/USD"]), 10)
            .unwrap_err()
            .to_string()
            .contains("sim.trend_strength")
    );
}

mod calibration;
