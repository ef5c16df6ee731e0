//! kraken-paper: a paper-trading engine for Kraken spot markets.
//!
//! Crate map:
//! - [`core`] — pure domain logic (protocol, books, fills, accounting, risk, signals, stats).
//!
//! See docs/architecture.md for the actor graph and the message table.

pub mod core;
