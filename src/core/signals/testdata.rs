//! Synthetic market streams for the signal and aggregator tests (test builds only).
//!
//! `trend_then_revert`: 3 h of an uptrend (drift 2e-5/s, vol 2e-4/√s) followed by 3 h of a
//! mean-reverting (Ornstein–Uhlenbeck, 5-minute reversion) market around the level the trend
//! reached. One book update per second whose depth imbalance leans with the pressure on the
//! price (drift in the trend, pull towards the mean in the reversion), and one trade per
//! second whose taker side follows the move that just happened.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::super::decisions::Signal;
use super::super::instrument::Symbol;
use super::super::market::{BookEvent, Level, MarketEvent, Side, TopOfBook, TradeEvent};
use super::super::money::{from_f64, round_half_up};
use super::super::rng::Rng;
use super::super::time::EventTime;
use super::SignalModel;

/// 2025-01-01T00:00:00Z in microseconds.
pub const START_US: i64 = 1_735_689_600_000_000;

/// Event time `s` seconds after the start.
pub fn at(s: i64) -> EventTime {
    EventTime::from_micros(START_US + s * 1_000_000)
}

/// Which part of a [`Stream`] a time falls in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The uptrend.
    Trend,
    /// The mean-reverting part.
    Revert,
}

/// A generated stream and where its phases are.
pub struct Stream {
    /// Events in time order.
    pub events: Vec<MarketEvent>,
    /// First instant of the mean-reverting phase.
    pub revert_from: EventTime,
    /// Mid at each second (index = seconds since start).
    pub mids: Vec<f64>,
}

impl Stream {
    /// Phase of time `t`.
    pub fn phase_at(&self, t: EventTime) -> Phase {
        if t < self.revert_from { Phase::Trend } else { Phase::Revert }
    }
    /// Mid at time `t` (second resolution), if inside the stream.
    pub fn mid_at(&self, t: EventTime) -> Option<f64> {
        let s = t.micros_since(at(0)).div_euclid(1_000_000);
        usize::try_from(s).ok().and_then(|i| self.mids.get(i).copied())
    }
}

/// A book event with the given top and 10-level depths.
pub fn book(sym: &Symbol, t: EventTime, mid: f64, bid_depth: f64, ask_depth: f64) -> MarketEvent {
    let bid = round_half_up(from_f64(mid - 0.5), 1);
    let ask = bid + Decimal::ONE;
    let top = TopOfBook {
        bid: Some(Level { price: bid, qty: Decimal::ONE }),
        ask: Some(Level { price: ask, qty: Decimal::ONE }),
        bid_depth: round_half_up(from_f64(bid_depth), 4),
        ask_depth: round_half_up(from_f64(ask_depth), 4),
    };
    MarketEvent::Book(BookEvent {
        symbol: sym.clone(),
        time: t,
        snapshot: false,
        depth: 10,
        bids: Default::default(),
        asks: Default::default(),
        top,
    })
}

/// A trade event.
pub fn trade(sym: &Symbol, t: EventTime, side: Side, price: f64, qty: f64) -> MarketEvent {
    MarketEvent::Trade(TradeEvent {
        symbol: sym.clone(),
        time: t,
        side,
        price: round_half_up(from_f64(price), 1),
        qty: round_half_up(from_f64(qty), 4),
        trade_id: 0,
        market_order: true,
    })
}

/// Six hours: an uptrend, then mean reversion (see the module doc).
pub fn trend_then_revert(pair: &str, seed: u64) -> Stream {
    let sym: Symbol = Arc::from(pair);
    let mut rng = Rng::new(seed);
    let (mu, sigma, theta) = (2e-5, 2e-4, 1.0 / 300.0);
    let half = 3 * 3600;
    let mut x = libm::log(50_000.0);
    let mut level = x;
    let (mut events, mut mids) = (Vec::new(), Vec::new());
    for s in 0..2 * half {
        let trend = s < half;
        if s == half {
            level = x;
        }
        let dx = if trend { mu + sigma * rng.normal() } else { theta * (level - x) + sigma * rng.normal() };
        x += dx;
        let mid = libm::exp(x);
        // Pressure in [-1, 1]: the drift in the trend, the pull to the mean in the reversion
        // (stationary OU std = σ/√(2θ) ≈ 2.4e-3).
        let pull = if trend { 0.4 } else { ((level - x) / 2.4e-3).clamp(-1.0, 1.0) * 0.6 };
        let pressure = (pull + 0.25 * rng.normal()).clamp(-0.9, 0.9);
        let t = at(s);
        events.push(book(&sym, t, mid, 10.0 * (1.0 + pressure), 10.0 * (1.0 - pressure)));
        let side = if rng.chance(if dx > 0.0 { 0.7 } else { 0.3 }) { Side::Buy } else { Side::Sell };
        events.push(trade(&sym, t.plus_micros(500_000), side, mid, 0.01 + rng.uniform() * 0.1));
        mids.push(mid);
    }
    Stream { events, revert_from: at(half), mids }
}

/// `secs` seconds of driftless random walk (vol 2e-4/√s) for each pair, one book update per
/// pair per second, pairs interleaved.
pub fn random_walk(pairs: &[&str], secs: i64, seed: u64) -> Vec<MarketEvent> {
    let mut rng = Rng::new(seed);
    let syms: Vec<Symbol> = pairs.iter().map(|p| Arc::from(*p)).collect();
    let mut xs: Vec<f64> = (0..pairs.len()).map(|i| libm::log(1000.0 * (i as f64 + 1.0))).collect();
    let mut out = Vec::with_capacity(secs as usize * pairs.len());
    for s in 0..secs {
        for (i, sym) in syms.iter().enumerate() {
            xs[i] += 2e-4 * rng.normal();
            let imb = 0.3 * rng.normal();
            let t = at(s).plus_micros(i as i64 * 1000);
            out.push(book(
                sym,
                t,
                libm::exp(xs[i]),
                10.0 * (1.0 + imb).max(0.1),
                10.0 * (1.0 - imb).max(0.1),
            ));
        }
    }
    out
}

/// Feeds `events` (seq = index) and collects the signals.
pub fn run(model: &mut dyn SignalModel, events: &[MarketEvent]) -> Vec<Signal> {
    events.iter().enumerate().filter_map(|(i, e)| model.on_event(i as u64, e)).collect()
}

/// Mean of `mid(t + ahead) / mid(t) − 1` times the signal's direction: > 0 when the signals
/// called the next `ahead_secs` right on average.
pub fn mean_directional_return(stream: &Stream, sigs: &[&Signal], ahead_secs: i64) -> f64 {
    let rs: Vec<f64> = sigs
        .iter()
        .filter_map(|s| {
            let now = stream.mid_at(s.event_time)?;
            let later = stream.mid_at(s.event_time.plus_micros(ahead_secs * 1_000_000))?;
            Some(s.score.signum() * (later / now - 1.0))
        })
        .collect();
    if rs.is_empty() { 0.0 } else { rs.iter().sum::<f64>() / rs.len() as f64 }
}

/// Warm-up check shared by the sampled models (10 s grid): two hours of one-minute closes
/// oscillating around 100 (as `History`, ending just before the start), then a steep climb
/// (+0.2 % a sample) sampled every 10 s from the start. Returns the index of the live sample
/// that gave the first signal, for a model that warmed up on the history and for a cold one
/// (None: no signal in 100 samples).
pub fn first_signal_warm_and_cold(
    mut make: impl FnMut() -> Box<dyn SignalModel>,
) -> (Option<usize>, Option<usize>) {
    use super::super::market::PriceHistory;
    let sym: Symbol = Arc::from("BTC/USD");
    let closes = (0..120i64)
        .map(|i| {
            let close_time = at(-7200 + 60 * (i + 1)).plus_micros(-1);
            (close_time, round_half_up(from_f64(100.0 + 0.3 * libm::sin(1.3 * i as f64)), 2))
        })
        .collect();
    let history = PriceHistory { interval_minutes: 1, closes };
    let live: Vec<MarketEvent> =
        (0..100i64).map(|k| book(&sym, at(10 * k), 100.0 * (1.0 + 0.002 * k as f64), 1.0, 1.0)).collect();
    let first = |m: &mut Box<dyn SignalModel>| {
        live.iter().enumerate().find_map(|(i, e)| m.on_event(i as u64, e).map(|_| i))
    };
    let mut warm = make();
    assert_eq!(warm.warm_up_interval().map(super::common::ohlc_interval_for), Some(1));
    warm.warm_up(&sym, &history);
    let mut cold = make();
    (first(&mut warm), first(&mut cold))
}
