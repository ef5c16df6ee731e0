//! REST client and rate limiting against an in-process mock Kraken REST server. OWNER: rest helper.
