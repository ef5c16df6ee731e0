//! Instrument metadata: what Kraken's WS v2 `instrument` channel (and REST AssetPairs) say
//! about a pair — precision, increments and minimums — and the rounding rules built on it.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::{Price, Qty};

/// A pair symbol in Kraken WS v2 form (`"BTC/USD"`); cheap to clone.
pub type Symbol = Arc<str>;

/// Trading status of a pair (`status` in the `instrument` channel / AssetPairs).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairStatus {
    /// Normal trading.
    #[default]
    Online,
    /// Only cancels are accepted.
    CancelOnly,
    /// Only post-only limit orders (and cancels) are accepted.
    PostOnly,
    /// Only limit orders are accepted.
    LimitOnly,
    /// Only orders that reduce a position are accepted.
    ReduceOnly,
    /// No new orders and no cancels.
    Maintenance,
    /// The pair no longer trades.
    Delisted,
    /// Kraken's `work_in_progress` (not yet trading).
    WorkInProgress,
}

impl PairStatus {
    /// Reads Kraken's status strings; unknown strings map to `Maintenance` (refuse trading
    /// rather than trade on a pair in an unknown state).
    pub fn from_kraken(s: &str) -> PairStatus {
        match s {
            "online" => PairStatus::Online,
            "cancel_only" => PairStatus::CancelOnly,
            "post_only" => PairStatus::PostOnly,
            "limit_only" => PairStatus::LimitOnly,
            "reduce_only" => PairStatus::ReduceOnly,
            "delisted" => PairStatus::Delisted,
            "work_in_progress" => PairStatus::WorkInProgress,
            _ => PairStatus::Maintenance,
        }
    }

    /// Kraken's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PairStatus::Online => "online",
            PairStatus::CancelOnly => "cancel_only",
            PairStatus::PostOnly => "post_only",
            PairStatus::LimitOnly => "limit_only",
            PairStatus::ReduceOnly => "reduce_only",
            PairStatus::Maintenance => "maintenance",
            PairStatus::Delisted => "delisted",
            PairStatus::WorkInProgress => "work_in_progress",
        }
    }
}

/// Static facts about one pair, as Kraken publishes them.
///
/// Recorded WS v2 `instrument` pair (note the fixed-width numbers on the wire):
/// ```json
/// {"symbol":"ETH/BTC","base":"ETH","quote":"BTC","status":"online","qty_precision":8,
///  "qty_increment":0.00000001,"price_precision":5,"cost_precision":10,"marginable":true,
///  "has_index":true,"cost_min":0.00002,"tick_size":0.00001,"price_increment":0.00001,
///  "qty_min":0.00200000}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// v2 symbol, `BASE/QUOTE`.
    pub symbol: Symbol,
    /// Base asset code (`BTC`).
    pub base: Arc<str>,
    /// Quote asset code (`USD`).
    pub quote: Arc<str>,
    /// Trading status.
    pub status: PairStatus,
    /// Decimals of a price (`pair_decimals` in REST).
    pub price_precision: u32,
    /// Decimals of a quantity (`lot_decimals` in REST).
    pub qty_precision: u32,
    /// Decimals of a cost (price × qty).
    pub cost_precision: u32,
    /// Smallest price step (`tick_size`).
    pub price_increment: Price,
    /// Smallest quantity step.
    pub qty_increment: Qty,
    /// Minimum order quantity (`ordermin`).
    pub qty_min: Qty,
    /// Minimum order cost in quote currency (`costmin`).
    pub cost_min: Decimal,
    /// Whether margin (and so shorting) is available on the pair.
    #[serde(default)]
    pub marginable: bool,
    /// Margin terms for short positions (None: no shorts on this pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<MarginTerms>,
}

/// What Kraken publishes about margin on a pair (REST AssetPairs; the WS v2 `instrument`
/// channel has a subset). Real AssetPairs entry (2026-03-06):
/// ```json
/// {"leverage_sell":[2,3,4,5,6,7,8,9,10],"margin_call":80,"margin_stop":40,
///  "short_position_limit":250}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginTerms {
    /// Highest leverage offered for a short (max of AssetPairs `leverage_sell`; from WS v2:
    /// 1 / `margin_initial`, rounded down).
    pub max_leverage_sell: u32,
    /// Margin level (%) under which the account is in margin call (`margin_call`).
    pub margin_call: u32,
    /// Margin level (%) at or under which positions are liquidated (`margin_stop`).
    pub margin_stop: u32,
    /// Largest short position in base units (`short_position_limit` /
    /// `position_limit_short`); None = not published.
    pub short_position_limit: Option<Qty>,
}

impl MarginTerms {
    /// Margin call and liquidation levels Kraken publishes for every marginable pair (all 242
    /// marginable pairs of the 2026-03-06 AssetPairs dump say 80 / 40); used where the source
    /// (WS v2 `instrument`) does not carry them.
    pub const KRAKEN_MARGIN_CALL: u32 = 80;
    /// See [`MarginTerms::KRAKEN_MARGIN_CALL`].
    pub const KRAKEN_MARGIN_STOP: u32 = 40;
}

impl Instrument {
    /// Rounds a price to the pair's tick toward the passive side: buys down, sells up.
    pub fn round_price_passive(&self, price: Price, is_buy: bool) -> Price {
        let p = if is_buy {
            super::money::floor_to_step(price, self.price_increment)
        } else {
            super::money::ceil_to_step(price, self.price_increment)
        };
        p.round_dp(self.price_precision)
    }

    /// Rounds a quantity down to the pair's increment and precision.
    pub fn round_qty_down(&self, qty: Qty) -> Qty {
        super::money::floor_to_step(qty, self.qty_increment)
            .round_dp_with_strategy(self.qty_precision, rust_decimal::RoundingStrategy::ToZero)
    }

    /// Rounds a cash amount on this pair (cost, fee) to the pair's cost precision.
    pub fn round_cost(&self, cost: Decimal) -> Decimal {
        super::money::round_half_up(cost, self.cost_precision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn btc() -> Instrument {
        Instrument {
            symbol: "BTC/USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            status: PairStatus::Online,
            price_precision: 1,
            qty_precision: 8,
            cost_precision: 5,
            price_increment: dec!(0.1),
            qty_increment: dec!(0.00000001),
            qty_min: dec!(0.00005),
            cost_min: dec!(0.5),
            marginable: true,
            margin: None,
        }
    }

    #[test]
    fn rounds_toward_the_passive_side() {
        let i = btc();
        assert_eq!(i.round_price_passive(dec!(100.37), true), dec!(100.3));
        assert_eq!(i.round_price_passive(dec!(100.31), false), dec!(100.4));
        assert_eq!(i.round_qty_down(dec!(0.123456789)), dec!(0.12345678));
    }

    #[test]
    fn unknown_status_is_not_tradable() {
        assert_eq!(PairStatus::from_kraken("online"), PairStatus::Online);
        assert_eq!(PairStatus::from_kraken("weird"), PairStatus::Maintenance);
    }
}
