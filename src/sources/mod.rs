//! Where frames come from: Kraken's WebSocket (or the embedded simulator, reached through
//! the same client), and recordings for replay; Kraken REST (`kraken_rest`) and what a live
//! run takes from it at start-up (`rest_startup`: fee schedules, warm-up history).

pub mod kraken_rest;
pub mod kraken_ws;
pub mod recording;
pub mod replay;
pub mod rest_startup;
pub mod simulated;
