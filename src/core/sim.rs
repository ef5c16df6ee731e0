//! The seeded simulated Kraken market (pure: no I/O, no clock). OWNER: sim helper.
//!
//! [`SimMarket`] is an event-time market for several pairs that produces exactly the frames
//! Kraken's WebSocket v2 API would send (`book`, `trade`, `ticker`, `heartbeat`, plus the
//! `instrument`, `status` and snapshot frames on request). `sources::simulated` serves them
//! over a real WebSocket; `record_sim` writes them to a file. docs/simulator.md has the model,
//! the calibration against the recordings in shared/data/kraken and the protocol behaviour.
//!
//! The model in one paragraph: every pair has a latent fair log-price driven by a common
//! market factor (loading `beta`, so BTC/ETH returns correlate ≈ 0.75), an idiosyncratic
//! factor, a shared slowly mean-reverting trend, shared stochastic volatility (volatility
//! clustering) and rare jumps. The displayed L2 book follows the fair price: when the fair
//! price leaves the band around the mid, a book update cancels the levels it has passed and
//! joins a new touch on the other side; otherwise updates are "noise" (a resting level is
//! resized, a level is added between two others or inside the spread, a level is cancelled,
//! a missing level is refilled at the deep end). Trades are market orders that take
//! liquidity from the touch, walking levels and depleting them, each followed by the book
//! update that shows it and a ticker. Every decision comes from [`Rng`] streams derived
//! from `sim.seed`, so the same seed and pairs give the same frames byte for byte.
//!
//! Books are kept twice: integer ticks/lots (for the model's arithmetic) and a
//! [`L2Book`] with the pair's precisions (for Kraken's checksum). Both apply every emitted
//! level in order and are cut to the depth after every message, exactly as a client does.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::book::L2Book;
use super::instrument::{Instrument, PairStatus, Symbol};
use super::market::Side;
use super::rng::Rng;
use super::time::{EventTime, MICROS_PER_SEC};
use super::validate::Issues;

/// Book depths Kraken accepts on a `book` subscription.
pub const VALID_DEPTHS: [u16; 5] = [10, 25, 100, 500, 1000];

/// Trades kept per pair for a `trade` snapshot (Kraken sends the last 50).
pub const TRADE_SNAPSHOT_LEN: usize = 50;

/// `sim.*`: the embedded simulated exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of the market model (`--seed`).
    pub seed: u64,
    /// Event time the simulated clock starts at (never "now").
    pub start_time: EventTime,
    /// Fault injection for tests: the server drops the first connection after this many
    /// market frames (None: never).
    pub drop_connection_after_frames: Option<u64>,
    /// Mean rate of book updates per pair per second of event time that are not caused by
    /// a trade (each trade adds one more book update). Default 4.
    pub book_updates_per_sec: f64,
    /// Mean rate of taker orders (trade messages) per pair per second. Default 0.75
    /// (measured 0.74/s on BTC/USD). At most 0.4 × `book_updates_per_sec`, so that book
    /// updates stay ≥ 70 % of the events.
    pub trades_per_sec: f64,
    /// Multiplies every pair's volatility (1 = the built-in daily volatilities).
    pub volatility_scale: f64,
    /// Mean number of price jumps per hour of event time (market-wide shocks of about
    /// 0.15 daily standard deviations). Default 0.25.
    pub jumps_per_hour: f64,
    /// Strength of the shared, mean-reverting (1 h) trend, 0 = pure random walk. The
    /// diffusion is scaled down so that long-run volatility stays at the profile's. Default 0.3.
    pub trend_strength: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            start_time: EventTime::from_micros(1_735_689_600_000_000), // 2025-01-01T00:00:00Z
            drop_connection_after_frames: None,
            book_updates_per_sec: 4.0,
            trades_per_sec: 0.75,
            volatility_scale: 1.0,
            jumps_per_hour: 0.25,
            trend_strength: 0.3,
        }
    }
}

impl SimConfig {
    /// Adds a problem for every out-of-range key (`sim.…`).
    pub fn validate(&self, is: &mut Issues) {
        let b = self.book_updates_per_sec;
        is.check(b.is_finite() && b > 0.0 && b <= 1000.0, "sim.book_updates_per_sec", || {
            format!("must be in (0, 1000] updates per second, got {b}")
        });
        let t = self.trades_per_sec;
        is.check(t.is_finite() && t >= 0.0 && t <= 0.4 * b.max(0.0), "sim.trades_per_sec", || {
            format!("must be between 0 and 0.4 × sim.book_updates_per_sec ({}), got {t}", 0.4 * b)
        });
        let v = self.volatility_scale;
        is.check(v.is_finite() && v > 0.0 && v <= 20.0, "sim.volatility_scale", || {
            format!("must be in (0, 20], got {v}")
        });
        let j = self.jumps_per_hour;
        is.check(j.is_finite() && (0.0..=60.0).contains(&j), "sim.jumps_per_hour", || {
            format!("must be between 0 and 60, got {j}")
        });
        let s = self.trend_strength;
        is.check(s.is_finite() && (0.0..=3.0).contains(&s), "sim.trend_strength", || {
            format!("must be between 0 and 3, got {s}")
        });
        is.check(self.drop_connection_after_frames != Some(0), "sim.drop_connection_after_frames", || {
            "must be at least 1 (or null for never)".to_string()
        });
        is.check(self.start_time >= EventTime::ZERO, "sim.start_time", || {
            format!("must not be before 1970-01-01, got {}", self.start_time)
        });
    }
}

/// One frame the simulated exchange would send, with its event time.
#[derive(Clone, Debug)]
pub struct SimFrame {
    /// Event time of the frame.
    pub time: EventTime,
    /// Channel (`book`, `trade`, `ticker`, `heartbeat`, `status`, `instrument`).
    pub channel: &'static str,
    /// Pair, for per-pair channels.
    pub symbol: Option<Arc<str>>,
    /// The Kraken WS v2 JSON text.
    pub text: String,
    /// Book/trade events in the frame (elements of a `book` or `trade` message's `data`);
    /// 0 for other channels.
    pub events: u32,
}

// ---------------------------------------------------------------------------------------
// Pair profiles
// ---------------------------------------------------------------------------------------

/// Static description of a simulated pair (numbers from Kraken's instrument channel, prices
/// of 2025-01-01, volatilities typical of 2024–2025).
struct Profile {
    price: f64,
    price_precision: u32,
    qty_precision: u32,
    qty_min: Decimal,
    cost_min: Decimal,
    cost_precision: u32,
    /// (margin_initial as Kraken writes it, position_limit_long, position_limit_short).
    margin: Option<(&'static str, u64, u64)>,
    daily_vol: f64,
    beta: f64,
    /// Median displayed level size, in quote currency.
    level_notional: f64,
    /// Median taker order size before the caps at the touch, in quote currency (the
    /// emitted trades' median is about 45 % of it).
    trade_notional: f64,
    /// 24 h volume at the start, in base units.
    volume_24h: f64,
}

/// Approximate USD value of one unit of a quote currency (to size generic pairs).
fn quote_usd(code: &str) -> f64 {
    match code {
        "USD" | "USDT" | "USDC" | "DAI" => 1.0,
        "EUR" => 1.04,
        "GBP" => 1.25,
        "CAD" => 0.70,
        "AUD" => 0.62,
        "CHF" => 1.10,
        "JPY" => 0.0064,
        "BTC" | "XBT" => 94_000.0,
        "ETH" => 3_350.0,
        _ => 1.0,
    }
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// 10^n as i128 (n ≤ 28).
fn pow10(n: u32) -> i128 {
    10i128.pow(n.min(28))
}

fn profile(base: &str, quote: &str) -> Profile {
    let d = |m: i64, s: u32| Decimal::new(m, s);
    match (base, quote) {
        ("BTC", "USD") => Profile {
            price: 93_400.0,
            price_precision: 1,
            qty_precision: 8,
            qty_min: d(10_000, 8),
            cost_min: d(5, 1),
            cost_precision: 5,
            margin: Some(("0.20", 300, 240)),
            daily_vol: 0.028,
            beta: 0.92,
            level_notional: 2_500.0,
            trade_notional: 2_000.0,
            volume_24h: 1_800.0,
        },
        ("ETH", "USD") => Profile {
            price: 3_350.0,
            price_precision: 2,
            qty_precision: 8,
            qty_min: d(200_000, 8),
            cost_min: d(5, 1),
            cost_precision: 5,
            margin: Some(("0.20", 2_700, 1_700)),
            daily_vol: 0.038,
            beta: 0.85,
            level_notional: 2_000.0,
            trade_notional: 1_500.0,
            volume_24h: 22_000.0,
        },
        ("SOL", "USD") => Profile {
            price: 190.0,
            price_precision: 2,
            qty_precision: 8,
            qty_min: d(5_000_000, 8),
            cost_min: d(5, 1),
            cost_precision: 5,
            margin: Some(("0.25", 37_000, 24_000)),
            daily_vol: 0.050,
            beta: 0.80,
            level_notional: 1_500.0,
            trade_notional: 1_000.0,
            volume_24h: 250_000.0,
        },
        ("XRP", "USD") => Profile {
            price: 2.08,
            price_precision: 5,
            qty_precision: 8,
            qty_min: d(1_000_000_000, 8),
            cost_min: d(5, 1),
            cost_precision: 8,
            margin: Some(("0.20", 2_000_000, 1_200_000)),
            daily_vol: 0.055,
            beta: 0.65,
            level_notional: 1_500.0,
            trade_notional: 1_000.0,
            volume_24h: 40_000_000.0,
        },
        ("ETH", "BTC") => Profile {
            price: 0.03585,
            price_precision: 5,
            qty_precision: 8,
            qty_min: d(200_000, 8),
            cost_min: d(2, 5),
            cost_precision: 10,
            margin: Some(("0.20", 1_000, 600)),
            daily_vol: 0.025,
            beta: 0.25,
            level_notional: 0.03,
            trade_notional: 0.02,
            volume_24h: 2_500.0,
        },
        _ => generic_profile(base, quote),
    }
}

/// A plausible profile for a pair without a built-in one: a price between 5 and 15 USD
/// (from a hash of the symbol, so it is stable), a tick of about 1 bp, 4 % daily volatility.
fn generic_profile(base: &str, quote: &str) -> Profile {
    let h = fnv1a(&format!("{base}/{quote}"));
    let q_usd = quote_usd(quote);
    let price_usd = 5.0 + (h % 1000) as f64 / 100.0;
    let price = price_usd / q_usd;
    // tick ≤ 1 bp of the price: 10^-pp ≤ price × 1e-4.
    let pp = (4.0 - price.log10()).ceil().clamp(0.0, 10.0) as u32;
    // qty_min ≈ 5 USD rounded down to a power of ten, within the 8 qty decimals.
    let qmin_exp = (5.0 / price_usd).log10().floor().clamp(-8.0, 6.0) as i32;
    let qty_min = if qmin_exp >= 0 {
        Decimal::new(10i64.pow(qmin_exp as u32), 0)
    } else {
        Decimal::new(1, (-qmin_exp) as u32)
    };
    let cmin_exp = (0.5 / q_usd).log10().floor().clamp(-10.0, 3.0) as i32;
    let cost_min = if cmin_exp >= 0 {
        Decimal::new(5 * 10i64.pow(cmin_exp as u32), 0)
    } else {
        Decimal::new(5, (-cmin_exp) as u32)
    };
    Profile {
        price,
        price_precision: pp,
        qty_precision: 8,
        qty_min,
        cost_min,
        cost_precision: (pp + 4).min(10),
        margin: None,
        daily_vol: 0.04,
        beta: 0.6,
        level_notional: 1_000.0 / q_usd,
        trade_notional: 300.0 / q_usd,
        volume_24h: 1_000_000.0 / price_usd,
    }
}

/// Asset rows of the `instrument` snapshot: (precision, precision_display, borrowable,
/// collateral_value, margin_rate) with Kraken's number spellings.
fn asset_row(code: &str) -> (u32, u32, bool, &'static str, Option<&'static str>) {
    match code {
        "USD" | "EUR" | "GBP" | "CAD" | "AUD" | "CHF" => (4, 2, true, "1.00", Some("0.025000")),
        "BTC" => (10, 5, true, "1.00", Some("0.010000")),
        "ETH" => (10, 5, true, "1.00", Some("0.020000")),
        "SOL" => (10, 5, true, "0.90", Some("0.020000")),
        "XRP" => (8, 5, true, "0.00", Some("0.020000")),
        _ => (8, 5, false, "0.00", None),
    }
}

// ---------------------------------------------------------------------------------------
// Model constants (calibration in docs/simulator.md)
// ---------------------------------------------------------------------------------------

/// Mean-reversion time of the log-volatility factor (s).
const VOL_TAU_S: f64 = 1_800.0;
/// Stationary standard deviation of the log-volatility factor.
const VOL_SD: f64 = 0.35;
/// Mean-reversion time of the shared trend (s).
const TREND_TAU_S: f64 = 3_600.0;
/// Jump size in daily standard deviations of the pair.
const JUMP_SCALE: f64 = 0.15;
/// Mean gap between book levels, in one-second standard deviations of the price. It is
/// set so that the book is re-priced about once a second (see docs/simulator.md).
const GAP_FACTOR: f64 = 0.8;
/// Log-space standard deviation of displayed level sizes.
const LEVEL_SIGMA: f64 = 1.9;
/// Log-space standard deviation of taker order sizes (measured 2.37 on BTC/USD trades;
/// the caps at the touch bring the emitted trades' log-sd to about 2).
const TRADE_SIGMA: f64 = 2.1;
/// Share of sizes rounded to two significant digits (people type round numbers).
const ROUND_SHARE: f64 = 0.3;
/// Share of book updates that follow the previous one within a burst.
const BURST_SHARE: f64 = 0.3;
/// Mean gap between updates inside a burst (s); measured median gap 6 ms.
const BURST_MEAN_S: f64 = 0.015;
/// Heartbeat after this much event time without a frame (Kraken: about one per second).
const HEARTBEAT_US: i64 = MICROS_PER_SEC;

// ---------------------------------------------------------------------------------------
// Number writing (fixed decimals, as Kraken sends them)
// ---------------------------------------------------------------------------------------

/// Writes `mantissa × 10^-scale` with exactly `scale` decimals (`0.10000000`, `94000.0`).
fn push_fixed(out: &mut String, mantissa: i128, scale: u32) {
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
fn push_decimal(out: &mut String, value: Decimal, scale: u32) {
    let mut v = value;
    if v.scale() < scale {
        v.rescale(scale);
    }
    let _ = write!(out, "{v}");
}

/// Writes `"key":"<rfc3339>"`.
fn push_time(out: &mut String, t: EventTime) {
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

// ---------------------------------------------------------------------------------------
// Per-pair state
// ---------------------------------------------------------------------------------------

/// Rolling 24 h figures for the ticker (decayed exponentially, see docs/simulator.md).
struct Ticker {
    open: i64,
    high: i64,
    low: i64,
    last: i64,
    volume: f64,
    notional: f64,
    time: EventTime,
}

struct Pair {
    symbol: Symbol,
    inst: Instrument,
    /// Price of one tick in quote units.
    tick: f64,
    /// Mantissa of one tick at scale `price_precision`.
    tick_units: i64,
    /// Lots per unit of base (10^qty_precision).
    lots_per_unit: f64,
    beta: f64,
    /// Diffusion standard deviation per √s (after the trend/jump share is taken out).
    sig_diff: f64,
    /// Raw standard deviation per √s (the profile's daily volatility × scale).
    sig_raw: f64,
    jump_sd: f64,
    gap_mean: f64,
    level_notional: f64,
    trade_notional: f64,
    log_fair: f64,
    /// Integer book, best first: (ticks, lots).
    bids: Vec<(i64, i64)>,
    asks: Vec<(i64, i64)>,
    book: L2Book,
    checksum: u32,
    next_book: EventTime,
    next_trade: EventTime,
    next_trade_id: u64,
    ticker: Ticker,
    recent_trades: VecDeque<String>,
    rng: Rng,
    upd_bids: String,
    upd_asks: String,
}

impl Pair {
    fn fair_ticks(&self) -> f64 {
        self.log_fair.exp() / self.tick
    }

    fn price_of(&self, ticks: i64) -> Decimal {
        Decimal::new(ticks.saturating_mul(self.tick_units), self.inst.price_precision)
    }

    fn push_price(&self, out: &mut String, ticks: i64) {
        push_fixed(out, i128::from(ticks) * i128::from(self.tick_units), self.inst.price_precision);
    }

    fn push_qty(&self, out: &mut String, lots: i64) {
        push_fixed(out, i128::from(lots), self.inst.qty_precision);
    }

    fn side(&self, side: Side) -> &Vec<(i64, i64)> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Applies one level to both books and records it in the update being built.
    fn apply(&mut self, side: Side, ticks: i64, lots: i64) {
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
    fn finish_update(&mut self, depth: usize, now: EventTime) -> Option<SimFrame> {
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
    fn draw_lots(&mut self, median: f64, sigma: f64) -> i64 {
        let notional = self.rng.lognormal(median, sigma).min(median * 400.0);
        let price = self.log_fair.exp();
        let mut lots = (notional / price * self.lots_per_unit).round().clamp(1.0, 1e17) as i64;
        if self.rng.chance(ROUND_SHARE) {
            lots = round_2_significant(lots);
        }
        lots.max(1)
    }

    /// Mean-gap geometric draw, at least one tick.
    fn draw_gap(&mut self) -> i64 {
        if self.gap_mean <= 1.0 {
            return 1;
        }
        1 + self.rng.exponential(self.gap_mean - 1.0).floor().min(1e9) as i64
    }

    /// The deep-end price for a new level on `side` (None when a bid would reach 0).
    fn deep_price(&mut self, side: Side) -> Option<i64> {
        let gap = self.draw_gap();
        match side {
            Side::Buy => {
                let p = self.bids.last().map_or(self.fair_ticks().floor() as i64 - 1, |l| l.0) - gap;
                (p > 0).then_some(p)
            }
            Side::Sell => Some(self.asks.last().map_or(self.fair_ticks().ceil() as i64 + 1, |l| l.0) + gap),
        }
    }

    fn spread_draw(&mut self) -> i64 {
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

fn round_2_significant(lots: i64) -> i64 {
    let mut p: i64 = 1;
    while lots / p >= 100 {
        p = p.saturating_mul(10);
    }
    (lots / p) * p
}

// ---------------------------------------------------------------------------------------
// The market
// ---------------------------------------------------------------------------------------

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
    pub fn new(cfg: &SimConfig, pairs: &[String], depth: u16) -> Result<SimMarket, String> {
        let mut is = Issues::default();
        cfg.validate(&mut is);
        if !is.is_empty() {
            return Err(format!("invalid simulator settings:\n{is}"));
        }
        if !VALID_DEPTHS.contains(&depth) {
            return Err(format!("book depth {depth} is not one Kraken offers (10, 25, 100, 500, 1000)"));
        }
        if pairs.is_empty() {
            return Err("the simulator needs at least one pair".to_string());
        }
        let start = cfg.start_time;
        let mut rng = Rng::derive(cfg.seed, 0x51_4D);
        let trend_sd = cfg.trend_strength / 60.0;
        let jumps_per_day = cfg.jumps_per_hour * 24.0;
        let mut out = Vec::with_capacity(pairs.len());
        let mut index = BTreeMap::new();
        for raw in pairs {
            let (base, quote) = split_symbol(raw)?;
            let symbol: Symbol = Arc::from(raw.as_str());
            if index.contains_key(&symbol) {
                return Err(format!("pair {raw} is listed twice"));
            }
            let prof = profile(base, quote);
            let mut prng = Rng::derive(cfg.seed, fnv1a(raw));
            let pp = prof.price_precision;
            let tick = 10f64.powi(-(pp as i32));
            let daily = prof.daily_vol * cfg.volatility_scale;
            let sig_raw = daily / 86_400f64.sqrt();
            // Long-run variance = diffusion + trend (2·sd²·τ·β²) + jumps; keep it at daily².
            let trend_share = 2.0 * trend_sd * trend_sd * TREND_TAU_S * prof.beta * prof.beta;
            let jump_share = jumps_per_day * JUMP_SCALE * JUMP_SCALE;
            let sig_diff = sig_raw * (1.0 - trend_share - jump_share).max(0.25).sqrt();
            let price0 = prof.price * (0.01 * prng.normal()).exp();
            let gap_mean = (GAP_FACTOR * sig_raw * price0 / tick).max(1.0);
            let inst = Instrument {
                symbol: symbol.clone(),
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
                    let lev = mi
                        .parse::<Decimal>()
                        .ok()
                        .filter(|m| !m.is_zero())
                        .map(|m| (Decimal::ONE / m).floor())?;
                    Some(crate::core::instrument::MarginTerms {
                        max_leverage_sell: u32::try_from(lev.mantissa() / 10i128.pow(lev.scale())).ok()?,
                        margin_call: crate::core::instrument::MarginTerms::KRAKEN_MARGIN_CALL,
                        margin_stop: crate::core::instrument::MarginTerms::KRAKEN_MARGIN_STOP,
                        short_position_limit: Some(Decimal::from(short)),
                    })
                }),
            };
            let last0 = (price0 / tick).round() as i64;
            let open = (last0 as f64 * (1.0 - 0.01 * prng.normal())).round().max(1.0) as i64;
            let hi_f = 1.0 + 0.005 + 0.005 * prng.normal().abs();
            let lo_f = 1.0 - 0.005 - 0.005 * prng.normal().abs();
            let ticker = Ticker {
                open,
                high: (open.max(last0) as f64 * hi_f).round() as i64,
                low: (open.min(last0) as f64 * lo_f).round().max(1.0) as i64,
                last: last0,
                volume: prof.volume_24h,
                notional: prof.volume_24h * (open + last0) as f64 / 2.0 * tick,
                time: start,
            };
            let trade_id0 = 10_000_000 + fnv1a(raw) % 90_000_000;
            let mut p = Pair {
                symbol: symbol.clone(),
                inst,
                tick,
                tick_units: 1,
                lots_per_unit: 10f64.powi(prof.qty_precision as i32),
                beta: prof.beta,
                sig_diff,
                sig_raw,
                jump_sd: JUMP_SCALE * daily,
                gap_mean,
                level_notional: prof.level_notional,
                trade_notional: prof.trade_notional,
                log_fair: price0.ln(),
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
        self.pair(pair).map(|p| p.log_fair.exp())
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
        (0.5 * (self.vol_h - VOL_SD * VOL_SD)).exp()
    }

    fn advance_prices(&mut self, t: EventTime) {
        let dt = t.micros_since(self.price_time) as f64 / MICROS_PER_SEC as f64;
        if dt <= 0.0 {
            return;
        }
        self.price_time = t;
        // Exact OU steps, so results do not depend on how finely time is cut.
        let a = (-dt / VOL_TAU_S).exp();
        self.vol_h = self.vol_h * a + VOL_SD * (1.0 - a * a).sqrt() * self.rng.normal();
        let b = (-dt / TREND_TAU_S).exp();
        self.trend = self.trend * b + self.trend_sd * (1.0 - b * b).sqrt() * self.rng.normal();
        let v = (self.vol_h - VOL_SD * VOL_SD).exp();
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
fn split_symbol(raw: &str) -> Result<(&str, &str), String> {
    let ok = |s: &str| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    match raw.split_once('/') {
        Some((b, q)) if ok(b) && ok(q) => Ok((b, q)),
        _ => Err(format!("pair {raw:?} is not a Kraken WS v2 symbol of the form BASE/QUOTE (e.g. BTC/USD)")),
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

fn build_initial_book(p: &mut Pair, depth: usize) {
    let fair = p.fair_ticks();
    let bb = (fair - 0.5).floor().max(1.0) as i64;
    let (mut b, mut a) = (bb, bb + 1);
    for i in 0..depth {
        if i > 0 {
            b -= p.draw_gap();
            a += p.draw_gap();
        }
        if b > 0 {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Buy, b, lots);
        }
        let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
        p.apply(Side::Sell, a, lots);
    }
    p.bids.truncate(depth);
    p.asks.truncate(depth);
    p.book.truncate();
    p.checksum = p.book.checksum();
    p.upd_bids.clear();
    p.upd_asks.clear();
}

/// One book update that is not caused by a trade: a re-price when the fair price left the
/// band around the mid, else a noise change of one level.
fn book_event(p: &mut Pair, depth: usize) {
    let (Some(&(bb, _)), Some(&(ba, _))) = (p.bids.first(), p.asks.first()) else {
        // A side is empty (cannot happen after the initial book, but never leave it so).
        top_up(p, depth);
        return;
    };
    let fair = p.fair_ticks();
    let mid = (bb + ba) as f64 / 2.0;
    let dev = fair - mid;
    if dev.abs() > p.gap_mean.max(1.0) {
        reprice(p, fair, dev > 0.0);
    } else {
        noise(p, bb, ba);
    }
    top_up(p, depth);
}

/// The fair price moved past the band: cancel the levels it passed on the side it moved
/// toward and join a new touch on the other side, with a spread of 1–4 ticks.
fn reprice(p: &mut Pair, fair: f64, up: bool) {
    let s = p.spread_draw();
    let target_bid = ((fair - s as f64 / 2.0).floor() as i64).max(1);
    let target_ask = target_bid + s;
    if up {
        while let Some(&(a, _)) = p.asks.first() {
            if a >= target_ask {
                break;
            }
            p.apply(Side::Sell, a, 0);
        }
        if p.bids.first().is_none_or(|l| l.0 < target_bid) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Buy, target_bid, lots);
        }
        if p.asks.first().is_none_or(|l| l.0 as f64 > target_ask as f64 + 2.0 * p.gap_mean) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Sell, target_ask, lots);
        }
    } else {
        while let Some(&(b, _)) = p.bids.first() {
            if b <= target_bid {
                break;
            }
            p.apply(Side::Buy, b, 0);
        }
        if p.asks.first().is_none_or(|l| l.0 > target_ask) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Sell, target_ask, lots);
        }
        if p.bids.first().is_none_or(|l| (l.0 as f64) < target_bid as f64 - 2.0 * p.gap_mean) {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(Side::Buy, target_bid, lots);
        }
    }
}

/// Adds one level at the deep end of `side` (what Kraken sends when a level re-enters the
/// window after one above it went). False when no price is left (a bid would reach 0).
fn refill(p: &mut Pair, side: Side) -> bool {
    match p.deep_price(side) {
        Some(px) => {
            let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(side, px, lots);
            true
        }
        None => false,
    }
}

/// Keeps both sides at `depth` levels: the exchange's book is deeper than the window, so a
/// level that leaves the window is replaced in the same message by the next one down.
fn top_up(p: &mut Pair, depth: usize) {
    for side in [Side::Buy, Side::Sell] {
        while p.side(side).len() < depth {
            if !refill(p, side) {
                break;
            }
        }
    }
}

/// A one-level change: refill a short side, improve a wide spread, resize, insert between
/// two levels, or cancel a level.
fn noise(p: &mut Pair, bb: i64, ba: i64) {
    let side = if p.rng.chance(0.5) { Side::Buy } else { Side::Sell };
    let spread = ba - bb;
    // Market makers close a wide spread quickly (Kraken's BTC/USD spread is one tick at
    // the 90th percentile): quote inside it, on the side the fair price leans toward.
    if spread > 1 && p.rng.chance(if spread > 4 { 0.9 } else { 0.3 }) {
        let s = p.spread_draw().min(spread - 1);
        let lots = p.draw_lots(p.level_notional, LEVEL_SIGMA);
        if p.fair_ticks() > (bb + ba) as f64 / 2.0 {
            p.apply(Side::Buy, ba - s, lots);
        } else {
            p.apply(Side::Sell, bb + s, lots);
        }
        return;
    }
    let n = p.side(side).len();
    if n == 0 {
        return;
    }
    let rank = (p.rng.exponential(3.0).floor() as usize).min(n - 1);
    let (px, lots) = p.side(side)[rank];
    let u = p.rng.uniform();
    if u < 0.6 || (u >= 0.8 && n <= 2) {
        // Resize: orders added or cancelled at that price.
        let new = if p.rng.chance(0.3) {
            p.draw_lots(p.level_notional, LEVEL_SIGMA)
        } else {
            ((lots as f64) * p.rng.lognormal(1.0, 0.7)).round().clamp(1.0, 1e17) as i64
        };
        p.apply(side, px, if new == lots { lots + 1 } else { new });
    } else if u < 0.8 {
        // Insert between this level and the next one out (or beyond the last).
        let next = p.side(side).get(rank + 1).map(|l| l.0);
        let room = next.map_or(i64::MAX, |q| (q - px).abs() - 1);
        if room < 1 {
            let new = lots + 1 + p.rng.below(lots.unsigned_abs().max(1)) as i64;
            p.apply(side, px, new);
            return;
        }
        let off = if room == i64::MAX { p.draw_gap() } else { 1 + p.rng.below(room as u64) as i64 };
        let new_px = match side {
            Side::Buy => px - off,
            Side::Sell => px + off,
        };
        if new_px > 0 {
            let new = p.draw_lots(p.level_notional, LEVEL_SIGMA);
            p.apply(side, new_px, new);
        }
    } else {
        p.apply(side, px, 0);
    }
}

/// A taker order: side leans toward the fair price, size heavy-tailed; it walks the
/// opposite side from the touch, depleting levels. Emits trade, book and ticker frames.
fn trade_event(p: &mut Pair, depth: usize, now: EventTime, out: &mut Vec<SimFrame>) {
    let (Some(&(bb, _)), Some(&(ba, _))) = (p.bids.first(), p.asks.first()) else {
        return;
    };
    let dev = p.fair_ticks() - (bb + ba) as f64 / 2.0;
    let p_buy = 0.5 + 0.3 * (dev / p.gap_mean.max(1.0)).tanh();
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
fn update_ticker_stats(p: &mut Pair, now: EventTime, px: i64, lots: i64) {
    let tk = &mut p.ticker;
    let dt = now.micros_since(tk.time).max(0) as f64 / MICROS_PER_SEC as f64;
    let k = (-dt / 86_400.0).exp();
    let qty = lots as f64 / p.lots_per_unit;
    tk.volume = tk.volume * k + qty;
    tk.notional = tk.notional * k + qty * px as f64 * p.tick;
    tk.time = now;
    tk.high = tk.high.max(px);
    tk.low = tk.low.min(px);
}

fn ticker_frame(p: &Pair, kind: &str, now: EventTime) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::money::parse_decimal;

    fn pairs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(cfg: &SimConfig, ps: &[&str], depth: u16, steps: usize) -> (SimMarket, Vec<SimFrame>) {
        let mut m = SimMarket::new(cfg, &pairs(ps), depth).unwrap();
        let mut out = Vec::new();
        for _ in 0..steps {
            m.step(&mut out);
        }
        (m, out)
    }

    /// A client-side book rebuilt from the frames, like MarketFeed does.
    struct Client {
        book: L2Book,
    }

    impl Client {
        fn new(depth: usize, pp: u32, qp: u32) -> Client {
            Client { book: L2Book::new(depth, Some(pp), Some(qp)) }
        }
        /// Applies a book frame; returns (checksum in frame, checksum computed).
        fn apply(&mut self, text: &str) -> (u32, u32) {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            if v["type"] == "snapshot" {
                self.book.clear();
            }
            let d = &v["data"][0];
            for (key, side) in [("bids", Side::Buy), ("asks", Side::Sell)] {
                for l in d[key].as_array().unwrap() {
                    let p = parse_decimal(&l["price"].to_string()).unwrap();
                    let q = parse_decimal(&l["qty"].to_string()).unwrap();
                    self.book.apply(side, p, q);
                }
            }
            self.book.truncate();
            (d["checksum"].as_u64().unwrap() as u32, self.book.checksum())
        }
    }

    #[test]
    fn same_seed_gives_the_same_frames_byte_for_byte() {
        let cfg = SimConfig::default();
        let (_, a) = run(&cfg, &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 3000);
        let (_, b) = run(&cfg, &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 3000);
        assert!(a.len() > 3000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text && x.time == y.time));
        assert_eq!(a.len(), b.len());
        let other = SimConfig { seed: 2, ..SimConfig::default() };
        let (_, c) = run(&other, &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 3000);
        assert_ne!(a[10].text, c[10].text, "another seed gives another market");
    }

    #[test]
    fn checksums_verify_on_a_client_rebuilt_book_and_book_never_crosses() {
        for depth in [10u16, 25] {
            let (m, frames) = run(&SimConfig::default(), &["BTC/USD", "XRP/USD", "ETH/BTC"], depth, 6000);
            // Start clients from the initial snapshot of a fresh market with the same seed.
            let fresh = SimMarket::new(
                &SimConfig::default(),
                &m.symbols().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                depth,
            )
            .unwrap();
            let mut clients: BTreeMap<String, Client> = BTreeMap::new();
            for inst in fresh.instruments() {
                let mut c = Client::new(usize::from(depth), inst.price_precision, inst.qty_precision);
                let (want, got) = c.apply(&fresh.book_snapshot_frame(&inst.symbol).unwrap());
                assert_eq!(want, got, "snapshot checksum of {}", inst.symbol);
                clients.insert(inst.symbol.to_string(), c);
            }
            let mut checked = 0;
            for f in frames.iter().filter(|f| f.channel == "book") {
                let c = clients.get_mut(f.symbol.as_deref().unwrap()).unwrap();
                let (want, got) = c.apply(&f.text);
                assert_eq!(want, got, "checksum mismatch on {}", f.text);
                assert!(!c.book.is_crossed(), "crossed book after {}", f.text);
                let (nb, na) = c.book.len();
                assert!(nb >= 1 && na >= 1 && nb <= usize::from(depth) && na <= usize::from(depth));
                checked += 1;
            }
            assert!(checked > 4000, "only {checked} book updates");
            // The final client books equal the market's own snapshot.
            for (sym, c) in clients.iter_mut() {
                let mut again = Client::new(usize::from(depth), 0, 0);
                let inst = m.instruments().into_iter().find(|i| &*i.symbol == sym).unwrap();
                again.book.set_precision(Some(inst.price_precision), Some(inst.qty_precision));
                let (want, got) = again.apply(&m.book_snapshot_frame(sym).unwrap());
                assert_eq!(want, got);
                assert_eq!(c.book.checksum(), want, "{sym} client book drifted from the market's");
            }
        }
    }

    #[test]
    fn trades_take_liquidity_from_the_touch() {
        let (_, frames) = run(&SimConfig::default(), &["BTC/USD"], 10, 4000);
        let mut n_trades = 0;
        let fresh = SimMarket::new(&SimConfig::default(), &pairs(&["BTC/USD"]), 10).unwrap();
        let mut c = Client::new(10, 1, 8);
        c.apply(&fresh.book_snapshot_frame("BTC/USD").unwrap());
        for (i, f) in frames.iter().enumerate() {
            if f.channel == "trade" {
                let v: serde_json::Value = serde_json::from_str(&f.text).unwrap();
                let first = &v["data"][0];
                let side = first["side"].as_str().unwrap();
                let price = parse_decimal(&first["price"].to_string()).unwrap();
                let total: Decimal = v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| parse_decimal(&t["qty"].to_string()).unwrap())
                    .sum();
                // The first trade is at the touch of the side it hit, before the update.
                let (touch, touch_qty_before) = if side == "buy" {
                    let a = c.book.best_ask().unwrap();
                    (a.price, a.qty)
                } else {
                    let b = c.book.best_bid().unwrap();
                    (b.price, b.qty)
                };
                assert_eq!(price, touch, "trade not at the touch: {}", f.text);
                // The next frame is the book update that shows the depletion.
                let upd = &frames[i + 1];
                assert_eq!(upd.channel, "book");
                let top_before: Decimal = if side == "buy" {
                    c.book.levels(Side::Sell).take(3).map(|l| l.qty).sum()
                } else {
                    c.book.levels(Side::Buy).take(3).map(|l| l.qty).sum()
                };
                c.apply(&upd.text);
                let hit = if side == "buy" { Side::Sell } else { Side::Buy };
                let after = c.book.qty_at(hit, touch);
                if total >= touch_qty_before {
                    assert!(after.is_zero(), "touch fully taken must be deleted");
                } else {
                    // Hand check: remaining = before − traded.
                    assert_eq!(after, touch_qty_before - total);
                }
                assert!(total <= top_before, "a trade never takes more than the three best levels");
                n_trades += 1;
            } else if f.channel == "book" && (i == 0 || frames[i - 1].channel != "trade") {
                c.apply(&f.text);
            }
        }
        assert!(n_trades > 100, "only {n_trades} trades");
    }

    /// Log returns of mids sampled every `every_s` seconds of event time.
    fn sampled_returns(m: &mut SimMarket, syms: &[&str], every_s: i64, samples: usize) -> Vec<Vec<f64>> {
        let mut out = Vec::new();
        let mut last: Vec<f64> = syms.iter().map(|s| m.fair_price(s).unwrap().ln()).collect();
        let mut rets = vec![Vec::new(); syms.len()];
        let mut next = m.now().plus_micros(every_s * MICROS_PER_SEC);
        while rets[0].len() < samples {
            m.step(&mut out);
            out.clear();
            if m.now() >= next {
                next = next.plus_micros(every_s * MICROS_PER_SEC);
                for (k, s) in syms.iter().enumerate() {
                    let (b, a) = m.best(s).unwrap();
                    let mid = (crate::core::money::to_f64(b) + crate::core::money::to_f64(a)) / 2.0;
                    rets[k].push(mid.ln() - last[k]);
                    last[k] = mid.ln();
                }
            }
        }
        for r in &mut rets {
            r.remove(0); // first return mixes fair and mid
        }
        rets
    }

    fn corr(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn btc_and_eth_returns_are_clearly_positively_correlated() {
        // Fewer frames per second keep the test fast; prices do not depend on the rates.
        let cfg = SimConfig { book_updates_per_sec: 1.0, trades_per_sec: 0.2, ..SimConfig::default() };
        let mut m = SimMarket::new(&cfg, &pairs(&["BTC/USD", "ETH/USD", "ETH/BTC"]), 10).unwrap();
        let r = sampled_returns(&mut m, &["BTC/USD", "ETH/USD", "ETH/BTC"], 60, 400);
        let c = corr(&r[0], &r[1]);
        println!("BTC/ETH 1-min correlation {c:.3}, BTC/ETH-BTC {:.3}", corr(&r[0], &r[2]));
        // Model: 0.92 × 0.85 = 0.78; with book discreteness and 400 samples, well above 0.5.
        assert!(c > 0.5 && c < 0.95, "BTC/ETH 1-min return correlation {c}");
        let sd = (r[0].iter().map(|x| x * x).sum::<f64>() / r[0].len() as f64).sqrt();
        // 2.8 %/day → 0.074 % per minute; allow the clustering/trend range.
        assert!(sd > 0.0003 && sd < 0.002, "BTC 1-min return sd {sd}");
    }

    #[test]
    fn rates_and_event_time_follow_the_config() {
        let (m, frames) = run(&SimConfig::default(), &["BTC/USD", "ETH/USD", "SOL/USD"], 10, 20_000);
        let secs = m.now().micros_since(SimConfig::default().start_time) as f64 / 1e6;
        let per_pair = |ch: &str| frames.iter().filter(|f| f.channel == ch).count() as f64 / secs / 3.0;
        let (book, trade) = (per_pair("book"), per_pair("trade"));
        // Defaults: 4 + 0.75 book updates/s, 0.75 trade messages/s per pair (±35 % for clustering).
        assert!((3.0..6.5).contains(&book), "book updates per pair per second {book}");
        assert!((0.45..1.1).contains(&trade), "trade messages per pair per second {trade}");
        assert!(frames.windows(2).all(|w| w[0].time <= w[1].time), "frames in time order");
        assert!(frames[0].time > SimConfig::default().start_time);
        let events: u64 = frames.iter().map(|f| u64::from(f.events)).sum();
        let book_events = frames.iter().filter(|f| f.channel == "book").count() as f64;
        assert!(book_events / events as f64 >= 0.7, "book share {}", book_events / events as f64);
    }

    #[test]
    fn frames_use_kraken_number_formats() {
        let m = SimMarket::new(&SimConfig::default(), &pairs(&["BTC/USD", "XRP/USD"]), 10).unwrap();
        let snap = m.book_snapshot_frame("BTC/USD").unwrap();
        // price with 1 decimal, qty with 8: e.g. {"price":93123.4,"qty":0.01234567}
        let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
        let lvl = &v["data"][0]["bids"][0];
        let (p, q) = (lvl["price"].to_string(), lvl["qty"].to_string());
        assert_eq!(p.split('.').nth(1).map(str::len), Some(1), "{p}");
        assert_eq!(q.split('.').nth(1).map(str::len), Some(8), "{q}");
        assert_eq!(v["data"][0]["timestamp"], "2025-01-01T00:00:00.000000Z");
        let inst = m.instrument_snapshot_frame();
        assert!(inst.contains(r#""symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,"price_precision":1,"cost_precision":5,"marginable":true,"has_index":true,"cost_min":0.5,"margin_initial":0.20,"position_limit_long":300,"position_limit_short":240,"tick_size":0.1,"price_increment":0.1,"qty_min":0.00010000}"#), "{inst}");
        assert!(inst.contains(r#""qty_min":10.00000000"#));
        let _: serde_json::Value = serde_json::from_str(&inst).unwrap();
        let t: serde_json::Value =
            serde_json::from_str(&m.ticker_snapshot_frame("XRP/USD").unwrap()).unwrap();
        assert_eq!(t["data"][0]["bid"].to_string().split('.').nth(1).map(str::len), Some(5));
        assert_eq!(push_fixed_str(-1234, 2), "-12.34");
        assert_eq!(push_fixed_str(5, 3), "0.005");
        assert_eq!(push_fixed_str(7, 0), "7");
    }

    fn push_fixed_str(m: i128, s: u32) -> String {
        let mut out = String::new();
        push_fixed(&mut out, m, s);
        out
    }

    #[test]
    fn unknown_pairs_get_a_generic_profile_and_bad_symbols_fail() {
        let m = SimMarket::new(&SimConfig::default(), &pairs(&["DOGE/EUR", "FOO/BTC"]), 10).unwrap();
        for inst in m.instruments() {
            let (b, a) = m.best(&inst.symbol).unwrap();
            assert!(b > Decimal::ZERO && a > b, "{}: {b} {a}", inst.symbol);
            // The tick is at most ~1 bp of the price.
            assert!(inst.price_increment <= a / Decimal::from(5000), "{}", inst.symbol);
        }
        assert!(
            SimMarket::new(&SimConfig::default(), &pairs(&["BTCUSD"]), 10).unwrap_err().contains("BTCUSD")
        );
        assert!(SimMarket::new(&SimConfig::default(), &pairs(&["BTC/USD"]), 11).unwrap_err().contains("11"));
        assert!(SimMarket::new(&SimConfig::default(), &[], 10).is_err());
    }

    #[test]
    fn heartbeats_fill_quiet_seconds() {
        let cfg = SimConfig { book_updates_per_sec: 0.2, trades_per_sec: 0.0, ..SimConfig::default() };
        let (_, frames) = run(&cfg, &["ETH/BTC"], 10, 200);
        let hb: Vec<&SimFrame> = frames.iter().filter(|f| f.channel == "heartbeat").collect();
        assert!(hb.len() > 100, "{} heartbeats", hb.len());
        // No gap in the stream exceeds one second of event time.
        let mut prev = SimConfig::default().start_time;
        for f in &frames {
            assert!(f.time.micros_since(prev) <= MICROS_PER_SEC, "gap before {}", f.time);
            prev = f.time;
        }
    }

    #[test]
    fn validate_names_every_bad_key() {
        let cfg = SimConfig {
            book_updates_per_sec: 0.0,
            trades_per_sec: -1.0,
            volatility_scale: f64::NAN,
            jumps_per_hour: 100.0,
            trend_strength: 5.0,
            drop_connection_after_frames: Some(0),
            ..SimConfig::default()
        };
        let mut is = Issues::default();
        cfg.validate(&mut is);
        let keys: Vec<&str> = is.list.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sim.book_updates_per_sec",
                "sim.trades_per_sec",
                "sim.volatility_scale",
                "sim.jumps_per_hour",
                "sim.trend_strength",
                "sim.drop_connection_after_frames"
            ]
        );
        let mut ok = Issues::default();
        SimConfig::default().validate(&mut ok);
        assert!(ok.is_empty());
        assert!(SimMarket::new(&cfg, &pairs(&["BTC/USD"]), 10).unwrap_err().contains("sim.trend_strength"));
    }
}
#[cfg(test)]
mod calibration {
    //! `cargo test --lib core::sim::calibration -- --ignored --nocapture` prints the figures
    //! docs/simulator.md compares with the recordings.
    use super::*;
    use crate::core::money::{parse_decimal, to_f64};

    fn pct(v: &mut [f64], q: f64) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    }

    #[test]
    #[ignore]
    fn print_calibration_figures() {
        let syms = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ETH/BTC"];
        let ps: Vec<String> = syms.iter().map(|s| s.to_string()).collect();
        let mut m = SimMarket::new(&SimConfig::default(), &ps, 10).unwrap();
        let mut frames = Vec::new();
        let t0 = m.now();
        let t_end = t0.plus_micros(3 * 3600 * MICROS_PER_SEC);
        let mut out = Vec::new();
        while m.now() < t_end {
            m.step(&mut out);
            frames.append(&mut out);
        }
        let secs = m.now().micros_since(t0) as f64 / 1e6;
        for sym in syms {
            let inst = m.instruments().into_iter().find(|i| &*i.symbol == sym).unwrap();
            let mine: Vec<&SimFrame> = frames.iter().filter(|f| f.symbol.as_deref() == Some(sym)).collect();
            let mut nlev = [0usize; 8];
            let (mut spreads, mut qty_n, mut gaps, mut tq, mut per_msg) =
                (vec![], vec![], vec![], vec![], vec![]);
            let (mut buys, mut trades, mut books) = (0usize, 0usize, 0usize);
            let mut book = L2Book::new(10, Some(inst.price_precision), Some(inst.qty_precision));
            let snap =
                SimMarket::new(&SimConfig::default(), &ps, 10).unwrap().book_snapshot_frame(sym).unwrap();
            for text in std::iter::once(snap.as_str()).chain(mine.iter().map(|f| f.text.as_str())) {
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                match v["channel"].as_str() {
                    Some("book") => {
                        let d = &v["data"][0];
                        let mut n = 0;
                        for (k, side) in [("bids", Side::Buy), ("asks", Side::Sell)] {
                            for l in d[k].as_array().unwrap() {
                                book.apply(
                                    side,
                                    parse_decimal(&l["price"].to_string()).unwrap(),
                                    parse_decimal(&l["qty"].to_string()).unwrap(),
                                );
                                n += 1;
                            }
                        }
                        book.truncate();
                        if v["type"] == "update" {
                            books += 1;
                            nlev[n.min(7)] += 1;
                        }
                        let (b, a) = (book.best_bid().unwrap(), book.best_ask().unwrap());
                        let mid = to_f64(b.price + a.price) / 2.0;
                        spreads.push(to_f64(a.price - b.price) / mid * 1e4);
                        for side in [Side::Buy, Side::Sell] {
                            let lv: Vec<_> = book.levels(side).collect();
                            for w in lv.windows(2) {
                                gaps.push((to_f64(w[0].price) - to_f64(w[1].price)).abs() / mid * 1e4);
                            }
                            qty_n.extend(lv.iter().map(|l| to_f64(l.qty) * mid));
                        }
                    }
                    Some("trade") => {
                        let d = v["data"].as_array().unwrap();
                        per_msg.push(d.len() as f64);
                        for t in d {
                            trades += 1;
                            buys += usize::from(t["side"] == "buy");
                            tq.push(
                                to_f64(parse_decimal(&t["qty"].to_string()).unwrap())
                                    * to_f64(parse_decimal(&t["price"].to_string()).unwrap()),
                            );
                        }
                    }
                    _ => {}
                }
            }
            let lq: Vec<f64> = tq.iter().map(|x| x.ln()).collect();
            let mean = lq.iter().sum::<f64>() / lq.len() as f64;
            let sd = (lq.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / lq.len() as f64).sqrt();
            let mut desc = tq.clone();
            desc.sort_by(|a, b| b.total_cmp(a));
            let k = desc.len() / 10;
            let hill = k as f64 / desc[..k].iter().map(|x| (x / desc[k]).ln()).sum::<f64>();
            let tot: usize = nlev.iter().sum();
            let mean_lev = nlev.iter().enumerate().map(|(i, n)| i * n).sum::<usize>() as f64 / tot as f64;
            println!(
                "{sym}: book upd/s {:.2} levels/upd mean {:.2} dist1/2/3/4+ {:.2}/{:.2}/{:.2}/{:.2}; spread bps med {:.3} mean {:.3}; gap bps med {:.3} mean {:.3}; level notional med {:.0} mean {:.0}",
                books as f64 / secs,
                mean_lev,
                nlev[1] as f64 / tot as f64,
                nlev[2] as f64 / tot as f64,
                nlev[3] as f64 / tot as f64,
                nlev[4..].iter().sum::<usize>() as f64 / tot as f64,
                pct(&mut spreads, 0.5),
                spreads.iter().sum::<f64>() / spreads.len() as f64,
                pct(&mut gaps, 0.5),
                gaps.iter().sum::<f64>() / gaps.len() as f64,
                pct(&mut qty_n, 0.5),
                qty_n.iter().sum::<f64>() / qty_n.len() as f64,
            );
            println!(
                "   trade msgs/s {:.2} trades/msg {:.2} buys {:.2}; trade notional p10 {:.0} med {:.0} mean {:.0} p90 {:.0} p99 {:.0}; log-sd {:.2} Hill(10%) {:.2}",
                per_msg.len() as f64 / secs,
                trades as f64 / per_msg.len() as f64,
                buys as f64 / trades as f64,
                pct(&mut tq, 0.1),
                pct(&mut tq, 0.5),
                tq.iter().sum::<f64>() / tq.len() as f64,
                pct(&mut tq, 0.9),
                pct(&mut tq, 0.99),
                sd,
                hill
            );
        }
        let ev: u64 = frames.iter().map(|f| u64::from(f.events)).sum();
        let book_ev = frames.iter().filter(|f| f.channel == "book").count() as f64;
        println!(
            "frames {} over {secs:.0}s, events {ev}, book share {:.3}, heartbeats {}",
            frames.len(),
            book_ev / ev as f64,
            frames.iter().filter(|f| f.channel == "heartbeat").count()
        );
    }
}
