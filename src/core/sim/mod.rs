//! The seeded simulated Kraken market (pure: no I/O, no clock).
//!
//! [`SimMarket`] is an event-time market for several pairs that produces exactly the frames
//! Kraken's WebSocket v2 API would send (`book`, `trade`, `ticker`, `heartbeat`, plus the
//! `instrument`, `status` and snapshot frames on request). `sources::simulated` serves them
//! over a real WebSocket; `record_sim` writes them to a file. docs/simulator.md has the model,
//! the calibration against the recordings in shared/data/kraken and the protocol behaviour.
//!
//! The model in one paragraph: every pair has a latent fair log-price driven by a common
//! market factor (loading `beta`, so BTC/ETH returns correlate ≈ 0.75), an idiosyncratic
//! factor, a shared slowly mean-reverting trend, shared stochastic volatility (volatility
//! clustering) and rare jumps. The displayed L2 book follows the fair price: when the fair
//! price leaves the band around the mid, a book update cancels the levels it has passed and
//! joins a new touch on the other side; otherwise updates are "noise" (a resting level is
//! resized, a level is added between two others or inside the spread, a level is cancelled,
//! a missing level is refilled at the deep end). Trades are market orders that take
//! liquidity from the touch, walking levels and depleting them, each followed by the book
//! update that shows it and a ticker. Every decision comes from
//! [`Rng`](crate::core::rng::Rng) streams derived from `sim.seed`, so the same seed and pairs
//! give the same frames byte for byte.
//!
//! Books are kept twice: integer ticks/lots (for the model's arithmetic) and a
//! [`L2Book`](crate::core::book::L2Book) with the pair's precisions (for Kraken's checksum).
//! Both apply every emitted level in order and are cut to the depth after every message,
//! exactly as a client does.
//!
//! Layout: `params` (settings and model constants), `profile` (per-pair profiles), `pair`
//! (per-pair state and draws), `book` (book updates without trades), `trades` (taker orders
//! and the ticker), `wire` (Kraken's number and frame spellings), `market` ([`SimMarket`]).

use std::sync::Arc;

use super::time::EventTime;

mod book;
mod market;
mod pair;
mod params;
mod profile;
mod trades;
mod wire;

#[cfg(test)]
mod tests;

pub use market::{SimError, SimMarket};
pub use params::{SimConfig, TRADE_SNAPSHOT_LEN, VALID_DEPTHS};
pub use wire::{HEARTBEAT_FRAME, status_frame};

/// One frame the simulated exchange would send, with its event time.
#[derive(Clone, Debug)]
pub struct SimFrame {
    /// Event time of the frame.
    pub time: EventTime,
    /// Channel (`book`, `trade`, `ticker`, `heartbeat`, `status`, `instrument`).
    pub channel: &'static str,
    /// Pair, for per-pair channels.
    pub symbol: Option<Arc<str>>,
    /// The Kraken WS v2 JSON text.
    pub text: String,
    /// Book/trade events in the frame (elements of a `book` or `trade` message's `data`);
    /// 0 for other channels.
    pub events: u32,
}
