//! Config validation helpers: every check names the full config key it is about, and all
//! problems are collected so that one run of `validate-config` reports them all at once.

use std::fmt;

use rust_decimal::Decimal;

/// One problem with one config key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Full dotted key, e.g. `risk.max_drawdown`.
    pub key: String,
    /// What is wrong, with the offending value.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Collected validation problems.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Issues {
    /// The problems, in the order found.
    pub list: Vec<Issue>,
}

impl Issues {
    /// Records a problem with `key`.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(Issue { key: key.into(), message: message.into() });
    }
    /// Records `message` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.push(key, message());
        }
    }
    /// `value` must be a fraction in (0, 1] (or [0, 1] when `allow_zero`).
    pub fn fraction(&mut self, key: &str, value: Decimal, allow_zero: bool) {
        let ok = value <= Decimal::ONE && (value > Decimal::ZERO || (allow_zero && value.is_zero()));
        self.check(ok, key, || {
            format!(
                "must be a fraction in {}0, 1] (0.1 = 10 %), got {value}",
                if allow_zero { "[" } else { "(" }
            )
        });
    }
    /// Float form of [`Issues::fraction`].
    pub fn fraction_f64(&mut self, key: &str, value: f64, allow_zero: bool) {
        let ok = value.is_finite() && value <= 1.0 && (value > 0.0 || (allow_zero && value == 0.0));
        self.check(ok, key, || {
            format!("must be a fraction in {}0, 1], got {value}", if allow_zero { "[" } else { "(" })
        });
    }
    /// `value` must be > 0.
    pub fn positive(&mut self, key: &str, value: Decimal) {
        self.check(value > Decimal::ZERO, key, || format!("must be greater than 0, got {value}"));
    }
    /// `value` must be ≥ 0.
    pub fn non_negative(&mut self, key: &str, value: Decimal) {
        self.check(value >= Decimal::ZERO, key, || format!("must not be negative, got {value}"));
    }
    /// Float `value` must be > 0 and finite.
    pub fn positive_f64(&mut self, key: &str, value: f64) {
        self.check(value.is_finite() && value > 0.0, key, || format!("must be greater than 0, got {value}"));
    }
    /// Integer `value` must lie in `[lo, hi]`.
    pub fn in_range(&mut self, key: &str, value: i64, lo: i64, hi: i64) {
        self.check((lo..=hi).contains(&value), key, || format!("must be between {lo} and {hi}, got {value}"));
    }
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// Appends another set of issues.
    pub fn extend(&mut self, other: Issues) {
        self.list.extend(other.list);
    }
}

impl fmt::Display for Issues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {issue}")?;
        }
        Ok(())
    }
}
