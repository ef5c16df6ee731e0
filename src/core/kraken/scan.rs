//! A small zero-allocation JSON scanner for the hot path of the frame decoder.
//!
//! Kraken's book and trade frames are parsed straight from the frame text: keys and
//! strings are borrowed slices, numbers are handed over as their raw text (so
//! `0.10000000` keeps its scale and `1e-08` never goes through `f64`), and values the
//! decoder does not need are skipped. The scanner checks JSON syntax as it goes, so a
//! truncated or garbled frame becomes an error naming the byte offset, never a panic.
//! Cold-path messages (acks, instruments) use `serde_json` instead.

use std::borrow::Cow;

/// Nesting limit for skipped values (a hostile frame must not overflow the stack).
const MAX_DEPTH: u32 = 128;

/// Bytes that end the plain run of a string: the quote, a backslash, control characters.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// High bit set in each byte of `word` (little-endian) that is a quote, a backslash or a
/// control character. Bytes above the first such byte may be flagged wrongly (borrows run
/// upward), so only the lowest flag counts.
#[inline]
fn string_stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero_byte(quote) | zero_byte(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGH
}

/// `'0'` in every byte of a word.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// Powers of ten up to 10^19.
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// High bit set in each byte of `word` that is not an ASCII digit. As with
/// [`string_stops`], only the lowest flag counts (a carry may run upward from it).
#[inline]
fn non_digits(word: u64) -> u64 {
    let x = word ^ ZEROS;
    (x.wrapping_add(0x7676_7676_7676_7676) | x) & 0x8080_8080_8080_8080
}

/// The value of eight ASCII digits loaded little-endian (the first digit most significant).
#[inline]
fn eight_digits(word: u64) -> u64 {
    let x = word.wrapping_sub(ZEROS);
    let x = (x.wrapping_mul(10).wrapping_add(x >> 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x.wrapping_mul(100).wrapping_add(x >> 16)) & 0x0000_FFFF_0000_FFFF;
    (x.wrapping_mul(10_000).wrapping_add(x >> 32)) & 0xFFFF_FFFF
}

/// The ASCII digits at the start of `b`, eight at a time: their count and their value
/// (exact up to 19 digits, wrapping beyond).
#[inline]
fn digits(b: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    let mut n = 0;
    while let Some(chunk) = b.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let stops = non_digits(word);
        if stops == 0 {
            value = value.wrapping_mul(100_000_000).wrapping_add(eight_digits(word));
            n += 8;
            continue;
        }
        let k = (stops.trailing_zeros() / 8) as usize;
        if k > 0 {
            // The k digits moved to the top of the word, '0's below them.
            let bits = 8 * k as u32;
            let word = (word << (64 - bits)) | (ZEROS >> bits);
            value = value.wrapping_mul(POW10[k]).wrapping_add(eight_digits(word));
        }
        return (value, n + k);
    }
    while let Some(&c @ b'0'..=b'9') = b.get(n) {
        value = value.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        n += 1;
    }
    (value, n)
}

/// How many ASCII digits `b` starts with, eight at a time.
#[inline]
fn digit_run(b: &[u8]) -> usize {
    let mut n = 0;
    while let Some(chunk) = b.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        let stops = non_digits(u64::from_le_bytes(*chunk));
        if stops != 0 {
            return n + (stops.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while b.get(n).is_some_and(u8::is_ascii_digit) {
        n += 1;
    }
    n
}

/// `a == b` for slices of equal length: 4 to 32 bytes as (overlapping) words, which
/// becomes a few compares against constants when `b` is a literal; longer ones as slices.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word =
        |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
    let half =
        |s: &[u8], at: usize| s.get(at..at + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
    match b.len() {
        n @ 4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        n @ 8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        n @ 17..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

/// A JSON syntax error: what was expected and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    /// What was wrong.
    pub what: &'static str,
    /// Byte offset in the scanned text.
    pub at: usize,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Result of a scanner step.
pub type ScanResult<T> = Result<T, ScanError>;

/// A JSON string as it appears in the text: the bytes between the quotes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct JStr<'a> {
    /// Raw text between the quotes (escapes not decoded).
    pub raw: &'a str,
    /// True when `raw` contains a backslash escape.
    pub escaped: bool,
}

impl<'a> JStr<'a> {
    /// The decoded string (borrowed unless it contained escapes).
    pub fn text(&self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        Cow::Owned(unescape(self.raw))
    }

    /// True when the string is exactly `s` (escaped strings never match: Kraken's keys and
    /// enum values contain no escapes).
    pub fn is(&self, s: &str) -> bool {
        !self.escaped && self.raw == s
    }
}

/// Decodes JSON escapes (input already validated by the scanner).
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let hi = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: `\uD83D\uDE00`.
                    let rest: String = chars.by_ref().take(6).collect();
                    let lo = rest.strip_prefix("\\u").and_then(|h| u32::from_str_radix(h, 16).ok());
                    match lo {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        }
                        _ => 0xFFFD,
                    }
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A cursor over one JSON text.
#[derive(Clone, Debug)]
pub struct Scan<'a> {
    s: &'a str,
    i: usize,
    depth: u32,
}

impl<'a> Scan<'a> {
    /// A scanner at the start of `s`.
    pub fn new(s: &'a str) -> Self {
        Scan { s, i: 0, depth: 0 }
    }

    #[cold]
    fn err<T>(&self, what: &'static str) -> ScanResult<T> {
        Err(ScanError { what, at: self.i })
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// Skips whitespace.
    #[inline]
    fn ws(&mut self) {
        let b = self.bytes();
        // Kraken's frames are compact: the common case is no whitespace at all.
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8, what: &'static str) -> ScanResult<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// Consumes `lit` if the text continues with exactly these bytes (no whitespace skipped):
    /// the fast path for the compact layout Kraken sends, e.g. `{"price":`.
    #[inline(always)]
    pub fn lit(&mut self, lit: &[u8]) -> bool {
        match self.bytes().get(self.i..self.i + lit.len()) {
            Some(text) if same_bytes(text, lit) => {
                self.i += lit.len();
                true
            }
            _ => false,
        }
    }

    /// Runs `read` from the cursor; where it gives None the cursor goes back where it was
    /// (how the compact readers leave a frame to the general scan).
    #[inline]
    pub fn attempt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let at = self.clone();
        let value = read(self);
        if value.is_none() {
            *self = at;
        }
        value
    }

    /// Consumes the string `"text"` if the text continues with exactly these bytes (`text`
    /// itself must need no escaping).
    #[inline]
    pub fn quoted(&mut self, text: &[u8]) -> bool {
        let n = text.len();
        match self.bytes().get(self.i..self.i + n + 2) {
            Some([b'"', inner @ .., b'"']) if same_bytes(inner, text) => {
                self.i += n + 2;
                true
            }
            _ => false,
        }
    }

    /// Reads a string of exactly `N` bytes when `read` accepts them, for values with a fixed
    /// layout such as Kraken's timestamps. `read` must refuse any quote, backslash or control
    /// byte (what a string cannot hold unescaped). None (cursor unchanged) otherwise.
    #[inline]
    pub fn fixed_str<const N: usize, T>(&mut self, read: impl FnOnce(&[u8; N]) -> Option<T>) -> Option<T> {
        let b = self.bytes().get(self.i..self.i + N + 2)?;
        let (open, rest) = b.split_first()?;
        let (inner, close) = rest.split_first_chunk::<N>()?;
        if *open != b'"' || close != b"\"" {
            return None;
        }
        let value = read(inner)?;
        self.i += N + 2;
        Some(value)
    }

    /// Byte offset of the cursor.
    pub fn pos(&self) -> usize {
        self.i
    }

    /// The text from byte offset `start` to the cursor.
    pub fn text_since(&self, start: usize) -> &'a str {
        self.s.get(start..self.i).unwrap_or("")
    }

    /// Succeeds when only whitespace is left.
    pub fn end(&mut self) -> ScanResult<()> {
        if self.peek().is_some() { self.err("trailing characters after the JSON value") } else { Ok(()) }
    }

    /// Reads a string.
    #[inline]
    pub fn str(&mut self) -> ScanResult<JStr<'a>> {
        self.eat(b'"', "expected a string")?;
        let b = self.bytes();
        let start = self.i;
        let mut escaped = false;
        loop {
            // Jump to the next byte that needs a look (quote, backslash, control character),
            // eight bytes at a time while eight are left.
            let mut j = self.i;
            while let Some(word) = b.get(j..j + 8) {
                let stops = string_stops(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
                if stops != 0 {
                    j += (stops.trailing_zeros() / 8) as usize;
                    break;
                }
                j += 8;
            }
            while j < b.len() && !STRING_STOP[usize::from(b[j])] {
                j += 1;
            }
            if j >= b.len() {
                // The error names where the unterminated run began.
                break;
            }
            self.i = j;
            match b[self.i] {
                b'"' => {
                    let raw = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(JStr { raw, escaped });
                }
                b'\\' => {
                    escaped = true;
                    match b.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u') => {
                            let hex = b.get(self.i + 2..self.i + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.err("invalid \\u escape in string");
                            }
                            self.i += 6;
                        }
                        _ => return self.err("invalid escape in string"),
                    }
                }
                0..=0x1F => return self.err("control character in string"),
                _ => self.i += 1,
            }
        }
        self.err("unterminated string")
    }

    /// Reads a number and returns its text (validated JSON number syntax).
    #[inline]
    pub fn number(&mut self) -> ScanResult<&'a str> {
        self.ws();
        let b = self.bytes();
        let start = self.i;
        let mut i = self.i;
        let run = |i: usize| b.get(i..).map_or(0, digit_run);
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int = run(i);
        if int == 0 {
            return self.err("expected a number");
        }
        i += int;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let f = run(i);
            if f == 0 {
                self.i = i;
                return self.err("digits expected after the decimal point");
            }
            i += f;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let e = run(i);
            if e == 0 {
                self.i = i;
                return self.err("digits expected in the exponent");
            }
            i += e;
        }
        self.i = i;
        Ok(&self.s[start..i])
    }

    /// Skips a non-negative number written plainly, digits with an optional fraction and no
    /// exponent (`1735689600.123456`), as [`Self::number`] would read it; false (cursor
    /// unchanged) for anything else, which the caller reads the general way.
    #[inline]
    pub fn skip_plain_number(&mut self) -> bool {
        let b = self.bytes().get(self.i..).unwrap_or_default();
        let mut n = digit_run(b);
        if n == 0 {
            return false;
        }
        if b.get(n) == Some(&b'.') {
            let f = b.get(n + 1..).map_or(0, digit_run);
            if f == 0 {
                return false;
            }
            n += 1 + f;
        }
        if matches!(b.get(n), Some(b'e' | b'E')) {
            return false;
        }
        self.i += n;
        true
    }

    /// Reads an unsigned plain decimal written without whitespace or exponent, at most 19
    /// bytes (`29430.2`, `0.18967538`): the value [`Self::number`] and
    /// [`crate::core::money::parse_decimal_bytes`] give, scale as written, in one pass. None
    /// (cursor unchanged) for anything else, which the caller reads the general way.
    #[inline]
    pub fn plain_decimal(&mut self) -> Option<rust_decimal::Decimal> {
        // Digit by digit: the numbers here are short, where this beats eight at a time.
        let b = self.bytes();
        let start = self.i;
        let mut i = start;
        let mut mantissa = 0u64;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut scale = 0u32;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let f = i;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                i += 1;
            }
            if i == f {
                return None;
            }
            scale = (i - f) as u32;
        }
        // At most 19 bytes: the mantissa has at most 19 digits and did not wrap.
        if i - start > 19 || matches!(b.get(i), Some(b'e' | b'E')) {
            return None;
        }
        self.i = i;
        // A mantissa below 2^64 is the low and middle words (scale at most 18).
        Some(rust_decimal::Decimal::from_parts(mantissa as u32, (mantissa >> 32) as u32, 0, false, scale))
    }

    /// Reads a non-negative integer that fits in u64.
    pub fn u64(&mut self) -> ScanResult<u64> {
        // Up to 19 plain digits (the usual case) cannot overflow and are read eight at a
        // time; 20 digits are checked one by one; anything else is read the general way.
        let b = self.bytes();
        let (value, n) = b.get(self.i..).map_or((0, 0), digits);
        if (1..=19).contains(&n) && !matches!(b.get(self.i + n), Some(b'.' | b'e' | b'E')) {
            self.i += n;
            return Ok(value);
        }
        let mut i = self.i;
        let mut n = 0u64;
        let mut fits = true;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            match n.checked_mul(10).and_then(|n| n.checked_add(u64::from(c - b'0'))) {
                Some(v) => n = v,
                None => fits = false,
            }
            i += 1;
        }
        if fits && i > self.i && !matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
            self.i = i;
            return Ok(n);
        }
        let at = self.i;
        let t = self.number()?;
        t.parse::<u64>().map_err(|_| ScanError { what: "expected an unsigned integer", at })
    }

    /// Reads `true` or `false`.
    pub fn bool(&mut self) -> ScanResult<bool> {
        self.ws();
        let rest = &self.bytes()[self.i..];
        if rest.starts_with(b"true") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Ok(false)
        } else {
            self.err("expected true or false")
        }
    }

    /// Skips one value of any type and returns its text.
    pub fn skip(&mut self) -> ScanResult<&'a str> {
        self.ws();
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                self.str()?;
            }
            Some(b'{') => {
                self.nest()?;
                let mut first = true;
                while self.key(&mut first)?.is_some() {
                    self.skip()?;
                }
                self.depth -= 1;
            }
            Some(b'[') => {
                self.nest()?;
                let mut first = true;
                while self.item(&mut first)? {
                    self.skip()?;
                }
                self.depth -= 1;
            }
            Some(b't' | b'f') => {
                self.bool()?;
            }
            Some(b'n') if self.bytes()[self.i..].starts_with(b"null") => self.i += 4,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            _ => return self.err("expected a JSON value"),
        }
        Ok(&self.s[start..self.i])
    }

    fn nest(&mut self) -> ScanResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { self.err("JSON nested too deeply") } else { Ok(()) }
    }

    /// Iterates an object: call with `first = true` before the `{`; returns the next key
    /// (the `:` consumed, the value next) or None after the closing `}`.
    #[inline]
    pub fn key(&mut self, first: &mut bool) -> ScanResult<Option<JStr<'a>>> {
        if *first {
            self.eat(b'{', "expected an object")?;
            *first = false;
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(None);
            }
        } else {
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(None);
                }
                _ => return self.err("expected , or } in object"),
            }
        }
        let k = self.str()?;
        self.eat(b':', "expected : after an object key")?;
        Ok(Some(k))
    }

    /// [`Self::key`] with a guess of the next key (the one Kraken sends there): when the text
    /// continues with exactly `{"hint":` or `,"hint":` it is taken without the general
    /// scan; otherwise (or with no hint) this is [`Self::key`]. `hint` holds no quote,
    /// backslash or control character.
    #[inline]
    pub fn key_hint(&mut self, first: &mut bool, hint: Option<&'static str>) -> ScanResult<Option<JStr<'a>>> {
        if let Some(h) = hint {
            let b = self.bytes();
            let i = self.i;
            let n = h.len();
            let open = if *first { b'{' } else { b',' };
            // Byte by byte: keys are short, and a slice comparison would call `memcmp`.
            let same = |at: usize, want: &[u8]| {
                b.get(at..at + want.len()).is_some_and(|got| got.iter().zip(want).all(|(x, y)| x == y))
            };
            if b.get(i) == Some(&open)
                && b.get(i + 1) == Some(&b'"')
                && same(i + 2, h.as_bytes())
                && same(i + 2 + n, b"\":")
            {
                *first = false;
                self.i = i + 4 + n;
                return Ok(Some(JStr { raw: &self.s[i + 2..i + 2 + n], escaped: false }));
            }
        }
        self.key(first)
    }

    /// Iterates an array: call with `first = true` before the `[`; returns true when an
    /// element follows, false after the closing `]`.
    #[inline]
    pub fn item(&mut self, first: &mut bool) -> ScanResult<bool> {
        if *first {
            self.eat(b'[', "expected an array")?;
            *first = false;
            if self.peek() == Some(b']') {
                self.i += 1;
                return Ok(false);
            }
            return Ok(true);
        }
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(b']') => {
                self.i += 1;
                Ok(false)
            }
            _ => self.err("expected , or ] in array"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_arrays_numbers_and_strings() {
        let mut s = Scan::new(r#" {"a": [1, -2.50, 1e-08], "b":"x\/y", "c": true, "d": null} "#);
        let mut first = true;
        let mut seen = Vec::new();
        while let Some(k) = s.key(&mut first).unwrap() {
            match k.raw {
                "a" => {
                    let mut f = true;
                    while s.item(&mut f).unwrap() {
                        seen.push(s.number().unwrap().to_string());
                    }
                }
                "b" => {
                    let v = s.str().unwrap();
                    assert!(v.escaped);
                    seen.push(v.text().into_owned());
                }
                _ => {
                    s.skip().unwrap();
                }
            }
        }
        s.end().unwrap();
        // Number text is kept verbatim (scale and exponent untouched).
        assert_eq!(seen, ["1", "-2.50", "1e-08", "x/y"]);
    }

    #[test]
    fn rejects_broken_json_with_an_offset() {
        for bad in [r#"{"a":1"#, r#"{"a" 1}"#, "[1,]", r#"{"a":"x}"#, "[1.]", "[-]", "{\"a\":tru}", "[1] x"] {
            let mut s = Scan::new(bad);
            let r = s.skip().and_then(|_| s.end());
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(10_000);
        assert_eq!(Scan::new(&deep).skip().unwrap_err().what, "JSON nested too deeply");
    }

    #[test]
    fn plain_numbers_are_skipped_as_number_reads_them() {
        for text in ["0", "7,", "1735689600.123456,", "12.5}", "007"] {
            let mut s = Scan::new(text);
            let mut general = Scan::new(text);
            assert!(s.skip_plain_number(), "{text}");
            general.number().unwrap();
            assert_eq!(s.pos(), general.pos(), "{text}");
        }
        for text in ["-1", "1e5", "1.5E3", "1.", ".5", " 1", "x"] {
            let mut s = Scan::new(text);
            assert!(!s.skip_plain_number(), "{text}");
            assert_eq!(s.pos(), 0, "{text}");
        }
    }

    #[test]
    fn literals_of_every_length_match_only_themselves() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=40 {
            for flip in 0..n {
                let lit = &text[..n];
                let mut other = lit.to_vec();
                other[flip] ^= 1;
                assert!(same_bytes(lit, lit), "{n}");
                assert!(!same_bytes(&other, lit), "{n} {flip}");
                assert!(!same_bytes(lit, &other), "{n} {flip}");
            }
        }
    }

    #[test]
    fn quoted_text_is_consumed_only_whole() {
        let mut s = Scan::new(r#""BTC/USD","#);
        assert!(!s.quoted(b"BTC/US"));
        assert!(!s.quoted(b"BTC/USDT"));
        assert!(s.quoted(b"BTC/USD"));
        assert!(s.lit(b","));
        for text in [r#""BTC/USD"#, r#"BTC/USD""#, r#" "BTC/USD""#] {
            let mut s = Scan::new(text);
            assert!(!s.quoted(b"BTC/USD"), "{text}");
            assert_eq!(s.pos(), 0);
        }
    }

    #[test]
    fn fixed_strings_are_read_only_whole_and_accepted() {
        let digits = |b: &[u8; 3]| b.iter().all(u8::is_ascii_digit).then(|| b.to_vec());
        let mut s = Scan::new(r#""123","#);
        assert_eq!(s.fixed_str::<3, _>(digits), Some(b"123".to_vec()));
        assert!(s.lit(b","));
        for text in [r#""12a","#, r#""1234""#, r#""12""#, r#" "123""#, r#""123"#, r#"123"""#] {
            let mut s = Scan::new(text);
            assert_eq!(s.fixed_str::<3, _>(digits), None, "{text}");
            assert_eq!(s.pos(), 0, "{text}");
        }
    }

    #[test]
    fn strings_end_at_the_first_quote_escape_or_control_byte_at_any_offset() {
        // Every position of the stop byte within and across the 8-byte words.
        for len in 0..20 {
            let body = "é".repeat(len / 2) + &"a".repeat(len % 2);
            let text = format!("\"{body}\"x");
            let mut s = Scan::new(&text);
            assert_eq!(s.str().unwrap().raw, body);
            assert_eq!(s.peek(), Some(b'x'));
            let escaped = format!("\"{body}\\n\"");
            assert_eq!(Scan::new(&escaped).str().unwrap().text(), format!("{body}\n"));
            let control = format!("\"{body}\u{1}\"");
            assert_eq!(Scan::new(&control).str().unwrap_err().what, "control character in string");
            let open = format!("\"{body}");
            assert_eq!(Scan::new(&open).str().unwrap_err(), ScanError { what: "unterminated string", at: 1 });
        }
    }

    #[test]
    fn key_hints_read_what_key_reads() {
        let text = r#"{"price":1,"qty" :2, "x":3,"qty":4}"#;
        let hints = [Some("price"), Some("qty"), Some("x"), Some("nope"), None];
        let (mut a, mut b) = (Scan::new(text), Scan::new(text));
        let (mut fa, mut fb) = (true, true);
        for h in hints {
            let ka = a.key_hint(&mut fa, h).unwrap();
            let kb = b.key(&mut fb).unwrap();
            assert_eq!(ka, kb);
            assert_eq!(a.pos(), b.pos());
            if ka.is_none() {
                break;
            }
            assert_eq!(a.skip().unwrap(), b.skip().unwrap());
        }
        a.end().unwrap();
    }

    #[test]
    fn unescapes_unicode_and_surrogate_pairs() {
        let mut s = Scan::new(r#""a\u00e9\ud83d\ude00\n""#);
        assert_eq!(s.str().unwrap().text(), "aé😀\n");
    }

    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them_and_others_are_left() {
        use crate::core::money::parse_decimal_bytes;
        for text in [
            "0",
            "7",
            "29430.2",
            "0.18967538",
            "0.00000000",
            "93048.10",
            "1234567890123456789",
            "1.00000000000000000",
        ] {
            let mut s = Scan::new(text);
            let d = s.plain_decimal().unwrap();
            let general = parse_decimal_bytes(Scan::new(text).number().unwrap().as_bytes()).unwrap();
            assert_eq!((d, d.scale()), (general, general.scale()), "{text}");
            assert_eq!(s.pos(), text.len());
        }
        // Stops where a JSON number stops.
        let mut s = Scan::new("12.5,");
        assert_eq!(s.plain_decimal(), Some(rust_decimal::Decimal::new(125, 1)));
        assert_eq!(s.pos(), 4);
        // Signs, exponents, bare dots, whitespace and more than 19 bytes: left to the general path.
        for text in
            ["-1.5", "1e-08", "1.5E3", "1.", ".5", " 1", "12345678901234567890", "0.123456789012345678"]
        {
            let mut s = Scan::new(text);
            assert_eq!(s.plain_decimal(), None, "{text}");
            assert_eq!(s.pos(), 0, "{text}");
        }
    }

    #[test]
    fn digit_runs_read_as_one_digit_at_a_time() {
        let naive = |b: &[u8]| {
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let v = b[..n].iter().fold(0u64, |v, c| v.wrapping_mul(10).wrapping_add(u64::from(c - b'0')));
            (v, n)
        };
        let mut rng = crate::core::rng::Rng::new(11);
        let alphabet = b"0123456789012345678901234567890123456789.,e-}\"\x00\x7f\x80\xff/:";
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 24) as usize;
            let text: Vec<u8> =
                (0..len).map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize]).collect();
            for start in 0..=text.len() {
                let b = &text[start..];
                let (v, n) = naive(b);
                assert_eq!(digit_run(b), n, "{b:?}");
                let (dv, dn) = digits(b);
                assert_eq!(dn, n, "{b:?}");
                if n <= 19 {
                    assert_eq!(dv, v, "{b:?}");
                }
            }
        }
        assert_eq!(digits(b"12345678901234567890,"), (12345678901234567890, 20));
    }

    #[test]
    fn unsigned_integers_read_as_the_general_parse_reads_them() {
        for (text, want) in
            [("0", Some(0)), ("1896887981", Some(1896887981)), ("18446744073709551615", Some(u64::MAX))]
        {
            let mut s = Scan::new(text);
            assert_eq!(s.u64().ok(), want, "{text}");
            assert_eq!(s.pos(), text.len());
        }
        for text in ["18446744073709551616", "-1", "1.0", "1e3", "x"] {
            assert!(Scan::new(text).u64().is_err(), "{text}");
        }
        let mut s = Scan::new(" 42,");
        assert_eq!(s.u64().ok(), Some(42));
        assert_eq!(s.pos(), 3);
    }
}
