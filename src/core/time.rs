//! Event time: the only clock trading logic may read.
//!
//! Every market event carries the exchange's timestamp; cool-downs, expiries, latency and
//! snapshots are computed from it, never from the wall clock (see docs/architecture.md,
//! "Time and determinism"). Time is kept as integer microseconds since the Unix epoch (UTC),
//! which is the resolution Kraken's WebSocket timestamps carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds in one second.
pub const MICROS_PER_SEC: i64 = 1_000_000;
/// Microseconds in one millisecond.
pub const MICROS_PER_MILLI: i64 = 1_000;

/// A point in event time: microseconds since 1970-01-01T00:00:00Z.
///
/// Serialised as an RFC 3339 string with six fractional digits, e.g.
/// `"2024-05-27T12:43:11.798009Z"` (the shape Kraken's v2 `timestamp` fields use).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(i64);

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not an RFC 3339 UTC timestamp of the form `YYYY-MM-DDTHH:MM:SS[.f…]Z`.
    #[error("invalid RFC 3339 timestamp {0:?} (expected e.g. 2024-05-27T12:43:11.798009Z)")]
    Rfc3339(String),
    /// Not a decimal number of Unix seconds such as `1618678133.365913`.
    #[error("invalid Unix-seconds timestamp {0:?}")]
    UnixSeconds(String),
    /// Not a duration such as `6h`, `90s`, `250ms`, `1d`.
    #[error("invalid duration {0:?} (expected a number and a unit: ms, s, m, h, d; e.g. 6h)")]
    Duration(String),
}

impl EventTime {
    /// The Unix epoch; also used as "no event seen yet".
    pub const ZERO: EventTime = EventTime(0);

    /// From microseconds since the epoch.
    pub const fn from_micros(us: i64) -> Self {
        EventTime(us)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// From whole milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        EventTime(ms * MICROS_PER_MILLI)
    }

    /// Whole milliseconds since the epoch (truncated).
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(MICROS_PER_MILLI)
    }

    /// Seconds since the epoch as a float (statistics and display only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_SEC as f64
    }

    /// This time plus a span of microseconds (saturating).
    pub const fn plus_micros(self, us: i64) -> Self {
        EventTime(self.0.saturating_add(us))
    }

    /// Microseconds from `earlier` to `self` (negative if `earlier` is later).
    pub const fn micros_since(self, earlier: EventTime) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Parses Kraken's RFC 3339 UTC timestamps: `2023-10-06T17:35:55.219022Z`, with 0 to 9
    /// fractional digits (digits beyond microseconds are truncated). A `+00:00` suffix is
    /// accepted in place of `Z`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        parse_rfc3339_bytes(s.as_bytes()).ok_or_else(|| TimeError::Rfc3339(s.to_string()))
    }

    /// Parses Unix seconds with an optional fraction, as Kraken v1 and REST Trades write them
    /// (`"1618678133.365913"`, `1688669597.8277369`). Digits beyond microseconds are truncated.
    pub fn parse_unix_seconds(s: &str) -> Result<Self, TimeError> {
        let err = || TimeError::UnixSeconds(s.to_string());
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let secs: i64 = int.parse().map_err(|_| err())?;
        let mut micros: i64 = 0;
        for (i, b) in frac.bytes().take(6).enumerate() {
            micros += i64::from(b - b'0') * 10i64.pow(5 - i as u32);
        }
        secs.checked_mul(MICROS_PER_SEC).and_then(|v| v.checked_add(micros)).map(EventTime).ok_or_else(err)
    }

    /// Writes the RFC 3339 form with six fractional digits into `out`.
    pub fn write_rfc3339(self, out: &mut String) {
        let secs = self.0.div_euclid(MICROS_PER_SEC);
        let micros = self.0.rem_euclid(MICROS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
    }

    /// The RFC 3339 form with six fractional digits.
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(27);
        self.write_rfc3339(&mut s);
        s
    }

    /// Start of the UTC day (00:00:00) containing this time, shifted by `hour` hours:
    /// the most recent instant `<= self` whose UTC hour is `hour` and minutes/seconds are zero.
    pub fn last_daily_boundary(self, hour: u32) -> EventTime {
        let day = 86_400 * MICROS_PER_SEC;
        let offset = i64::from(hour % 24) * 3600 * MICROS_PER_SEC;
        let shifted = self.0 - offset;
        EventTime(shifted.div_euclid(day) * day + offset)
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for EventTime {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventTime::parse_rfc3339(s)
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        EventTime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

fn two(b: &[u8], i: usize) -> Option<u32> {
    let (a, c) = (*b.get(i)?, *b.get(i + 1)?);
    if a.is_ascii_digit() && c.is_ascii_digit() {
        Some(u32::from(a - b'0') * 10 + u32::from(c - b'0'))
    } else {
        None
    }
}

/// Fast RFC 3339 parser for the fixed layout Kraken uses (no allocation).
pub(crate) fn parse_rfc3339_bytes(b: &[u8]) -> Option<EventTime> {
    time_on_day(b, rfc3339_day(b)?)
}

/// The day of an RFC 3339 timestamp (`YYYY-MM-DD` at its start), in days since 1970-01-01.
fn rfc3339_day(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two(b, 0)? * 100 + two(b, 2)?;
    let (month, day) = (two(b, 5)?, two(b, 8)?);
    if !(1..=12).contains(&month) || day == 0 || day > 31 {
        return None;
    }
    Some(days_from_civil(i64::from(year), month, day))
}

/// An RFC 3339 timestamp whose date (its first ten bytes) is `days` since 1970-01-01: the
/// rest (`THH:MM:SS`, an optional fraction, `Z` or `+00:00`) checked and read.
fn time_on_day(b: &[u8], days: i64) -> Option<EventTime> {
    if b.len() < 20 || (b[10] != b'T' && b[10] != b't' && b[10] != b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Microseconds: the first six digits (fewer are padded, more are cut).
        let kept = (i - start).min(6);
        for &c in &b[start..start + kept] {
            micros = micros * 10 + i64::from(c - b'0');
        }
        micros *= 10i64.pow(6 - kept as u32);
    }
    match &b[i..] {
        b"Z" | b"z" | b"+00:00" => {}
        _ => return None,
    }
    let secs = days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss);
    Some(EventTime(secs * MICROS_PER_SEC + micros))
}

/// [`parse_rfc3339_bytes`] for a stream of timestamps: the day of the last date read is
/// remembered, so a timestamp on the same date only has its time read. The result is always
/// `parse_rfc3339_bytes`'s.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rfc3339Reader {
    /// The last date read (`YYYY-MM-DD`, checked) and its days since 1970-01-01.
    date: Option<([u8; 10], i64)>,
}

impl Rfc3339Reader {
    /// Parses one timestamp.
    pub(crate) fn parse(&mut self, b: &[u8]) -> Option<EventTime> {
        let head = b.first_chunk::<10>()?;
        let days = match self.date {
            Some((date, days)) if date == *head => days,
            _ => {
                let days = rfc3339_day(b)?;
                self.date = Some((*head, days));
                days
            }
        };
        if let Ok(fixed) = <&[u8; 27]>::try_from(b)
            && let Some(t) = kraken_time_on_day(fixed, days)
        {
            return Some(t);
        }
        time_on_day(b, days)
    }
}

/// [`time_on_day`] for Kraken's own layout, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (27 bytes), read
/// at fixed offsets. None for anything else (the general reader then decides).
#[inline]
fn kraken_time_on_day(b: &[u8; 27], days: i64) -> Option<EventTime> {
    if b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'.' || b[26] != b'Z' {
        return None;
    }
    let pair = |i: usize| two(b, i).map(i64::from);
    let (hh, mm, ss) = (pair(11)?, pair(14)?, pair(17)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let micros = pair(20)? * 10_000 + pair(22)? * 100 + pair(24)?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(EventTime(secs * MICROS_PER_SEC + micros))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A span of event time in microseconds, written in config as `6h`, `30m`, `90s`, `250ms`
/// or `1d` (a bare number is refused: the unit must be explicit).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    /// From whole seconds.
    pub const fn from_secs(s: i64) -> Self {
        Span(s * MICROS_PER_SEC)
    }
    /// From whole milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Span(ms * MICROS_PER_MILLI)
    }
    /// Length in microseconds.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    /// Length in seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / MICROS_PER_SEC as f64
    }
    /// Parses `6h`, `1.5h`, `30m`, `90s`, `250ms`, `2d`, `500us`.
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let err = || TimeError::Duration(s.to_string());
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let (num, unit) = t.split_at(split);
        let n: rust_decimal::Decimal = num.parse().map_err(|_| err())?;
        let per: i64 = match unit.trim() {
            "us" => 1,
            "ms" => MICROS_PER_MILLI,
            "s" => MICROS_PER_SEC,
            "m" | "min" => 60 * MICROS_PER_SEC,
            "h" => 3600 * MICROS_PER_SEC,
            "d" => 86_400 * MICROS_PER_SEC,
            _ => return Err(err()),
        };
        use rust_decimal::prelude::ToPrimitive;
        let us = (n * rust_decimal::Decimal::from(per)).trunc().to_i64().ok_or_else(err)?;
        Ok(Span(us))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        for (unit, per) in [
            ("d", 86_400 * MICROS_PER_SEC),
            ("h", 3600 * MICROS_PER_SEC),
            ("m", 60 * MICROS_PER_SEC),
            ("s", MICROS_PER_SEC),
            ("ms", MICROS_PER_MILLI),
        ] {
            if us != 0 && us % per == 0 {
                return write!(f, "{}{unit}", us / per);
            }
        }
        write!(f, "{us}us")
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How fast a simulated run plays: `max` or a multiple of real time (`run.speed`; the
/// simulated source paces its wall clock by it, trading logic never reads it).
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize)]
pub enum Speed {
    /// As fast as the engine can take it.
    #[default]
    Max,
    /// N × real time.
    Times(f64),
}

impl Speed {
    /// Parses `max` or a positive number (`1`, `10`, `0.5`).
    pub fn parse(s: &str) -> Result<Speed, SpeedError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match t.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Times(x)),
            _ => Err(SpeedError(s.to_string())),
        }
    }
}

/// A `speed` that is neither `max` nor a positive number (holds the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("speed must be `max` or a positive number, got {0:?}")]
pub struct SpeedError(pub String);

impl crate::core::error::Classified for SpeedError {
    /// A bad setting refuses the start ([`Disposition::Halt`]).
    ///
    /// [`Disposition::Halt`]: crate::core::error::Disposition::Halt
    fn disposition(&self) -> crate::core::error::Disposition {
        crate::core::error::Disposition::Halt
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(x) => Speed::parse(&x.to_string()),
            Raw::Text(s) => Speed::parse(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kraken_layout_reads_as_the_general_parse_across_the_day() {
        let mut r = Rfc3339Reader::default();
        for h in 0..24 {
            for m in (0..60).step_by(7) {
                for s in [0, 1, 9, 10, 30, 59, 60] {
                    for us in [0, 1, 9, 10, 99_999, 100_000, 123_456, 999_999] {
                        let text = format!("2025-03-04T{h:02}:{m:02}:{s:02}.{us:06}Z");
                        let want = parse_rfc3339_bytes(text.as_bytes());
                        assert!(want.is_some(), "{text}");
                        assert_eq!(r.parse(text.as_bytes()), want, "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn timestamp_reader_gives_the_general_parse_for_every_layout() {
        let mut r = Rfc3339Reader::default();
        for text in [
            "2025-01-01T00:00:03.025085Z",
            "2025-01-01T23:59:59.999999Z",
            "2025-01-01T23:59:60.000000Z",
            "2025-01-01T00:00:03.5Z",
            "2025-01-02T00:00:00.000001Z",
            "2025-01-02T00:00:00Z",
            "2025-01-02T00:00:00.123456789Z",
            "2025-01-02T25:00:00.000000Z",
            "2025-01-02T10:61:00.000000Z",
            "2025-01-02T10:00:00.00000xZ",
            "2024-02-29T12:00:00.000000+00:00",
            "2025-01-02T10:00:00.000000Z",
            // The remembered date with too little after it, and a date alone.
            "2025-01-02T10:00Z",
            "2025-01-02",
            "2025-13-02T10:00:00.000000Z",
            "2025-01-02T10:00:00.000000Z",
            // Kraken's 27-byte layout with each fixed position broken in turn.
            "2025-01-02t10:00:00.000000Z",
            "2025-01-02T10-00:00.000000Z",
            "2025-01-02T10:00-00.000000Z",
            "2025-01-02T10:00:00,000000Z",
            "2025-01-02T10:00:00.000000z",
            "2025-01-02T10:00:00.0000000",
            "2025-01-02T1a:00:00.000000Z",
            "2025-01-02T10:0/:00.000000Z",
            "2025-01-02T10:00:6:.000000Z",
            "2025-01-02T10:00:00.00:000Z",
            "2025-01-02T24:00:00.000000Z",
            "2025-01-02T23:60:00.000000Z",
            "2025-01-02T23:59:61.000000Z",
            "2025-01-02T23:59:60.999999Z",
            "2025-01-02T09:08:07.060504Z",
        ] {
            assert_eq!(r.parse(text.as_bytes()), parse_rfc3339_bytes(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn parses_kraken_timestamps_with_six_and_nine_digits() {
        let t = EventTime::parse_rfc3339("2024-05-27T12:43:11.798009Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-27T12:43:11.798009Z");
        let t9 = EventTime::parse_rfc3339("2023-10-04T16:25:00.000000000Z").unwrap();
        assert_eq!(t9.to_rfc3339(), "2023-10-04T16:25:00.000000Z");
        let t0 = EventTime::parse_rfc3339("2021-03-22T17:18:03Z").unwrap();
        assert_eq!(t0.as_micros(), 1_616_433_483_000_000);
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in ["", "2024-13-01T00:00:00Z", "2024-01-01 00:00:00", "2024-01-01T00:00:00.Z", "yesterday"] {
            assert!(EventTime::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_seconds_round_trip() {
        let t = EventTime::parse_unix_seconds("1618678133.365913").unwrap();
        assert_eq!(t.as_micros(), 1_618_678_133_365_913);
        assert_eq!(t.to_rfc3339(), "2021-04-17T16:48:53.365913Z");
        assert_eq!(
            EventTime::parse_unix_seconds("1688669597.8277369").unwrap().as_micros(),
            1_688_669_597_827_736
        );
        assert!(EventTime::parse_unix_seconds("12a").is_err());
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(Span::parse("6h").unwrap(), Span::from_secs(6 * 3600));
        assert_eq!(Span::parse("250ms").unwrap(), Span::from_millis(250));
        assert_eq!(Span::parse("1.5h").unwrap(), Span::from_secs(5400));
        assert!(Span::parse("6").is_err());
        assert!(Span::parse("h").is_err());
        assert_eq!(Span::from_secs(21600).to_string(), "6h");
    }

    #[test]
    fn daily_boundary_respects_reset_hour() {
        let t = EventTime::parse_rfc3339("2024-01-02T03:30:00Z").unwrap();
        assert_eq!(t.last_daily_boundary(0).to_rfc3339(), "2024-01-02T00:00:00.000000Z");
        assert_eq!(t.last_daily_boundary(5).to_rfc3339(), "2024-01-01T05:00:00.000000Z");
    }
}
