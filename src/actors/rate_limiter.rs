//! RateLimiter actor: every REST call asks it for a slot first and waits until the call fits
//! Kraken's limits (the pure model is [`RateLimitModel`]).
//!
//! - In: [`Acquire`] (answered after the wait), [`GetUsage`].
//! - Out: nothing; it only delays its callers.
//! - Wall time is right here: the limits are the exchange's, in real seconds; nothing it
//!   decides is journaled.

use actix::prelude::*;

use crate::core::rate_limit::{LimiterUsage, RateLimitModel};
pub use crate::messages::Acquire;

/// Asks for usage figures.
#[derive(Message)]
#[rtype(result = "LimiterUsage")]
pub struct GetUsage;

/// The RateLimiter actor.
pub struct RateLimiter {
    model: RateLimitModel,
    origin: tokio::time::Instant,
}

impl RateLimiter {
    /// A limiter over `model`.
    pub fn new(model: RateLimitModel) -> Self {
        RateLimiter { model, origin: tokio::time::Instant::now() }
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "rate_limiter", "rate limiter started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "rate_limiter", "rate limiter stopped");
    }
}

impl Supervised for RateLimiter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(event = "actor_restarted", actor = "rate_limiter", "rate limiter restarted");
    }
}

impl Handler<Acquire> for RateLimiter {
    type Result = ResponseFuture<f64>;

    fn handle(&mut self, msg: Acquire, _ctx: &mut Self::Context) -> Self::Result {
        let now = tokio::time::Instant::now();
        let now_us =
            i64::try_from(now.saturating_duration_since(self.origin).as_micros()).unwrap_or(i64::MAX);
        let wait_us = self.model.reserve_micros(&msg.call, now_us);
        // Sleep until the absolute slot (origin + slot), not `now + wait`: slots one interval
        // apart then stay exactly one interval apart whatever the timer's rounding.
        let slot = u64::try_from(now_us.saturating_add(wait_us)).unwrap_or(0);
        let deadline = self.origin + std::time::Duration::from_micros(slot);
        Box::pin(async move {
            if wait_us > 0 {
                tokio::time::sleep_until(deadline).await;
            }
            wait_us as f64 / 1e6
        })
    }
}

impl Handler<GetUsage> for RateLimiter {
    type Result = MessageResult<GetUsage>;

    fn handle(&mut self, _msg: GetUsage, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.model.usage().clone())
    }
}
