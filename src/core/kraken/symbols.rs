//! Pair names: the one place where Kraken's legacy (WS v1 / REST `wsname`) asset codes are
//! mapped to the WS v2 codes the engine uses everywhere (`XBT/USD` → `BTC/USD`).
//!
//! Only two codes differ between the generations (`XBT`→`BTC`, `XDG`→`DOGE`; cryptofeed
//! and ccxt apply the same two rewrites, see shared/kraken/websocket-v2.md §5).

/// The WS v2 code of a legacy asset code (`XBT` → `BTC`, `XDG` → `DOGE`, others unchanged).
pub fn v2_asset(code: &str) -> &str {
    match code {
        "XBT" => "BTC",
        "XDG" => "DOGE",
        other => other,
    }
}

/// The WS v2 symbol of a v1 pair name: `XBT/USD` → `BTC/USD`, `KSM/XBT` → `KSM/BTC`,
/// `XDG/USD` → `DOGE/USD`; v2 names and names without a `/` are returned unchanged.
pub fn v2_symbol(v1_pair: &str) -> String {
    match v1_pair.split_once('/') {
        Some((base, quote)) => {
            let (b, q) = (v2_asset(base), v2_asset(quote));
            let mut s = String::with_capacity(b.len() + q.len() + 1);
            s.push_str(b);
            s.push('/');
            s.push_str(q);
            s
        }
        None => v1_pair.to_string(),
    }
}

/// The WS v2 symbol of a `BASE/QUOTE` name with both sides non-empty (a REST `wsname`, or
/// a pair a caller asked for); None for anything else (`XBTUSD`, `XBT/`, `/USD`).
pub fn v2_pair(wsname: &str) -> Option<String> {
    let (base, quote) = wsname.split_once('/')?;
    if base.is_empty() || quote.is_empty() {
        return None;
    }
    Some(v2_symbol(wsname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_two_legacy_codes_on_either_side() {
        assert_eq!(v2_symbol("XBT/USD"), "BTC/USD");
        assert_eq!(v2_symbol("KSM/XBT"), "KSM/BTC");
        assert_eq!(v2_symbol("XDG/EUR"), "DOGE/EUR");
        assert_eq!(v2_symbol("XMR/USD"), "XMR/USD");
        assert_eq!(v2_symbol("BTC/USD"), "BTC/USD");
        assert_eq!(v2_symbol("XBTUSD"), "XBTUSD");
    }

    #[test]
    fn pair_form_needs_both_sides() {
        assert_eq!(v2_pair("XBT/USD").as_deref(), Some("BTC/USD"));
        assert_eq!(v2_pair("ETH/XBT").as_deref(), Some("ETH/BTC"));
        assert_eq!(v2_pair("XDG/EUR").as_deref(), Some("DOGE/EUR"));
        assert_eq!(v2_pair("a/b/c").as_deref(), Some("a/b/c"));
        for name in ["XBTUSD", "XBT/", "/XBT", "/", ""] {
            assert_eq!(v2_pair(name), None, "{name:?}");
        }
    }
}
