//! v1 frames, kept for old recordings: data arrays `[channelID, payload…, channelName, pair]`
//! (`book-N`, `trade`, `ticker`) and `event` objects (status, pong, subscription status).

use serde_json::Value;

use super::{FeedDecoder, FeedNotice, KRAKEN_DEFAULT_DEPTH, Skip, malformed, system_status};
use crate::core::instrument::Symbol;
use crate::core::kraken::scan::{JStr, Scan};
use crate::core::kraken::symbols::v2_symbol;
use crate::core::market::{Level, Levels, MarketEvent, Side, TickerEvent, TradeEvent};
use crate::core::money::parse_decimal_bytes;
use crate::core::time::EventTime;

impl FeedDecoder {
    /// v1 data arrays: `[channelID, payload…, channelName, pair]`.
    pub(super) fn decode_v1_array(
        &mut self,
        frame: &str,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let mut s = Scan::new(frame);
        let mut parts: [&str; 8] = [""; 8];
        let mut n = 0;
        let mut first = true;
        while s.item(&mut first)? {
            let v = s.skip()?;
            if n == parts.len() {
                return Err(Skip::Unknown("v1 array with more than 8 elements".into()));
            }
            parts[n] = v;
            n += 1;
        }
        s.end()?;
        if n < 3 {
            return Err(Skip::Unknown("v1 array without channel name and pair".into()));
        }
        let (Ok(name), Ok(pair)) = (Scan::new(parts[n - 2]).str(), Scan::new(parts[n - 1]).str()) else {
            return Err(Skip::Unknown("v1 array without channel name and pair".into()));
        };
        let symbol = self.v1_symbol(&pair.text());
        let payloads = &parts[1..n - 2];
        if let Some(depth) = name.raw.strip_prefix("book") {
            let depth = match depth.strip_prefix('-') {
                Some(d) => {
                    d.parse::<u16>().map_err(|_| malformed(format!("v1 channel name {:?}", name.raw)))?
                }
                None => self.depth(&symbol),
            };
            return self.decode_v1_book(&symbol, depth, payloads, events, notices);
        }
        match name.raw {
            "trade" => self.decode_v1_trade(&symbol, payloads, events),
            "ticker" => self.decode_v1_ticker(&symbol, payloads, events),
            other => Err(Skip::Unknown(format!("v1 channel {other}"))),
        }
    }

    fn decode_v1_book(
        &mut self,
        symbol: &Symbol,
        depth: u16,
        payloads: &[&str],
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        let (mut bids, mut asks) = (Levels::new(), Levels::new());
        let (mut snapshot, mut checksum) = (false, None);
        let mut latest = EventTime::ZERO;
        for p in payloads {
            let mut s = Scan::new(p);
            let mut first = true;
            while let Some(k) = s.key(&mut first)? {
                match k.raw {
                    "as" | "bs" | "a" | "b" => {
                        snapshot |= k.raw.len() == 2;
                        let out = if k.raw.starts_with('a') { &mut asks } else { &mut bids };
                        read_v1_levels(&mut s, out, &mut latest)?;
                    }
                    "c" => {
                        let c = s.str()?;
                        checksum = Some(
                            c.raw
                                .parse::<u32>()
                                .map_err(|_| malformed(format!("v1 book: checksum {:?}", c.raw)))?,
                        );
                    }
                    _ => {
                        s.skip()?;
                    }
                }
            }
        }
        if snapshot || self.depths.get(symbol) != Some(&depth) {
            self.depths.insert(symbol.clone(), depth);
        }
        let time = (latest != EventTime::ZERO).then_some(latest);
        self.apply_book(symbol, snapshot, bids, asks, checksum, time, true, events, notices);
        Ok(())
    }

    fn decode_v1_trade(
        &mut self,
        symbol: &Symbol,
        payloads: &[&str],
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let [p] = payloads else { return Err(malformed("v1 trade: expected one payload")) };
        let mark = events.len();
        let mut latest = EventTime::ZERO;
        let mut s = Scan::new(p);
        let mut first = true;
        while s.item(&mut first)? {
            // [price, volume, time, side b/s, type l/m, misc]
            let f: [Option<JStr<'_>>; 5] = read_str_fields(&mut s)?;
            let [Some(price), Some(qty), Some(time), Some(side), Some(kind)] = f else {
                return Err(malformed("v1 trade: expected [price, volume, time, side, type, misc]"));
            };
            let price =
                parse_decimal_bytes(price.raw.as_bytes()).ok_or_else(|| malformed("v1 trade: bad price"))?;
            let qty =
                parse_decimal_bytes(qty.raw.as_bytes()).ok_or_else(|| malformed("v1 trade: bad volume"))?;
            let time =
                EventTime::parse_unix_seconds(time.raw).map_err(|e| malformed(format!("v1 trade: {e}")))?;
            let side = match side.raw {
                "b" => Side::Buy,
                "s" => Side::Sell,
                other => return Err(malformed(format!("v1 trade: unknown side {other:?}"))),
            };
            latest = latest.max(time);
            events.push(MarketEvent::Trade(TradeEvent {
                symbol: symbol.clone(),
                time,
                side,
                price,
                qty,
                trade_id: 0,
                market_order: kind.is("m"),
            }));
        }
        self.counters.events += (events.len() - mark) as u64;
        self.advance(latest);
        Ok(())
    }

    fn decode_v1_ticker(
        &mut self,
        symbol: &Symbol,
        payloads: &[&str],
        events: &mut Vec<MarketEvent>,
    ) -> Result<(), Skip> {
        let [p] = payloads else { return Err(malformed("v1 ticker: expected one payload")) };
        // a/b = [price, whole lot volume, lot volume]; c = [price, volume];
        // v/p = [today, last 24 h].
        let (mut ask, mut bid, mut last, mut volume, mut vwap) = (None, None, None, None, None);
        let mut s = Scan::new(p);
        let mut first = true;
        while let Some(k) = s.key(&mut first)? {
            let (slot, index) = match k.raw {
                "a" => (&mut ask, 0),
                "b" => (&mut bid, 0),
                "c" => (&mut last, 0),
                "v" => (&mut volume, 1),
                "p" => (&mut vwap, 1),
                _ => {
                    s.skip()?;
                    continue;
                }
            };
            let mut i = 0;
            let mut e_first = true;
            while s.item(&mut e_first)? {
                let v = s.skip()?;
                if i == index {
                    let text = v.trim_matches('"');
                    *slot = Some(
                        parse_decimal_bytes(text.as_bytes())
                            .ok_or_else(|| malformed(format!("v1 ticker: bad number {v} in {:?}", k.raw)))?,
                    );
                }
                i += 1;
            }
        }
        let (Some(bid), Some(ask), Some(last), Some(volume), Some(vwap)) = (bid, ask, last, volume, vwap)
        else {
            return Err(malformed("v1 ticker: needs a, b, c, v and p"));
        };
        events.push(MarketEvent::Ticker(TickerEvent {
            symbol: symbol.clone(),
            time: self.last_time,
            bid,
            ask,
            last,
            volume,
            vwap,
        }));
        Ok(())
    }

    /// v1 event objects: heartbeat, systemStatus, subscriptionStatus, pong, error.
    pub(super) fn decode_v1_event(
        &mut self,
        frame: &str,
        event: &str,
        events: &mut Vec<MarketEvent>,
        notices: &mut Vec<FeedNotice>,
    ) -> Result<(), Skip> {
        if event == "heartbeat" {
            return Ok(());
        }
        let v: Value = serde_json::from_str(frame).map_err(|e| malformed(format!("v1 {event}: {e}")))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str);
        match event {
            "systemStatus" => {
                let status = text("status").ok_or_else(|| malformed("v1 systemStatus without status"))?;
                events.push(MarketEvent::Status { time: self.last_time, system: system_status(status) });
                Ok(())
            }
            "pong" => {
                notices.push(FeedNotice::Pong { req_id: v.get("reqid").and_then(Value::as_u64) });
                Ok(())
            }
            "subscriptionStatus" => {
                let sub = v.get("subscription");
                let name =
                    sub.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("unknown").to_string();
                let symbol = text("pair").map(v2_symbol);
                match text("status") {
                    Some("subscribed") => {
                        if let (Some(sym), "book") = (&symbol, name.as_str()) {
                            let depth = sub
                                .and_then(|s| s.get("depth"))
                                .and_then(Value::as_u64)
                                .and_then(|d| u16::try_from(d).ok())
                                .unwrap_or(KRAKEN_DEFAULT_DEPTH);
                            let sym = self.intern(sym);
                            self.depths.insert(sym, depth);
                        }
                        notices.push(FeedNotice::Subscribed { channel: name, symbol });
                    }
                    Some("unsubscribed") => {
                        if let (Some(sym), "book") = (&symbol, name.as_str())
                            && let Some(pb) = self.books.get_mut(sym.as_str())
                        {
                            pb.book.clear();
                            pb.live = false;
                        }
                    }
                    _ => {
                        let error = text("errorMessage").unwrap_or("subscription error").to_string();
                        notices.push(FeedNotice::SubscribeFailed { channel: name, symbol, error });
                    }
                }
                Ok(())
            }
            "error" => Err(Skip::Unknown(format!("v1 error: {}", text("errorMessage").unwrap_or("?")))),
            other => Err(Skip::Unknown(format!("v1 event {other}"))),
        }
    }
}

/// Reads one JSON array of strings, keeping its first `N` elements (later ones are skipped).
fn read_str_fields<'a, const N: usize>(s: &mut Scan<'a>) -> Result<[Option<JStr<'a>>; N], Skip> {
    let mut f = [None; N];
    let mut i = 0;
    let mut first = true;
    while s.item(&mut first)? {
        if i < N {
            f[i] = Some(s.str()?);
        } else {
            s.skip()?;
        }
        i += 1;
    }
    Ok(f)
}

/// v1 levels: `[["354.15000000","5.00000000","1618678133.365913"(,"r")], …]`.
fn read_v1_levels(s: &mut Scan<'_>, out: &mut Levels, latest: &mut EventTime) -> Result<(), Skip> {
    let mut first = true;
    while s.item(&mut first)? {
        // A 4th element "r" (republished level) is an ordinary upsert: skipped.
        let f: [Option<JStr<'_>>; 3] = read_str_fields(s)?;
        let [Some(p), Some(q), t] = f else { return Err(malformed("v1 book: level needs price and volume")) };
        let price = parse_decimal_bytes(p.raw.as_bytes())
            .ok_or_else(|| malformed(format!("v1 book: price {:?}", p.raw)))?;
        let qty = parse_decimal_bytes(q.raw.as_bytes())
            .ok_or_else(|| malformed(format!("v1 book: volume {:?}", q.raw)))?;
        if price.is_sign_negative() || qty.is_sign_negative() {
            return Err(malformed("v1 book: negative price or volume"));
        }
        if let Some(t) = t {
            let t = EventTime::parse_unix_seconds(t.raw).map_err(|e| malformed(format!("v1 book: {e}")))?;
            *latest = (*latest).max(t);
        }
        out.push(Level { price, qty });
    }
    Ok(())
}
