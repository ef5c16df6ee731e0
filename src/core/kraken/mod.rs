//! Kraken wire protocol: WS v2 (and v1 for old recordings) frames decoded into market events,
//! books maintained with Kraken's checksum, subscription requests.
//!
//! - [`endpoint`]: a WS feed endpoint, its subscriptions, liveness rules and reconnect backoff.
//! - [`decode`]: the frame decoder ([`decode::FeedDecoder`]) and request builders.
//! - [`instruments`]: instruments from REST AssetPairs or the WS v2 `instrument` channel.
//! - [`symbols`]: the one v1 → v2 pair-name mapping (`XBT/USD` → `BTC/USD`).
//! - [`scan`]: the zero-allocation JSON scanner behind the hot path.
//! - [`rest`]: REST wire types and their pure parsers (the client is `sources::kraken_rest`).
//!
//! Rules: docs/market-data.md.

pub mod decode;
pub mod endpoint;
pub mod instruments;
pub mod rest;
pub mod scan;
pub mod symbols;

pub use instruments::load_instruments;
pub use symbols::{v2_asset, v2_pair, v2_symbol};
