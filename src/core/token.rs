//! Bearer tokens of the HTTP control endpoints and the external signal endpoint: one
//! constant-time comparison for both (the `subtle` crate), so a reply's timing does not leak
//! how much of a token matched.

use subtle::ConstantTimeEq;

/// Whether `given` is exactly `token`, compared in time independent of where they differ
/// (a length mismatch is not secret and answers at once).
pub fn token_matches(given: &str, token: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_the_whole_token() {
        assert!(token_matches("secret", "secret"));
        assert!(!token_matches("secre", "secret"));
        assert!(!token_matches("secreT", "secret"));
        assert!(!token_matches("secretx", "secret"));
        assert!(!token_matches("", "secret"));
    }
}
