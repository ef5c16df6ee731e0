//! Kraken wire protocol: WS v2 (and v1 for old recordings) frames decoded into market events,
//! books maintained with Kraken's checksum, subscription requests.

pub mod decode;
