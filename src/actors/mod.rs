//! The actor shell: one thin actor per file, each owning one core struct.

pub mod aggregator;
pub mod external_signals;
pub mod journal;
pub mod market_feed;
pub mod position_book;
pub mod rate_limiter;
pub mod risk_manager;
pub mod signal_host;
