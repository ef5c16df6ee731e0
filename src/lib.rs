//! kraken-paper: a paper-trading engine for Kraken spot markets.
//!
//! Crate map:
//! - [`core`] — pure domain logic (protocol, books, fills, accounting, risk, signals, stats):
//!   no actix, no I/O, no wall clock. [`core::error::Disposition`] classifies failures.
//! - [`config`] — YAML + environment configuration, validated at start-up.
//! - [`actors`] — thin actix actors, each owning one core struct.
//! - [`pipeline`] — the pass protocol: how a batch of market events goes through the actors.
//! - [`messages`] — the messages between actors, in flow order.
//! - [`sources`] — where frames come from (Kraken WS and REST, the embedded simulator,
//!   recordings and the replay reader).
//! - [`engine`] — the one place actors are created and wired (build / run / finish).
//! - [`run_dir`] — the run folder: start files, replay input, resume planning.
//! - [`report`] — report.json / report.html, statistics, exports.
//! - [`http`] — dashboard, metrics and control API.
//! - [`supervision`] — the policy per actor on failure (restart or stop the run), panic
//!   handling, the test hook.
//! - [`telemetry`] — logging and the progress bar.
//! - [`cli`] — the command line.
//!
//! See docs/architecture.md for the actor graph and the message table.

pub mod actors;
pub mod cli;
pub mod config;
pub mod core;
pub mod engine;
pub mod http;
pub mod messages;
pub mod pipeline;
pub mod report;
pub mod run_dir;
pub mod sources;
pub mod supervision;
pub mod telemetry;
