//! Where frames come from: Kraken's WebSocket (or the embedded simulator, reached through
//! the same client), and recordings for replay.

pub mod kraken_rest;
pub mod kraken_ws;
pub mod recording;
pub mod replay;
pub mod rest_startup;
pub mod simulated;
