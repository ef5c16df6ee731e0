//! The embedded simulated Kraken exchange: a WebSocket server on 127.0.0.1 speaking Kraken's
//! WS v2 protocol, driven by [`crate::core::sim::SimMarket`]. OWNER: sim helper.

use std::path::Path;

use crate::config::Speed;
use crate::core::sim::SimConfig;

/// A running simulated exchange (on its own thread). Dropping it stops the server.
pub struct SimServer {}

impl SimServer {
    /// Starts the server on 127.0.0.1 at a random free port.
    pub fn start(
        _cfg: &SimConfig,
        _pairs: &[String],
        _depth: u16,
        _speed: Speed,
    ) -> Result<SimServer, String> {
        todo!()
    }
    /// `ws://127.0.0.1:PORT` — what MarketFeed connects to (same code path as Kraken).
    pub fn url(&self) -> String {
        todo!()
    }
}

/// `record --source sim`: writes at least `events` book/trade events (≥ 70 % book updates)
/// in the `record` format (`{"ts","dir","msg"}` per line), subscriptions and the instrument
/// snapshot included, so the recording is self-contained.
pub fn record_sim(
    _cfg: &SimConfig,
    _pairs: &[String],
    _depth: u16,
    _events: u64,
    _out: &Path,
) -> Result<u64, String> {
    todo!()
}
