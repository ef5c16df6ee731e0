//! Pair profiles: the static description of each simulated pair (precisions, minimums,
//! margin terms, volatility, sizes) and the `instrument` snapshot's asset rows.

use rust_decimal::Decimal;

/// Static description of a simulated pair (numbers from Kraken's instrument channel, prices
/// of 2025-01-01, volatilities typical of 2024–2025).
pub(super) struct Profile {
    pub(super) price: f64,
    pub(super) price_precision: u32,
    pub(super) qty_precision: u32,
    pub(super) qty_min: Decimal,
    pub(super) cost_min: Decimal,
    pub(super) cost_precision: u32,
    /// (margin_initial as Kraken writes it, position_limit_long, position_limit_short).
    pub(super) margin: Option<(&'static str, u64, u64)>,
    pub(super) daily_vol: f64,
    pub(super) beta: f64,
    /// Median displayed level size, in quote currency.
    pub(super) level_notional: f64,
    /// Median taker order size before the caps at the touch, in quote currency (the
    /// emitted trades' median is about 45 % of it).
    pub(super) trade_notional: f64,
    /// 24 h volume at the start, in base units.
    pub(super) volume_24h: f64,
}

/// Approximate USD value of one unit of a quote currency (to size generic pairs).
pub(super) fn quote_usd(code: &str) -> f64 {
    match code {
        "USD" | "USDT" | "USDC" | "DAI" => 1.0,
        "EUR" => 1.04,
        "GBP" => 1.25,
        "CAD" => 0.70,
        "AUD" => 0.62,
        "CHF" => 1.10,
        "JPY" => 0.0064,
        "BTC" | "XBT" => 94_000.0,
        "ETH" => 3_350.0,
        _ => 1.0,
    }
}

pub(super) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(super) fn profile(base: &str, quote: &str) -> Profile {
    let d = |m: i64, s: u32| Decimal::new(m, s);
    match (base, quote) {
        ("BTC", "USD") => Profile {
            price: 93_400.0,
            price_precision: 1,
            qty_precision: 8,
            qty_min: d(10_000, 8),
            cost_min: d(5, 1),
            cost_precision: 5,
            margin: Some(("0.20", 300, 240)),
            daily_vol: 0.028,
            beta: 0.92,
            level_notional: 2_500.0,
            trade_notional: 2_000.0,
            volume_24h: 1_800.0,
        },
        ("ETH", "USD") => Profile {
            price: 3_350.0,
            price_precision: 2,
            qty_precision: 8,
            qty_min: d(200_000, 8),
            cost_min: d(5, 1),
            cost_precision: 5,
            margin: Some(("0.20", 2_700, 1_700)),
            daily_vol: 0.038,
            beta: 0.85,
            level_notional: 2_000.0,
            trade_notional: 1_500.0,
            volume_24h: 22_000.0,
        },
        ("SOL", "USD") => Profile {
            price: 190.0,
            price_precision: 2,
            qty_precision: 8,
            qty_min: d(5_000_000, 8),
            cost_min: d(5, 1),
            cost_precision: 5,
            margin: Some(("0.25", 37_000, 24_000)),
            daily_vol: 0.050,
            beta: 0.80,
            level_notional: 1_500.0,
            trade_notional: 1_000.0,
            volume_24h: 250_000.0,
        },
        ("XRP", "USD") => Profile {
            price: 2.08,
            price_precision: 5,
            qty_precision: 8,
            qty_min: d(1_000_000_000, 8),
            cost_min: d(5, 1),
            cost_precision: 8,
            margin: Some(("0.20", 2_000_000, 1_200_000)),
            daily_vol: 0.055,
            beta: 0.65,
            level_notional: 1_500.0,
            trade_notional: 1_000.0,
            volume_24h: 40_000_000.0,
        },
        ("ETH", "BTC") => Profile {
            price: 0.03585,
            price_precision: 5,
            qty_precision: 8,
            qty_min: d(200_000, 8),
            cost_min: d(2, 5),
            cost_precision: 10,
            margin: Some(("0.20", 1_000, 600)),
            daily_vol: 0.025,
            beta: 0.25,
            level_notional: 0.03,
            trade_notional: 0.02,
            volume_24h: 2_500.0,
        },
        _ => generic_profile(base, quote),
    }
}

/// A plausible profile for a pair without a built-in one: a price between 5 and 15 USD
/// (from a hash of the symbol, so it is stable), a tick of about 1 bp, 4 % daily volatility.
pub(super) fn generic_profile(base: &str, quote: &str) -> Profile {
    let h = fnv1a(&format!("{base}/{quote}"));
    let q_usd = quote_usd(quote);
    let price_usd = 5.0 + (h % 1000) as f64 / 100.0;
    let price = price_usd / q_usd;
    // tick ≤ 1 bp of the price: 10^-pp ≤ price × 1e-4.
    let pp = (4.0 - libm::log10(price)).ceil().clamp(0.0, 10.0) as u32;
    // qty_min ≈ 5 USD rounded down to a power of ten, within the 8 qty decimals.
    let qmin_exp = libm::log10(5.0 / price_usd).floor().clamp(-8.0, 6.0) as i32;
    let qty_min = if qmin_exp >= 0 {
        Decimal::new(10i64.pow(qmin_exp as u32), 0)
    } else {
        Decimal::new(1, (-qmin_exp) as u32)
    };
    let cmin_exp = libm::log10(0.5 / q_usd).floor().clamp(-10.0, 3.0) as i32;
    let cost_min = if cmin_exp >= 0 {
        Decimal::new(5 * 10i64.pow(cmin_exp as u32), 0)
    } else {
        Decimal::new(5, (-cmin_exp) as u32)
    };
    Profile {
        price,
        price_precision: pp,
        qty_precision: 8,
        qty_min,
        cost_min,
        cost_precision: (pp + 4).min(10),
        margin: None,
        daily_vol: 0.04,
        beta: 0.6,
        level_notional: 1_000.0 / q_usd,
        trade_notional: 300.0 / q_usd,
        volume_24h: 1_000_000.0 / price_usd,
    }
}

/// Asset rows of the `instrument` snapshot: (precision, precision_display, borrowable,
/// collateral_value, margin_rate) with Kraken's number spellings.
pub(super) fn asset_row(code: &str) -> (u32, u32, bool, &'static str, Option<&'static str>) {
    match code {
        "USD" | "EUR" | "GBP" | "CAD" | "AUD" | "CHF" => (4, 2, true, "1.00", Some("0.025000")),
        "BTC" => (10, 5, true, "1.00", Some("0.010000")),
        "ETH" => (10, 5, true, "1.00", Some("0.020000")),
        "SOL" => (10, 5, true, "0.90", Some("0.020000")),
        "XRP" => (8, 5, true, "0.00", Some("0.020000")),
        _ => (8, 5, false, "0.00", None),
    }
}
