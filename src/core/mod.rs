//! The pure core: no actix, no I/O, no wall clock, no unseeded randomness.
//!
//! Everything that decides something lives here as plain structs with methods, unit-tested
//! without a runtime. The actors in `crate::actors` own one of these structs each and only
//! move messages in and out.

pub mod book;
pub mod decisions;
pub mod instrument;
pub mod journal;
pub mod market;
pub mod money;
pub mod orders;
pub mod portfolio;
pub mod rng;
pub mod time;
pub mod validate;
