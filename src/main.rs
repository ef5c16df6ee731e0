//! kraken-paper command line: CLI → config → telemetry → engine (anyhow only here).
//!
//! Exit codes (README "Exit codes"): 0 ok, 1 error at start (or any other error), 2 usage
//! (clap), 3 an actor holding trading state failed, 4 the journal could not write, 130 a
//! second SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow};
use clap::Parser;

use kraken_paper::cli::{Cli, Command, EngineOpts, RecordArgs, RecordSource, RunArgs};
use kraken_paper::config::{self, Config, ConfigSource, FeedSource, Speed};
use kraken_paper::core::time::Span;
use kraken_paper::engine::{self, EngineSetup};
use kraken_paper::run_dir::{ReplaySource, RunDir, files, plan_resume};
use kraken_paper::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |r: Result<()>| r.map(|()| 0u8);
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::ValidateConfig(args) => done(cmd_validate(&args.path)),
        Command::Record(args) => done(cmd_record(args)),
        Command::Report(args) => done(cmd_report(&args.run_dir)),
        Command::Export(args) => done(cmd_export(&args.run_dir, args.format)),
        Command::Replay(args) => cmd_replay(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One line on stderr per `KRAKEN_PAPER__…` override, so none goes unseen:
/// `env: risk.max_drawdown = 0.05 (KRAKEN_PAPER__RISK__MAX_DRAWDOWN)`.
fn show_override(o: &config::EnvOverride) {
    eprintln!("{o}");
}

/// Applies the options every engine command shares.
fn apply_engine_opts(cfg: &mut Config, opts: &EngineOpts) -> Result<()> {
    if let Some(d) = &opts.duration {
        cfg.run.duration = Span::parse(d).map_err(|e| anyhow!("--duration: {e}"))?;
    }
    if let Some(s) = &opts.speed {
        cfg.run.speed = Speed::parse(s).map_err(|e| anyhow!("--speed: {e}"))?;
    }
    if let Some(f) = opts.log_format {
        cfg.logging.format = f;
    }
    if let Some(a) = opts.http {
        cfg.http.enabled = true;
        cfg.http.bind = a;
    }
    if opts.no_http {
        cfg.http.enabled = false;
    }
    Ok(())
}

fn revalidate(cfg: &Config, source: &ConfigSource) -> Result<()> {
    let issues = cfg.validate();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("config {} with command-line options is invalid:\n{issues}", source.name()))
    }
}

fn new_run_dir(path: Option<&Path>) -> Result<RunDir> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            // Wall time only names the folder; nothing of it reaches the journal.
            #[allow(clippy::disallowed_methods)]
            let now = chrono::Utc::now();
            RunDir::default_path(&now.format("%Y%m%dT%H%M%S%.3fZ").to_string())
        }
    };
    RunDir::create(&path).map_err(|e| anyhow!("{e}"))
}

fn init_logging(cfg: &Config, run_dir: &RunDir, verbose: bool) -> Result<telemetry::TelemetryGuard> {
    let dir = if cfg.logging.file.dir.is_absolute() {
        cfg.logging.file.dir.clone()
    } else {
        run_dir.path().join(&cfg.logging.file.dir)
    };
    let files = cfg.logging.file.enabled.then_some(telemetry::LogFiles {
        dir: &dir,
        rotation: cfg.logging.file.rotation,
        max_files: cfg.logging.file.max_files,
        max_bytes: cfg.logging.file.max_size_mb.saturating_mul(1024 * 1024),
    });
    Ok(telemetry::init(cfg.logging.format, &cfg.logging.level, verbose, files)?)
}

fn install_tls_provider() {
    // One process-wide rustls provider (ring); a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `run`: a session; answers the exit code of how it ended (`RunStatus::exit_code`).
fn cmd_run(args: RunArgs) -> Result<u8> {
    if let Some(dir) = &args.resume {
        return cmd_resume(dir, &args);
    }
    let (mut cfg, source) =
        config::load_from_cli_reporting(args.engine.config.as_deref(), &mut show_override)
            .map_err(|e| anyhow!("{e}"))?;
    apply_engine_opts(&mut cfg, &args.engine)?;
    if let Some(seed) = args.seed {
        cfg.sim.seed = seed;
    }
    if args.live {
        cfg.feed.source = FeedSource::Kraken;
    }
    check_url_options(args.ws_url.as_deref(), args.rest_url.as_deref())?;
    if let Some(u) = &args.ws_url {
        cfg.feed.ws_url = u.clone();
    }
    if let Some(u) = &args.rest_url {
        cfg.feed.rest_url = u.clone();
    }
    revalidate(&cfg, &source)?;
    let run_dir = new_run_dir(args.engine.run_dir.as_deref())?;
    let _guard = init_logging(&cfg, &run_dir, args.engine.verbose)?;
    install_tls_provider();
    let mut setup = EngineSetup::new(cfg.clone(), run_dir);
    setup.command_line = std::env::args().collect();
    setup.http = cfg.http.enabled.then_some(cfg.http.bind);
    let outcome = actix::System::new().block_on(engine::run(setup))?;
    print_summary(&outcome.report, &outcome.run_dir, &outcome.reason);
    Ok(outcome.status.exit_code())
}

/// `replay FILE`: a recording through the same feed code and the whole engine.
fn cmd_replay(args: kraken_paper::cli::ReplayArgs) -> Result<u8> {
    let (mut cfg, source) =
        config::load_from_cli_reporting(args.engine.config.as_deref(), &mut show_override)
            .map_err(|e| anyhow!("{e}"))?;
    let explicit_duration = args.engine.duration.is_some();
    apply_engine_opts(&mut cfg, &args.engine)?;
    if !explicit_duration {
        // A replay ends with its recording.
        cfg.run.duration = Span(i64::MAX / 4);
    }
    if let Some(d) = args.depth {
        cfg.feed.book_depth = d;
    }
    if args.engine.http.is_none() {
        cfg.http.enabled = false;
    }
    revalidate(&cfg, &source)?;
    if !args.file.exists() {
        return Err(anyhow!("recording {} does not exist", args.file.display()));
    }
    let instruments_text = match &args.instruments {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            kraken_paper::core::kraken::decode::load_instruments(&text)
                .map_err(|e| anyhow!("--instruments {}: {e}", p.display()))?;
            Some(text)
        }
        None => None,
    };
    let file =
        std::fs::canonicalize(&args.file).with_context(|| format!("recording {}", args.file.display()))?;
    let run_dir = new_run_dir(args.engine.run_dir.as_deref())?;
    let _guard = init_logging(&cfg, &run_dir, args.engine.verbose)?;
    // What `run --resume` needs to play the same recording the same way.
    let source = ReplaySource::new(file, args.batch_events.max(1), instruments_text);
    source.save(&run_dir).map_err(|e| anyhow!("{e}"))?;
    let mut setup = EngineSetup::new(cfg.clone(), run_dir);
    setup.command_line = std::env::args().collect();
    setup.http = cfg.http.enabled.then_some(cfg.http.bind);
    setup.instruments = source.instruments().map_err(|e| anyhow!("{e}"))?;
    setup.replay = Some(source.replay_input());
    let outcome = actix::System::new().block_on(engine::run(setup))?;
    print_summary(&outcome.report, &outcome.run_dir, &outcome.reason);
    Ok(outcome.status.exit_code())
}

/// `run --resume RUN_DIR`: continue a run from its journal (see `run_dir::Resume`).
fn cmd_resume(dir: &Path, args: &RunArgs) -> Result<u8> {
    let run_dir = RunDir::open(dir).map_err(|e| anyhow!("{e}"))?;
    let source = ConfigSource::File(run_dir.file(files::CONFIG));
    let mut cfg =
        Config::load_reporting(&source, std::env::vars(), &mut show_override).map_err(|e| anyhow!("{e}"))?;
    if let Some(f) = args.engine.log_format {
        cfg.logging.format = f;
    }
    if let Some(a) = args.engine.http {
        cfg.http.enabled = true;
        cfg.http.bind = a;
    }
    if args.engine.no_http {
        cfg.http.enabled = false;
    }
    let _guard = init_logging(&cfg, &run_dir, args.engine.verbose)?;
    // Resume re-executes the run: from the same seed, the same recording, or the run's own
    // recording of its live feed (`run_dir::plan_resume`).
    let start = plan_resume(&run_dir, args.lift_halt).map_err(|e| anyhow!("{e}"))?;
    let last_seq = start.resume.last_seq;
    install_tls_provider();
    let mut setup = EngineSetup::new(cfg.clone(), run_dir);
    setup.http = cfg.http.enabled.then_some(cfg.http.bind);
    setup.instruments = start.instruments;
    setup.replay = start.replay;
    setup.resume = Some(start.resume);
    let outcome = actix::System::new().block_on(engine::run(setup))?;
    print_summary(
        &outcome.report,
        &outcome.run_dir,
        &format!("resumed after seq {last_seq}; {}", outcome.reason),
    );
    Ok(outcome.status.exit_code())
}

/// The readable end-of-run summary (`report::summary`).
fn print_summary(r: &serde_json::Value, dir: &Path, reason: &str) {
    print!("{}", kraken_paper::report::summary::summary_text(r, dir, reason));
}

fn cmd_validate(path: &Path) -> Result<()> {
    let source = ConfigSource::File(path.to_path_buf());
    Config::load_reporting(&source, std::env::vars(), &mut show_override).map_err(|e| anyhow!("{e}"))?;
    println!("ok: {} is a valid kraken-paper config", path.display());
    Ok(())
}

fn cmd_record(args: RecordArgs) -> Result<()> {
    check_url_options(args.ws_url.as_deref(), args.rest_url.as_deref())?;
    let (mut cfg, _source) = config::load_from_cli(args.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    if let Some(seed) = args.seed {
        cfg.sim.seed = seed;
    }
    let pairs = if args.pairs.is_empty() { cfg.feed.pairs.clone() } else { args.pairs.clone() };
    let depth = args.depth.unwrap_or(cfg.feed.book_depth);
    match args.source {
        RecordSource::Sim => {
            let events = args.events.unwrap_or(100_000);
            let n = kraken_paper::sources::simulated::record_sim(&cfg.sim, &pairs, depth, events, &args.out)
                .map_err(|e| anyhow!(e))?;
            println!("recorded {n} events from the simulated exchange into {}", args.out.display());
            Ok(())
        }
        RecordSource::Kraken => {
            let duration = match &args.duration {
                Some(d) => {
                    let span = Span::parse(d).map_err(|e| anyhow!("--duration: {e}"))?;
                    Some(std::time::Duration::from_micros(span.as_micros().max(0) as u64))
                }
                None => None,
            };
            let mut endpoint =
                cfg.feed.endpoint(args.ws_url.clone().unwrap_or_else(|| cfg.feed.ws_url.clone()));
            endpoint.pairs = pairs;
            endpoint.depth = depth;
            let settings = kraken_paper::sources::recording::LiveRecordSettings {
                endpoint,
                events: args.events,
                duration,
            };
            let _guard = telemetry::init(cfg.logging.format, &cfg.logging.level, args.verbose, None)?;
            install_tls_provider();
            let out = args.out.clone();
            let summary = actix::System::new()
                .block_on(async move { kraken_paper::sources::recording::record_live(&settings, &out).await })
                .map_err(|e| anyhow!(e))?;
            println!(
                "recorded {} frames ({} book/trade events, {} connection(s)) from {} into {}",
                summary.lines,
                summary.events,
                summary.connections,
                args.ws_url.as_deref().unwrap_or(&cfg.feed.ws_url),
                args.out.display()
            );
            Ok(())
        }
    }
}

/// `--ws-url` / `--rest-url`: refused up front when they are not ws(s):// resp. http(s)://
/// URLs with a host (a bad endpoint would otherwise be retried with backoff for ever).
fn check_url_options(ws_url: Option<&str>, rest_url: Option<&str>) -> Result<()> {
    for (option, url, schemes) in
        [("--ws-url", ws_url, config::WS_SCHEMES), ("--rest-url", rest_url, config::REST_SCHEMES)]
    {
        if let Some(u) = url {
            config::check_endpoint(u, schemes).map_err(|e| anyhow!("{option}: {e}"))?;
        }
    }
    Ok(())
}

fn cmd_report(run_dir: &Path) -> Result<()> {
    let r = kraken_paper::report::write_reports(run_dir).context("report")?;
    print_summary(&r, run_dir, "report rebuilt from the journal");
    Ok(())
}

fn cmd_export(run_dir: &Path, format: kraken_paper::cli::ExportFormat) -> Result<()> {
    let summary = kraken_paper::report::export(run_dir, format)?;
    for f in &summary.files {
        println!("wrote {}", f.display());
    }
    println!("trades={} orders={} fills={}", summary.trades, summary.orders, summary.fills);
    Ok(())
}
