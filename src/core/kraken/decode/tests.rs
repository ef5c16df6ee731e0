//! Tests of the frame decoder: every checksum vector of shared/kraken/book-checksum.md fed
//! through frames, book maintenance, resync, exact numbers, v1 frames, the record wrapper,
//! acks, malformed input. The `#[ignore]` test replays shared/data/kraken/ when present;
//! timings are divan benches (`benches/decode.rs`).

use super::*;
use crate::core::book::testdata::*;
use crate::core::instrument::PairStatus;
use crate::core::market::Level;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

type Lv<'a> = &'a [(&'a str, &'a str)];

fn v2_levels(levels: Lv<'_>) -> String {
    let v: Vec<String> = levels.iter().map(|(p, q)| format!(r#"{{"price":{p},"qty":{q}}}"#)).collect();
    format!("[{}]", v.join(","))
}

/// A v2 book frame with the numbers written exactly as given.
fn v2_book(kind: &str, symbol: &str, bids: Lv<'_>, asks: Lv<'_>, checksum: u32, ts: Option<&str>) -> String {
    let ts = ts.map(|t| format!(r#","timestamp":"{t}""#)).unwrap_or_default();
    format!(
        r#"{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{},"asks":{},"checksum":{checksum}{ts}}}]}}"#,
        v2_levels(bids),
        v2_levels(asks)
    )
}

fn v1_levels(levels: Lv<'_>, ts: &str) -> String {
    let v: Vec<String> = levels.iter().map(|(p, q)| format!(r#"["{p}","{q}","{ts}"]"#)).collect();
    format!("[{}]", v.join(","))
}

fn instrument(symbol: &str, pp: u32, qp: u32) -> Instrument {
    let (b, q) = symbol.split_once('/').unwrap();
    Instrument {
        symbol: symbol.into(),
        base: b.into(),
        quote: q.into(),
        status: PairStatus::Online,
        price_precision: pp,
        qty_precision: qp,
        cost_precision: 5,
        price_increment: Decimal::new(1, pp),
        qty_increment: Decimal::new(1, qp),
        qty_min: Decimal::ZERO,
        cost_min: Decimal::ZERO,
        marginable: false,
        margin: None,
    }
}

/// Decodes frames in order and returns every event and notice.
fn run(dec: &mut FeedDecoder, frames: &[&str]) -> (Vec<MarketEvent>, Vec<FeedNotice>) {
    let (mut ev, mut no) = (Vec::new(), Vec::new());
    for f in frames {
        dec.decode(f, &mut ev, &mut no);
    }
    (ev, no)
}

fn books(ev: &[MarketEvent]) -> Vec<&BookEvent> {
    ev.iter()
        .filter_map(|e| match e {
            MarketEvent::Book(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn vector_a_v2_snapshot_verifies_through_the_decoder() {
    let mut d = FeedDecoder::new(10);
    let f = v2_book("snapshot", "BTC/USD", A_BIDS, A_ASKS, A_CHECKSUM, None);
    let (ev, no) = run(&mut d, &[&f]);
    assert!(no.is_empty(), "{no:?}");
    let b = books(&ev);
    assert_eq!(b.len(), 1);
    assert!(b[0].snapshot);
    assert_eq!(b[0].depth, 10);
    assert_eq!(b[0].top.bid.unwrap().price, dec!(45283.5));
    assert_eq!(b[0].top.ask.unwrap().price, dec!(45285.2));
    assert_eq!(
        (d.counters().checksums_verified, d.counters().checksum_mismatches, d.counters().events),
        (1, 0, 1)
    );
}

const MATIC_INSTRUMENT: &str = r#"{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":"MATIC/USD","base":"MATIC","quote":"USD","status":"online","qty_precision":8,"qty_increment":1e-08,"price_precision":4,"cost_precision":5,"marginable":false,"has_index":true,"cost_min":0.5,"tick_size":0.0001,"price_increment":0.0001,"qty_min":2.0}]}}"#;

#[test]
fn vectors_b_and_c_pad_to_the_instrument_precision() {
    let mut d = FeedDecoder::new(10);
    let snap = v2_book("snapshot", "MATIC/USD", B_BIDS, B_ASKS, B_CHECKSUM, None);
    let upd = v2_book("update", "MATIC/USD", &[C_BID], &[], C_CHECKSUM, Some("2023-10-06T17:35:55.440295Z"));
    let (ev, no) = run(&mut d, &[MATIC_INSTRUMENT, &snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    match &ev[0] {
        MarketEvent::Instrument { instrument, .. } => {
            assert_eq!((instrument.price_precision, instrument.qty_precision), (4, 8));
            assert_eq!(instrument.qty_increment, dec!(0.00000001));
        }
        other => panic!("expected instrument, got {other:?}"),
    }
    let b = books(&ev);
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].time, EventTime::parse_rfc3339("2023-10-06T17:35:55.440295Z").unwrap());
    assert_eq!(d.book("MATIC/USD").unwrap().qty_at(Side::Buy, dec!(0.5657)), dec!(1098.3947558));
    assert_eq!((d.counters().checksums_verified, d.counters().checksum_mismatches), (2, 0));

    // Without the instrument the printed literals are used and vector B fails
    // (B_UNPADDED_CHECKSUM).
    let mut naive = FeedDecoder::new(10);
    let (ev, no) = run(&mut naive, &[&snap]);
    assert!(matches!(ev[0], MarketEvent::BookInvalid { .. }));
    assert!(matches!(no[0], FeedNotice::Resync { .. }));
}

#[test]
fn instrument_arriving_after_the_snapshot_repads_the_book() {
    let mut d = FeedDecoder::new(10);
    // A first snapshot without the instrument fails; after the instrument, the next one verifies
    // and so does the update applied on top of it.
    let snap = v2_book("snapshot", "MATIC/USD", B_BIDS, B_ASKS, B_CHECKSUM, None);
    let upd = v2_book("update", "MATIC/USD", &[C_BID], &[], C_CHECKSUM, None);
    run(&mut d, &[&snap]);
    d.preload_instruments([instrument("MATIC/USD", 4, 8)]);
    let (ev, no) = run(&mut d, &[&snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    assert_eq!(books(&ev).len(), 2);
}

#[test]
fn vector_d_v1_update_checksum_over_strings_as_sent() {
    // The snapshot lacks the 10th ask: it arrives as the update.
    let asks: Vec<(&str, &str)> = D_ASK_PRICES[..9].iter().map(|p| (*p, D_QTY)).collect();
    let bids: Vec<(&str, &str)> = D_BID_PRICES.iter().map(|p| (*p, D_QTY)).collect();
    let snap = format!(
        r#"[42,{{"as":{},"bs":{}}},"book-10","XBT/USD"]"#,
        v1_levels(&asks, "1534614057.321597"),
        v1_levels(&bids, "1534614057.321597")
    );
    // The 10th ask arrives as an update carrying the docs' checksum.
    let upd = format!(
        r#"[42,{{"a":[["{}","{D_QTY}","1534614248.765567"]],"c":"{D_CHECKSUM}"}},"book-10","XBT/USD"]"#,
        D_ASK_PRICES[9]
    );
    let mut d = FeedDecoder::new(10);
    // Even with a BTC/USD instrument loaded, v1 books use the strings (no padding).
    d.preload_instruments([instrument("BTC/USD", 1, 8)]);
    let (ev, no) = run(&mut d, &[&snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    let b = books(&ev);
    assert_eq!(b.len(), 2);
    assert_eq!(&*b[0].symbol, "BTC/USD", "v1 name mapped");
    // Book event time: the latest level timestamp of the message.
    assert_eq!(b[1].time, EventTime::parse_unix_seconds("1534614248.765567").unwrap());
    // v1 snapshots carry no checksum: only the update was compared.
    assert_eq!((d.counters().checksums_verified, d.counters().checksum_mismatches), (1, 0));
}

fn e_frames() -> (String, String) {
    (
        v2_book("snapshot", "BTC/USD", E_BIDS, E_ASKS, E_SNAPSHOT_CHECKSUM, None),
        v2_book(
            "update",
            "BTC/USD",
            &[],
            E_UPDATE_ASKS,
            E_UPDATE_CHECKSUM,
            Some("2023-07-30T15:29:58.343415Z"),
        ),
    )
}

#[test]
fn vector_e_truncates_to_depth_after_the_update() {
    let (snap, upd) = e_frames();
    let mut d = FeedDecoder::new(10);
    d.preload_instruments([instrument("BTC/USD", 1, 8)]);
    let (ev, no) = run(&mut d, &[&snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    let b = books(&ev);
    assert_eq!(b.len(), 2);
    // The update's levels in wire order, the delete included.
    assert_eq!(
        b[1].asks.iter().map(|l| l.price).collect::<Vec<_>>(),
        [dec!(29431.1), dec!(29433.3), dec!(29430.6)]
    );
    assert!(b[1].asks[0].qty.is_zero());
    let book = d.book("BTC/USD").unwrap();
    // 10 + 2 inserts − 1 delete = 11 asks, cut to 10: 29433.3 (the worst) dropped.
    assert_eq!(book.len(), (10, 10));
    assert_eq!(book.qty_at(Side::Sell, dec!(29433.3)), Decimal::ZERO);
    assert_eq!(book.qty_at(Side::Sell, dec!(29430.6)), dec!(0.001));
    // Top of book: best ask 29430.3 / 8.25215653, best bid 29430.2 / 0.18967538.
    assert_eq!(b[1].top.ask, Some(Level { price: dec!(29430.3), qty: dec!(8.25215653) }));
    assert_eq!(b[1].top.bid, Some(Level { price: dec!(29430.2), qty: dec!(0.18967538) }));
    // The snapshot had no timestamp: it carries the last event time (none yet: the epoch).
    assert_eq!(b[0].time, EventTime::ZERO);
    assert_eq!(d.last_time(), EventTime::parse_rfc3339("2023-07-30T15:29:58.343415Z").unwrap());
}

#[test]
fn vector_f_v1_book_1000_depth_from_the_channel_name() {
    // The second-best bid (354.15) is missing from the snapshot; the update adds it.
    let bids: Vec<(&str, &str)> = F_BIDS.iter().copied().filter(|l| l.0 != F_BIDS[1].0).collect();
    let (asks, bids) = (F_ASKS, bids.as_slice());
    let snap = format!(
        r#"[992,{{"as":{},"bs":{}}},"book-1000","XMR/USD"]"#,
        v1_levels(asks, "1618678123.481570"),
        v1_levels(bids, "1618678123.481570")
    );
    let (p, q) = F_BIDS[1];
    let upd = format!(
        r#"[992,{{"b":[["{p}","{q}","1618678133.365913"]],"c":"{F_CHECKSUM}"}},"book-1000","XMR/USD"]"#
    );
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[&snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    let b = books(&ev);
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].depth, 1000);
    assert_eq!(d.depth("XMR/USD"), 1000);
    assert_eq!((d.counters().checksums_verified, d.counters().checksum_mismatches), (1, 0));
}

#[test]
fn v1_update_with_two_objects_and_republish_flag() {
    // Snapshot, then both sides in one message (checksum in the last object), "r" = upsert.
    let snap = r#"[1,{"as":[["10.0","1.0","1.0"],["11.0","2.0","1.0"]],"bs":[["9.0","1.0","1.0"]]},"book-10","SC/EUR"]"#;
    let mut b = L2Book::new(10, None, None);
    b.apply(Side::Sell, dec!(10.0), dec!(1.5));
    b.apply(Side::Sell, dec!(11.0), dec!(2.0));
    b.apply(Side::Buy, dec!(9.0), dec!(1.0));
    b.apply(Side::Buy, dec!(8.5), dec!(3.0));
    let crc = b.checksum();
    let upd = format!(
        r#"[1,{{"a":[["10.0","1.5","2.0"]]}},{{"b":[["8.5","3.0","0.5","r"]],"c":"{crc}"}},"book-10","SC/EUR"]"#
    );
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    let last = books(&ev)[1];
    assert_eq!((last.asks.len(), last.bids.len()), (1, 1));
    // Event time: the latest level time (2.0 s), not the republished level's older 0.5 s.
    assert_eq!(last.time, EventTime::from_micros(2_000_000));
    assert_eq!(d.counters().checksum_mismatches, 0);
}

#[test]
fn snapshot_and_updates_build_the_right_book() {
    // Depth 3; prices with precision 1, qty 8 (BTC/USD style), checksums from an L2Book.
    let mut d = FeedDecoder::new(3);
    d.preload_instruments([instrument("BTC/USD", 1, 8)]);
    let mut reference = L2Book::new(3, Some(1), Some(8));
    let mut frames = Vec::new();
    let msgs: [(&str, Lv<'_>, Lv<'_>); 3] = [
        (
            "snapshot",
            &[("100.0", "1"), ("99.5", "2"), ("99.0", "3")],
            &[("100.5", "1"), ("101.0", "2"), ("102.0", "1")],
        ),
        // Delete 99.5, insert 99.8 (new 2nd bid), same price twice (last wins), delete absent.
        ("update", &[("99.5", "0"), ("99.8", "4"), ("99.8", "5"), ("50.0", "0")], &[]),
        // New best ask 100.2 pushes 102.0 out of the depth-3 window (no delete sent).
        ("update", &[], &[("100.2", "0.5")]),
    ];
    for (i, (kind, bids, asks)) in msgs.iter().enumerate() {
        if *kind == "snapshot" {
            reference.clear();
        }
        for (p, q) in *bids {
            reference.apply(Side::Buy, parse(p), parse(q));
        }
        for (p, q) in *asks {
            reference.apply(Side::Sell, parse(p), parse(q));
        }
        reference.truncate();
        let ts = format!("2024-05-19T16:45:2{i}.000000Z");
        frames.push(v2_book(kind, "BTC/USD", bids, asks, reference.checksum(), Some(&ts)));
    }
    let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
    let (ev, no) = run(&mut d, &refs);
    assert!(no.is_empty(), "{no:?}");
    assert_eq!(books(&ev).len(), 3);
    let book = d.book("BTC/USD").unwrap();
    let bids: Vec<Level> = book.levels(Side::Buy).collect();
    let asks: Vec<Level> = book.levels(Side::Sell).collect();
    let l = |p: Decimal, q: Decimal| Level { price: p, qty: q };
    assert_eq!(bids, [l(dec!(100.0), dec!(1)), l(dec!(99.8), dec!(5)), l(dec!(99.0), dec!(3))]);
    assert_eq!(asks, [l(dec!(100.2), dec!(0.5)), l(dec!(100.5), dec!(1)), l(dec!(101.0), dec!(2))]);
    assert_eq!(books(&ev)[2].top.ask_depth, dec!(3.5));
}

fn parse(s: &str) -> Decimal {
    crate::core::money::parse_decimal(s).unwrap()
}

#[test]
fn corrupted_update_resyncs_and_the_next_snapshot_recovers() {
    let (snap, upd) = e_frames();
    let bad = upd.replace("3547452596", "3547452597");
    let after =
        v2_book("update", "BTC/USD", &[("29420.0", "1.0")], &[], 1, Some("2023-07-30T15:30:00.000000Z"));
    let mut d = FeedDecoder::new(10);
    d.preload_instruments([instrument("BTC/USD", 1, 8)]);
    let (ev, no) = run(&mut d, &[&snap, &bad, &after]);
    assert_eq!(books(&ev).len(), 1, "only the snapshot is published");
    assert_eq!(
        ev[1],
        MarketEvent::BookInvalid {
            symbol: "BTC/USD".into(),
            time: EventTime::parse_rfc3339("2023-07-30T15:29:58.343415Z").unwrap(),
            reason: BookInvalidReason::ChecksumMismatch,
        }
    );
    assert_eq!(
        no,
        [FeedNotice::Resync { symbol: "BTC/USD".into(), reason: BookInvalidReason::ChecksumMismatch }]
    );
    assert!(d.book("BTC/USD").is_none());
    let c = d.counters().clone();
    assert_eq!(
        (c.checksums_verified, c.checksum_mismatches, c.resyncs, c.book_updates_ignored),
        (2, 1, 1, 1)
    );
    // The fresh snapshot (and the real update after it) verify again.
    let (ev, no) = run(&mut d, &[&snap, &upd]);
    assert!(no.is_empty(), "{no:?}");
    assert_eq!(books(&ev).len(), 2);
    assert_eq!(d.counters().checksum_mismatches, 1);
}

#[test]
fn reset_books_ignores_updates_until_a_snapshot() {
    let (snap, upd) = e_frames();
    let mut d = FeedDecoder::new(10);
    d.preload_instruments([instrument("BTC/USD", 1, 8)]);
    run(&mut d, &[&snap]);
    d.reset_books();
    let (ev, no) = run(&mut d, &[&upd]);
    assert!(ev.is_empty() && no.is_empty());
    assert_eq!(d.counters().book_updates_ignored, 1);
    let (ev, _) = run(&mut d, &[&snap, &upd]);
    assert_eq!(books(&ev).len(), 2);
}

#[test]
fn snapshot_longer_than_the_depth_raises_it() {
    // Decoder built for 10, snapshot of 12 levels per side: the book keeps 12.
    let bids: Vec<(String, String)> = (0..12).map(|i| (format!("{}.0", 100 - i), "1".to_string())).collect();
    let asks: Vec<(String, String)> = (0..12).map(|i| (format!("{}.0", 101 + i), "1".to_string())).collect();
    let b: Vec<(&str, &str)> = bids.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
    let a: Vec<(&str, &str)> = asks.iter().map(|(p, q)| (p.as_str(), q.as_str())).collect();
    let mut reference = L2Book::new(12, None, None);
    for (p, q) in &b {
        reference.apply(Side::Buy, parse(p), parse(q));
    }
    for (p, q) in &a {
        reference.apply(Side::Sell, parse(p), parse(q));
    }
    let f = v2_book("snapshot", "ETH/USD", &b, &a, reference.checksum(), None);
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[&f]);
    assert!(no.is_empty(), "{no:?}");
    assert_eq!(books(&ev)[0].depth, 12);
    assert_eq!(d.book("ETH/USD").unwrap().len(), (12, 12));
    assert_eq!(d.depth("ETH/USD"), 12);
}

#[test]
fn exponent_numbers_are_parsed_exactly() {
    // qty 1e-08 on the wire is exactly 0.00000001 (scale 8), never a float.
    let mut reference = L2Book::new(10, Some(1), Some(8));
    reference.apply(Side::Buy, dec!(100.0), dec!(0.00000001));
    let f = v2_book("snapshot", "BTC/USD", &[("100.0", "1e-08")], &[], reference.checksum(), None);
    let mut d = FeedDecoder::new(10);
    d.preload_instruments([instrument("BTC/USD", 1, 8)]);
    let (ev, no) = run(&mut d, &[&f]);
    assert!(no.is_empty(), "{no:?}");
    let q = books(&ev)[0].bids[0].qty;
    assert_eq!(q, dec!(0.00000001));
    assert_eq!(q.scale(), 8);
    let t = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":6.85E4,"qty":1E-8,"ord_type":"market","trade_id":7,"timestamp":"2024-05-27T12:43:11.798009Z"}]}"#;
    let (ev, _) = run(&mut d, &[t]);
    match &ev[0] {
        MarketEvent::Trade(tr) => assert_eq!((tr.price, tr.qty), (dec!(68500), dec!(0.00000001))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn v2_trades_one_event_per_element() {
    let f = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":68500.0,"qty":0.01044926,"ord_type":"limit","trade_id":70635299,"timestamp":"2024-05-27T12:43:11.798009Z"},{"symbol":"BTC/USD","side":"sell","price":68499.9,"qty":0.00483192,"ord_type":"market","trade_id":70635300,"timestamp":"2024-05-27T12:43:11.798010Z"}]}"#;
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[f]);
    assert!(no.is_empty());
    assert_eq!(ev.len(), 2);
    let MarketEvent::Trade(t) = &ev[1] else { panic!() };
    assert_eq!(
        (t.side, t.price, t.qty, t.trade_id, t.market_order),
        (Side::Sell, dec!(68499.9), dec!(0.00483192), 70635300, true)
    );
    assert_eq!(d.counters().events, 2);
    assert_eq!(d.last_time(), EventTime::parse_rfc3339("2024-05-27T12:43:11.798010Z").unwrap());
}

#[test]
fn v2_ticker_without_timestamp_uses_last_event_time() {
    let mut d = FeedDecoder::new(10);
    let tr = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1.0,"qty":1.0,"ord_type":"limit","trade_id":1,"timestamp":"2024-05-27T12:00:00.000000Z"}]}"#;
    let tk = r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":65972.8,"bid_qty":0.10000000,"ask":65972.9,"ask_qty":39.67506683,"last":65972.9,"volume":4216.61829370,"vwap":64275.2,"low":61325.4,"high":66450.0,"change":4412.1,"change_pct":7.17}]}"#;
    let (ev, _) = run(&mut d, &[tr, tk]);
    let MarketEvent::Ticker(t) = &ev[1] else { panic!("{:?}", ev[1]) };
    assert_eq!(
        (t.bid, t.ask, t.volume, t.vwap),
        (dec!(65972.8), dec!(65972.9), dec!(4216.61829370), dec!(64275.2))
    );
    assert_eq!(t.time, EventTime::parse_rfc3339("2024-05-27T12:00:00Z").unwrap());
}

#[test]
fn v1_trades_and_ticker() {
    let trade = r#"[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""],["354.12000000","1.00000000","1618678142.600000","b","m",""]],"trade","XMR/USD"]"#;
    let ticker = r#"[996,{"a":["355.24000000",27,"27.19106411"],"b":["354.32000000",6,"6.87748868"],"c":["355.23000000","1.20454360"],"v":["17858.85261084","33470.74135600"],"p":["355.33503706","349.16721624"],"t":[6481,10283],"l":["340.88000000","333.87000000"],"h":["368.00000000","368.00000000"],"o":["340.88000000","335.21000000"]},"ticker","XDG/USD"]"#;
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[trade, ticker]);
    assert!(no.is_empty(), "{no:?}");
    let MarketEvent::Trade(t0) = &ev[0] else { panic!() };
    assert_eq!(
        (&*t0.symbol, t0.side, t0.price, t0.market_order),
        ("XMR/USD", Side::Sell, dec!(354.11), false)
    );
    assert_eq!(t0.time, EventTime::from_micros(1_618_678_142_557_535));
    let MarketEvent::Trade(t1) = &ev[1] else { panic!() };
    assert_eq!((t1.side, t1.market_order, t1.trade_id), (Side::Buy, true, 0));
    let MarketEvent::Ticker(tk) = &ev[2] else { panic!() };
    assert_eq!(&*tk.symbol, "DOGE/USD");
    // a[0], b[0], c[0]; v and p: the last-24 h element.
    assert_eq!((tk.ask, tk.bid, tk.last), (dec!(355.24), dec!(354.32), dec!(355.23)));
    assert_eq!((tk.volume, tk.vwap), (dec!(33470.741356), dec!(349.16721624)));
    assert_eq!(tk.time, t1.time, "ticker carries the last event time");
}

#[test]
fn record_wrapper_sent_sets_depth_recv_is_decoded_ts_seeds_time() {
    let sent = r#"{"ts":1618678132.8253062,"dir":"sent","msg":{"event":"subscribe","pair":["XMR/USD","KSM/XBT"],"subscription":{"name":"book","depth":1000}}}"#;
    let status = r#"{"ts":1618678132.8258188,"dir":"recv","msg":{"connectionID":17843232920108168701,"event":"systemStatus","status":"online","version":"1.8.3"}}"#;
    let ack = r#"{"ts":1618678132.927777,"dir":"recv","msg":{"channelID":992,"channelName":"book-1000","event":"subscriptionStatus","pair":"XMR/USD","status":"subscribed","subscription":{"depth":1000,"name":"book"}}}"#;
    let trade = r#"{"ts":1618678142.9,"dir":"recv","msg":[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]}"#;
    let hb = r#"{"ts":1618678150.0,"dir":"recv","msg":{"event":"heartbeat"}}"#;
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[sent]);
    assert!(ev.is_empty() && no.is_empty());
    assert_eq!(d.depth("KSM/BTC"), 1000, "sent v1 subscription, pair mapped");
    let (ev, no) = run(&mut d, &[status, ack, trade, hb]);
    // ts seeds the clock before any exchange timestamp: the status event gets it.
    assert_eq!(
        ev[0],
        MarketEvent::Status {
            time: EventTime::from_micros(1_618_678_132_825_818),
            system: SystemStatus::Online
        }
    );
    assert_eq!(no, [FeedNotice::Subscribed { channel: "book".into(), symbol: Some("XMR/USD".into()) }]);
    // Afterwards the exchange's trade time rules; the later ts values are not used.
    assert_eq!(ev[1].time(), EventTime::from_micros(1_618_678_142_557_535));
    assert_eq!(d.last_time(), EventTime::from_micros(1_618_678_142_557_535));
    assert_eq!(d.counters().frames, 5);
}

#[test]
fn record_with_sent_v2_request_sets_depth_and_names_failures() {
    let mut d = FeedDecoder::new(10);
    let reqs = subscribe_requests(&["BTC/USD".to_string(), "ETH/USD".to_string()], 25);
    let sent = format!(r#"{{"ts":1.0,"dir":"sent","msg":{}}}"#, reqs[3]);
    run(&mut d, &[&sent]);
    assert_eq!(d.depth("ETH/USD"), 25);
    // A failure with only a req_id names every pair of that request.
    let fail = r#"{"error":"Unsupported event","method":"subscribe","req_id":4,"success":false,"time_in":"2024-05-19T20:02:10.316562Z","time_out":"2024-05-19T20:02:10.316592Z"}"#;
    let (_, no) = run(&mut d, &[fail]);
    assert_eq!(
        no,
        [
            FeedNotice::SubscribeFailed {
                channel: "book".into(),
                symbol: Some("BTC/USD".into()),
                error: "Unsupported event".into()
            },
            FeedNotice::SubscribeFailed {
                channel: "book".into(),
                symbol: Some("ETH/USD".into()),
                error: "Unsupported event".into()
            },
        ]
    );
}

#[test]
fn v2_acks_pong_status_and_heartbeat() {
    let mut d = FeedDecoder::new(10);
    let frames = [
        r#"{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.4"}],"type":"update"}"#,
        r#"{"method":"subscribe","result":{"channel":"book","depth":100,"snapshot":true,"symbol":"ALGO/USD"},"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}"#,
        r#"{"error":"Currency pair not supported XYZ/USD","method":"subscribe","req_id":9,"success":false,"symbol":"XYZ/USD","time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}"#,
        r#"{"method":"unsubscribe","req_id":987654321,"result":{"channel":"ticker","event_trigger":"trades","symbol":"BTC/USD"},"success":true,"time_in":"2023-10-06T17:35:55.3Z","time_out":"2023-10-06T17:35:55.4Z"}"#,
        r#"{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}"#,
        r#"{"channel":"heartbeat"}"#,
        r#"{"channel":"status","data":[{"api_version":"v2","system":"maintenance","version":"2.0.6"}],"type":"update"}"#,
    ];
    let (ev, no) = run(&mut d, &frames);
    assert_eq!(
        no,
        [
            FeedNotice::Subscribed { channel: "book".into(), symbol: Some("ALGO/USD".into()) },
            FeedNotice::SubscribeFailed {
                channel: "unknown".into(),
                symbol: Some("XYZ/USD".into()),
                error: "Currency pair not supported XYZ/USD".into()
            },
            FeedNotice::Pong { req_id: Some(101) },
        ]
    );
    assert_eq!(d.depth("ALGO/USD"), 100);
    assert!(matches!(ev[0], MarketEvent::Status { system: SystemStatus::Online, .. }));
    assert!(matches!(ev[1], MarketEvent::Status { system: SystemStatus::Maintenance, .. }));
    // The acks' time_out is exchange time: it advanced the clock (never backwards).
    assert_eq!(ev[1].time(), EventTime::parse_rfc3339("2023-10-06T17:35:55.4Z").unwrap());
    assert_eq!((d.counters().malformed, d.counters().unknown), (0, 0));
}

#[test]
fn v1_events_status_pong_and_failed_subscription() {
    let mut d = FeedDecoder::new(10);
    let frames = [
        r#"{"connectionID":13688620010177543517,"event":"systemStatus","status":"online","version":"1.9.1"}"#,
        r#"{"event":"pong","reqid":1693415329704}"#,
        r#"{"event":"heartbeat"}"#,
        r#"{"errorMessage":"Subscription name invalid","event":"subscriptionStatus","pair":"XBT/USD","status":"error","subscription":{"name":"trades"}}"#,
    ];
    let (ev, no) = run(&mut d, &frames);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        no,
        [
            FeedNotice::Pong { req_id: Some(1_693_415_329_704) },
            FeedNotice::SubscribeFailed {
                channel: "trades".into(),
                symbol: Some("BTC/USD".into()),
                error: "Subscription name invalid".into()
            },
        ]
    );
}

#[test]
fn malformed_and_unknown_frames_are_counted_never_panic() {
    let mut d = FeedDecoder::new(10);
    let malformed = [
        "",
        "not json",
        "{",
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":1.0}],"asks":[],"checksum":1}]}"#,
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"x","qty":1}],"asks":[],"checksum":1}]}"#,
        r#"{"channel":"book","type":"later","data":[]}"#,
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":99999999999}]}"#,
        r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"up","price":1,"qty":1}]}"#,
        r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1,"timestamp":"yesterday"}]}"#,
        r#"[1,{"b":[["1.0"]],"c":"1"},"book-10","XBT/USD"]"#,
        r#"[1,{"b":[],"c":"x"},"book-10","XBT/USD"]"#,
        r#"[1,[["1.0","1.0","1.0","q","l",""]],"trade","XBT/USD"]"#,
        "42",
        r#"{"ts":1,"dir":"sent","msg":"{oops"}"#,
    ];
    let unknown = [
        r#"{"channel":"ohlc","type":"update","data":[]}"#,
        r#"{"Error":"Exceeded msg rate"}"#,
        r#"{"hello":"world"}"#,
        r#"{"event":"somethingNew"}"#,
        r#"[1,{"a":["1"]},"spread","XBT/USD"]"#,
        r#"[1,2]"#,
        r#"{"method":"add_order","success":true}"#,
        r#"{"ts":1,"dir":"sideways","msg":{}}"#,
    ];
    for f in malformed {
        let (ev, no) = run(&mut d, &[f]);
        assert!(ev.is_empty(), "{f}: {ev:?}");
        assert!(matches!(no.as_slice(), [FeedNotice::Malformed { .. }]), "{f}: {no:?}");
    }
    for f in unknown {
        let (ev, no) = run(&mut d, &[f]);
        assert!(ev.is_empty(), "{f}: {ev:?}");
        assert!(matches!(no.as_slice(), [FeedNotice::Unknown { .. }]), "{f}: {no:?}");
    }
    let c = d.counters();
    assert_eq!((c.malformed, c.unknown, c.frames), (malformed.len() as u64, unknown.len() as u64, 22));
    // Every prefix of a valid frame is handled without a panic.
    let (snap, _) = e_frames();
    for i in 0..snap.len() {
        if snap.is_char_boundary(i) {
            run(&mut d, &[&snap[..i]]);
        }
    }
}

#[test]
fn malformed_trade_frame_emits_no_partial_events() {
    let f = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1,"qty":1,"timestamp":"2024-05-27T12:43:11.798009Z"},{"symbol":"BTC/USD","side":"buy","price":1}]}"#;
    let mut d = FeedDecoder::new(10);
    let (ev, no) = run(&mut d, &[f]);
    assert!(ev.is_empty());
    assert_eq!(no.len(), 1);
    assert_eq!(d.counters().events, 0);
}

#[test]
fn subscribe_requests_in_order_with_req_ids() {
    let r = subscribe_requests(&["BTC/USD".into(), "ETH/USD".into()], 10);
    assert_eq!(
        r,
        [
            r#"{"method":"subscribe","params":{"channel":"instrument"},"req_id":1}"#,
            r#"{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","ETH/USD"]},"req_id":2}"#,
            r#"{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"],"snapshot":false},"req_id":3}"#,
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD"],"depth":10},"req_id":4}"#,
        ]
    );
    for t in &r {
        serde_json::from_str::<Value>(t).unwrap();
    }
    assert_eq!(
        resubscribe_book("BTC/USD", 25, 7),
        [
            r#"{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},"req_id":7}"#,
            r#"{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},"req_id":8}"#,
        ]
    );
}

#[test]
fn failed_unsubscribe_is_marked_as_such() {
    let mut d = FeedDecoder::new(10);
    for r in resubscribe_book("BTC/USD", 10, 7) {
        d.note_sent(&r);
    }
    // Kraken's quirk: a failed unsubscribe answers with method "subscribe".
    let fail = r#"{"error":"Subscription Not Found","method":"subscribe","req_id":7,"success":false,"symbol":"BTC/USD","time_in":"2024-05-19T20:02:10.316562Z","time_out":"2024-05-19T20:02:10.316592Z"}"#;
    let (_, no) = run(&mut d, &[fail]);
    assert_eq!(
        no,
        [FeedNotice::SubscribeFailed {
            channel: "book".into(),
            symbol: Some("BTC/USD".into()),
            error: "unsubscribe: Subscription Not Found".into()
        }]
    );
}

// ---- real recordings: `KRAKEN_PAPER_DATA=DIR cargo test --lib kraken -- --ignored` -----------

/// The folder of Kraken recordings named by `KRAKEN_PAPER_DATA`. The test that reads it is
/// `#[ignore]`d; run on purpose without the variable, it fails rather than passing unseen.
fn data_dir() -> String {
    match std::env::var("KRAKEN_PAPER_DATA") {
        Ok(dir) if !dir.is_empty() => dir,
        _ => panic!("set KRAKEN_PAPER_DATA to the folder of Kraken recordings (see docs/market-data.md)"),
    }
}

fn replay(d: &mut FeedDecoder, path: &str) -> Option<(usize, usize, Vec<FeedNotice>)> {
    let text = std::fs::read_to_string(format!("{}/{path}", data_dir())).ok()?;
    let (mut ev, mut no) = (Vec::new(), Vec::new());
    let mut n_books = 0;
    let mut n_trades = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        ev.clear();
        d.decode(line, &mut ev, &mut no);
        n_books += ev.iter().filter(|e| matches!(e, MarketEvent::Book(_))).count();
        n_trades += ev.iter().filter(|e| matches!(e, MarketEvent::Trade(_))).count();
    }
    Some((n_books, n_trades, no))
}

#[test]
#[ignore = "reads the recordings in KRAKEN_PAPER_DATA"]
fn real_recordings_verify_every_checksum() {
    let dir = data_dir();
    let inst = std::fs::read_to_string(format!("{dir}/kraken_ws2_instrument_snapshot_2024-03-29.json"))
        .unwrap_or_else(|e| panic!("{dir}: no instrument snapshot: {e}"));
    let instruments = load_instruments(&inst).unwrap();
    assert_eq!(instruments.len(), 683);
    for (file, expect_verified, expect_books) in [
        ("kraken_ws2_book10_BTCUSD_2023-07-30_part1.jsonl", 301, 301),
        ("kraken_ws1_book10_XBTUSD_2023-08-30.jsonl", 979, 980),
        ("kraken_ws1_book1000_5pairs-A_2021-04-17.jsonl", 2595, 2600),
    ] {
        let mut d = FeedDecoder::new(10);
        d.preload_instruments(instruments.iter().cloned());
        let (books, _, notices) = replay(&mut d, file).unwrap();
        let c = d.counters();
        eprintln!("{file}: {c:?}, book events {books}, notices {}", notices.len());
        assert_eq!(c.checksum_mismatches, 0, "{file}");
        assert_eq!(c.checksums_verified, expect_verified, "{file}");
        assert_eq!(books, expect_books, "{file}");
        assert_eq!((c.malformed, c.unknown), (0, 0), "{file}: {notices:?}");
    }
    let mut d = FeedDecoder::new(10);
    let (_, trades, no) = replay(&mut d, "kraken_ws1_trade_10pairs_2021-04-17.jsonl").unwrap();
    eprintln!("trade file: {:?}, trades {trades}", d.counters());
    assert_eq!(trades, 10);
    assert!(no.iter().all(|n| matches!(n, FeedNotice::Subscribed { .. })), "{no:?}");
    let mut d = FeedDecoder::new(10);
    let text = std::fs::read_to_string(format!("{dir}/kraken_ws1_ticker_10pairs_2021-04-17.jsonl")).unwrap();
    let (mut ev, mut no) = (Vec::new(), Vec::new());
    for l in text.lines() {
        d.decode(l, &mut ev, &mut no);
    }
    let tickers = ev.iter().filter(|e| matches!(e, MarketEvent::Ticker(_))).count();
    eprintln!("ticker file: {:?}, tickers {tickers}", d.counters());
    assert_eq!(tickers, 18);
    assert_eq!(d.counters().malformed + d.counters().unknown, 0);
    for f in ["kraken_rest_assetpairs_result_2026-03-06.json", "kraken_rest_assetpairs_2021-04-17.json"] {
        let v = load_instruments(&std::fs::read_to_string(format!("{dir}/{f}")).unwrap()).unwrap();
        let btc = v.iter().find(|i| &*i.symbol == "BTC/USD").unwrap();
        eprintln!("{f}: {} instruments; BTC/USD {}/{}", v.len(), btc.price_precision, btc.qty_precision);
        assert_eq!((btc.price_precision, btc.qty_precision), (1, 8));
    }
}

#[test]
fn kraken_layout_and_any_other_layout_decode_alike() {
    // Frames in Kraken's exact layout take the compact readers; the same frames with spaces
    // after each `:` and `,` take the general scan. Both must give the same events, notices
    // and counters, including where the compact readers give up half-way (negative change,
    // escaped symbol, exponent, no timestamp, unknown ord_type, a malformed value).
    let frames = [
        r#"{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":100.1,"qty":1.5},{"price":100.0,"qty":2}],"asks":[{"price":100.2,"qty":0.25}],"checksum":140622459}]}"#,
        r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":100.2,"qty":0.01044926,"ord_type":"limit","trade_id":70635299,"timestamp":"2024-05-27T12:43:11.798009Z"},{"symbol":"BTC/USD","side":"sell","price":100.1,"qty":1e-8,"ord_type":"market","trade_id":70635300,"timestamp":"2024-05-27T12:43:11.798010Z"}]}"#,
        r#"{"channel":"trade","type":"update","data":[{"symbol":"ETH\/USD","side":"sell","price":3000.5,"qty":2.0,"ord_type":"mar\u006bet","trade_id":1,"timestamp":"2024-05-27T12:43:12Z"}]}"#,
        r#"{"channel":"trade","type":"update","data":[{"symbol":"ETH/USD","side":"hold","price":3000.5,"qty":2.0,"ord_type":"limit","trade_id":2,"timestamp":"2024-05-27T12:43:13.000000Z"}]}"#,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":100.1,"bid_qty":1.5,"ask":100.2,"ask_qty":0.25,"last":100.2,"volume":4216.61829370,"vwap":99.5,"low":90.0,"high":110.0,"change":-1.5,"change_pct":-1.48,"timestamp":"2024-05-27T12:43:14.000001Z"}]}"#,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":100.1,"bid_qty":1.5,"ask":100.2,"ask_qty":0.25,"last":100.2,"volume":4216.61829370,"vwap":99.5,"low":90.0,"high":110.0,"change":1.5,"change_pct":1.48}]}"#,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":-100.1,"bid_qty":1.5,"ask":100.2,"ask_qty":0.25,"last":1.002e2,"volume":4216.6,"vwap":99.5,"low":90.0,"high":110.0,"change":1.5,"change_pct":1.48,"timestamp":"2024-05-27T12:43:15.000000Z"}]}"#,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":100.1,"bid_qty":"x","ask":100.2,"ask_qty":0.25,"last":100.2,"volume":4216.6,"vwap":99.5,"low":90.0,"high":110.0,"change":1.5,"change_pct":1.48,"timestamp":"2024-05-27T12:43:16.000000Z"}]}"#,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":100.1,"bid_qty":1.5,"ask":100.2,"ask_qty":0.25,"last":100.2,"volume":4216.6,"vwap":99.5,"low":90.0,"high":110.0,"change":1.5,"change_pct":1.48,"timestamp":"2024-05-27T25:43:16.000000Z"}]}"#,
    ];
    let spaced: Vec<String> =
        frames.iter().map(|f| f.replace("\":", "\": ").replace(",\"", ", \"")).collect();
    let decode = |frames: &[&str]| {
        let mut d = FeedDecoder::new(10);
        let (ev, no) = run(&mut d, frames);
        format!("{ev:?}\n{no:?}\n{:?}\n{:?}", d.counters(), d.last_time())
    };
    let spaced: Vec<&str> = spaced.iter().map(String::as_str).collect();
    let compact = decode(&frames);
    assert_eq!(compact, decode(&spaced));
    // Both layouts decoded something of each kind, and the bad frames were refused.
    assert!(
        compact.contains("Trade(") && compact.contains("Ticker(") && compact.contains("Book("),
        "{compact}"
    );
    assert!(compact.contains("checksum_mismatches: 0") && compact.contains("malformed: 2"), "{compact}");
}
