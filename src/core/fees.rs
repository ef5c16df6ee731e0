//! Kraken's spot fee schedule, the rolling 30-day volume that picks the tier, and the
//! per-pair matching-engine trading rate counter (shared/kraken/limits-and-fees.md §2, §4).
//!
//! Used by the paper execution core (`core::execution`) and carried by market events (a
//! pair's REST schedule, [`PairFees`]); plain tables and counters with their own tests. It
//! imports nothing from the other core modules but `time`, so `market` and `orders` can
//! name its types without an import cycle.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};

use crate::core::time::EventTime;

/// Maker or taker, decided by how the order filled.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    /// The order rested on the book and was hit.
    Maker,
    /// The order crossed on arrival.
    Taker,
}

/// Kraken account verification tier (`execution.tier`): sets the trading rate counter's
/// threshold and decay and the open-order limit per pair.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Starter: threshold 60, decay 1/s, 60 open orders per pair.
    Starter,
    /// Intermediate: threshold 125, decay 2.34/s, 80 open orders per pair.
    #[default]
    Intermediate,
    /// Pro: threshold 180, decay 3.75/s, 225 open orders per pair.
    Pro,
}

impl Tier {
    /// Rate counter value above which a transaction is refused.
    pub fn rate_threshold(self) -> Decimal {
        match self {
            Tier::Starter => dec!(60),
            Tier::Intermediate => dec!(125),
            Tier::Pro => dec!(180),
        }
    }
    /// Counter decay per second.
    pub fn rate_decay_per_sec(self) -> Decimal {
        match self {
            Tier::Starter => dec!(1),
            Tier::Intermediate => dec!(2.34),
            Tier::Pro => dec!(3.75),
        }
    }
    /// Open orders allowed per pair.
    pub fn max_open_orders(self) -> u32 {
        match self {
            Tier::Starter => 60,
            Tier::Intermediate => 80,
            Tier::Pro => 225,
        }
    }
}

/// One row of a fee schedule: from `volume` (30-day USD) on, these percentages apply.
struct FeeRow {
    volume: Decimal,
    taker_pct: Decimal,
    maker_pct: Decimal,
}

const fn row(volume: Decimal, taker_pct: Decimal, maker_pct: Decimal) -> FeeRow {
    FeeRow { volume, taker_pct, maker_pct }
}

/// Standard crypto pairs (AssetPairs `fees` / `fees_maker`, 2026-03-06 dump; the "standard"
/// maker column used by BTC/USD, ETH/USD, SOL/USD, DOGE/USD …).
const CRYPTO: [FeeRow; 12] = [
    row(dec!(0), dec!(0.40), dec!(0.25)),
    row(dec!(10000), dec!(0.35), dec!(0.20)),
    row(dec!(50000), dec!(0.24), dec!(0.14)),
    row(dec!(100000), dec!(0.22), dec!(0.12)),
    row(dec!(250000), dec!(0.20), dec!(0.10)),
    row(dec!(500000), dec!(0.18), dec!(0.08)),
    row(dec!(1000000), dec!(0.16), dec!(0.06)),
    row(dec!(2500000), dec!(0.14), dec!(0.04)),
    row(dec!(5000000), dec!(0.12), dec!(0.02)),
    row(dec!(10000000), dec!(0.10), dec!(0.00)),
    row(dec!(100000000), dec!(0.08), dec!(0.00)),
    row(dec!(500000000), dec!(0.05), dec!(0.00)),
];

/// Stablecoin / FX / pegged pairs (base is a stablecoin or fiat): flat maker = taker.
const STABLE: [FeeRow; 8] = [
    row(dec!(0), dec!(0.20), dec!(0.20)),
    row(dec!(50000), dec!(0.16), dec!(0.16)),
    row(dec!(100000), dec!(0.12), dec!(0.12)),
    row(dec!(250000), dec!(0.08), dec!(0.08)),
    row(dec!(500000), dec!(0.04), dec!(0.04)),
    row(dec!(1000000), dec!(0.02), dec!(0.02)),
    row(dec!(10000000), dec!(0.01), dec!(0.00)),
    row(dec!(100000000), dec!(0.001), dec!(0.00)),
];

/// True when `base` is a fiat currency or stablecoin: such pairs use the flat schedule and
/// do not add to the 30-day volume (Kraken support 360039299431).
pub fn is_stable_or_fiat(base: &str) -> bool {
    matches!(
        base,
        "USD"
            | "EUR"
            | "GBP"
            | "CAD"
            | "AUD"
            | "CHF"
            | "JPY"
            | "USDT"
            | "USDC"
            | "DAI"
            | "PYUSD"
            | "USDG"
            | "EURR"
            | "TUSD"
            | "USDS"
            | "RLUSD"
            | "EURT"
            | "USDQ"
            | "EURQ"
    )
}

/// Fee rate as a fraction (0.004 = 0.40 %) for a fill of `liquidity` at 30-day `volume`.
pub fn fee_rate(volume: Decimal, liquidity: Liquidity, stable: bool) -> Decimal {
    let table: &[FeeRow] = if stable { &STABLE } else { &CRYPTO };
    // The applicable row is the last one whose threshold is ≤ the volume.
    let r = table.iter().rev().find(|r| r.volume <= volume).unwrap_or(&table[0]);
    let pct = match liquidity {
        Liquidity::Maker => r.maker_pct,
        Liquidity::Taker => r.taker_pct,
    };
    pct / dec!(100)
}

/// A pair's fee schedule as Kraken's REST AssetPairs publishes it (`fees`, `fees_maker`,
/// `fee_volume_currency`): in live runs it replaces the built-in table for that pair.
///
/// Rows are `(30-day volume threshold, fee in percent)`, strictly ascending by threshold;
/// the applicable row is the last one whose threshold is ≤ the volume (the first one below
/// it), exactly as [`fee_rate`] reads the built-in tables. The thresholds are in the schedule's
/// volume currency, which must be USD: the 30-day volume ([`VolumeTracker`]) is counted in
/// USD (the account currency, assumed to be USD or close to it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairFees {
    /// Taker rows (`fees`).
    pub taker: Vec<(Decimal, Decimal)>,
    /// Maker rows (`fees_maker`).
    pub maker: Vec<(Decimal, Decimal)>,
    /// `fee_volume_currency` as Kraken names it (`ZUSD`).
    pub volume_currency: String,
}

/// Highest fee percentage accepted from a schedule (Kraken's top spot rate is 0.40 %; a
/// larger figure means the answer is not a fee schedule).
const MAX_FEE_PCT: Decimal = dec!(10);

impl PairFees {
    /// A checked schedule. An empty maker table means maker = taker (Kraken omits
    /// `fees_maker` where both pay the same). Refused: an empty taker table, thresholds that
    /// are negative or not strictly ascending, a percentage outside −10…10, and a volume
    /// currency other than USD (`ZUSD`/`USD`).
    pub fn new(
        taker: Vec<(Decimal, Decimal)>,
        maker: Vec<(Decimal, Decimal)>,
        volume_currency: &str,
    ) -> Result<PairFees, FeeError> {
        if !matches!(volume_currency, "ZUSD" | "USD") {
            return Err(FeeError::NotUsd(volume_currency.to_string()));
        }
        let maker = if maker.is_empty() { taker.clone() } else { maker };
        for (name, rows) in [("fees", &taker), ("fees_maker", &maker)] {
            if rows.is_empty() {
                return Err(FeeError::NoRows(name));
            }
            for (i, (vol, pct)) in rows.iter().enumerate() {
                if *vol < Decimal::ZERO || (i > 0 && *vol <= rows[i - 1].0) {
                    return Err(FeeError::Threshold { table: name, row: i, volume: *vol });
                }
                if pct.abs() > MAX_FEE_PCT {
                    return Err(FeeError::Fee { table: name, row: i, pct: *pct });
                }
            }
        }
        Ok(PairFees { taker, maker, volume_currency: volume_currency.to_string() })
    }

    /// Fee rate as a fraction for a fill of `liquidity` at 30-day `volume`. A negative maker
    /// percentage (a rebate) is applied as 0: rebates are not modelled (docs/fill-model.md §6).
    pub fn rate(&self, volume: Decimal, liquidity: Liquidity) -> Decimal {
        let rows = match liquidity {
            Liquidity::Maker => &self.maker,
            Liquidity::Taker => &self.taker,
        };
        let pct = rows.iter().rev().find(|r| r.0 <= volume).or(rows.first()).map_or(Decimal::ZERO, |r| r.1);
        pct.max(Decimal::ZERO) / dec!(100)
    }
}

const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// Rolling 30-day traded volume (USD): the configured starting volume plus what the
/// simulation traded, bucketed per UTC day; buckets older than 30 days drop off.
#[derive(Clone, Debug)]
pub struct VolumeTracker {
    base: Decimal,
    days: BTreeMap<i64, Decimal>,
}

impl VolumeTracker {
    /// Starts from `base` (the account's 30-day volume before the run; never expires).
    pub fn new(base: Decimal) -> Self {
        VolumeTracker { base, days: BTreeMap::new() }
    }
    /// Adds `usd` traded at `now`.
    pub fn add(&mut self, now: EventTime, usd: Decimal) {
        let day = now.as_micros().div_euclid(DAY_MICROS);
        *self.days.entry(day).or_default() += usd;
        // Keep the map small: anything older than the window is gone for good.
        let oldest = day - 30;
        while let Some((&d, _)) = self.days.first_key_value() {
            if d > oldest {
                break;
            }
            self.days.remove(&d);
        }
    }
    /// 30-day volume at `now` (today and the 29 days before).
    pub fn total(&self, now: EventTime) -> Decimal {
        let day = now.as_micros().div_euclid(DAY_MICROS);
        self.base + self.days.range(day - 29..).map(|(_, v)| *v).sum::<Decimal>()
    }
}

/// Kraken's per-pair transaction rate counter: fixed and age-dependent increments, decaying
/// continuously at the tier rate (event time).
#[derive(Clone, Debug, Default)]
pub struct RateCounter {
    value: Decimal,
    at: EventTime,
}

impl RateCounter {
    fn decay(&mut self, now: EventTime, tier: Tier) {
        let dt = now.micros_since(self.at);
        if dt > 0 {
            let secs = Decimal::from(dt) / dec!(1000000);
            self.value = (self.value - tier.rate_decay_per_sec() * secs).max(Decimal::ZERO);
            self.at = now;
        }
    }
    /// Adds `amount` unless the result would exceed the threshold; on refusal returns the
    /// (decayed) counter value and leaves it unchanged.
    pub fn try_add(&mut self, now: EventTime, tier: Tier, amount: Decimal) -> Result<(), Decimal> {
        self.decay(now, tier);
        if self.value + amount > tier.rate_threshold() {
            return Err(self.value);
        }
        self.value += amount;
        Ok(())
    }
    /// Adds `amount` whatever the threshold (safety actions the engine never refuses).
    pub fn force_add(&mut self, now: EventTime, tier: Tier, amount: Decimal) {
        self.decay(now, tier);
        self.value += amount;
    }
    /// Counter value at `now` (decayed, not stored).
    #[cfg(test)]
    pub fn value_at(&self, now: EventTime, tier: Tier) -> Decimal {
        let mut c = self.clone();
        c.decay(now, tier);
        c.value
    }
}

/// Counter cost of cancelling an order that has rested `age_micros` (docs table).
pub fn cancel_penalty(age_micros: i64) -> Decimal {
    let s = age_micros / 1_000_000;
    match s {
        _ if s < 5 => dec!(8),
        _ if s < 10 => dec!(6),
        _ if s < 15 => dec!(5),
        _ if s < 45 => dec!(4),
        _ if s < 90 => dec!(2),
        _ if s < 300 => dec!(1),
        _ => dec!(0),
    }
}

/// Counter cost of amending (resizing) an order that has rested `age_micros`.
pub fn amend_penalty(age_micros: i64) -> Decimal {
    let s = age_micros / 1_000_000;
    dec!(1)
        + match s {
            _ if s < 5 => dec!(3),
            _ if s < 10 => dec!(2),
            _ if s < 15 => dec!(1),
            _ => dec!(0),
        }
}

/// Why a fee schedule cannot be applied ([`PairFees::new`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FeeError {
    /// Tiers counted in a currency other than USD.
    #[error("fee_volume_currency {0:?}: tiers are only applied in USD (the 30-day volume is counted in USD)")]
    NotUsd(String),
    /// An empty table (`fees` or `fees_maker`).
    #[error("{0}: no rows")]
    NoRows(&'static str),
    /// A volume threshold below zero or not above the previous row's.
    #[error("{table}[{row}]: threshold {volume} is negative or not ascending")]
    Threshold {
        /// `fees` or `fees_maker`.
        table: &'static str,
        /// The row.
        row: usize,
        /// Its threshold.
        volume: Decimal,
    },
    /// A percentage outside −10…10.
    #[error("{table}[{row}]: fee {pct} % is out of range")]
    Fee {
        /// `fees` or `fees_maker`.
        table: &'static str,
        /// The row.
        row: usize,
        /// Its percentage.
        pct: Decimal,
    },
}

impl crate::core::error::Classified for FeeError {
    /// A schedule that cannot be applied is refused and the one in force kept
    /// ([`Disposition::Recoverable`]).
    ///
    /// [`Disposition::Recoverable`]: crate::core::error::Disposition::Recoverable
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            FeeError::NotUsd(_) | FeeError::NoRows(_) | FeeError::Threshold { .. } | FeeError::Fee { .. } => {
                crate::core::error::Disposition::Recoverable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_tiers_follow_the_schedule() {
        // 0 volume: 0.25 % maker, 0.40 % taker.
        assert_eq!(fee_rate(dec!(0), Liquidity::Maker, false), dec!(0.0025));
        assert_eq!(fee_rate(dec!(0), Liquidity::Taker, false), dec!(0.004));
        // 9,999.99 is still the first row; 10,000 is the second (0.20 / 0.35).
        assert_eq!(fee_rate(dec!(9999.99), Liquidity::Taker, false), dec!(0.004));
        assert_eq!(fee_rate(dec!(10000), Liquidity::Maker, false), dec!(0.002));
        assert_eq!(fee_rate(dec!(10000), Liquidity::Taker, false), dec!(0.0035));
        // Top tier: maker 0, taker 0.05 %.
        assert_eq!(fee_rate(dec!(600000000), Liquidity::Maker, false), dec!(0));
        assert_eq!(fee_rate(dec!(600000000), Liquidity::Taker, false), dec!(0.0005));
        // Stablecoin schedule is flat: 0.20 % both ways at 0.
        assert_eq!(fee_rate(dec!(0), Liquidity::Maker, true), dec!(0.002));
        assert!(is_stable_or_fiat("USDT") && !is_stable_or_fiat("BTC"));
    }

    #[test]
    fn rest_schedule_rows_pick_the_tier_like_the_built_in_table() {
        let rows = |r: &[(i64, &str)]| -> Vec<(Decimal, Decimal)> {
            r.iter().map(|(v, p)| (Decimal::from(*v), p.parse().unwrap())).collect()
        };
        let f = PairFees::new(
            rows(&[(0, "0.26"), (50000, "0.24"), (100000, "0.22")]),
            rows(&[(0, "0.16"), (50000, "0.14"), (100000, "-0.01")]),
            "ZUSD",
        )
        .unwrap();
        // 49,999.99 is still row 0; 50,000 is row 1; the rebate row pays 0 (not modelled).
        assert_eq!(f.rate(dec!(49999.99), Liquidity::Taker), dec!(0.0026));
        assert_eq!(f.rate(dec!(50000), Liquidity::Maker), dec!(0.0014));
        assert_eq!(f.rate(dec!(200000), Liquidity::Taker), dec!(0.0022));
        assert_eq!(f.rate(dec!(200000), Liquidity::Maker), dec!(0));
        // No maker rows: maker pays the taker rows.
        let same = PairFees::new(rows(&[(0, "0.2")]), vec![], "USD").unwrap();
        assert_eq!(same.rate(dec!(0), Liquidity::Maker), dec!(0.002));
    }

    #[test]
    fn rest_schedules_that_cannot_be_applied_are_refused() {
        let r = |v: i64, p: Decimal| (Decimal::from(v), p);
        let cases = [
            (vec![], vec![], "ZUSD", "fees: no rows"),
            (vec![r(0, dec!(0.26)), r(0, dec!(0.24))], vec![], "ZUSD", "not ascending"),
            (vec![r(-1, dec!(0.26))], vec![], "ZUSD", "negative"),
            (vec![r(0, dec!(40))], vec![], "ZUSD", "out of range"),
            (vec![r(0, dec!(0.26))], vec![], "ZEUR", "only applied in USD"),
        ];
        for (taker, maker, cur, says) in cases {
            let e = PairFees::new(taker, maker, cur).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn volume_window_drops_old_days() {
        let day = DAY_MICROS;
        let mut v = VolumeTracker::new(dec!(1000));
        v.add(EventTime::from_micros(0), dec!(500));
        assert_eq!(v.total(EventTime::from_micros(day * 29)), dec!(1500));
        // 30 days later the first day's 500 has left the window; the base stays.
        assert_eq!(v.total(EventTime::from_micros(day * 30)), dec!(1000));
    }

    #[test]
    fn rate_counter_refuses_the_fourteenth_round_trip_cancel() {
        // Worked example of limits-and-fees.md §2.1: 13 add+cancel round trips (+1 +8) in a
        // burst reach 117; the 14th add brings 118 and its cancel (126 > 125) is refused.
        let mut c = RateCounter::default();
        let t = EventTime::from_micros(0);
        for _ in 0..13 {
            c.try_add(t, Tier::Intermediate, dec!(1)).unwrap();
            c.try_add(t, Tier::Intermediate, cancel_penalty(3_000_000)).unwrap();
        }
        c.try_add(t, Tier::Intermediate, dec!(1)).unwrap();
        assert_eq!(c.try_add(t, Tier::Intermediate, dec!(8)), Err(dec!(118)));
        // Ten seconds later 23.4 has decayed: 118 − 23.4 = 94.6.
        assert_eq!(c.value_at(EventTime::from_micros(10_000_000), Tier::Intermediate), dec!(94.6));
    }

    #[test]
    fn penalties_fall_with_order_age() {
        assert_eq!(cancel_penalty(4_999_999), dec!(8));
        assert_eq!(cancel_penalty(30_000_000), dec!(4));
        assert_eq!(cancel_penalty(300_000_000), dec!(0));
        assert_eq!(amend_penalty(1_000_000), dec!(4));
        assert_eq!(amend_penalty(20_000_000), dec!(1));
    }
}
