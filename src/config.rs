//! Configuration: YAML files read with the `config` crate, every key overridable from the
//! environment (`KRAKEN_PAPER__RISK__MAX_DRAWDOWN=0.1`, see [`env`]), deserialized into typed structs that
//! refuse unknown keys, then validated as a whole so that every problem is reported at once
//! with its full key and the file it came from.
//!
//! Secrets (API tokens) never live here: they come only from the environment (see
//! [`HttpConfig::token_env`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::core::kraken::endpoint::{Reconnect, WsEndpoint};
use crate::core::kraken::rest::RestSettings;
use crate::core::time::Span;
pub use crate::core::time::Speed;
use crate::core::validate::Issues;

/// The configuration `run` uses when no `--config` is given (config/default.yaml, embedded at
/// build time so the binary runs from any directory).
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../config/default.yaml");

/// Prefix of environment overrides; `__` separates key levels ([`env`]).
pub const ENV_PREFIX: &str = "KRAKEN_PAPER";

pub mod env;
pub use env::{EnvError, EnvOverride};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or of the wrong type.
    #[error("config {source_name}: {message}")]
    Load {
        /// File path (or `embedded default`).
        source_name: String,
        /// What went wrong, naming the key where known.
        message: String,
    },
    /// A `KRAKEN_PAPER__…` environment variable names no key or holds no YAML value.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Values out of range or inconsistent.
    #[error("config {source_name} is invalid:\n{issues}")]
    Invalid {
        /// File path (or `embedded default`).
        source_name: String,
        /// Every problem found, each naming its key.
        issues: Issues,
    },
}

/// Where market data comes from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedSource {
    /// The embedded simulated Kraken exchange (offline, seeded).
    #[default]
    Sim,
    /// Kraken's real WebSocket v2 API.
    Kraken,
}

/// `account.*`: the paper account.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    /// Currency equity is reported in (`USD`).
    pub currency: String,
    /// Starting balances per asset (`{USD: 10000}`).
    pub balances: BTreeMap<String, Decimal>,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            currency: "USD".into(),
            balances: BTreeMap::from([("USD".into(), Decimal::from(10_000))]),
        }
    }
}

/// `feed.reconnect.*`: supervised reconnect backoff (wall time).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// First backoff after a failure.
    pub initial_backoff_ms: u64,
    /// Backoff cap.
    pub max_backoff_ms: u64,
    /// Jitter as a fraction of the backoff (0.2 = ±20 %).
    pub jitter: f64,
    /// A connection healthy this long resets the backoff.
    pub healthy_after_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 60_000,
            jitter: 0.2,
            healthy_after_ms: 60_000,
        }
    }
}

/// `feed.warmup.*`: live runs warm the signal models up on Kraken OHLC history before
/// trading (docs/signals.md, "Warm-up").
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmupConfig {
    /// Fetch OHLC history at start-up (default true; live runs only).
    pub enabled: bool,
    /// Longest wait for it before the first WebSocket connection (wall time, default 5000;
    /// 1–60000). Past it the run trades cold.
    pub timeout_ms: u64,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        WarmupConfig { enabled: true, timeout_ms: 5_000 }
    }
}

/// URL schemes `feed.ws_url` / `--ws-url` accept.
pub const WS_SCHEMES: &[&str] = &["ws", "wss"];
/// URL schemes `feed.rest_url` / `--rest-url` accept.
pub const REST_SCHEMES: &[&str] = &["http", "https"];

/// Checks an endpoint before anything connects to it: a URL that parses, with one of
/// `schemes` and a host. A bad one is refused at start-up (the feed would otherwise retry
/// it with backoff for ever). The error quotes the value and says what is expected; the
/// caller puts the config key or option name in front.
pub fn check_endpoint(url: &str, schemes: &[&str]) -> Result<(), EndpointError> {
    let expected = || schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
    let parsed = reqwest::Url::parse(url).map_err(|e| EndpointError::NotAUrl {
        url: url.to_string(),
        reason: e.to_string(),
        expected: expected(),
    })?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(EndpointError::Scheme {
            url: url.to_string(),
            scheme: parsed.scheme().to_string(),
            expected: expected(),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(EndpointError::NoHost { url: url.to_string(), expected: expected() });
    }
    Ok(())
}

/// Why an endpoint is refused ([`check_endpoint`]). Each quotes the value and says what is
/// expected (`expected`: the accepted schemes, e.g. `ws:// or wss://`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The value does not parse as a URL.
    #[error("{url:?} is not a URL ({reason}); expected {expected}HOST[:PORT][/PATH]")]
    NotAUrl {
        /// The value.
        url: String,
        /// The parser's reason.
        reason: String,
        /// The accepted schemes.
        expected: String,
    },
    /// A scheme not in the list.
    #[error("{url:?} has scheme {scheme:?}; expected {expected}")]
    Scheme {
        /// The value.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The accepted schemes.
        expected: String,
    },
    /// No host.
    #[error("{url:?} names no host; expected {expected}HOST[:PORT][/PATH]")]
    NoHost {
        /// The value.
        url: String,
        /// The accepted schemes.
        expected: String,
    },
}

impl crate::core::error::Classified for EndpointError {
    /// A bad endpoint refuses the start ([`Disposition::Halt`]).
    ///
    /// [`Disposition::Halt`]: crate::core::error::Disposition::Halt
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            EndpointError::NotAUrl { .. } | EndpointError::Scheme { .. } | EndpointError::NoHost { .. } => {
                crate::core::error::Disposition::Halt
            }
        }
    }
}

/// `feed.*`: market data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    /// `sim` (embedded simulated exchange) or `kraken` (live).
    pub source: FeedSource,
    /// Pairs to subscribe, in WS v2 form.
    pub pairs: Vec<String>,
    /// Book depth to subscribe: 10, 25, 100, 500 or 1000.
    pub book_depth: u16,
    /// Kraken WebSocket v2 endpoint (live runs).
    pub ws_url: String,
    /// Kraken REST endpoint (live runs).
    pub rest_url: String,
    /// No frame for this long (wall time) → the connection is dead: reconnect.
    pub liveness_timeout_ms: u64,
    /// Send an application `ping` after this long without a frame.
    pub ping_interval_ms: u64,
    /// A book not updated for this long (event time) is stale: no new exposure on it.
    pub stale_book: Span,
    /// Reconnect backoff.
    pub reconnect: ReconnectConfig,
    /// REST client (retries, timeouts) for live runs.
    pub rest: RestSettings,
    /// Signal warm-up on REST OHLC history (live runs).
    pub warmup: WarmupConfig,
}

impl FeedConfig {
    /// The WebSocket feed at `url` as `feed.*` describes it: its pairs and book depth, ping
    /// and liveness timing, reconnect backoff.
    pub fn endpoint(&self, url: String) -> WsEndpoint {
        let ms = std::time::Duration::from_millis;
        WsEndpoint {
            url,
            pairs: self.pairs.clone(),
            depth: self.book_depth,
            ping_interval: ms(self.ping_interval_ms),
            liveness_timeout: ms(self.liveness_timeout_ms),
            reconnect: Reconnect {
                initial_backoff_ms: self.reconnect.initial_backoff_ms,
                max_backoff_ms: self.reconnect.max_backoff_ms,
                jitter: self.reconnect.jitter,
                healthy_after: ms(self.reconnect.healthy_after_ms),
            },
        }
    }
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            source: FeedSource::Sim,
            pairs: vec!["BTC/USD".into(), "ETH/USD".into(), "SOL/USD".into()],
            book_depth: 10,
            ws_url: "wss://ws.kraken.com/v2".into(),
            rest_url: "https://api.kraken.com".into(),
            liveness_timeout_ms: 10_000,
            ping_interval_ms: 5_000,
            stale_book: Span::from_secs(120),
            reconnect: ReconnectConfig::default(),
            rest: Default::default(),
            warmup: WarmupConfig::default(),
        }
    }
}

/// `run.*`: the session.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Market time to run (`6h`); live runs stop after this much event time too.
    pub duration: Span,
    /// `max` or N × real time (simulated runs).
    pub speed: Speed,
    /// Event-time interval of equity snapshots in the journal.
    pub equity_interval: Span,
    /// Close every position when the run ends (SIGINT/SIGTERM or end of duration).
    pub flatten_on_exit: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            duration: Span::from_secs(6 * 3600),
            speed: Speed::Max,
            equity_interval: Span::from_secs(60),
            flatten_on_exit: false,
        }
    }
}

/// How hard the journal pushes records to disk.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// fsync after every record.
    EveryRecord,
    /// Group commit: one fsync per pipeline batch that wrote records (default).
    #[default]
    Batch,
    /// fsync at most every `journal.interval_ms`.
    Interval,
    /// Leave flushing to the OS (fastest, loses the last seconds on power loss).
    Os,
}

/// `journal.*`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Durability policy.
    pub durability: Durability,
    /// fsync interval for `durability: interval`.
    pub interval_ms: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { durability: Durability::Batch, interval_ms: 200 }
    }
}

/// Log output format.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// Log file rotation.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    /// A new file every hour.
    Hourly,
    /// A new file every day.
    #[default]
    Daily,
    /// One file.
    Never,
}

/// `logging.file.*`: optional log files next to stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFileConfig {
    /// Write log files.
    pub enabled: bool,
    /// Folder (relative paths are inside the run folder).
    pub dir: PathBuf,
    /// Rotation period.
    pub rotation: Rotation,
    /// Rotated files kept (besides the live `kraken-paper.log`).
    pub max_files: usize,
    /// Also rotate when the live file would pass this many MiB (0: no size limit).
    pub max_size_mb: u64,
}

impl Default for LogFileConfig {
    fn default() -> Self {
        LogFileConfig {
            enabled: true,
            dir: PathBuf::from("logs"),
            rotation: Rotation::Daily,
            max_files: 7,
            max_size_mb: 100,
        }
    }
}

/// `logging.*`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Filter directive (`info`, `kraken_paper=debug`); `RUST_LOG` wins when set.
    pub level: String,
    /// `human` or `json` (also `--log-format`).
    pub format: LogFormat,
    /// Log files.
    pub file: LogFileConfig,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig { level: "info".into(), format: LogFormat::Human, file: LogFileConfig::default() }
    }
}

/// `http.*`: dashboard, metrics and control API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve HTTP.
    pub enabled: bool,
    /// Address (loopback unless you mean it).
    pub bind: SocketAddr,
    /// Environment variable holding the bearer token for control endpoints.
    pub token_env: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 8089)),
            token_env: "KRAKEN_PAPER_API_TOKEN".into(),
        }
    }
}

/// `external_signals.*`: a local WebSocket endpoint where outside processes push signals
/// (see src/actors/external_signals.rs and docs/signals.md). Off by default.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalSignalsConfig {
    /// Serve the endpoint.
    pub enabled: bool,
    /// Loopback address; port 0 picks a free port (the bound address is logged).
    pub bind: SocketAddr,
    /// Environment variable holding the token clients must send (unset: every connection
    /// is refused).
    pub token_env: String,
}

impl Default for ExternalSignalsConfig {
    fn default() -> Self {
        ExternalSignalsConfig {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8090)),
            token_env: "KRAKEN_PAPER_SIGNAL_TOKEN".into(),
        }
    }
}

/// `report.*`: inputs of report.json's statistics that no trading decision reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Annual risk-free rate (a fraction: 0.05 = 5 % a year) for Sharpe and Sortino; journaled
    /// in `run_started.risk_free_rate`. Default 0.
    pub risk_free_rate: f64,
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Paper account.
    pub account: AccountConfig,
    /// Market data.
    pub feed: FeedConfig,
    /// Session.
    pub run: RunConfig,
    /// Journal.
    pub journal: JournalConfig,
    /// Logs.
    pub logging: LoggingConfig,
    /// HTTP server.
    pub http: HttpConfig,
    /// External signal endpoint (WebSocket).
    pub external_signals: ExternalSignalsConfig,
    /// The embedded simulated exchange.
    pub sim: crate::core::sim::SimConfig,
    /// Paper execution (fill model, latency, fees).
    pub execution: crate::core::execution::ExecutionConfig,
    /// Risk limits and sizing.
    pub risk: crate::core::risk::RiskConfig,
    /// Built-in signal models.
    pub signals: crate::core::signals::SignalsConfig,
    /// Signal aggregation.
    pub aggregator: crate::core::aggregator::AggregatorConfig,
    /// Report statistics.
    pub report: ReportConfig,
}

/// Where a configuration was read from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// The embedded config/default.yaml.
    Embedded,
    /// A file.
    File(PathBuf),
}

impl ConfigSource {
    /// Name used in messages.
    pub fn name(&self) -> String {
        match self {
            ConfigSource::Embedded => "config/default.yaml (embedded)".into(),
            ConfigSource::File(p) => p.display().to_string(),
        }
    }
}

impl Config {
    /// Loads a config from `source`, applies `KRAKEN_PAPER__…` environment overrides (see
    /// [`env`]), and validates it.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        Self::load_with_env(source, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment (tests).
    pub fn load_with_env(
        source: &ConfigSource,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::load_reporting(source, env, &mut |_| {})
    }

    /// [`Config::load_with_env`] that hands each environment override to `report` once it is
    /// resolved to its key, before the config is read and validated (so a value that makes
    /// the config invalid has been shown when the error is).
    pub fn load_reporting(
        source: &ConfigSource,
        env: impl IntoIterator<Item = (String, String)>,
        report: &mut dyn FnMut(&EnvOverride),
    ) -> Result<Config, ConfigError> {
        let source_name = source.name();
        let load_err = |message: String| ConfigError::Load { source_name: source_name.clone(), message };
        let text = match source {
            ConfigSource::Embedded => DEFAULT_CONFIG_YAML.to_string(),
            ConfigSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| load_err(format!("cannot read {}: {e}", p.display())))?,
        };
        let (overrides, env_yaml) = env::resolve(&text, env)?;
        overrides.iter().for_each(&mut *report);
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(&text, config::FileFormat::Yaml));
        if let Some(doc) = env_yaml {
            // Laid over the file like a second file: maps merge, lists and values replace.
            builder = builder.add_source(config::File::from_str(&doc, config::FileFormat::Yaml));
        }
        let built = builder.build().map_err(|e| load_err(e.to_string()))?;
        let cfg: Config =
            built.try_deserialize().map_err(|e| load_err(explain_serde_error(&e.to_string())))?;
        let issues = cfg.validate();
        if issues.is_empty() { Ok(cfg) } else { Err(ConfigError::Invalid { source_name, issues }) }
    }

    /// Checks every value; returns all problems found.
    pub fn validate(&self) -> Issues {
        let mut is = Issues::default();
        is.check(!self.account.currency.trim().is_empty(), "account.currency", || "must not be empty".into());
        for (asset, amount) in &self.account.balances {
            is.non_negative(&format!("account.balances.{asset}"), *amount);
        }
        is.check(!self.feed.pairs.is_empty(), "feed.pairs", || {
            "list at least one pair, e.g. [BTC/USD]".into()
        });
        for (i, p) in self.feed.pairs.iter().enumerate() {
            let ok =
                p.split_once('/').is_some_and(|(b, q)| !b.is_empty() && !q.is_empty() && !q.contains('/'));
            is.check(ok, &format!("feed.pairs[{i}]"), || format!("{p:?} is not a WS v2 symbol like BTC/USD"));
        }
        is.check([10, 25, 100, 500, 1000].contains(&self.feed.book_depth), "feed.book_depth", || {
            format!("must be one of 10, 25, 100, 500, 1000 (Kraken's depths), got {}", self.feed.book_depth)
        });
        for (key, url, schemes) in [
            ("feed.ws_url", &self.feed.ws_url, WS_SCHEMES),
            ("feed.rest_url", &self.feed.rest_url, REST_SCHEMES),
        ] {
            if let Err(e) = check_endpoint(url, schemes) {
                is.push(key, e.to_string());
            }
        }
        is.check(self.feed.liveness_timeout_ms >= 1000, "feed.liveness_timeout_ms", || {
            format!("must be at least 1000 ms, got {}", self.feed.liveness_timeout_ms)
        });
        is.check(self.feed.ping_interval_ms >= 100, "feed.ping_interval_ms", || {
            format!("must be at least 100 ms, got {}", self.feed.ping_interval_ms)
        });
        is.check(self.feed.stale_book.as_micros() > 0, "feed.stale_book", || "must be positive".into());
        let rc = &self.feed.reconnect;
        is.check(rc.initial_backoff_ms > 0, "feed.reconnect.initial_backoff_ms", || {
            "must be positive".into()
        });
        is.check(rc.max_backoff_ms >= rc.initial_backoff_ms, "feed.reconnect.max_backoff_ms", || {
            format!("must be ≥ initial_backoff_ms ({})", rc.initial_backoff_ms)
        });
        is.fraction_f64("feed.reconnect.jitter", rc.jitter, true);
        is.check(self.run.duration.as_micros() > 0, "run.duration", || "must be positive, e.g. 6h".into());
        is.check(self.run.equity_interval.as_micros() > 0, "run.equity_interval", || {
            "must be positive".into()
        });
        is.check(self.journal.interval_ms > 0, "journal.interval_ms", || "must be positive".into());
        is.check(self.logging.file.max_files >= 1, "logging.file.max_files", || "must be at least 1".into());
        is.check(!self.http.token_env.is_empty(), "http.token_env", || {
            "must name an environment variable".into()
        });
        let ext = &self.external_signals;
        // No TLS and a bearer token in the clear: the endpoint is for processes on this host.
        is.check(ext.bind.ip().is_loopback(), "external_signals.bind", || {
            format!("must be a loopback address such as 127.0.0.1:8090, got {}", ext.bind)
        });
        is.check(!ext.token_env.is_empty(), "external_signals.token_env", || {
            "must name an environment variable".into()
        });
        let rf = self.report.risk_free_rate;
        is.check(rf.is_finite() && rf > -1.0 && rf <= 1.0, "report.risk_free_rate", || {
            format!("must be a yearly fraction above -1 and at most 1 (0.05 = 5 %), got {rf}")
        });
        self.feed.rest.validate("feed.rest", &mut is);
        let w = self.feed.warmup.timeout_ms;
        is.check((1..=60_000).contains(&w), "feed.warmup.timeout_ms", || {
            format!("must be 1 to 60000 ms (a short bound: the WS feed waits for it), got {w}")
        });
        self.sim.validate(&mut is);
        self.execution.validate(&mut is);
        self.risk.validate(&mut is);
        // Core reads no files: the model files the signals load are read here.
        let model_files =
            crate::core::signals::ModelFiles { onnx: self.signals.onnx_model_path().map(std::fs::read) };
        self.signals.validate(&mut is, &model_files);
        self.aggregator.validate(&mut is);
        is
    }

    /// A stable fingerprint of everything that can change a journaled decision: the
    /// serialized config without ports, paths and logging (FNV-1a 64 over canonical JSON).
    pub fn fingerprint(&self) -> String {
        let text = self.fingerprint_text();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The canonical JSON the fingerprint hashes.
    fn fingerprint_text(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.remove("http");
            obj.remove("logging");
            // The report's inputs change no trading decision (run_started carries them).
            obj.remove("report");
            if let Some(ext) = obj.get_mut("external_signals").and_then(|e| e.as_object_mut()) {
                ext.remove("bind");
            }
            if let Some(feed) = obj.get_mut("feed").and_then(|f| f.as_object_mut()) {
                feed.remove("ws_url");
                feed.remove("rest_url");
                // Added with the REST warm-up; at its defaults a config keeps the fingerprint
                // it had before (runs from before it still resume).
                if self.feed.warmup.enabled
                    && self.feed.warmup.timeout_ms == WarmupConfig::default().timeout_ms
                {
                    feed.remove("warmup");
                }
            }
            // Keys added with shorts and amends change nothing at their defaults: leave them
            // out then, so a default run keeps the fingerprint (and journal) it had.
            if self.execution.margin_and_chase_are_default()
                && let Some(ex) = obj.get_mut("execution").and_then(|e| e.as_object_mut())
            {
                ex.remove("margin");
                ex.remove("chase_reprices");
            }
        }
        v.to_string()
    }

    /// The effective config as YAML (written into the run folder).
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).unwrap_or_else(|e| format!("# could not serialize config: {e}\n"))
    }
}

/// Rewrites serde's "unknown field `x`, expected … for key `risk`" into a message that leads
/// with the full key (`risk.x`).
fn explain_serde_error(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        let parent = tail.rsplit_once("for key `").and_then(|(_, k)| k.strip_suffix('`'));
        let full = match parent {
            Some(p) if !p.is_empty() => format!("{p}.{field}"),
            _ => field.to_string(),
        };
        let expected = tail.split(" for key").next().unwrap_or("").trim_start_matches(',').trim();
        return format!("unknown key `{full}` ({expected})");
    }
    msg.to_string()
}

/// Loads the config named on the command line, or the embedded default.
pub fn load_from_cli(path: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
    load_from_cli_reporting(path, &mut |_| {})
}

/// [`load_from_cli`] that hands each environment override to `report` ([`Config::load_reporting`]).
pub fn load_from_cli_reporting(
    path: Option<&Path>,
    report: &mut dyn FnMut(&EnvOverride),
) -> Result<(Config, ConfigSource), ConfigError> {
    let source = match path {
        Some(p) => ConfigSource::File(p.to_path_buf()),
        None => ConfigSource::Embedded,
    };
    Config::load_reporting(&source, std::env::vars(), report).map(|c| (c, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_a_known_scheme_and_a_host() {
        for ok in ["wss://ws.kraken.com/v2", "ws://127.0.0.1:8080", "ws://[::1]:9/v2"] {
            assert!(check_endpoint(ok, WS_SCHEMES).is_ok(), "{ok}");
        }
        assert!(check_endpoint("https://api.kraken.com", REST_SCHEMES).is_ok());
        assert!(check_endpoint("http://127.0.0.1:1", REST_SCHEMES).is_ok());
        for (bad, says) in [
            ("notaurl", "is not a URL"),
            ("", "is not a URL"),
            ("https://api.kraken.com", "has scheme \"https\"; expected ws:// or wss://"),
            ("ws://", "empty host"),
            ("wss://:443/v2", "empty host"),
        ] {
            let e = check_endpoint(bad, WS_SCHEMES).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        let e = check_endpoint("wss://ws.kraken.com/v2", REST_SCHEMES).unwrap_err().to_string();
        assert!(e.contains("expected http:// or https://"), "{e}");
    }

    #[test]
    fn bad_endpoints_in_config_name_their_keys() {
        let err = load_text("feed:\n  ws_url: notaurl\n  rest_url: ftp://x\n", &[]).unwrap_err().to_string();
        assert!(err.contains("feed.ws_url") && err.contains("\"notaurl\""), "{err}");
        assert!(err.contains("feed.rest_url") && err.contains("\"ftp\""), "{err}");
    }

    fn load_text(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("kp-cfg-{}-{}", std::process::id(), yaml.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        Config::load_with_env(
            &ConfigSource::File(path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn embedded_default_is_valid() {
        Config::load_with_env(&ConfigSource::Embedded, Vec::new()).unwrap();
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let e = load_text("run:\n  duratoin: 6h\n", &[]).unwrap_err().to_string();
        assert!(e.contains("run.duratoin"), "{e}");
        assert!(e.contains("c.yaml"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = load_text("feed:\n  book_depth: deep\n", &[]).unwrap_err().to_string();
        assert!(e.contains("feed.book_depth"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_all_reported() {
        let e = load_text("feed:\n  book_depth: 11\n  pairs: [BTCUSD]\n", &[]).unwrap_err().to_string();
        assert!(e.contains("feed.book_depth") && e.contains("feed.pairs[0]"), "{e}");
    }

    #[test]
    fn environment_overrides_a_key() {
        let c = load_text("run:\n  duration: 6h\n", &[("KRAKEN_PAPER__RUN__DURATION", "2h")]).unwrap();
        assert_eq!(c.run.duration, Span::from_secs(7200));
    }

    #[test]
    fn environment_overrides_map_entries_in_their_case_and_lists() {
        // Before: BALANCES__USD added a second asset `usd` and left USD at 10000, and
        // FEED__PAIRS could not be given at all.
        let env = [
            ("KRAKEN_PAPER__ACCOUNT__BALANCES__USD".to_string(), "5000".to_string()),
            ("KRAKEN_PAPER__FEED__PAIRS".to_string(), "BTC/USD,ETH/USD".to_string()),
            ("KRAKEN_PAPER__SIGNALS__ENABLED".to_string(), "[ema_cross, rsi]".to_string()),
        ];
        let mut shown = Vec::new();
        let c =
            Config::load_reporting(&ConfigSource::Embedded, env, &mut |o| shown.push(o.to_string())).unwrap();
        assert_eq!(c.account.balances, BTreeMap::from([("USD".to_string(), Decimal::from(5000))]));
        assert_eq!(c.feed.pairs, ["BTC/USD", "ETH/USD"]);
        assert_eq!(
            shown,
            [
                "env: account.balances.USD = 5000 (KRAKEN_PAPER__ACCOUNT__BALANCES__USD)",
                "env: feed.pairs = BTC/USD,ETH/USD (KRAKEN_PAPER__FEED__PAIRS)",
                "env: signals.enabled = [ema_cross, rsi] (KRAKEN_PAPER__SIGNALS__ENABLED)",
            ]
        );
        // A new asset keeps its case beside the file's.
        let env = [("KRAKEN_PAPER__ACCOUNT__BALANCES__ETH".to_string(), "2.50".to_string())];
        let c = Config::load_with_env(&ConfigSource::Embedded, env).unwrap();
        assert_eq!(c.account.balances.keys().collect::<Vec<_>>(), ["ETH", "USD"]);
    }

    #[test]
    fn environment_variable_naming_no_key_is_an_error() {
        let env = [("KRAKEN_PAPER__RISK__MAX_DRAWDWN".to_string(), "0.05".to_string())];
        let e = Config::load_with_env(&ConfigSource::Embedded, env).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown environment variable KRAKEN_PAPER__RISK__MAX_DRAWDWN: no key risk.max_drawdwn \
             (did you mean risk.max_drawdown?)"
        );
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_panic() {
        let e = load_text("garbage: [unclosed\n", &[]).unwrap_err().to_string();
        assert!(e.contains("c.yaml"), "{e}");
    }

    #[test]
    fn external_signals_bind_must_be_loopback() {
        let e = load_text("external_signals:\n  bind: 0.0.0.0:8090\n  token_env: ''\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("external_signals.bind") && e.contains("external_signals.token_env"), "{e}");
        let c = load_text("external_signals:\n  enabled: true\n  bind: 127.0.0.1:0\n", &[]).unwrap();
        assert!(c.external_signals.enabled);
        assert_eq!(c.external_signals.token_env, "KRAKEN_PAPER_SIGNAL_TOKEN", "default kept");
    }

    #[test]
    fn fingerprint_ignores_ports_and_logging() {
        let a = Config::default();
        let mut b = Config::default();
        b.http.bind = "127.0.0.1:9999".parse().unwrap();
        b.external_signals.bind = "127.0.0.1:0".parse().unwrap();
        b.logging.format = LogFormat::Json;
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.run.duration = Span::from_secs(60);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn margin_keys_count_in_the_fingerprint_only_when_set() {
        let a = Config::default();
        // At their defaults the keys are not hashed: the default run keeps the fingerprint it
        // had before they existed.
        let text = a.fingerprint_text();
        assert!(!text.contains("\"margin\"") && !text.contains("chase_reprices"), "{text}");
        let mut b = Config::default();
        b.execution.margin.enabled = true;
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = Config::default();
        c.execution.chase_reprices = 2;
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert!(c.to_yaml().contains("chase_reprices: 2") && a.to_yaml().contains("margin:"));
    }

    #[test]
    fn margin_config_errors_name_the_key() {
        let env = [
            ("KRAKEN_PAPER__EXECUTION__MARGIN__ENABLED".to_string(), "true".to_string()),
            ("KRAKEN_PAPER__EXECUTION__MARGIN__LEVERAGE".to_string(), "20".to_string()),
        ];
        let err = Config::load_with_env(&ConfigSource::Embedded, env).unwrap_err().to_string();
        assert!(err.contains("execution.margin.leverage"), "{err}");
        let env = [("KRAKEN_PAPER__EXECUTION__MARGIN__LEVERGE".to_string(), "3".to_string())];
        let err = Config::load_with_env(&ConfigSource::Embedded, env).unwrap_err().to_string();
        assert!(err.contains("execution.margin.leverge"), "{err}");
    }
}
