//! Writes the ML feature vector with training labels as CSV, from the simulated exchange or
//! from a recording, for training a model elsewhere (see examples/onnx/train_signal_model.py
//! and docs/signals.md, "onnx"). The features come from `core::signals::features`, the code
//! the `online_ml` and `onnx` signals run on, so the training data cannot drift from what the
//! model will see.
//!
//! Run it with:
//!
//! ```sh
//! # 24 h of the simulated market (seed 7), the config's pairs and signals.onnx feature keys:
//! cargo run --release --example export_features -- --sim --seed 7 --duration 24h --out features.csv
//! # a recording (the `record` format, raw v2 frames or v1 arrays):
//! cargo run --release --example export_features -- --recording rec.jsonl --out features.csv
//! ```
//!
//! `--config FILE` takes `signals.onnx.{sample_interval, lags, vol_samples, horizon}`,
//! `feed.pairs`, `feed.book_depth` and `sim.*` from a config (default: the embedded one).
//!
//! One row per labelled sample: `pair, time_us, mid, n` (the pair's 1-based feature-vector
//! count, to skip the warm-up of the running standardisation), the features in vector order,
//! and `label` = 1 if the mid of the first sample at or after `time + horizon` is higher, 0 if
//! lower (unchanged: no row). Labels look ahead by construction — they are the training
//! target; the signal itself never sees them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use kraken_paper::config::load_from_cli;
use kraken_paper::core::instrument::Symbol;
use kraken_paper::core::kraken::decode::FeedDecoder;
use kraken_paper::core::market::MarketEvent;
use kraken_paper::core::signals::features::{Features, HorizonLabels, Pending};
use kraken_paper::core::sim::SimMarket;
use kraken_paper::core::time::Span;
use kraken_paper::sources::simulated::{SimSession, subscription_requests};

#[derive(Parser, Debug)]
#[command(about = "Dump ML features and next-horizon labels as CSV")]
struct Args {
    /// Read the market from the simulated exchange.
    #[arg(long, conflicts_with = "recording")]
    sim: bool,
    /// Read the market from this recording.
    #[arg(long)]
    recording: Option<PathBuf>,
    /// Config whose signals.onnx, feed and sim sections are used (default: embedded).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Simulator seed (overrides sim.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Market time to simulate, e.g. 24h.
    #[arg(long, default_value = "24h")]
    duration: String,
    /// Output CSV file.
    #[arg(long)]
    out: PathBuf,
}

/// A pair's samples waiting for their label (each with its vector count), and that count.
struct PairRows {
    labels: HorizonLabels<(u64, Vec<f64>)>,
    vectors: u64,
}

/// Feature state, per-pair label queues, the CSV writer.
struct Exporter {
    features: Features,
    horizon: Span,
    pairs: BTreeMap<Symbol, PairRows>,
    out: BufWriter<File>,
    rows: u64,
}

impl Exporter {
    fn on_event(&mut self, ev: &MarketEvent) -> anyhow::Result<()> {
        let Some(sample) = self.features.on_event(ev) else { return Ok(()) };
        let horizon = self.horizon;
        let rows = self
            .pairs
            .entry(sample.pair.clone())
            .or_insert_with(|| PairRows { labels: HorizonLabels::new(horizon), vectors: 0 });
        let mut done = Vec::new();
        rows.labels.resolve(sample.time, sample.mid, |p, y| done.push((p, y)));
        if let Some(x) = sample.x {
            rows.vectors += 1;
            rows.labels.push(Pending { time: sample.time, mid: sample.mid, x: (rows.vectors, x) });
        }
        for (p, y) in done {
            let (n, x) = p.x;
            write!(self.out, "{},{},{},{n}", sample.pair, p.time.as_micros(), p.mid)?;
            for v in x {
                write!(self.out, ",{v}")?;
            }
            writeln!(self.out, ",{}", y as u8)?;
            self.rows += 1;
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.sim && args.recording.is_none() {
        bail!("say where the market comes from: --sim or --recording FILE");
    }
    let (cfg, source) = load_from_cli(args.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let onnx = &cfg.signals.onnx;
    let spec = onnx.features();
    let file = File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut ex = Exporter {
        features: Features::new(spec.clone()),
        horizon: onnx.horizon,
        pairs: BTreeMap::new(),
        out: BufWriter::new(file),
        rows: 0,
    };
    writeln!(ex.out, "pair,time_us,mid,n,{},label", spec.names().join(","))?;

    let depth = cfg.feed.book_depth;
    let mut decoder = FeedDecoder::new(depth);
    let (mut events, mut notices) = (Vec::new(), Vec::new());
    if let Some(path) = &args.recording {
        let f = File::open(path).with_context(|| format!("cannot open recording {}", path.display()))?;
        for line in BufReader::with_capacity(1 << 20, f).lines() {
            let line = line.with_context(|| format!("cannot read recording {}", path.display()))?;
            decoder.decode(&line, &mut events, &mut notices);
            for e in events.drain(..) {
                ex.on_event(&e)?;
            }
            notices.clear();
        }
    } else {
        let mut sim_cfg = cfg.sim.clone();
        if let Some(seed) = args.seed {
            sim_cfg.seed = seed;
        }
        let duration = Span::parse(&args.duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
        let pairs = &cfg.feed.pairs;
        let mut market = SimMarket::new(&sim_cfg, pairs, depth).map_err(|e| anyhow::anyhow!("{e}"))?;
        let end = market.now().plus_micros(duration.as_micros());
        // The same subscriptions, answers and frames a `run` against the simulator gets.
        let mut session = SimSession::new(depth);
        let (mut replies, mut snapshots) = (Vec::new(), Vec::new());
        for r in subscription_requests(pairs, depth) {
            decoder.note_sent(&r);
            session.handle(&r, &market, &mut replies, &mut snapshots);
        }
        for r in &replies {
            decoder.decode(r, &mut events, &mut notices);
        }
        let mut frames = Vec::new();
        while market.now() < end {
            market.step(&mut frames);
            for f in frames.drain(..) {
                if session.wants(&f) {
                    decoder.decode(&f.text, &mut events, &mut notices);
                }
            }
            for e in events.drain(..) {
                ex.on_event(&e)?;
            }
            notices.clear();
        }
    }
    ex.out.flush()?;
    let c = decoder.counters();
    eprintln!(
        "{} labelled rows ({} features: {}) written to {} from {} frames; config {}",
        ex.rows,
        spec.n_features(),
        spec.names().join(", "),
        args.out.display(),
        c.frames,
        source.name()
    );
    Ok(())
}
