//! [`SimMarket`]: the simulated market for several pairs — shared price factors (market
//! factor, trend, stochastic volatility, jumps), the event schedule, heartbeats, and the
//! snapshot frames served on request.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::SimFrame;
use super::book::{book_event, build_initial_book};
use super::pair::{Pair, Ticker};
use super::params::*;
use super::profile::{Profile, asset_row, fnv1a, profile};
use super::trades::{ticker_frame, trade_event};
use super::wire::{HEARTBEAT_FRAME, push_decimal, push_time};
use crate::core::book::L2Book;
use crate::core::instrument::{Instrument, PairStatus, Symbol};
use crate::core::rng::Rng;
use crate::core::time::{EventTime, MICROS_PER_SEC};
use crate::core::validate::Issues;

/// The market model: correlated price paths, books, trades that deplete the book.
pub struct SimMarket {
    cfg: SimConfig,
    depth: usize,
    now: EventTime,
    price_time: EventTime,
    last_frame: EventTime,
    rng: Rng,
    vol_h: f64,
    trend: f64,
    trend_sd: f64,
    next_jump: EventTime,
    pairs: Vec<Pair>,
    index: BTreeMap<Arc<str>, usize>,
}

impl std::fmt::Debug for SimMarket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMarket")
            .field("pairs", &self.symbols())
            .field("depth", &self.depth)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// What happens next.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Next {
    Book(usize),
    Trade(usize),
    Jump,
}

impl SimMarket {
    /// A market for `pairs` (WS v2 symbols) with books of `depth` levels.
    pub fn new(cfg: &SimConfig, pairs: &[String], depth: u16) -> Result<SimMarket, SimError> {
        check_settings(cfg, pairs, depth)?;
        let start = cfg.start_time;
        let mut rng = Rng::derive(cfg.seed, 0x51_4D);
        let trend_sd = cfg.trend_strength / 60.0;
        let mut out = Vec::with_capacity(pairs.len());
        let mut index = BTreeMap::new();
        for raw in pairs {
            let (base, quote) = split_symbol(raw)?;
            let symbol: Symbol = Arc::from(raw.as_str());
            if index.contains_key(&symbol) {
                return Err(SimError::DuplicatePair(raw.clone()));
            }
            let p = open_pair(cfg, raw, symbol.clone(), (base, quote), depth, trend_sd);
            index.insert(symbol, out.len());
            out.push(p);
        }
        let next_jump = start.plus_micros(jump_gap_us(&mut rng, cfg.jumps_per_hour));
        Ok(SimMarket {
            cfg: cfg.clone(),
            depth: usize::from(depth),
            now: start,
            price_time: start,
            last_frame: start,
            rng,
            vol_h: 0.0,
            trend: 0.0,
            trend_sd,
            next_jump,
            pairs: out,
            index,
        })
    }

    /// Instrument metadata of every simulated pair.
    pub fn instruments(&self) -> Vec<Instrument> {
        self.pairs.iter().map(|p| p.inst.clone()).collect()
    }

    /// The simulated symbols, in configuration order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.pairs.iter().map(|p| p.symbol.clone()).collect()
    }

    /// True when `pair` is simulated.
    pub fn has_pair(&self, pair: &str) -> bool {
        self.index.contains_key(pair)
    }

    /// Book depth of the simulated books.
    pub fn depth(&self) -> u16 {
        u16::try_from(self.depth).unwrap_or(u16::MAX)
    }

    /// Current simulated event time.
    pub fn now(&self) -> EventTime {
        self.now
    }

    /// Latent fair price of `pair` (statistics and tests; not something Kraken publishes).
    pub fn fair_price(&self, pair: &str) -> Option<f64> {
        self.pair(pair).map(|p| libm::exp(p.log_fair))
    }

    /// Best bid and ask of `pair` as Decimals (tests and diagnostics).
    pub fn best(&self, pair: &str) -> Option<(Decimal, Decimal)> {
        let p = self.pair(pair)?;
        Some((p.price_of(p.bids.first()?.0), p.price_of(p.asks.first()?.0)))
    }

    fn pair(&self, pair: &str) -> Option<&Pair> {
        self.index.get(pair).and_then(|&i| self.pairs.get(i))
    }

    fn next_event(&self) -> (EventTime, Next) {
        let mut best = (self.next_jump, Next::Jump);
        for (i, p) in self.pairs.iter().enumerate() {
            // Ties: earlier pair first, book before trade, jump last (strict `<`).
            if p.next_book < best.0 || (p.next_book == best.0 && best.1 == Next::Jump) {
                best = (p.next_book, Next::Book(i));
            }
            if p.next_trade < best.0 || (p.next_trade == best.0 && best.1 == Next::Jump) {
                best = (p.next_trade, Next::Trade(i));
            }
        }
        best
    }

    /// Advances the market by one step and appends the frames it produced (time order).
    pub fn step(&mut self, out: &mut Vec<SimFrame>) {
        let (t, what) = self.next_event();
        // Heartbeats fill every second of event time in which no frame went out.
        while t.micros_since(self.last_frame) > HEARTBEAT_US {
            let hb = self.last_frame.plus_micros(HEARTBEAT_US);
            out.push(SimFrame {
                time: hb,
                channel: "heartbeat",
                symbol: None,
                text: HEARTBEAT_FRAME.to_string(),
                events: 0,
            });
            self.last_frame = hb;
        }
        self.advance_prices(t);
        self.now = t;
        let activity = self.activity();
        let before = out.len();
        match what {
            Next::Jump => {
                self.jump();
                self.next_jump = t.plus_micros(jump_gap_us(&mut self.rng, self.cfg.jumps_per_hour));
            }
            Next::Book(i) => {
                let depth = self.depth;
                let p = &mut self.pairs[i];
                book_event(p, depth);
                if let Some(f) = p.finish_update(depth, t) {
                    out.push(f);
                }
                p.next_book = t.plus_micros(book_gap_us(&mut p.rng, self.cfg.book_updates_per_sec, activity));
            }
            Next::Trade(i) => {
                let depth = self.depth;
                let p = &mut self.pairs[i];
                trade_event(p, depth, t, out);
                p.next_trade = t.plus_micros(trade_gap_us(&mut p.rng, self.cfg.trades_per_sec, activity));
            }
        }
        if out.len() > before {
            self.last_frame = t;
        }
    }

    /// Trading activity follows volatility (√ of the volatility factor, mean ≈ 1).
    fn activity(&self) -> f64 {
        libm::exp(0.5 * (self.vol_h - VOL_SD * VOL_SD))
    }

    fn advance_prices(&mut self, t: EventTime) {
        let dt = t.micros_since(self.price_time) as f64 / MICROS_PER_SEC as f64;
        if dt <= 0.0 {
            return;
        }
        self.price_time = t;
        // Exact OU steps, so results do not depend on how finely time is cut.
        let a = libm::exp(-dt / VOL_TAU_S);
        self.vol_h = self.vol_h * a + VOL_SD * (1.0 - a * a).sqrt() * self.rng.normal();
        let b = libm::exp(-dt / TREND_TAU_S);
        self.trend = self.trend * b + self.trend_sd * (1.0 - b * b).sqrt() * self.rng.normal();
        let v = libm::exp(self.vol_h - VOL_SD * VOL_SD);
        let zm = self.rng.normal();
        let sq = dt.sqrt();
        for p in &mut self.pairs {
            let z = p.beta * zm + (1.0 - p.beta * p.beta).sqrt() * self.rng.normal();
            p.log_fair += p.sig_diff * v * sq * z + p.beta * self.trend * p.sig_raw * dt;
        }
    }

    fn jump(&mut self) {
        let zm = self.rng.normal();
        for p in &mut self.pairs {
            let z = p.beta * zm + (1.0 - p.beta * p.beta).sqrt() * self.rng.normal();
            p.log_fair += p.jump_sd * z;
        }
    }

    /// A `book` snapshot frame for `pair` (with checksum) at the current time.
    pub fn book_snapshot_frame(&self, pair: &str) -> Option<String> {
        let p = self.pair(pair)?;
        let mut t = String::with_capacity(128 + 64 * (p.bids.len() + p.asks.len()));
        t.push_str(r#"{"channel":"book","type":"snapshot","data":[{"symbol":""#);
        t.push_str(&p.symbol);
        t.push_str(r#"","bids":["#);
        for (k, side) in [&p.bids, &p.asks].into_iter().enumerate() {
            if k == 1 {
                t.push_str(r#"],"asks":["#);
            }
            for (i, &(px, lots)) in side.iter().enumerate() {
                if i > 0 {
                    t.push(',');
                }
                t.push_str("{\"price\":");
                p.push_price(&mut t, px);
                t.push_str(",\"qty\":");
                p.push_qty(&mut t, lots);
                t.push('}');
            }
        }
        let _ = write!(t, r#"],"checksum":{},"timestamp":"#, p.checksum);
        push_time(&mut t, self.now);
        t.push_str("}]}");
        Some(t)
    }

    /// A `ticker` snapshot frame for `pair` at the current time.
    pub fn ticker_snapshot_frame(&self, pair: &str) -> Option<String> {
        self.pair(pair).map(|p| ticker_frame(p, "snapshot", self.now))
    }

    /// A `trade` snapshot frame for `pair`: the last (up to) 50 trades, oldest first.
    pub fn trade_snapshot_frame(&self, pair: &str) -> Option<String> {
        let p = self.pair(pair)?;
        let mut t = String::from(r#"{"channel":"trade","type":"snapshot","data":["#);
        for (i, tr) in p.recent_trades.iter().enumerate() {
            if i > 0 {
                t.push(',');
            }
            t.push_str(tr);
        }
        t.push_str("]}");
        Some(t)
    }

    /// The `instrument` channel snapshot frame.
    pub fn instrument_snapshot_frame(&self) -> String {
        let mut assets: BTreeMap<&str, ()> = BTreeMap::new();
        for p in &self.pairs {
            assets.insert(&p.inst.base, ());
            assets.insert(&p.inst.quote, ());
        }
        let mut t = String::from(r#"{"channel":"instrument","type":"snapshot","data":{"assets":["#);
        for (i, code) in assets.keys().enumerate() {
            if i > 0 {
                t.push(',');
            }
            let (prec, disp, borrow, coll, margin) = asset_row(code);
            let _ = write!(
                t,
                r#"{{"id":"{code}","status":"enabled","precision":{prec},"precision_display":{disp},"borrowable":{borrow},"collateral_value":{coll}"#
            );
            if let Some(m) = margin {
                let _ = write!(t, r#","margin_rate":{m}"#);
            }
            t.push('}');
        }
        t.push_str(r#"],"pairs":["#);
        for (i, p) in self.pairs.iter().enumerate() {
            if i > 0 {
                t.push(',');
            }
            let inst = &p.inst;
            let _ = write!(
                t,
                r#"{{"symbol":"{}","base":"{}","quote":"{}","status":"{}","qty_precision":{},"qty_increment":"#,
                inst.symbol,
                inst.base,
                inst.quote,
                inst.status.as_str(),
                inst.qty_precision
            );
            push_decimal(&mut t, inst.qty_increment, inst.qty_precision);
            let _ = write!(
                t,
                r#","price_precision":{},"cost_precision":{},"marginable":{},"has_index":true,"cost_min":"#,
                inst.price_precision, inst.cost_precision, inst.marginable
            );
            push_decimal(&mut t, inst.cost_min, 0);
            if let Some((mi, long, short)) = profile(&inst.base, &inst.quote).margin {
                let _ = write!(
                    t,
                    r#","margin_initial":{mi},"position_limit_long":{long},"position_limit_short":{short}"#
                );
            }
            t.push_str(r#","tick_size":"#);
            push_decimal(&mut t, inst.price_increment, inst.price_precision);
            t.push_str(r#","price_increment":"#);
            push_decimal(&mut t, inst.price_increment, inst.price_precision);
            t.push_str(r#","qty_min":"#);
            push_decimal(&mut t, inst.qty_min, inst.qty_precision);
            t.push('}');
        }
        t.push_str("]}}");
        t
    }
}

/// `BASE/QUOTE` with ASCII letters/digits on both sides.
fn split_symbol(raw: &str) -> Result<(&str, &str), SimError> {
    let ok = |s: &str| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    match raw.split_once('/') {
        Some((b, q)) if ok(b) && ok(q) => Ok((b, q)),
        _ => Err(SimError::BadSymbol(raw.to_string())),
    }
}

fn secs_to_us(s: f64) -> i64 {
    (s * MICROS_PER_SEC as f64).round().clamp(1.0, 1e15) as i64
}

/// Time to the next non-trade book update: a mixture of bursts (30 %, ~15 ms apart) and
/// quiet gaps, with the overall mean 1 / rate.
fn book_gap_us(rng: &mut Rng, rate: f64, activity: f64) -> i64 {
    let mean = 1.0 / (rate * activity).max(1e-6);
    let quiet = ((mean - BURST_SHARE * BURST_MEAN_S) / (1.0 - BURST_SHARE)).max(0.001);
    let s = if rng.chance(BURST_SHARE) { rng.exponential(BURST_MEAN_S) } else { rng.exponential(quiet) };
    secs_to_us(s)
}

fn trade_gap_us(rng: &mut Rng, rate: f64, activity: f64) -> i64 {
    if rate <= 0.0 {
        return i64::MAX / 4;
    }
    secs_to_us(rng.exponential(1.0 / (rate * activity)))
}

fn jump_gap_us(rng: &mut Rng, per_hour: f64) -> i64 {
    if per_hour <= 0.0 {
        return i64::MAX / 4;
    }
    secs_to_us(rng.exponential(3_600.0 / per_hour))
}

/// The settings, the depth and the pair list a market can start from.
fn check_settings(cfg: &SimConfig, pairs: &[String], depth: u16) -> Result<(), SimError> {
    let mut is = Issues::default();
    cfg.validate(&mut is);
    if !is.is_empty() {
        return Err(SimError::Settings(is));
    }
    if !VALID_DEPTHS.contains(&depth) {
        return Err(SimError::Depth(depth));
    }
    if pairs.is_empty() {
        return Err(SimError::NoPairs);
    }
    Ok(())
}

/// Why a simulated market cannot start ([`SimMarket::new`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// `sim.*` settings out of range (each issue names its key).
    #[error("invalid simulator settings:\n{0}")]
    Settings(Issues),
    /// A book depth Kraken does not offer.
    #[error("book depth {0} is not one Kraken offers (10, 25, 100, 500, 1000)")]
    Depth(u16),
    /// An empty pair list.
    #[error("the simulator needs at least one pair")]
    NoPairs,
    /// A pair that is not `BASE/QUOTE`.
    #[error("pair {0:?} is not a Kraken WS v2 symbol of the form BASE/QUOTE (e.g. BTC/USD)")]
    BadSymbol(String),
    /// A pair listed twice.
    #[error("pair {0} is listed twice")]
    DuplicatePair(String),
}

impl crate::core::error::Classified for SimError {
    /// A market that cannot start refuses the run ([`Disposition::Halt`]).
    ///
    /// [`Disposition::Halt`]: crate::core::error::Disposition::Halt
    fn disposition(&self) -> crate::core::error::Disposition {
        match self {
            SimError::Settings(_)
            | SimError::Depth(_)
            | SimError::NoPairs
            | SimError::BadSymbol(_)
            | SimError::DuplicatePair(_) => crate::core::error::Disposition::Halt,
        }
    }
}

/// One pair at the start: its profile and random stream, the volatility split between
/// diffusion, trend and jumps, the opening price, instrument and ticker, the initial book and
/// the first book and trade times. The pair's draws happen in this order (same seed, same
/// frames).
fn open_pair(
    cfg: &SimConfig,
    raw: &str,
    symbol: Symbol,
    (base, quote): (&str, &str),
    depth: u16,
    trend_sd: f64,
) -> Pair {
    let start = cfg.start_time;
    let jumps_per_day = cfg.jumps_per_hour * 24.0;
    let prof = profile(base, quote);
    let mut prng = Rng::derive(cfg.seed, fnv1a(raw));
    let pp = prof.price_precision;
    let tick = libm::pow(10.0, -f64::from(pp));
    let daily = prof.daily_vol * cfg.volatility_scale;
    let sig_raw = daily / 86_400f64.sqrt();
    // Long-run variance = diffusion + trend (2·sd²·τ·β²) + jumps; keep it at daily².
    let trend_share = 2.0 * trend_sd * trend_sd * TREND_TAU_S * prof.beta * prof.beta;
    let jump_share = jumps_per_day * JUMP_SCALE * JUMP_SCALE;
    let sig_diff = sig_raw * (1.0 - trend_share - jump_share).max(0.25).sqrt();
    let price0 = prof.price * libm::exp(0.01 * prng.normal());
    let gap_mean = (GAP_FACTOR * sig_raw * price0 / tick).max(1.0);
    let inst = instrument(symbol.clone(), base, quote, &prof);
    let ticker = opening_ticker(&mut prng, &prof, price0, tick, start);
    let trade_id0 = 10_000_000 + fnv1a(raw) % 90_000_000;
    let mut p = Pair {
        symbol,
        inst,
        tick,
        tick_units: 1,
        lots_per_unit: libm::pow(10.0, f64::from(prof.qty_precision)),
        beta: prof.beta,
        sig_diff,
        sig_raw,
        jump_sd: JUMP_SCALE * daily,
        gap_mean,
        level_notional: prof.level_notional,
        trade_notional: prof.trade_notional,
        log_fair: libm::log(price0),
        bids: Vec::with_capacity(usize::from(depth) + 8),
        asks: Vec::with_capacity(usize::from(depth) + 8),
        book: L2Book::new(usize::from(depth), Some(pp), Some(prof.qty_precision)),
        checksum: 0,
        next_book: start,
        next_trade: start,
        next_trade_id: trade_id0,
        ticker,
        recent_trades: VecDeque::with_capacity(TRADE_SNAPSHOT_LEN),
        rng: prng,
        upd_bids: String::with_capacity(256),
        upd_asks: String::with_capacity(256),
    };
    build_initial_book(&mut p, usize::from(depth));
    p.next_book = start.plus_micros(book_gap_us(&mut p.rng, cfg.book_updates_per_sec, 1.0));
    p.next_trade = start.plus_micros(trade_gap_us(&mut p.rng, cfg.trades_per_sec, 1.0));
    p
}

/// The pair's instrument, as the feed decodes it from the pair's `instrument` frame.
fn instrument(symbol: Symbol, base: &str, quote: &str, prof: &Profile) -> Instrument {
    let pp = prof.price_precision;
    Instrument {
        symbol,
        base: Arc::from(base),
        quote: Arc::from(quote),
        status: PairStatus::Online,
        price_precision: pp,
        qty_precision: prof.qty_precision,
        cost_precision: prof.cost_precision,
        price_increment: Decimal::new(1, pp),
        qty_increment: Decimal::new(1, prof.qty_precision),
        qty_min: prof.qty_min,
        cost_min: prof.cost_min,
        marginable: prof.margin.is_some(),
        // What the feed decodes from this pair's `instrument` frame (margin_initial
        // 0.20 → 5×, position_limit_short; Kraken's 80 / 40 % call and stop levels).
        margin: prof.margin.and_then(|(mi, _, short)| {
            let lev =
                mi.parse::<Decimal>().ok().filter(|m| !m.is_zero()).map(|m| (Decimal::ONE / m).floor())?;
            Some(crate::core::instrument::MarginTerms {
                max_leverage_sell: u32::try_from(lev.mantissa() / 10i128.pow(lev.scale())).ok()?,
                margin_call: crate::core::instrument::MarginTerms::KRAKEN_MARGIN_CALL,
                margin_stop: crate::core::instrument::MarginTerms::KRAKEN_MARGIN_STOP,
                short_position_limit: Some(Decimal::from(short)),
            })
        }),
    }
}

/// The ticker's 24 h figures at the start: an open within about 1 % of the opening price and
/// a high and low about 0.5–1 % beyond (three draws from the pair's stream).
fn opening_ticker(prng: &mut Rng, prof: &Profile, price0: f64, tick: f64, start: EventTime) -> Ticker {
    let last0 = (price0 / tick).round() as i64;
    let open = (last0 as f64 * (1.0 - 0.01 * prng.normal())).round().max(1.0) as i64;
    let hi_f = 1.0 + 0.005 + 0.005 * prng.normal().abs();
    let lo_f = 1.0 - 0.005 - 0.005 * prng.normal().abs();
    Ticker {
        open,
        high: (open.max(last0) as f64 * hi_f).round() as i64,
        low: (open.min(last0) as f64 * lo_f).round().max(1.0) as i64,
        last: last0,
        volume: prof.volume_24h,
        notional: prof.volume_24h * (open + last0) as f64 / 2.0 * tick,
        time: start,
    }
}
