//! Frame text as Kraken writes it: fixed-decimal numbers, RFC 3339 timestamps, and the
//! `status` and `heartbeat` frames.

use std::fmt::Write as _;

use rust_decimal::Decimal;

use crate::core::time::EventTime;

/// 10^n as i128 (n ≤ 28).
#[inline]
pub(super) fn pow10(n: u32) -> i128 {
    10i128.pow(n.min(28))
}

/// Writes `mantissa × 10^-scale` with exactly `scale` decimals (`0.10000000`, `94000.0`).
#[inline]
pub(super) fn push_fixed(out: &mut String, mantissa: i128, scale: u32) {
    if mantissa < 0 {
        out.push('-');
    }
    let m = mantissa.unsigned_abs();
    if scale == 0 {
        let _ = write!(out, "{m}");
        return;
    }
    let p = pow10(scale).unsigned_abs();
    let _ = write!(out, "{}.{:0width$}", m / p, m % p, width = scale as usize);
}

/// Writes a Decimal with at least `scale` decimals (its own scale if larger).
#[inline]
pub(super) fn push_decimal(out: &mut String, value: Decimal, scale: u32) {
    let mut v = value;
    if v.scale() < scale {
        v.rescale(scale);
    }
    let _ = write!(out, "{v}");
}

/// Writes `"key":"<rfc3339>"`.
#[inline]
pub(super) fn push_time(out: &mut String, t: EventTime) {
    out.push('"');
    t.write_rfc3339(out);
    out.push('"');
}

/// The `status` frame Kraken pushes on connect.
pub fn status_frame(connection_id: u64) -> String {
    format!(
        r#"{{"channel":"status","data":[{{"api_version":"v2","connection_id":{connection_id},"system":"online","version":"2.0.10"}}],"type":"update"}}"#
    )
}

/// The `heartbeat` frame.
pub const HEARTBEAT_FRAME: &str = r#"{"channel":"heartbeat"}"#;
