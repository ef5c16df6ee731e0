//! Journal throughput: records encoded and written per second through the Journal actor,
//! under the default durability (`batch`: one fsync per pipeline batch, here 100 records)
//! and under `os` (no fsync), plus the encoding alone.
//!
//! Run: `cargo bench --bench journal`. Each iteration is 1,000 records (10 batches of 100,
//! each `Append` + `Flush` awaited, as the pipeline does) into a file in the temp folder;
//! divan reports items/s = records/s.

use std::path::PathBuf;

use actix::prelude::*;
use divan::counter::ItemsCount;
use serde_json::json;

use kraken_paper::actors::journal::{Append, Flush, Journal, JournalPosition};
use kraken_paper::config::Durability;
use kraken_paper::core::journal::{Entry, encode};
use kraken_paper::core::time::EventTime;

const BATCH: usize = 100;
const BATCHES: usize = 10;

fn main() {
    divan::main();
}

/// A `fill` record as the engine writes it (≈ 400 bytes encoded).
fn sample(i: u64) -> Entry {
    let t = EventTime::from_micros(1_735_689_600_000_000 + i as i64 * 1000);
    Entry::new(
        t,
        "fill",
        &json!({
            "cause": {"event_seq": 10188 + i, "kind": "book_level", "level_price": "190.04", "level_qty": "15.27394881"},
            "fee": "3.37374", "fee_currency": "USD", "fill_id": i, "liquidity": "taker", "order_id": i / 2,
            "pair": "SOL/USD", "partial": false, "price": "190.04", "qty": "4.43819300", "side": "buy",
            "slippage": "0.00131", "time": t.to_rfc3339(),
        }),
    )
}

fn temp_file(label: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kp-bench-journal-{label}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn through_actor(bencher: divan::Bencher, durability: Durability, label: &str) {
    let path = temp_file(label);
    let sys = System::new();
    let journal = sys.block_on(async {
        Journal::open(&path, durability, 100, JournalPosition::default()).expect("open journal").start()
    });
    let batches: Vec<Vec<Entry>> =
        (0..BATCHES).map(|b| (0..BATCH).map(|i| sample((b * BATCH + i) as u64)).collect()).collect();
    bencher.counter(ItemsCount::new(BATCH * BATCHES)).with_inputs(|| batches.clone()).bench_local_values(
        |batches| {
            sys.block_on(async {
                for b in batches {
                    journal.send(Append { entries: b }).await.expect("append");
                    journal.send(Flush).await.expect("flush").expect("journal write");
                }
            })
        },
    );
    let _ = std::fs::remove_file(&path);
}

/// Default durability: one fsync per batch of 100 records.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn batch_fsync_per_100(bencher: divan::Bencher) {
    through_actor(bencher, Durability::Batch, "batch");
}

/// `os`: written to the page cache, no fsync.
#[divan::bench(sample_count = 50, sample_size = 5)]
fn os_no_fsync(bencher: divan::Bencher) {
    through_actor(bencher, Durability::Os, "os");
}

/// Encoding alone (no I/O): the CPU cost per record.
#[divan::bench]
fn encode_only(bencher: divan::Bencher) {
    let batch: Vec<Entry> = (0..BATCH as u64).map(sample).collect();
    let mut buf = Vec::with_capacity(64 * 1024);
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        buf.clear();
        for (i, e) in batch.iter().enumerate() {
            encode(i as u64 + 1, e, &mut buf);
        }
        divan::black_box(buf.len())
    });
}
