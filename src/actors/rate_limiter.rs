//! RateLimiter actor: every REST call asks it for a slot first and waits until the call fits
//! Kraken's limits (the pure model is [`RateLimitModel`]).
//!
//! - In: [`Acquire`] (answered after the wait), [`GetUsage`].
//! - Out: nothing; it only delays its callers.
//! - Fails: a panic while reserving a slot is caught; the limiter stops itself and its
//!   `actix::Supervisor` restarts it after a backoff (`supervision::Policy::Restart`; the
//!   model's counters survive). The call that hit the panic is answered after that backoff
//!   without a slot of its own.
//! - Wall time is right here: the limits are the exchange's, in real seconds; nothing it
//!   decides is journaled.

use actix::prelude::*;

use crate::core::rate_limit::{LimiterUsage, RateLimitModel};
pub use crate::messages::Acquire;
use crate::supervision::{self, ActorName, Policy, Restarts, Watch};

/// Asks for usage figures.
#[derive(Message)]
#[rtype(result = "LimiterUsage")]
pub struct GetUsage;

/// The RateLimiter actor.
pub struct RateLimiter {
    model: RateLimitModel,
    origin: tokio::time::Instant,
    watch: Watch,
    restarts: Restarts,
}

impl RateLimiter {
    /// A limiter over `model`.
    pub fn new(model: RateLimitModel) -> Self {
        RateLimiter {
            model,
            origin: tokio::time::Instant::now(),
            watch: Watch::inert(ActorName::RateLimiter),
            restarts: Restarts::new(ActorName::RateLimiter),
        }
    }

    /// Reports failures and takes the test hook through `watch` (the engine's supervision).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.watch = watch;
        self
    }
}

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "rate_limiter", "rate limiter started");
        self.restarts.hold(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "rate_limiter", "rate limiter stopped");
    }
}

impl Supervised for RateLimiter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.restarts.restarting("-");
    }
}

impl Handler<Acquire> for RateLimiter {
    type Result = ResponseFuture<f64>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Self::Context) -> Self::Result {
        let now = tokio::time::Instant::now();
        let now_us =
            i64::try_from(now.saturating_duration_since(self.origin).as_micros()).unwrap_or(i64::MAX);
        let reserved = supervision::catch(|| {
            self.watch.tick();
            self.model.reserve_micros(&msg.call, now_us)
        });
        let wait_us = match reserved {
            Ok(w) => w,
            Err(reason) => {
                self.restarts.failed(reason, "-");
                ctx.stop();
                let wait = match ActorName::RateLimiter.policy() {
                    Policy::Restart { backoff } => backoff.delay(self.restarts.attempts() + 1),
                    Policy::StopRun | Policy::StopUnjournaled => std::time::Duration::ZERO,
                };
                return Box::pin(async move {
                    tokio::time::sleep(wait).await;
                    wait.as_secs_f64()
                });
            }
        };
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
