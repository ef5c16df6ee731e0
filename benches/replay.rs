//! Replay throughput: a recording made by the embedded simulator (`record --source sim`) played
//! through the whole engine — decode, books with checksums, signals, aggregator, risk, paper
//! fills, journal — as `kraken-paper replay` does, with the embedded default configuration.
//!
//! Run: `cargo bench --bench replay`. Each iteration replays 50,000 events (≈ 54,000 frames,
//! 3 pairs, book depth 10) into a fresh run folder; divan reports items/s = events/s. Two
//! batch sizes are measured — 1 frame and 2048 frames (`replay`'s default) — which write the
//! same journal: batching only changes how many frames one pipeline pass takes.
//! Set `KP_BENCH_EVENTS` to change the recording's size.

use std::path::PathBuf;

use divan::counter::ItemsCount;

use kraken_paper::actors::market_feed::ReplayInput;
use kraken_paper::config::{Config, ConfigSource};
use kraken_paper::core::time::Span;
use kraken_paper::engine::{self, EngineSetup};
use kraken_paper::run_dir::RunDir;
use kraken_paper::sources::simulated::record_sim;

fn main() {
    divan::main();
}

fn events() -> u64 {
    std::env::var("KP_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

fn bench_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kp-bench-replay-{}", std::process::id()))
}

/// The embedded default config, set up as `replay` sets it: no HTTP, no log files, the run
/// lasting as long as the recording.
fn config() -> Config {
    let mut cfg = match Config::load(&ConfigSource::Embedded) {
        Ok(c) => c,
        Err(e) => panic!("embedded config: {e}"),
    };
    cfg.http.enabled = false;
    cfg.logging.file.enabled = false;
    cfg.run.duration = Span(i64::MAX / 4);
    cfg
}

/// Records the bench's input once per process (the simulator is deterministic).
fn recording(cfg: &Config) -> PathBuf {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).expect("bench folder");
    let file = dir.join(format!("sim-{}.jsonl", events()));
    if !file.exists() {
        record_sim(&cfg.sim, &cfg.feed.pairs, cfg.feed.book_depth, events(), &file).expect("record");
    }
    file
}

fn replay(bencher: divan::Bencher, batch_lines: usize) {
    let cfg = config();
    let file = recording(&cfg);
    let mut n = 0u32;
    bencher.counter(ItemsCount::new(events())).bench_local(|| {
        n += 1;
        let run = bench_dir().join(format!("run-b{batch_lines}-{n}"));
        let _ = std::fs::remove_dir_all(&run);
        let run_dir = RunDir::create(&run).expect("run folder");
        let mut setup = EngineSetup::new(cfg.clone(), run_dir);
        setup.replay = Some(ReplayInput { path: file.clone(), batch_lines });
        let outcome = actix::System::new().block_on(engine::run(setup)).expect("replay");
        assert!(outcome.report["feed"]["checksum_mismatches"] == 0, "checksum mismatches in the bench");
        let _ = std::fs::remove_dir_all(&run);
    });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn replay_batch_1(bencher: divan::Bencher) {
    replay(bencher, 1);
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn replay_batch_2048(bencher: divan::Bencher) {
    replay(bencher, 2048);
}
