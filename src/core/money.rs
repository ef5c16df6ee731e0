//! Money and quantities: exact decimals, parsed without a float round trip.
//!
//! Prices, quantities, cash and fees are `rust_decimal::Decimal` throughout the engine.
//! The aliases below name what a value means; [`parse_decimal`] reads Kraken's JSON number
//! text (including exponent notation such as `1e-08`) keeping its exact digits and scale,
//! which the book checksum depends on.

use rust_decimal::Decimal;

/// A price in quote currency per unit of base (e.g. USD per BTC).
pub type Price = Decimal;
/// A quantity of the base asset (e.g. BTC).
pub type Qty = Decimal;
/// An amount of a currency (cash, fees, P&L, equity).
pub type Cash = Decimal;

/// Why a decimal number could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal number {0:?}")]
pub struct DecimalError(pub String);

/// Parses a JSON/decimal number text exactly: `123`, `-0.10000000`, `1e-08`, `2.5E3`.
///
/// The scale of the text is kept (`0.10` has scale 2). Exponents are applied by moving the
/// decimal point, never through `f64`. Values beyond `Decimal`'s 28 digits are refused.
pub fn parse_decimal(s: &str) -> Result<Decimal, DecimalError> {
    parse_decimal_bytes(s.as_bytes()).ok_or_else(|| DecimalError(s.to_string()))
}

/// Byte-slice form of [`parse_decimal`], used by the hot-path frame decoder.
pub fn parse_decimal_bytes(b: &[u8]) -> Option<Decimal> {
    if let Some(d) = parse_plain_decimal(b) {
        return Some(d);
    }
    let mut i = 0;
    let neg = match b.first()? {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut mantissa: u128 = 0;
    let mut scale: i64 = 0;
    let mut digits = 0u32;
    let mut seen_dot = false;
    let mut any = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            any = true;
            if mantissa != 0 || c != b'0' {
                digits += 1;
            }
            if digits > 28 {
                return None;
            }
            mantissa = mantissa * 10 + u128::from(c - b'0');
            if seen_dot {
                scale += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if i < b.len() {
        if b[i] != b'e' && b[i] != b'E' {
            return None;
        }
        i += 1;
        let mut eneg = false;
        if let Some(&s) = b.get(i)
            && (s == b'-' || s == b'+')
        {
            eneg = s == b'-';
            i += 1;
        }
        let start = i;
        let mut exp: i64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            exp = exp * 10 + i64::from(b[i] - b'0');
            if exp > 100 {
                return None;
            }
            i += 1;
        }
        if i == start || i != b.len() {
            return None;
        }
        scale -= if eneg { -exp } else { exp };
    }
    while scale < 0 {
        mantissa = mantissa.checked_mul(10)?;
        scale += 1;
    }
    if scale > 28 {
        return None;
    }
    let m = i128::try_from(mantissa).ok()?;
    let d = Decimal::try_from_i128_with_scale(if neg { -m } else { m }, scale as u32).ok()?;
    Some(d)
}

/// The common case of [`parse_decimal_bytes`]: unsigned digits with at most one `.` and no
/// exponent, short enough (≤ 19 bytes) for the mantissa to fit a `u64`. None otherwise,
/// including for text the general parser refuses; the result is the general parser's.
#[inline]
fn parse_plain_decimal(b: &[u8]) -> Option<Decimal> {
    if b.len() > 19 {
        return None;
    }
    let (mut mantissa, mut scale, mut seen_dot, mut any) = (0u64, 0u32, false, false);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                any = true;
                scale += u32::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if !any {
        return None;
    }
    Decimal::try_from_i128_with_scale(i128::from(mantissa), scale).ok()
}

/// Rounds `value` to `decimals` places toward zero (used for quantities: never round up
/// a quantity the account may not have).
pub fn round_down(value: Decimal, decimals: u32) -> Decimal {
    value.round_dp_with_strategy(decimals, rust_decimal::RoundingStrategy::ToZero)
}

/// Rounds `value` to `decimals` places to the nearest value, ties away from zero (cash).
pub fn round_half_up(value: Decimal, decimals: u32) -> Decimal {
    value.round_dp_with_strategy(decimals, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// Rounds `value` down (toward −∞) to a multiple of `step` (a positive increment).
pub fn floor_to_step(value: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return value;
    }
    (value / step).floor() * step
}

/// Rounds `value` up (toward +∞) to a multiple of `step` (a positive increment).
pub fn ceil_to_step(value: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return value;
    }
    (value / step).ceil() * step
}

/// Converts a float statistic into a Decimal (0 for NaN/∞); for sizing results only.
pub fn from_f64(x: f64) -> Decimal {
    use rust_decimal::prelude::FromPrimitive;
    if x.is_finite() { Decimal::from_f64(x).unwrap_or(Decimal::ZERO) } else { Decimal::ZERO }
}

/// Converts a Decimal to f64 for statistics (never for money arithmetic).
pub fn to_f64(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn keeps_scale_of_wire_text() {
        let d = parse_decimal("0.10000000").unwrap();
        assert_eq!(d.scale(), 8);
        assert_eq!(d.to_string(), "0.10000000");
        assert_eq!(parse_decimal("29430.2").unwrap(), dec!(29430.2));
        assert_eq!(parse_decimal("-4412.1").unwrap(), dec!(-4412.1));
        assert_eq!(parse_decimal("0").unwrap(), dec!(0));
    }

    #[test]
    fn reads_exponent_notation_exactly() {
        assert_eq!(parse_decimal("1e-08").unwrap(), dec!(0.00000001));
        assert_eq!(parse_decimal("1e-08").unwrap().scale(), 8);
        assert_eq!(parse_decimal("2.5E3").unwrap(), dec!(2500));
        assert_eq!(parse_decimal("1.25e-2").unwrap(), dec!(0.0125));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "1e-", "12x", "1e5x"] {
            assert!(parse_decimal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn step_rounding() {
        assert_eq!(floor_to_step(dec!(100.37), dec!(0.1)), dec!(100.3));
        assert_eq!(ceil_to_step(dec!(100.31), dec!(0.1)), dec!(100.4));
        assert_eq!(round_down(dec!(0.123456789), 8), dec!(0.12345678));
    }
}
