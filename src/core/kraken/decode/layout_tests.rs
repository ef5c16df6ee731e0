//! Property tests of the decoder's roads: random `book` / `trade` / `ticker` frames rendered
//! in Kraken's exact layout (the compact readers) and in a spaced layout (the general
//! readers), bare and inside `record` wrappers (the fused record+frame pass), must give the
//! same events, notices, counters and book checksums. Books are valid: sorted levels, each
//! frame's checksum computed with [`L2Book`] from the book it leaves, so every frame verifies.
//! Also the checksum property STYLE promises: it does not depend on how updates are batched.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{FeedCounters, FeedDecoder, FeedNotice};
use crate::core::book::L2Book;
use crate::core::instrument::{Instrument, PairStatus};
use crate::core::market::{MarketEvent, Side};
use crate::core::time::EventTime;

const SYMBOL: &str = "ETH/USD";
const DEPTH: usize = 10;

/// A JSON value rendered with an optional space after every structural `:` and `,`.
enum J {
    Obj(Vec<(&'static str, J)>),
    Arr(Vec<J>),
    Num(String),
    Str(String),
}

impl J {
    fn render(&self, sep: &str, out: &mut String) {
        match self {
            J::Obj(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        out.push_str(sep);
                    }
                    out.push_str(&format!("\"{k}\":{sep}"));
                    v.render(sep, out);
                }
                out.push('}');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        out.push_str(sep);
                    }
                    v.render(sep, out);
                }
                out.push(']');
            }
            J::Num(n) => out.push_str(n),
            J::Str(s) => out.push_str(&format!("\"{s}\"")),
        }
    }
}

fn num(d: Decimal) -> J {
    J::Num(d.to_string())
}

fn ts(t: EventTime) -> J {
    J::Str(t.to_rfc3339())
}

fn channel(name: &str, kind: &str, data: Vec<J>) -> J {
    J::Obj(vec![("channel", J::Str(name.into())), ("type", J::Str(kind.into())), ("data", J::Arr(data))])
}

/// One generated message, before rendering.
#[derive(Clone, Debug)]
enum Msg {
    /// Book levels changed: `(side, price ticks, qty units)` (qty 0 deletes).
    Book(Vec<(Side, i64, i64)>),
    /// Trades: `(buy, price ticks, qty units, market)`.
    Trades(Vec<(bool, i64, i64, bool)>),
    /// A ticker: `(bid, ask, last, volume, vwap)` in ticks / units.
    Ticker([i64; 5]),
}

/// Prices are ticks at `pp` decimals, quantities units at `qp` decimals; `trim` writes them
/// without trailing zeros (Kraken writes both forms).
struct Scale {
    pp: u32,
    qp: u32,
    trim: bool,
}

impl Scale {
    fn price(&self, ticks: i64) -> Decimal {
        let d = Decimal::new(ticks, self.pp);
        if self.trim { d.normalize() } else { d }
    }
    fn qty(&self, units: i64) -> Decimal {
        let d = Decimal::new(units, self.qp);
        if self.trim { d.normalize() } else { d }
    }
}

/// The frames of a scenario: a snapshot, then the messages, each book frame carrying the
/// checksum of the book it leaves (computed by `L2Book`, padded to the instrument).
fn frames(scale: &Scale, snapshot: &[(Side, i64, i64)], msgs: &[Msg]) -> Vec<J> {
    let mut book = L2Book::new(DEPTH, Some(scale.pp), Some(scale.qp));
    let mut time = EventTime::parse_rfc3339("2024-05-19T16:45:24.204654Z").unwrap();
    let mut out = Vec::new();
    let book_frame = |kind: &str, levels: &[(Side, i64, i64)], time: EventTime, book: &mut L2Book| {
        for &(side, p, q) in levels {
            book.apply(side, scale.price(p), scale.qty(q));
        }
        book.truncate();
        let side = |s: Side| {
            J::Arr(
                levels
                    .iter()
                    .filter(|l| l.0 == s)
                    .map(|&(_, p, q)| {
                        J::Obj(vec![("price", num(scale.price(p))), ("qty", num(scale.qty(q)))])
                    })
                    .collect(),
            )
        };
        let element = J::Obj(vec![
            ("symbol", J::Str(SYMBOL.into())),
            ("bids", side(Side::Buy)),
            ("asks", side(Side::Sell)),
            ("checksum", J::Num(book.checksum().to_string())),
            ("timestamp", ts(time)),
        ]);
        channel("book", kind, vec![element])
    };
    out.push(book_frame("snapshot", snapshot, time, &mut book));
    for (n, m) in msgs.iter().enumerate() {
        time = EventTime::from_micros(time.as_micros() + 1_000 + n as i64 * 7);
        out.push(match m {
            Msg::Book(levels) => book_frame("update", levels, time, &mut book),
            Msg::Trades(trades) => {
                let data = trades
                    .iter()
                    .enumerate()
                    .map(|(i, &(buy, p, q, market))| {
                        J::Obj(vec![
                            ("symbol", J::Str(SYMBOL.into())),
                            ("side", J::Str(if buy { "buy" } else { "sell" }.into())),
                            ("price", num(scale.price(p))),
                            ("qty", num(scale.qty(q))),
                            ("ord_type", J::Str(if market { "market" } else { "limit" }.into())),
                            ("trade_id", J::Num((1000 + n * 10 + i).to_string())),
                            ("timestamp", ts(time)),
                        ])
                    })
                    .collect();
                channel("trade", "update", data)
            }
            Msg::Ticker([bid, ask, last, volume, vwap]) => {
                let element = J::Obj(vec![
                    ("symbol", J::Str(SYMBOL.into())),
                    ("bid", num(scale.price(*bid))),
                    ("bid_qty", num(scale.qty(*volume))),
                    ("ask", num(scale.price(*ask))),
                    ("ask_qty", num(scale.qty(*volume))),
                    ("last", num(scale.price(*last))),
                    ("volume", num(scale.qty(*volume))),
                    ("vwap", num(scale.price(*vwap))),
                    ("low", num(scale.price(*bid))),
                    ("high", num(scale.price(*ask))),
                    ("change", J::Num("-1.5".into())),
                    ("change_pct", J::Num("-0.02".into())),
                    ("timestamp", ts(time)),
                ]);
                channel("ticker", "update", vec![element])
            }
        });
    }
    out
}

/// What a decoder made of a rendering: events, notices, counters, the final checksum.
type Outcome = (Vec<MarketEvent>, Vec<FeedNotice>, FeedCounters, Option<u32>);

fn decode_all(scale: &Scale, texts: &[String]) -> Outcome {
    let mut d = FeedDecoder::new(DEPTH as u16);
    d.preload_instruments([Instrument {
        symbol: SYMBOL.into(),
        base: "ETH".into(),
        quote: "USD".into(),
        status: PairStatus::Online,
        price_precision: scale.pp,
        qty_precision: scale.qp,
        cost_precision: 5,
        price_increment: Decimal::new(1, scale.pp),
        qty_increment: Decimal::new(1, scale.qp),
        qty_min: Decimal::ZERO,
        cost_min: Decimal::ZERO,
        marginable: false,
        margin: None,
    }]);
    let (mut events, mut notices) = (Vec::new(), Vec::new());
    for t in texts {
        d.decode(t, &mut events, &mut notices);
    }
    let checksum = d.book(SYMBOL).map(|b| b.clone().checksum());
    (events, notices, d.counters().clone(), checksum)
}

/// The four renderings: Kraken's layout and spaced, each bare and in `record` lines.
fn renderings(frames: &[J]) -> [Vec<String>; 4] {
    let render = |sep: &str, record: bool| -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                let mut s = String::new();
                if record {
                    // As `record` writes the wrapper (sources/recording.rs), spaced or not.
                    s.push_str(&format!(
                        "{{\"ts\":{sep}1.000000,{sep}\"dir\":{sep}\"recv\",{sep}\"msg\":{sep}"
                    ));
                }
                f.render(sep, &mut s);
                if record {
                    s.push('}');
                }
                s
            })
            .collect()
    };
    [render("", false), render(" ", false), render("", true), render(" ", true)]
}

/// A sorted snapshot around a mid price: distinct bid ticks below it, ask ticks above.
fn snapshot() -> impl Strategy<Value = Vec<(Side, i64, i64)>> {
    (
        proptest::collection::btree_set(1i64..60, 1..=DEPTH),
        proptest::collection::btree_set(1i64..60, 1..=DEPTH),
        proptest::collection::vec(1i64..5_000_000, DEPTH * 2),
    )
        .prop_map(|(bids, asks, qtys)| {
            let mid = 100_000;
            // Best first on both sides.
            let b = bids.iter().map(|o| (Side::Buy, mid - o));
            let a = asks.iter().map(|o| (Side::Sell, mid + o));
            b.chain(a).zip(qtys).map(|((s, p), q)| (s, p, q)).collect()
        })
}

fn level_change() -> impl Strategy<Value = (Side, i64, i64)> {
    (any::<bool>(), 1i64..60, prop_oneof![Just(0i64), 1i64..5_000_000])
        .prop_map(|(buy, o, q)| if buy { (Side::Buy, 100_000 - o, q) } else { (Side::Sell, 100_000 + o, q) })
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        3 => proptest::collection::vec(level_change(), 1..5).prop_map(Msg::Book),
        1 => proptest::collection::vec((any::<bool>(), 99_900i64..100_100, 1i64..5_000_000, any::<bool>()), 1..4)
            .prop_map(Msg::Trades),
        1 => (99_900i64..100_000, 100_001i64..100_100, 99_900i64..100_100, 1i64..900_000_000, 99_900i64..100_100)
            .prop_map(|(b, a, l, v, w)| Msg::Ticker([b, a, l, v, w])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_layout_decodes_alike(
        pp in 1u32..=4,
        qp in 1u32..=8,
        trim in any::<bool>(),
        snap in snapshot(),
        msgs in proptest::collection::vec(msg(), 0..12),
    ) {
        let scale = Scale { pp, qp, trim };
        let frames = frames(&scale, &snap, &msgs);
        let [kraken, spaced, kraken_rec, spaced_rec] = renderings(&frames);
        let want = decode_all(&scale, &kraken);
        // Every frame verified (the generator computed each checksum from its book).
        let books = 1 + msgs.iter().filter(|m| matches!(m, Msg::Book(_))).count() as u64;
        prop_assert_eq!(want.2.checksums_verified, books);
        prop_assert_eq!(want.2.checksum_mismatches, 0);
        prop_assert!(want.1.is_empty(), "notices: {:?}", want.1);
        prop_assert!(want.3.is_some());
        for (name, texts) in [("spaced", &spaced), ("record", &kraken_rec), ("spaced record", &spaced_rec)] {
            let got = decode_all(&scale, texts);
            prop_assert_eq!(&got.0, &want.0, "events differ: {}", name);
            prop_assert_eq!(&got.1, &want.1, "notices differ: {}", name);
            prop_assert_eq!(&got.2, &want.2, "counters differ: {}", name);
            prop_assert_eq!(got.3, want.3, "checksum differs: {}", name);
        }
    }

    /// STYLE's promise: a book's checksum does not depend on how its updates were batched.
    /// The same updates applied one by one or in random batches (truncating and computing
    /// the checksum, with its caches, after each batch) give the checksum of a fresh book
    /// holding the final levels; with room for every level, the batching changes nothing.
    #[test]
    fn checksum_is_independent_of_update_batching(
        pp in 1u32..=4,
        qp in 1u32..=8,
        updates in proptest::collection::vec(level_change(), 1..80),
        cuts in proptest::collection::vec(any::<bool>(), 80),
    ) {
        let scale = Scale { pp, qp, trim: false };
        let apply = |book: &mut L2Book, batch_ends: &dyn Fn(usize) -> bool| {
            for (i, &(side, p, q)) in updates.iter().enumerate() {
                book.apply(side, scale.price(p), scale.qty(q));
                if batch_ends(i) {
                    book.truncate();
                    let _ = book.checksum();
                }
            }
            book.truncate();
            book.checksum()
        };
        // Room for every level (prices span 59 ticks a side): batching cannot matter.
        let mut one_by_one = L2Book::new(1000, Some(pp), Some(qp));
        let mut batched = L2Book::new(1000, Some(pp), Some(qp));
        let mut once = L2Book::new(1000, Some(pp), Some(qp));
        let a = apply(&mut one_by_one, &|_| true);
        let b = apply(&mut batched, &|i| cuts[i]);
        let c = apply(&mut once, &|_| false);
        prop_assert_eq!(a, b);
        prop_assert_eq!(a, c);
        // At Kraken's depth the kept state still checksums like a fresh book of its levels.
        let mut deep10 = L2Book::new(DEPTH, Some(pp), Some(qp));
        let got = apply(&mut deep10, &|i| cuts[i]);
        let mut fresh = L2Book::new(DEPTH, Some(pp), Some(qp));
        for side in [Side::Buy, Side::Sell] {
            for l in deep10.levels(side) {
                fresh.apply(side, l.price, l.qty);
            }
        }
        fresh.truncate();
        prop_assert_eq!(got, fresh.checksum());
    }
}
