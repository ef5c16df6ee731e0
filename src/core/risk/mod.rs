//! Risk (pure): sizing, pre-trade limits, correlation, drawdown halt.
//!
//! The RiskManager actor owns one [`RiskCore`]. It feeds every [`PortfolioView`] to
//! [`RiskCore::on_portfolio`] (equity drawdown is checked there, unrealised P&L included, on
//! every call), every closed trade to [`RiskCore::on_trade_closed`] (Kelly statistics), and
//! asks [`RiskCore::evaluate`] about every [`TradeIntent`]. The answer is an approved opening
//! order (the only place a [`RiskApproval`] is made), a reduce-only exit of the position the
//! intent opposes, or a refusal with a reason code. Only event time is read; money is
//! `Decimal`, statistics `f64`. Every formula is in docs/risk.md.
//!
//! This file holds the core's state, its public answers and the order of an entry's steps;
//! the steps live beside it: `limits` (gates and exposure rooms), `sizing` (stop distance,
//! fixed-fractional size, Kelly and the caps), `correlation` (shrink, exposures), `pricing`
//! (touch prices, quantity, protective prices), `watch` (the drawdown formula and
//! [`RiskWatch`]), `state` ([`TradingState`], [`EmergencyReason`]), `stats` (correlation and VaR samples) and `config` ([`RiskConfig`]).

use std::collections::{BTreeMap, VecDeque};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::decisions::TradeIntent;
use super::execution::ClosedTrade;
use super::instrument::Symbol;
use super::market::Side;
use super::money::{Cash, Price, Qty, to_f64};
use super::orders::{EntryStyle, OrderOrigin, OrderRequest, RiskApproval, Sealed};
use super::portfolio::{PortfolioView, Quote};
use super::time::EventTime;

mod config;
mod correlation;
mod limits;
mod pricing;
mod sizing;
mod state;
mod stats;
mod watch;

#[cfg(test)]
mod tests;

pub use config::{RiskConfig, StopMode};
pub use state::{EmergencyReason, HaltLiftedBy, TradingState};
pub use watch::{RiskWatch, drawdown, next_peak};

/// Refusal reason codes (the `reason` of a [`Refusal`], keys of `refused_by_reason`).
pub mod reason {
    /// The drawdown halt is active.
    pub const HALTED: &str = "halted";
    /// No portfolio view has arrived yet.
    pub const NO_PORTFOLIO: &str = "no_portfolio";
    /// No quote for the pair, the book is untrusted/stale, crossed, or the pair's status
    /// does not allow the order.
    pub const PAIR_NOT_TRADABLE: &str = "pair_not_tradable";
    /// A sell intent without a position while shorts are off (`execution.margin.enabled`
    /// false) or on a pair that is not marginable.
    pub const NO_POSITION: &str = "no_position";
    /// A position on the pair already exists in the intent's direction.
    pub const ALREADY_IN_POSITION: &str = "already_in_position";
    /// Orders are open on the pair (or an approved entry is not yet visible).
    pub const OPEN_ORDERS_ON_PAIR: &str = "open_orders_on_pair";
    /// `risk.max_open_positions` reached.
    pub const MAX_OPEN_POSITIONS: &str = "max_open_positions";
    /// `risk.min_trade_interval` since the last order on the pair has not elapsed.
    pub const MIN_TRADE_INTERVAL: &str = "min_trade_interval";
    /// `risk.daily_loss_limit` reached for the current day.
    pub const DAILY_LOSS_LIMIT: &str = "daily_loss_limit";
    /// Equity is zero or negative.
    pub const NO_EQUITY: &str = "no_equity";
    /// `risk.max_exposure_per_asset` leaves no room.
    pub const MAX_EXPOSURE_PER_ASSET: &str = "max_exposure_per_asset";
    /// `risk.max_total_exposure` leaves no room.
    pub const MAX_TOTAL_EXPOSURE: &str = "max_total_exposure";
    /// `risk.max_leverage` leaves no room.
    pub const MAX_LEVERAGE: &str = "max_leverage";
    /// `risk.max_order_notional` made the order too small to trade.
    pub const MAX_ORDER_NOTIONAL: &str = "max_order_notional";
    /// `risk.max_position_fraction` made the order too small to trade.
    pub const MAX_POSITION_FRACTION: &str = "max_position_fraction";
    /// The fractional-Kelly cap made the order too small to trade.
    pub const KELLY_CAP: &str = "kelly_cap";
    /// Not enough free cash.
    pub const INSUFFICIENT_CASH: &str = "insufficient_cash";
    /// Not enough free margin for a short (free margin × leverage).
    pub const INSUFFICIENT_MARGIN: &str = "insufficient_margin";
    /// The stop distance is not in (0, 1).
    pub const INVALID_STOP: &str = "invalid_stop";
    /// Below the pair's `qty_min` / `cost_min` after rounding.
    pub const BELOW_MINIMUM: &str = "below_minimum";
}

/// A refused intent (journaled as `type: risk_refusal`, logged with `reason`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Intent id.
    pub intent_id: u64,
    /// Pair.
    pub pair: super::instrument::Symbol,
    /// Reason code, one of [`reason`] (`halted`, `max_open_positions`, `below_minimum`, …).
    pub reason: String,
    /// Human detail with the numbers.
    pub detail: String,
    /// Event time.
    pub time: EventTime,
}

/// A drawdown breach (journaled as `type: emergency_stop`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Event time.
    pub time: EventTime,
    /// Drawdown from the peak (fraction).
    pub drawdown: f64,
    /// Configured limit (fraction).
    pub limit: f64,
    /// Equity at the breach.
    pub equity: rust_decimal::Decimal,
    /// Equity peak.
    pub peak: rust_decimal::Decimal,
}

/// What the risk core decided about an intent.
#[derive(Debug)]
pub enum Verdict {
    /// Approved: the entry order (with its protective children in `protection`).
    Approved(Box<OrderRequest>),
    /// The intent opposes an open position: a reduce-only order closing it (a signal exit;
    /// `origin` is the intent). PositionBook should cancel the position's protective orders.
    Exit(Box<OrderRequest>),
    /// Refused.
    Refused(Refusal),
}

/// How an approved entry was sized (for the journal and for explaining a size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// Intent id.
    pub intent_id: u64,
    /// Pair.
    pub pair: Symbol,
    /// Equity used.
    pub equity: Cash,
    /// Stop distance (fraction of the entry price).
    pub stop_distance: Decimal,
    /// `fixed`, `volatility`, or `fixed_fallback` (volatility mode without a σ).
    pub stop_source: String,
    /// Volatility per √second used (0 = unknown).
    pub volatility: f64,
    /// equity × risk_per_trade / stop_distance.
    pub risk_notional: Cash,
    /// Intent confidence used (clamped to [0, 1]).
    pub confidence: f64,
    /// Volatility-targeting multiplier.
    pub vol_scale: f64,
    /// Correlation shrink multiplier.
    pub correlation_shrink: f64,
    /// Notional before the caps.
    pub wanted_notional: Cash,
    /// Notional after the caps (before rounding the quantity).
    pub notional: Cash,
    /// Which cap bound (`risk` = none; otherwise a reason code).
    pub binding: String,
    /// Reference price (entry limit price, or the touch for market orders).
    pub price: Price,
    /// Rounded quantity.
    pub qty: Qty,
}

/// Everything the risk core must remember across a restart (the correlation samples are
/// rebuilt from data; see docs/risk.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskState {
    /// Equity peak of the drawdown.
    pub peak: Cash,
    /// Since when the halt is active (None = not halted).
    pub halted_since: Option<EventTime>,
    /// Start of the current trading day.
    pub day: Option<EventTime>,
    /// Equity at the start of the current trading day.
    pub day_start_equity: Cash,
    /// Last order time per pair (for `min_trade_interval`).
    pub last_trade: BTreeMap<Symbol, EventTime>,
    /// Refusals by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Drawdown breaches so far.
    pub emergency_stops: u64,
    /// Worst drawdown seen (fraction).
    pub max_drawdown_seen: f64,
    /// Approved entries.
    pub approved: u64,
    /// Approved signal exits.
    pub exits: u64,
    /// P&L of the last closed trades (Kelly window), oldest first.
    pub closed_trade_pnls: Vec<Cash>,
}

/// An approved entry that the portfolio view may not show yet.
#[derive(Clone, Debug)]
struct Pending {
    notional: Cash,
    at: EventTime,
    short: bool,
}

/// What `decide` found (applied to the state by `evaluate`).
enum Decision {
    Entry(Box<OrderRequest>, Box<Sizing>),
    Exit(Box<OrderRequest>),
}

type Refuse = (&'static str, String);

/// Risk state: equity peak, halt, daily loss, counters.
pub struct RiskCore {
    cfg: RiskConfig,
    entry: EntryStyle,
    view: Option<PortfolioView>,
    peak: Cash,
    current_drawdown: f64,
    max_drawdown_seen: f64,
    trading: TradingState,
    day: Option<EventTime>,
    day_start_equity: Cash,
    last_trade: BTreeMap<Symbol, EventTime>,
    pending: BTreeMap<Symbol, Pending>,
    refusals: BTreeMap<String, u64>,
    approved: u64,
    exits: u64,
    emergency_stops: u64,
    pnls: VecDeque<Cash>,
    sampler: stats::Sampler,
    last_sizing: Option<Sizing>,
}

impl RiskCore {
    /// A new risk core.
    pub fn new(cfg: &RiskConfig, execution_entry: EntryStyle) -> RiskCore {
        RiskCore {
            sampler: stats::Sampler::new(
                cfg.correlation_sample_interval.as_micros(),
                cfg.correlation_window,
                cfg.correlation_min_samples,
                cfg.var_window,
            ),
            cfg: cfg.clone(),
            entry: execution_entry,
            view: None,
            peak: Decimal::ZERO,
            current_drawdown: 0.0,
            max_drawdown_seen: 0.0,
            trading: TradingState::Active,
            day: None,
            day_start_equity: Decimal::ZERO,
            last_trade: BTreeMap::new(),
            pending: BTreeMap::new(),
            refusals: BTreeMap::new(),
            approved: 0,
            exits: 0,
            emergency_stops: 0,
            pnls: VecDeque::new(),
            last_sizing: None,
        }
    }

    /// What PositionBook must watch to pass several frames at once and still give RiskManager
    /// every view a frame-by-frame run would make it act on ([`RiskWatch`]).
    pub fn watch(&self) -> RiskWatch {
        RiskWatch {
            halted: self.halted(),
            peak: self.peak,
            max_drawdown_seen: self.max_drawdown_seen,
            limit: self.cfg.max_drawdown,
            day: self.day,
            daily_reset_hour_utc: self.cfg.daily_reset_hour_utc,
        }
    }

    /// Portfolio update (every view PositionBook sends: after each pass, and within one
    /// whenever a frame-by-frame run would change this state, see [`RiskWatch`]): returns a
    /// breach when the drawdown passed the limit; the core is halted from then on.
    pub fn on_portfolio(&mut self, view: &PortfolioView) -> Option<Breach> {
        let now = view.time;
        self.sampler.observe(view);
        let day = now.last_daily_boundary(self.cfg.daily_reset_hour_utc);
        if self.day != Some(day) {
            self.day = Some(day);
            self.day_start_equity = view.equity;
        }
        // An approved entry is counted until the view shows it resolved: no order left on
        // the pair at a later event time (its fill, if any, is then in `positions`).
        self.pending.retain(|pair, p| !(now > p.at && view.open_orders_on(pair) == 0));
        self.view = Some(view.clone());
        self.maybe_lift(now);

        let equity = view.equity;
        self.peak = next_peak(self.peak, equity);
        let dd = drawdown(self.peak, equity);
        self.current_drawdown = to_f64(dd);
        self.max_drawdown_seen = self.max_drawdown_seen.max(self.current_drawdown);
        if !self.trading.is_halted() && dd > self.cfg.max_drawdown {
            self.trading = TradingState::Halted { since: now, reason: Some(EmergencyReason::MaxDrawdown) };
            self.emergency_stops += 1;
            return Some(Breach {
                time: now,
                drawdown: self.current_drawdown,
                limit: to_f64(self.cfg.max_drawdown),
                equity,
                peak: self.peak,
            });
        }
        None
    }

    /// A round trip closed: its P&L feeds the Kelly estimate.
    pub fn on_trade_closed(&mut self, trade: &ClosedTrade) {
        self.pnls.push_back(trade.pnl);
        while self.pnls.len() > self.cfg.kelly_window.max(1) {
            self.pnls.pop_front();
        }
    }

    /// Sizes and checks an intent against the latest portfolio.
    pub fn evaluate(&mut self, intent: &TradeIntent) -> Verdict {
        let now = intent.time;
        self.maybe_lift(now);
        match self.decide(intent) {
            Ok(Decision::Entry(order, sizing)) => {
                self.approved += 1;
                self.last_trade.insert(intent.pair.clone(), now);
                let short = intent.side == Side::Sell;
                self.pending
                    .insert(intent.pair.clone(), Pending { notional: sizing.notional, at: now, short });
                self.last_sizing = Some(*sizing);
                Verdict::Approved(order)
            }
            Ok(Decision::Exit(order)) => {
                self.exits += 1;
                self.last_trade.insert(intent.pair.clone(), now);
                Verdict::Exit(order)
            }
            Err((code, detail)) => {
                *self.refusals.entry(code.to_string()).or_insert(0) += 1;
                Verdict::Refused(Refusal {
                    intent_id: intent.intent_id,
                    pair: intent.pair.clone(),
                    reason: code.to_string(),
                    detail,
                    time: now,
                })
            }
        }
    }

    /// Operator halt (`POST /api/emergency-stop`): a breach at `now` with the current
    /// figures; None when already halted.
    pub fn halt_now(&mut self, now: EventTime) -> Option<Breach> {
        if self.trading.is_halted() {
            return None;
        }
        self.trading = TradingState::Halted { since: now, reason: Some(EmergencyReason::Operator) };
        self.emergency_stops += 1;
        let equity = self.view.as_ref().map(|v| v.equity).unwrap_or(Decimal::ZERO);
        Some(Breach {
            time: now,
            drawdown: self.current_drawdown,
            limit: to_f64(self.cfg.max_drawdown),
            equity,
            peak: self.peak,
        })
    }

    /// True while halted.
    pub fn halted(&self) -> bool {
        self.trading.is_halted()
    }

    /// The trading state (active, or halted since when and why).
    pub fn trading_state(&self) -> TradingState {
        self.trading
    }

    /// Lifts a halt (operator); the drawdown peak resets to the current equity.
    pub fn lift_halt(&mut self, _now: EventTime) {
        self.trading = TradingState::Active;
        self.peak = self.view.as_ref().map(|v| v.equity).unwrap_or(Decimal::ZERO);
        self.current_drawdown = 0.0;
    }

    /// How the last approved entry was sized.
    pub fn last_sizing(&self) -> Option<&Sizing> {
        self.last_sizing.as_ref()
    }

    /// State for crash recovery (journal it; feed it to [`RiskCore::restore`]).
    pub fn state(&self) -> RiskState {
        RiskState {
            peak: self.peak,
            halted_since: self.trading.halted_since(),
            day: self.day,
            day_start_equity: self.day_start_equity,
            last_trade: self.last_trade.clone(),
            refusals: self.refusals.clone(),
            emergency_stops: self.emergency_stops,
            max_drawdown_seen: self.max_drawdown_seen,
            approved: self.approved,
            exits: self.exits,
            closed_trade_pnls: self.pnls.iter().copied().collect(),
        }
    }

    /// Restores a saved state (before the first `on_portfolio` after a restart).
    pub fn restore(&mut self, s: RiskState) {
        self.peak = s.peak;
        self.trading = TradingState::from_halted_since(s.halted_since);
        self.day = s.day;
        self.day_start_equity = s.day_start_equity;
        self.last_trade = s.last_trade;
        self.refusals = s.refusals;
        self.emergency_stops = s.emergency_stops;
        self.max_drawdown_seen = s.max_drawdown_seen;
        self.approved = s.approved;
        self.exits = s.exits;
        self.pnls = s.closed_trade_pnls.into_iter().collect();
        while self.pnls.len() > self.cfg.kelly_window.max(1) {
            self.pnls.pop_front();
        }
    }

    /// Report figures (`risk` section of report.json).
    pub fn metrics(&self) -> serde_json::Value {
        use serde_json::json;
        let equity = self.view.as_ref().map(|v| v.equity).unwrap_or(Decimal::ZERO);
        let exp = self.view.as_ref().map(|v| self.exposures(v)).unwrap_or_default();
        let eq = to_f64(equity);
        let frac = |c: Cash| if eq > 0.0 { to_f64(c) / eq } else { 0.0 };
        let by_asset: BTreeMap<&str, f64> =
            exp.by_asset.iter().map(|(a, c)| (a.as_str(), frac(*c))).collect();
        let by_asset_cash: BTreeMap<&str, String> =
            exp.by_asset.iter().map(|(a, c)| (a.as_str(), c.to_string())).collect();
        let (var_i, var_1d, var_n) = match self.sampler.var95() {
            Some((a, b, n)) => (Some(a), Some(b), n),
            None => (None, None, 0),
        };
        let mut corr = BTreeMap::new();
        let pairs = self.sampler.pairs();
        for (i, a) in pairs.iter().enumerate() {
            for b in &pairs[i + 1..] {
                if let Some(r) = self.sampler.correlation(a, b) {
                    corr.insert(format!("{a}|{b}"), r);
                }
            }
        }
        let (corr_exposure, eff_bets) = self.correlation_exposure(&exp, eq);
        let kelly = self.kelly();
        json!({
            "equity": equity.to_string(),
            "peak_equity": self.peak.to_string(),
            "current_drawdown": self.current_drawdown,
            "current_drawdown_pct": self.current_drawdown * 100.0,
            "max_drawdown": self.max_drawdown_seen,
            "max_drawdown_pct": self.max_drawdown_seen * 100.0,
            "max_drawdown_limit": to_f64(self.cfg.max_drawdown),
            "halted": self.halted(),
            "halted_since": self.trading.halted_since().map(|t| t.to_rfc3339()),
            "exposure_by_asset": by_asset,
            "exposure_by_asset_cash": by_asset_cash,
            "total_exposure": frac(exp.total),
            "leverage": frac(exp.total),
            "var_method": "historical, 95 %, equity returns on the sample grid, scaled to 1 day by sqrt(86400 s / interval)",
            "var_95_interval": var_i,
            "var_95_1d": var_1d,
            "var_95_1d_cash": var_1d.map(|v| v * eq),
            "var_samples": var_n,
            "correlation": corr,
            "correlation_exposure": corr_exposure,
            "effective_bets": eff_bets,
            "emergency_stops": self.emergency_stops,
            "approved_intents": self.approved,
            "exit_intents": self.exits,
            "refused_intents": self.refusals.values().sum::<u64>(),
            "refused_by_reason": self.refusals,
            "kelly": {
                "trades": self.pnls.len(),
                "estimate": kelly,
                "cap_fraction": kelly.map(|k| (self.cfg.kelly_fraction * k).max(to_f64(self.cfg.kelly_floor_fraction))),
            },
        })
    }

    // ---- internals -------------------------------------------------------------------

    fn maybe_lift(&mut self, now: EventTime) {
        if let (Some(since), Some(cd)) = (self.trading.halted_since(), self.cfg.halt_cooldown)
            && now.micros_since(since) >= cd.as_micros()
        {
            self.lift_halt(now);
        }
    }

    fn decide(&self, intent: &TradeIntent) -> Result<Decision, Refuse> {
        if let Some(since) = self.trading.halted_since() {
            return Err((
                reason::HALTED,
                format!(
                    "halted since {since} (drawdown limit {}); lifts {}",
                    self.cfg.max_drawdown,
                    match self.cfg.halt_cooldown {
                        Some(c) => format!("after {c}"),
                        None => "only by the operator".into(),
                    }
                ),
            ));
        }
        let view = self.view.as_ref().ok_or((reason::NO_PORTFOLIO, "no portfolio view yet".to_string()))?;
        let pair = &*intent.pair;
        let quote =
            view.quote(pair).ok_or_else(|| (reason::PAIR_NOT_TRADABLE, format!("no quote for {pair}")))?;
        if !quote.tradable {
            return Err((reason::PAIR_NOT_TRADABLE, format!("{pair}: book untrusted or stale")));
        }
        if quote.bid <= Decimal::ZERO || quote.ask <= quote.bid {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{pair}: no sane touch (bid {}, ask {})", quote.bid, quote.ask),
            ));
        }
        let position = view.position(pair).filter(|p| !p.qty.is_zero());
        match (intent.side, position) {
            // With margin on, a sell on a marginable pair without a position opens a short.
            (Side::Sell, None) if view.margin.is_some() && quote.instrument.margin.is_some() => {
                self.entry(intent, view, quote)
            }
            (Side::Sell, None) if view.margin.is_some() => Err((
                reason::NO_POSITION,
                format!("sell {pair} without a position ({pair} is not marginable)"),
            )),
            (Side::Sell, None) => {
                Err((reason::NO_POSITION, format!("sell {pair} without a position (spot: shorts are off)")))
            }
            (side, Some(p)) if (p.qty > Decimal::ZERO) != (side == Side::Buy) => {
                self.exit(intent, quote, p.qty).map(Decision::Exit)
            }
            (_, Some(p)) => Err((reason::ALREADY_IN_POSITION, format!("{pair}: already holding {}", p.qty))),
            (Side::Buy, None) => self.entry(intent, view, quote),
        }
    }

    fn exit(&self, intent: &TradeIntent, quote: &Quote, pos_qty: Qty) -> Result<Box<OrderRequest>, Refuse> {
        let inst = &*quote.instrument;
        let style = self.cfg.exit_style;
        if !Self::status_allows(inst.status, style, true) {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{}: status {} does not allow a {style:?} exit", inst.symbol, inst.status.as_str()),
            ));
        }
        let qty = inst.round_qty_down(pos_qty.abs());
        if qty <= Decimal::ZERO {
            return Err((reason::BELOW_MINIMUM, format!("position {pos_qty} rounds to zero lots")));
        }
        let (spec, _) = Self::priced_spec(style, inst, quote, intent.side, qty)?;
        Ok(Box::new(OrderRequest::reducing(
            spec,
            OrderOrigin::Intent { intent_id: intent.intent_id },
            intent.time,
        )))
    }

    /// An entry, step by step: the gates and exposure rooms (`limits`), the stop distance
    /// and size (`sizing`), the quantity and protective prices (`pricing`). The first step
    /// that refuses gives the reason.
    fn entry(&self, intent: &TradeIntent, view: &PortfolioView, quote: &Quote) -> Result<Decision, Refuse> {
        let inst = &*quote.instrument;
        let equity = self.entry_gates(intent, view, inst)?;
        let rooms = self.rooms(intent, view, inst, equity)?;
        let stops = self.stops(intent)?;
        let size = self.size(intent, view, equity, &stops, &rooms);
        let (spec, ref_price, qty) = self.entry_spec(intent, view, quote, &size, &rooms)?;
        let protection = self.protection(intent.side, inst, ref_price, &stops);
        let sizing = Sizing {
            intent_id: intent.intent_id,
            pair: intent.pair.clone(),
            equity,
            stop_distance: stops.stop,
            stop_source: stops.source.into(),
            volatility: stops.vol,
            risk_notional: size.risk_notional,
            confidence: size.confidence,
            vol_scale: size.vol_scale,
            correlation_shrink: size.shrink,
            wanted_notional: size.wanted,
            notional: size.notional,
            binding: size.binding.into(),
            price: ref_price,
            qty,
        };
        let order = OrderRequest::opening(
            spec,
            protection,
            OrderOrigin::Intent { intent_id: intent.intent_id },
            intent.time,
            intent.contributions.clone(),
            intent.overrides.tags.clone(),
            RiskApproval { _sealed: Sealed::new_for_risk() },
        );
        Ok(Decision::Entry(Box::new(order), Box::new(sizing)))
    }
}
