//! Short margin positions (pure): the `execution.margin` config, Kraken's margin fee
//! schedule and margin allowance limits, and the margin-level arithmetic.
//!
//! Part of the paper execution core (`core::execution`), which owns the positions and calls
//! these; kept apart because they are tables and formulas with their own tests.
//! docs/fill-model.md ("Short margin positions") cites every figure.
//!
//! Kraken's definitions (support articles 203053116, 203325763, 203053156):
//! - used margin = position cost / leverage; for a short the borrowed base is what is owed,
//!   so its used margin moves with the price: borrowed qty × mark / leverage.
//! - margin level = equity / used margin × 100 (%).
//! - below `margin_call` (80 %): margin call; at or below `margin_stop` (40 %): liquidation.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};

use crate::core::money::{Cash, Price, Qty};
use crate::core::time::EventTime;
use crate::core::validate::Issues;

/// `execution.margin.*`: short selling on margin. Off by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarginConfig {
    /// Allow sells without holdings on marginable pairs (short margin positions) and let
    /// RiskManager open shorts on negative consensus. Default false.
    pub enabled: bool,
    /// Leverage of new shorts, 2…10; each pair caps it at its highest `leverage_sell`
    /// (BTC/USD 10 in AssetPairs, 5 from WS v2 `margin_initial` 0.20). Default 2.
    pub leverage: u32,
    /// Margin fee per borrowed asset, in percent of the borrowed value, charged once when
    /// the position opens and again every 4 hours (`{BTC: 0.01}`); assets not listed use
    /// Kraken's schedule (BTC 0.01, most crypto 0.02).
    pub fee_pct: BTreeMap<String, Decimal>,
    /// Margin allowance per borrowed asset, in that asset's units (`{BTC: 330}`); assets
    /// not listed use Kraken's published allowance, or none where it publishes none.
    pub allowance: BTreeMap<String, Decimal>,
}

impl Default for MarginConfig {
    fn default() -> Self {
        MarginConfig { enabled: false, leverage: 2, fee_pct: BTreeMap::new(), allowance: BTreeMap::new() }
    }
}

impl MarginConfig {
    /// Adds a problem for every out-of-range key (`execution.margin.…`).
    pub fn validate(&self, is: &mut Issues) {
        is.in_range("execution.margin.leverage", i64::from(self.leverage), 2, 10);
        for (asset, pct) in &self.fee_pct {
            is.check(
                *pct >= Decimal::ZERO && *pct <= Decimal::ONE,
                &format!("execution.margin.fee_pct.{asset}"),
                || {
                    format!(
                        "must be a percentage in [0, 1] per 4 hours (Kraken charges 0.01–0.02), got {pct}"
                    )
                },
            );
        }
        for (asset, a) in &self.allowance {
            is.positive(&format!("execution.margin.allowance.{asset}"), *a);
        }
    }

    /// Margin fee in percent (per opening and per 4-hour rollover) for borrowing `asset`.
    pub fn fee_pct(&self, asset: &str) -> Decimal {
        if let Some(p) = self.fee_pct.get(asset) {
            return *p;
        }
        // Kraken support 206161568 (fee table, 2025–2026): BTC 0.01 %, GBP and CAD 0.015 %,
        // USD 0.025 % (longs only), the crypto assets listed (AAVE, ADA, AVAX, BCH, LINK, …)
        // 0.02 %; opening fee = rollover fee per 4 hours.
        match asset {
            "BTC" | "XBT" => dec!(0.01),
            "GBP" | "CAD" => dec!(0.015),
            "USD" => dec!(0.025),
            _ => dec!(0.02),
        }
    }

    /// Largest amount of `asset` the account may borrow in total (None: no published limit).
    pub fn allowance(&self, asset: &str) -> Option<Qty> {
        if let Some(a) = self.allowance.get(asset) {
            return Some(*a);
        }
        // Kraken support 209238787 "Margin allowance limits" (current table, per asset).
        let a = match asset {
            "BTC" | "XBT" => dec!(330),
            "ETH" => dec!(3000),
            "SOL" => dec!(27000),
            "XRP" => dec!(1800000),
            "DOGE" | "XDG" => dec!(6800000),
            "ADA" => dec!(1700000),
            "LTC" => dec!(5900),
            "DOT" => dec!(89000),
            "LINK" => dec!(52000),
            "AVAX" => dec!(10000),
            _ => return None,
        };
        Some(a)
    }
}

/// Event time between two rollover charges (Kraken: every 4 hours the position is open).
pub const ROLLOVER_MICROS: i64 = 4 * 3600 * 1_000_000;

/// A short margin position on one pair: base borrowed from Kraken's margin pool and sold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarginPosition {
    /// Borrowed base quantity still owed (> 0).
    pub qty: Qty,
    /// Quote proceeds of the borrowed part (collateral of the position: spot buys elsewhere
    /// cannot spend it).
    pub proceeds: Cash,
    /// Leverage the position was opened with.
    pub leverage: u32,
    /// Event time of the first fill that borrowed.
    pub opened_at: EventTime,
    /// When the next rollover fee is due.
    pub next_rollover: EventTime,
    /// Fee rate (percent) locked in at opening ("your rollover rate will be locked in at the
    /// time of order execution").
    pub fee_pct: Decimal,
    /// A liquidation order is working on it.
    pub liquidating: bool,
}

impl MarginPosition {
    /// Used margin in quote currency at `mark`: qty × mark / leverage.
    pub fn used_margin(&self, mark: Price) -> Cash {
        used_margin(self.qty, mark, self.leverage)
    }

    /// Takes `qty` off the position (repaid by a buy); returns the proceeds released.
    pub fn repay(&mut self, qty: Qty) -> Cash {
        let q = qty.min(self.qty);
        let released =
            if q == self.qty { self.proceeds } else { (self.proceeds * q / self.qty).round_dp(12) };
        self.qty -= q;
        self.proceeds -= released;
        released
    }
}

/// Used margin of borrowing `qty` at `price` with `leverage` (quote currency).
pub fn used_margin(qty: Qty, price: Price, leverage: u32) -> Cash {
    qty * price / Decimal::from(leverage.max(1))
}

/// Margin level in percent: equity / used margin × 100; None without used margin.
pub fn margin_level(equity: Cash, used: Cash) -> Option<Decimal> {
    (used > Decimal::ZERO).then(|| equity * Decimal::ONE_HUNDRED / used)
}

/// A margin fee: `pct` percent of `qty` × `price`.
pub fn fee(qty: Qty, price: Price, pct: Decimal) -> Cash {
    qty * price * pct / Decimal::ONE_HUNDRED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kraken_margin_example_short_at_5x() {
        // Kraken support 203053156: $5,000 account, short $10,000 of BTC/USD at 50,000 with
        // 5× → 0.2 BTC borrowed, used margin 0.04 BTC = $2,000, margin level 250 %.
        let used = used_margin(dec!(0.2), dec!(50000), 5);
        assert_eq!(used, dec!(2000));
        assert_eq!(margin_level(dec!(5000), used), Some(dec!(250)));
        // At 65,200: unrealized −3,040, equity 1,960; used margin 0.04 × 65,200 = 2,608;
        // level 1,960 / 2,608 = 75.15 % — under the 80 % margin call.
        let used = used_margin(dec!(0.2), dec!(65200), 5);
        assert_eq!(used, dec!(2608));
        assert_eq!(margin_level(dec!(1960), used).map(|l| l.round_dp(2)), Some(dec!(75.15)));
        assert_eq!(margin_level(dec!(1), Decimal::ZERO), None);
    }

    #[test]
    fn fee_rates_and_allowances_follow_kraken_with_overrides() {
        let mut c = MarginConfig::default();
        assert_eq!(
            (c.fee_pct("BTC"), c.fee_pct("ETH"), c.fee_pct("GBP")),
            (dec!(0.01), dec!(0.02), dec!(0.015))
        );
        assert_eq!((c.allowance("BTC"), c.allowance("ZZZ")), (Some(dec!(330)), None));
        c.fee_pct.insert("ETH".into(), dec!(0.05));
        c.allowance.insert("ZZZ".into(), dec!(7));
        assert_eq!((c.fee_pct("ETH"), c.allowance("ZZZ")), (dec!(0.05), Some(dec!(7))));
        // 0.01 % of 0.2 BTC at 50,000 = 1 USD.
        assert_eq!(fee(dec!(0.2), dec!(50000), dec!(0.01)), dec!(1));
    }

    #[test]
    fn repaying_releases_proceeds_pro_rata() {
        let mut p = MarginPosition {
            qty: dec!(2),
            proceeds: dec!(200),
            leverage: 2,
            opened_at: EventTime::ZERO,
            next_rollover: EventTime::ZERO,
            fee_pct: dec!(0.01),
            liquidating: false,
        };
        assert_eq!(p.repay(dec!(0.5)), dec!(50));
        assert_eq!((p.qty, p.proceeds), (dec!(1.5), dec!(150)));
        assert_eq!(p.repay(dec!(5)), dec!(150));
        assert!(p.qty.is_zero() && p.proceeds.is_zero());
    }

    #[test]
    fn config_validation_names_keys() {
        let mut is = Issues::default();
        let c = MarginConfig {
            leverage: 11,
            fee_pct: BTreeMap::from([("BTC".into(), dec!(-1))]),
            allowance: BTreeMap::from([("ETH".into(), dec!(0))]),
            ..Default::default()
        };
        c.validate(&mut is);
        let keys: Vec<_> = is.list.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "execution.margin.leverage",
                "execution.margin.fee_pct.BTC",
                "execution.margin.allowance.ETH"
            ]
        );
        let mut is = Issues::default();
        MarginConfig::default().validate(&mut is);
        assert!(is.is_empty());
    }
}
