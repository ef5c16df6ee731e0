//! `execution.*` settings of the paper exchange and the mark convention that values
//! positions.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::margin::MarginConfig;
use crate::core::fees::Tier;
use crate::core::orders::EntryStyle;
use crate::core::time::Span;
use crate::core::validate::Issues;

/// Price used to value open positions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkConvention {
    /// (best bid + best ask) / 2.
    #[default]
    Mid,
    /// Last trade price.
    Last,
    /// The price a position would be closed at: bid for longs, ask for shorts.
    Exit,
}

/// `execution.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// Event time between a decision and the order's arrival at the book (also applied to
    /// cancels and to protective children placed after a fill). Default `50ms`.
    pub latency: Span,
    /// How positions are valued. Default `mid`.
    pub mark: MarkConvention,
    /// Fill resting limits when a trade prints at their price, ignoring the queue ahead
    /// (optimistic; off by default).
    pub fill_at_touch: bool,
    /// 30-day USD trading volume of the account before the run; picks the fee tier together
    /// with the volume the run trades. Default 0 (0.25 % maker / 0.40 % taker).
    pub fee_tier_volume: Decimal,
    /// An entry limit order (origin `intent`) still open this long after reaching the book
    /// is cancelled and its remainder sent as a market order (the "chase"). `0s` disables.
    /// Default `30s`.
    pub entry_timeout: Span,
    /// Kraken verification tier: rate counter threshold/decay and open-order limit.
    /// `starter` | `intermediate` | `pro`, default `intermediate`.
    pub tier: Tier,
    /// Open orders allowed per pair; default (absent) = the tier's limit (80 intermediate).
    pub max_open_orders_per_pair: Option<u32>,
    /// How RiskManager prices entry orders (`market`, `limit`, `post_only`), default
    /// `limit` at the touch. Read by the risk core, not by the paper exchange.
    pub entry: EntryStyle,
    /// Times an entry limit still resting at `entry_timeout` is re-priced to the touch with
    /// Kraken's AmendOrder (another `entry_timeout` each) before the chase cancels it and
    /// sends the remainder as a market order. Default 0: the chase at once.
    pub chase_reprices: u32,
    /// Short margin positions (`execution.margin.*`); off by default.
    pub margin: MarginConfig,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            latency: Span::from_millis(50),
            mark: MarkConvention::Mid,
            fill_at_touch: false,
            fee_tier_volume: Decimal::ZERO,
            entry_timeout: Span::from_secs(30),
            tier: Tier::Intermediate,
            max_open_orders_per_pair: None,
            entry: EntryStyle::default(),
            chase_reprices: 0,
            margin: MarginConfig::default(),
        }
    }
}

impl ExecutionConfig {
    /// Adds a problem for every out-of-range key (`execution.…`).
    pub fn validate(&self, is: &mut Issues) {
        is.check(self.latency.as_micros() >= 0, "execution.latency", || {
            format!("must not be negative, got {}", self.latency)
        });
        is.check(self.latency.as_micros() <= 60_000_000, "execution.latency", || {
            format!("must be at most 60s, got {}", self.latency)
        });
        is.check(self.entry_timeout.as_micros() >= 0, "execution.entry_timeout", || {
            format!("must not be negative (0s disables the chase), got {}", self.entry_timeout)
        });
        is.non_negative("execution.fee_tier_volume", self.fee_tier_volume);
        if let Some(n) = self.max_open_orders_per_pair {
            is.in_range("execution.max_open_orders_per_pair", i64::from(n), 1, 100_000);
        }
        is.in_range("execution.chase_reprices", i64::from(self.chase_reprices), 0, 100);
        self.margin.validate(is);
    }

    /// True when nothing margin- or amend-related differs from the defaults (the config
    /// fingerprint then stays what it was before these keys existed).
    pub fn margin_and_chase_are_default(&self) -> bool {
        self.chase_reprices == 0 && self.margin == MarginConfig::default()
    }

    pub(super) fn open_order_limit(&self) -> u32 {
        self.max_open_orders_per_pair.unwrap_or_else(|| self.tier.max_open_orders())
    }
}
