//! The pure core: no actix, no I/O, no wall clock, no unseeded randomness.
//!
//! Everything that decides something lives here as plain structs with methods, unit-tested
//! without a runtime. The actors in `crate::actors` own one of these structs each and only
//! move messages in and out.

pub mod aggregator;
pub mod book;
pub mod decisions;
pub mod equity;
pub mod error;
pub mod execution;
pub mod feed;
pub mod fees;
pub mod instrument;
pub mod journal;
pub mod kraken;
pub mod market;
pub mod money;
pub mod orders;
pub mod portfolio;
pub mod rate_limit;
pub mod resume;
pub mod return_grid;
pub mod risk;
pub mod rng;
pub mod signals;
pub mod sim;
pub mod symbol_map;
pub mod time;
pub mod token;
pub mod validate;
