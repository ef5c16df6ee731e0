//! Command-line interface (clap): the commands and options other tools rely on.
//! Their names are contracts: `run`, `replay`, `record`, `export`, `report`,
//! `validate-config`, and the options documented in README.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::LogFormat;

/// Paper-trade Kraken spot markets with the exchange's own rules, offline on an embedded
/// simulated exchange or live on Kraken's market data.
#[derive(Debug, Parser)]
#[command(name = "kraken-paper", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by commands that run the engine.
#[derive(Debug, Args, Clone)]
pub struct EngineOpts {
    /// Configuration file (YAML). Default: the embedded config/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run folder for journal.jsonl, config, report. Default: a new runs/<timestamp>/ folder.
    /// A folder that already holds a journal is refused (use `run --resume`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Market time to run, e.g. 6h, 90m (overrides run.duration).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Playback speed: `max` or N × real time (overrides run.speed).
    #[arg(long, value_name = "N|max")]
    pub speed: Option<String>,
    /// Log format on stderr (overrides logging.format). `json` shows info logs on stderr.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Show info logs on stderr (default: warnings and errors only; the run folder's log
    /// files always have everything).
    #[arg(short, long)]
    pub verbose: bool,
    /// Serve the dashboard/API on this address, e.g. 127.0.0.1:8089 (overrides http.bind).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Do not start the HTTP server.
    #[arg(long, conflicts_with = "http")]
    pub no_http: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a paper-trading session (default: the embedded simulated exchange, 6 h of market
    /// time as fast as possible), then print a summary and write report.json.
    Run(RunArgs),
    /// Play a recording (the `record` format, raw v2 frames or v1 arrays) through the feed
    /// and the whole engine.
    Replay(ReplayArgs),
    /// Record Kraken (or simulated) WebSocket traffic into a JSON Lines file.
    Record(RecordArgs),
    /// Write trades, orders, fills and equity files from a run folder's journal.
    Export(ExportArgs),
    /// Rebuild report.json and report.html from a run folder's journal.
    Report(ReportArgs),
    /// Check a configuration file and report every problem.
    ValidateConfig(ValidateArgs),
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Shared engine options.
    #[command(flatten)]
    pub engine: EngineOpts,
    /// Seed of the simulated market (overrides sim.seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Connect to Kraken's live WebSocket instead of the simulator (feed.source: kraken).
    #[arg(long)]
    pub live: bool,
    /// WebSocket endpoint for --live (overrides feed.ws_url).
    #[arg(long, value_name = "URL")]
    pub ws_url: Option<String>,
    /// REST endpoint for --live (overrides feed.rest_url).
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,
    /// Continue the run in this folder from its journal (config and command line come from
    /// the folder).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["seed", "live"])]
    pub resume: Option<PathBuf>,
    /// With --resume: lift a trading halt that was in force when the run stopped.
    #[arg(long, requires = "resume")]
    pub lift_halt: bool,
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (JSON Lines).
    pub file: PathBuf,
    /// Shared engine options.
    #[command(flatten)]
    pub engine: EngineOpts,
    /// Book depth when the recording does not say.
    #[arg(long, value_name = "N")]
    pub depth: Option<u16>,
    /// Instrument metadata: Kraken's AssetPairs JSON or a WS v2 `instrument` message.
    #[arg(long, value_name = "FILE")]
    pub instruments: Option<PathBuf>,
    /// Frames decoded per pipeline batch: the most frames one pass of the pipeline takes.
    /// Results never depend on it (journals are byte-identical for every N): passes are cut
    /// to single frames whenever the portfolio can change from frame to frame (see
    /// docs/market-data.md); larger N only replays quiet stretches faster.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub batch_events: usize,
}

/// Where `record` takes data from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecordSource {
    /// Kraken's live WebSocket.
    Kraken,
    /// The embedded simulated exchange (offline).
    Sim,
}

/// `record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Output file (JSON Lines: {"ts","dir","msg"}).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Pairs, comma-separated (default: the config's feed.pairs).
    #[arg(long, value_delimiter = ',', value_name = "PAIRS")]
    pub pairs: Vec<String>,
    /// Data source.
    #[arg(long, value_enum, default_value_t = RecordSource::Kraken)]
    pub source: RecordSource,
    /// Stop after this many book/trade events.
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,
    /// Stop after this much time (wall time for Kraken, market time for sim), e.g. 10m.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Book depth to subscribe.
    #[arg(long, value_name = "N")]
    pub depth: Option<u16>,
    /// WebSocket endpoint (overrides feed.ws_url).
    #[arg(long, value_name = "URL")]
    pub ws_url: Option<String>,
    /// REST endpoint (overrides feed.rest_url).
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,
    /// Seed for --source sim (overrides sim.seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Configuration file (YAML). Default: the embedded config/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show info logs on stderr (default: warnings and errors only).
    #[arg(short, long)]
    pub verbose: bool,
}

/// Export formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON arrays of objects.
    Json,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run folder.
    pub run_dir: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folder.
    pub run_dir: PathBuf,
}

/// `validate-config`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Configuration file to check.
    pub path: PathBuf,
}
