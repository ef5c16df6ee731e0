//! Per-pair state of the simulator: the latent fair price, the integer book and its
//! [`L2Book`] twin (for Kraken's checksum), the ticker figures, recent trades, the pair's
//! random stream, and the draws of level sizes, gaps and spreads.

use std::collections::VecDeque;
use std::fmt::Write as _;

use rust_decimal::Decimal;

use super::SimFrame;
use super::params::ROUND_SHARE;
use super::wire::{push_fixed, push_time};
use crate::core::book::L2Book;
use crate::core::instrument::{Instrument, Symbol};
use crate::core::market::Side;
use crate::core::rng::Rng;
use crate::core::time::EventTime;

/// Rolling 24 h figures for the ticker (decayed exponentially, see docs/simulator.md).
pub(super) struct Ticker {
    pub(super) open: i64,
    pub(super) high: i64,
    pub(super) low: i64,
    pub(super) last: i64,
    pub(super) volume: f64,
    pub(super) notional: f64,
    pub(super) time: EventTime,
}

/// One simulated pair: instrument, latent fair price, the integer book and its [`L2Book`]
/// twin, schedule, ticker, recent trades, random stream and the update being built.
pub(super) struct Pair {
    pub(super) symbol: Symbol,
    pub(super) inst: Instrument,
    /// Price of one tick in quote units.
    pub(super) tick: f64,
    /// Mantissa of one tick at scale `price_precision`.
    pub(super) tick_units: i64,
    /// Lots per unit of base (10^qty_precision).
    pub(super) lots_per_unit: f64,
    pub(super) beta: f64,
    /// Diffusion standard deviation per √s (after the trend/jump share is taken out).
    pub(super) sig_diff: f64,
    /// Raw standard deviation per √s (the profile's daily volatility × scale).
    pub(super) sig_raw: f64,
    pub(super) jump_sd: f64,
    pub(super) gap_mean: f64,
    pub(super) level_notional: f64,
    pub(super) trade_notional: f64,
    pub(super) log_fair: f64,
    /// Integer book, best first: (ticks, lots).
    pub(super) bids: Vec<(i64, i64)>,
    pub(super) asks: Vec<(i64, i64)>,
    pub(super) book: L2Book,
    pub(super) checksum: u32,
    pub(super) next_book: EventTime,
    pub(super) next_trade: EventTime,
    pub(super) next_trade_id: u64,
    pub(super) ticker: Ticker,
    pub(super) recent_trades: VecDeque<String>,
    pub(super) rng: Rng,
    pub(super) upd_bids: String,
    pub(super) upd_asks: String,
}

impl Pair {
    #[inline]
    pub(super) fn fair_ticks(&self) -> f64 {
        libm::exp(self.log_fair) / self.tick
    }

    #[inline]
    pub(super) fn price_of(&self, ticks: i64) -> Decimal {
        Decimal::new(ticks.saturating_mul(self.tick_units), self.inst.price_precision)
    }

    #[inline]
    pub(super) fn push_price(&self, out: &mut String, ticks: i64) {
        push_fixed(out, i128::from(ticks) * i128::from(self.tick_units), self.inst.price_precision);
    }

    #[inline]
    pub(super) fn push_qty(&self, out: &mut String, lots: i64) {
        push_fixed(out, i128::from(lots), self.inst.qty_precision);
    }

    #[inline]
    pub(super) fn side(&self, side: Side) -> &Vec<(i64, i64)> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Applies one level to both books and records it in the update being built.
    pub(super) fn apply(&mut self, side: Side, ticks: i64, lots: i64) {
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let found = match side {
            Side::Buy => levels.binary_search_by(|l| ticks.cmp(&l.0)),
            Side::Sell => levels.binary_search_by(|l| l.0.cmp(&ticks)),
        };
        match (found, lots == 0) {
            (Ok(i), true) => {
                levels.remove(i);
            }
            (Err(_), true) => {}
            (Ok(i), false) => levels[i].1 = lots,
            (Err(i), false) => levels.insert(i, (ticks, lots)),
        }
        let price = self.price_of(ticks);
        self.book.apply(side, price, Decimal::new(lots, self.inst.qty_precision));
        let mut buf = std::mem::take(match side {
            Side::Buy => &mut self.upd_bids,
            Side::Sell => &mut self.upd_asks,
        });
        if !buf.is_empty() {
            buf.push(',');
        }
        buf.push_str("{\"price\":");
        self.push_price(&mut buf, ticks);
        buf.push_str(",\"qty\":");
        self.push_qty(&mut buf, lots);
        buf.push('}');
        match side {
            Side::Buy => self.upd_bids = buf,
            Side::Sell => self.upd_asks = buf,
        }
    }

    /// Ends a book message: cut to depth (no deletes are sent for levels pushed out),
    /// recompute the checksum and write the `book` update frame. None if nothing changed.
    pub(super) fn finish_update(&mut self, depth: usize, now: EventTime) -> Option<SimFrame> {
        self.bids.truncate(depth);
        self.asks.truncate(depth);
        self.book.truncate();
        if self.upd_bids.is_empty() && self.upd_asks.is_empty() {
            return None;
        }
        self.checksum = self.book.checksum();
        let mut t = String::with_capacity(160 + self.upd_bids.len() + self.upd_asks.len());
        t.push_str(r#"{"channel":"book","type":"update","data":[{"symbol":""#);
        t.push_str(&self.symbol);
        t.push_str(r#"","bids":["#);
        t.push_str(&self.upd_bids);
        t.push_str(r#"],"asks":["#);
        t.push_str(&self.upd_asks);
        let _ = write!(t, r#"],"checksum":{},"timestamp":"#, self.checksum);
        push_time(&mut t, now);
        t.push_str("}]}");
        self.upd_bids.clear();
        self.upd_asks.clear();
        Some(SimFrame { time: now, channel: "book", symbol: Some(self.symbol.clone()), text: t, events: 1 })
    }

    /// A size in lots for a notional drawn log-normally around `median` (quote units).
    #[inline]
    pub(super) fn draw_lots(&mut self, median: f64, sigma: f64) -> i64 {
        let notional = self.rng.lognormal(median, sigma).min(median * 400.0);
        let price = libm::exp(self.log_fair);
        let mut lots = (notional / price * self.lots_per_unit).round().clamp(1.0, 1e17) as i64;
        if self.rng.chance(ROUND_SHARE) {
            lots = round_2_significant(lots);
        }
        lots.max(1)
    }

    /// Mean-gap geometric draw, at least one tick.
    #[inline]
    pub(super) fn draw_gap(&mut self) -> i64 {
        if self.gap_mean <= 1.0 {
            return 1;
        }
        1 + self.rng.exponential(self.gap_mean - 1.0).floor().min(1e9) as i64
    }

    /// The deep-end price for a new level on `side` (None when a bid would reach 0).
    #[inline]
    pub(super) fn deep_price(&mut self, side: Side) -> Option<i64> {
        let gap = self.draw_gap();
        match side {
            Side::Buy => {
                let p = self.bids.last().map_or(self.fair_ticks().floor() as i64 - 1, |l| l.0) - gap;
                (p > 0).then_some(p)
            }
            Side::Sell => Some(self.asks.last().map_or(self.fair_ticks().ceil() as i64 + 1, |l| l.0) + gap),
        }
    }

    #[inline]
    pub(super) fn spread_draw(&mut self) -> i64 {
        let u = self.rng.uniform();
        if u < 0.7 {
            1
        } else if u < 0.9 {
            2
        } else {
            3 + self.rng.below(2) as i64
        }
    }
}

#[inline]
pub(super) fn round_2_significant(lots: i64) -> i64 {
    let mut p: i64 = 1;
    while lots / p >= 100 {
        p = p.saturating_mul(10);
    }
    (lots / p) * p
}
