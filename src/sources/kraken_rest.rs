//! Kraken REST client (public endpoints) through the RateLimiter. OWNER: rest helper.
