//! The decoder's stages, each on its own: the JSON scan of a frame, a whole frame decoded
//! (Kraken's exact layout, which takes the compact readers, and the same frame with spaces,
//! which takes the general readers), and the book update + checksum behind every frame.
//!
//! Run: `cargo bench --bench decode`. Every iteration handles the same 1,000 v2 book updates
//! (two bid levels each, valid checksums) after one snapshot; divan reports items/s =
//! frames/s (or book updates/s). These replace the old `#[ignore]` timing test.

use divan::Bencher;
use divan::counter::ItemsCount;
use rust_decimal::Decimal;

use kraken_paper::core::book::L2Book;
use kraken_paper::core::book::testdata::{E_ASKS, E_BIDS, Lv};
use kraken_paper::core::instrument::{Instrument, PairStatus};
use kraken_paper::core::kraken::decode::FeedDecoder;
use kraken_paper::core::kraken::scan::Scan;
use kraken_paper::core::market::Side;
use kraken_paper::core::money::parse_decimal;

const FRAMES: usize = 1000;

fn main() {
    divan::main();
}

fn d(s: &str) -> Decimal {
    parse_decimal(s).expect("bench decimal")
}

/// Vector E's snapshot (shared/kraken/book-checksum.md), BTC/USD at precisions 1 / 8: the
/// crate's one copy of the checksum vectors.
const BIDS: Lv = E_BIDS;
const ASKS: Lv = E_ASKS;

fn levels(levels: &[(&str, &str)], sep: &str) -> String {
    let v: Vec<String> =
        levels.iter().map(|(p, q)| format!(r#"{{"price":{sep}{p},{sep}"qty":{sep}{q}}}"#)).collect();
    format!("[{}]", v.join(&format!(",{sep}")))
}

/// A v2 book frame; `sep` is put after every `:` and `,` (empty: Kraken's exact layout).
fn book_frame(kind: &str, bids: &[(&str, &str)], checksum: u32, sep: &str) -> String {
    let ts = if kind == "update" {
        format!(r#",{sep}"timestamp":{sep}"2023-07-30T15:29:58.343415Z""#)
    } else {
        String::new()
    };
    let asks = if kind == "update" { String::from("[]") } else { levels(ASKS, sep) };
    format!(
        r#"{{"channel":{sep}"book",{sep}"type":{sep}"{kind}",{sep}"data":{sep}[{{"symbol":{sep}"BTC/USD",{sep}"bids":{sep}{},{sep}"asks":{sep}{asks},{sep}"checksum":{sep}{checksum}{ts}}}]}}"#,
        levels(bids, sep)
    )
}

/// The snapshot and `FRAMES` updates, each with the checksum of the book after it.
fn frames(sep: &str) -> (String, Vec<String>) {
    let mut book = L2Book::new(10, Some(1), Some(8));
    for &(p, q) in BIDS {
        book.apply(Side::Buy, d(p), d(q));
    }
    for &(p, q) in ASKS {
        book.apply(Side::Sell, d(p), d(q));
    }
    book.truncate();
    let snapshot = book_frame("snapshot", BIDS, book.checksum(), sep);
    let updates = (0..FRAMES)
        .map(|i| {
            let q = format!("0.{:08}", 1 + i);
            let lv = [("29430.2", q.as_str()), ("29421.5", "0.28639276")];
            for (p, q) in lv {
                book.apply(Side::Buy, d(p), d(q));
            }
            book.truncate();
            book_frame("update", &lv, book.checksum(), sep)
        })
        .collect();
    (snapshot, updates)
}

fn instrument() -> Instrument {
    Instrument {
        symbol: "BTC/USD".into(),
        base: "BTC".into(),
        quote: "USD".into(),
        status: PairStatus::Online,
        price_precision: 1,
        qty_precision: 8,
        cost_precision: 5,
        price_increment: Decimal::new(1, 1),
        qty_increment: Decimal::new(1, 8),
        qty_min: Decimal::ZERO,
        cost_min: Decimal::ZERO,
        marginable: false,
        margin: None,
    }
}

/// Stage 1: the zero-allocation scan of each frame (validate and skip one JSON value).
#[divan::bench]
fn scan(bencher: Bencher) {
    let (_, updates) = frames("");
    bencher.counter(ItemsCount::new(FRAMES)).bench(|| {
        let mut n = 0usize;
        for f in &updates {
            n += Scan::new(divan::black_box(f)).skip().map(str::len).unwrap_or(0);
        }
        n
    });
}

/// Stage 2: whole frames through the decoder, in Kraken's layout (`compact`) and spaced
/// (`spaced`: the general readers), the snapshot first so every update verifies.
#[divan::bench(args = ["compact", "spaced"])]
fn decode(bencher: Bencher, layout: &str) {
    let (snapshot, updates) = frames(if layout == "compact" { "" } else { " " });
    bencher.counter(ItemsCount::new(FRAMES)).bench_local(|| {
        let mut dec = FeedDecoder::new(10);
        dec.preload_instruments([instrument()]);
        let (mut events, mut notices) = (Vec::with_capacity(4), Vec::new());
        dec.decode(&snapshot, &mut events, &mut notices);
        for f in &updates {
            events.clear();
            dec.decode(divan::black_box(f), &mut events, &mut notices);
        }
        assert_eq!(dec.counters().checksum_mismatches, 0);
        events.len()
    });
}

/// Stage 3: the book's own work per update: apply two levels, cut to depth, checksum, top.
#[divan::bench]
fn book_update_and_checksum(bencher: Bencher) {
    let qtys: Vec<Decimal> = (0..FRAMES as i64).map(|i| Decimal::new(1 + i, 8)).collect();
    let (p1, p2, q2) = (d("29430.2"), d("29421.5"), d("0.28639276"));
    bencher.counter(ItemsCount::new(FRAMES)).bench_local(|| {
        let mut book = L2Book::new(10, Some(1), Some(8));
        for &(p, q) in BIDS {
            book.apply(Side::Buy, d(p), d(q));
        }
        for &(p, q) in ASKS {
            book.apply(Side::Sell, d(p), d(q));
        }
        let mut sink = 0u64;
        for q in &qtys {
            book.apply(Side::Buy, p1, *q);
            book.apply(Side::Buy, p2, q2);
            book.truncate();
            sink += u64::from(book.checksum());
            sink += u64::from(book.top().bid_depth.scale());
        }
        sink
    });
}
