//! Trades of a simulated pair: a taker order walking the book from the touch (trade, book
//! and ticker frames), the decayed 24 h ticker figures and the `ticker` frame.

use std::fmt::Write as _;

use super::SimFrame;
use super::book::top_up;
use super::pair::Pair;
use super::params::{TRADE_SIGMA, TRADE_SNAPSHOT_LEN};
use super::wire::{push_fixed, push_time};
use crate::core::market::Side;
use crate::core::time::{EventTime, MICROS_PER_SEC};

/// A taker order: side leans toward the fair price, size heavy-tailed; it walks the
/// opposite side from the touch, depleting levels. Emits trade, book and ticker frames.
pub(super) fn trade_event(p: &mut Pair, depth: usize, now: EventTime, out: &mut Vec<SimFrame>) {
    let (Some(&(bb, _)), Some(&(ba, _))) = (p.bids.first(), p.asks.first()) else {
        return;
    };
    let dev = p.fair_ticks() - (bb + ba) as f64 / 2.0;
    let p_buy = 0.5 + 0.3 * libm::tanh(dev / p.gap_mean.max(1.0));
    let side = if p.rng.chance(p_buy) { Side::Buy } else { Side::Sell };
    let maker = side.opposite();
    let mut want = p.draw_lots(p.trade_notional, TRADE_SIGMA);
    // A single order takes at most 80 % of the three best levels (never empties the side).
    let (best_lots, top3) = {
        let lv = p.side(maker);
        (lv.first().map_or(0, |l| l.1), lv.iter().take(3).map(|l| l.1).sum::<i64>())
    };
    let side_total: i64 = p.side(maker).iter().map(|l| l.1).sum();
    // A marketable limit order at the touch price fills at most the touch; a market order
    // may walk, but takes at most 80 % of the three best levels (never empties the side).
    let limit = p.rng.chance(0.5);
    let cap = if limit { best_lots } else { best_lots.max(top3 / 10 * 8) };
    want = want.min(cap).min(side_total - 1);
    if want <= 0 {
        return;
    }
    let ord_type = if limit { "limit" } else { "market" };
    let mut trades = String::with_capacity(160);
    let mut count = 0u32;
    let mut last_px = 0;
    while want > 0 {
        let Some(&(px, lots)) = p.side(maker).first() else { break };
        let take = want.min(lots);
        // Several maker orders at one price give several trades (as in Kraken's frames).
        let parts = if take >= 2 && p.rng.chance(0.1) {
            let first = 1 + p.rng.below((take - 1) as u64) as i64;
            [first, take - first]
        } else {
            [take, 0]
        };
        for q in parts.into_iter().filter(|&q| q > 0) {
            let mut one = String::with_capacity(150);
            one.push_str("{\"symbol\":\"");
            one.push_str(&p.symbol);
            let _ = write!(one, "\",\"side\":\"{}\",\"price\":", side.as_str());
            p.push_price(&mut one, px);
            one.push_str(",\"qty\":");
            p.push_qty(&mut one, q);
            let _ =
                write!(one, ",\"ord_type\":\"{ord_type}\",\"trade_id\":{},\"timestamp\":", p.next_trade_id);
            push_time(&mut one, now);
            one.push('}');
            p.next_trade_id += 1;
            if count > 0 {
                trades.push(',');
            }
            trades.push_str(&one);
            if p.recent_trades.len() == TRADE_SNAPSHOT_LEN {
                p.recent_trades.pop_front();
            }
            p.recent_trades.push_back(one);
            count += 1;
            update_ticker_stats(p, now, px, q);
        }
        p.apply(maker, px, lots - take);
        want -= take;
        last_px = px;
    }
    top_up(p, depth);
    if count == 0 {
        return;
    }
    p.ticker.last = last_px;
    out.push(SimFrame {
        time: now,
        channel: "trade",
        symbol: Some(p.symbol.clone()),
        text: format!(r#"{{"channel":"trade","type":"update","data":[{trades}]}}"#),
        events: count,
    });
    if let Some(f) = p.finish_update(depth, now) {
        out.push(f);
    }
    out.push(SimFrame {
        time: now,
        channel: "ticker",
        symbol: Some(p.symbol.clone()),
        text: ticker_frame(p, "update", now),
        events: 0,
    });
}

/// Decayed 24 h volume and VWAP, high and low.
#[inline]
pub(super) fn update_ticker_stats(p: &mut Pair, now: EventTime, px: i64, lots: i64) {
    let tk = &mut p.ticker;
    let dt = now.micros_since(tk.time).max(0) as f64 / MICROS_PER_SEC as f64;
    let k = libm::exp(-dt / 86_400.0);
    let qty = lots as f64 / p.lots_per_unit;
    tk.volume = tk.volume * k + qty;
    tk.notional = tk.notional * k + qty * px as f64 * p.tick;
    tk.time = now;
    tk.high = tk.high.max(px);
    tk.low = tk.low.min(px);
}

pub(super) fn ticker_frame(p: &Pair, kind: &str, now: EventTime) -> String {
    let tk = &p.ticker;
    let (bb, bq) = p.bids.first().copied().unwrap_or((0, 0));
    let (ba, aq) = p.asks.first().copied().unwrap_or((0, 0));
    let mut t = String::with_capacity(400);
    let _ = write!(t, r#"{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{}","bid":"#, p.symbol);
    p.push_price(&mut t, bb);
    t.push_str(",\"bid_qty\":");
    p.push_qty(&mut t, bq);
    t.push_str(",\"ask\":");
    p.push_price(&mut t, ba);
    t.push_str(",\"ask_qty\":");
    p.push_qty(&mut t, aq);
    t.push_str(",\"last\":");
    p.push_price(&mut t, tk.last);
    t.push_str(",\"volume\":");
    p.push_qty(&mut t, (tk.volume * p.lots_per_unit).round() as i64);
    t.push_str(",\"vwap\":");
    let vwap = if tk.volume > 0.0 { (tk.notional / tk.volume / p.tick).round() as i64 } else { tk.last };
    p.push_price(&mut t, vwap);
    t.push_str(",\"low\":");
    p.push_price(&mut t, tk.low);
    t.push_str(",\"high\":");
    p.push_price(&mut t, tk.high);
    t.push_str(",\"change\":");
    p.push_price(&mut t, tk.last - tk.open);
    t.push_str(",\"change_pct\":");
    let pct = ((tk.last - tk.open) as f64 / tk.open.max(1) as f64 * 10_000.0).round() as i128;
    push_fixed(&mut t, pct, 2);
    t.push_str(",\"timestamp\":");
    push_time(&mut t, now);
    t.push_str("}]}");
    t
}
