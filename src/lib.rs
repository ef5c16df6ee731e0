//! kraken-paper: a paper-trading engine for Kraken spot markets.
//!
//! Crate map:
//! - [`core`] — pure domain logic (protocol, books, fills, accounting, risk, signals, stats).
//! - [`config`] — YAML + environment configuration, validated at start-up.
//! - [`actors`] — thin actix actors, each owning one core struct.
//! - [`sources`] — where frames come from (Kraken WS, the embedded simulator, recordings).
//! - [`engine`] — the one place actors are created and wired.
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
pub mod telemetry;
