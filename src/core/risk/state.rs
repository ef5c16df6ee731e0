//! The risk core's trading state ([`TradingState`]) and why trading stopped or resumed
//! ([`EmergencyReason`], [`HaltLiftedBy`]).
//!
//! Their text forms are the strings journal records, log fields, report.json and the HTTP
//! API have always shown (`max_drawdown`, `operator`, `cooldown`).

use std::fmt;

use serde::{Serialize, Serializer};

use crate::core::time::EventTime;

/// Why trading was halted (the `reason` of an
/// [`EmergencyStop`](crate::messages::EmergencyStop)).
///
/// Only these two halt the engine today: the daily loss limit refuses new entries
/// (`daily_loss_limit`) but does not halt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmergencyReason {
    /// The equity drawdown passed `max_drawdown` (`max_drawdown`).
    MaxDrawdown,
    /// The operator asked for it (`POST /api/emergency-stop`; `operator`).
    Operator,
}

impl EmergencyReason {
    /// The text form (`max_drawdown`, `operator`).
    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            EmergencyReason::MaxDrawdown => "max_drawdown",
            EmergencyReason::Operator => "operator",
        }
    }
}

impl fmt::Display for EmergencyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EmergencyReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What lifted a halt (the `by` of a [`HaltLifted`](crate::messages::HaltLifted) and of the
/// `halt_lifted` journal record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltLiftedBy {
    /// `halt_cooldown` passed since the halt (`cooldown`).
    Cooldown,
    /// The operator resumed trading (`POST /api/resume`; `operator`).
    Operator,
}

impl HaltLiftedBy {
    /// The text form (`cooldown`, `operator`).
    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            HaltLiftedBy::Cooldown => "cooldown",
            HaltLiftedBy::Operator => "operator",
        }
    }
}

impl fmt::Display for HaltLiftedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HaltLiftedBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether the risk core lets new entries through.
///
/// The engine has no "reducing" state (entries refused, exits allowed) today: a halt
/// refuses every intent, exits included, and PositionBook flattens on the emergency stop.
/// So only the two states the engine has are defined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TradingState {
    /// Trading normally.
    #[default]
    Active,
    /// Halted: every intent is refused until a cool-down or the operator lifts it.
    Halted {
        /// When the halt began.
        since: EventTime,
        /// Why; `None` after a restart (the journaled
        /// [`RiskState`](super::RiskState) keeps only `halted_since`).
        reason: Option<EmergencyReason>,
    },
}

impl TradingState {
    /// The state a journaled `halted_since` describes.
    pub fn from_halted_since(since: Option<EventTime>) -> TradingState {
        match since {
            Some(since) => TradingState::Halted { since, reason: None },
            None => TradingState::Active,
        }
    }

    /// Since when the halt is active (None = not halted).
    #[inline]
    pub fn halted_since(&self) -> Option<EventTime> {
        match *self {
            TradingState::Active => None,
            TradingState::Halted { since, .. } => Some(since),
        }
    }

    /// True while halted.
    #[inline]
    pub fn is_halted(&self) -> bool {
        matches!(self, TradingState::Halted { .. })
    }
}
