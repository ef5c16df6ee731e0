//! The seeded simulated Kraken market (pure: no I/O, no clock). OWNER: sim helper.
//!
//! Interface contract (used by `sources::simulated` and `engine`); internals are free.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::instrument::Instrument;
use super::time::EventTime;
use super::validate::Issues;

/// `sim.*`: the embedded simulated exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of the market model (`--seed`).
    pub seed: u64,
    /// Event time the simulated clock starts at (never "now").
    pub start_time: EventTime,
    /// Fault injection for tests: the server drops the first connection after this many
    /// market frames (None: never).
    pub drop_connection_after_frames: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            start_time: EventTime::from_micros(1_735_689_600_000_000), // 2025-01-01T00:00:00Z
            drop_connection_after_frames: None,
        }
    }
}

impl SimConfig {
    /// Adds a problem for every out-of-range key (`sim.…`).
    pub fn validate(&self, _is: &mut Issues) {}
}

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
}

/// The market model: correlated price paths, books, trades that deplete the book.
pub struct SimMarket {}

impl SimMarket {
    /// A market for `pairs` (WS v2 symbols) with books of `depth` levels.
    pub fn new(_cfg: &SimConfig, _pairs: &[String], _depth: u16) -> Result<SimMarket, String> {
        todo!()
    }
    /// Instrument metadata of every simulated pair.
    pub fn instruments(&self) -> Vec<Instrument> {
        todo!()
    }
    /// Current simulated event time.
    pub fn now(&self) -> EventTime {
        todo!()
    }
    /// Advances the market by one step and appends the frames it produced (time order).
    pub fn step(&mut self, _out: &mut Vec<SimFrame>) {
        todo!()
    }
    /// A `book` snapshot frame for `pair` (with checksum) at the current time.
    pub fn book_snapshot_frame(&self, _pair: &str) -> Option<String> {
        todo!()
    }
    /// The `instrument` channel snapshot frame.
    pub fn instrument_snapshot_frame(&self) -> String {
        todo!()
    }
}
