//! PositionBook actor: owns the paper exchange ([`PaperExchange`]): orders, fills against the
//! book, fees, balances and positions.
//!
//! - In: [`BookPass`] (apply a pass's events: fills, triggers, marks; ends the pass early
//!   after a frame the others must see first), [`PlaceOrders`] (from
//!   RiskManager), [`AmendOrder`] (order API: Kraken's AmendOrder), [`EmergencyStop`]
//!   (cancel everything and flatten in the same event), [`Barrier`], [`Shutdown`],
//!   [`GetPortfolio`].
//! - Out: journal records for every execution event and equity snapshots; [`PortfolioUpdate`]
//!   to RiskManager after every pass, and within one after each frame whose view would change
//!   RiskManager's state; [`TradesClosed`] to the aggregator and RiskManager.
//! - Fails: never on data; an accounting identity violation is logged as an error and
//!   journaled (`identity_violation`), because it means a bug, not bad input. A panic ends
//!   the run (`supervision::Policy::StopRun`: it holds the account; the run resumes from the
//!   journal).

use std::sync::Arc;

use actix::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use crate::actors::journal::{Append, JournalSink};
pub use crate::core::equity::CURVE_POINTS;
use crate::core::equity::EquityTracker;
use crate::core::execution::{ExecEvent, ExecStats, PaperExchange};
use crate::core::journal::Entry;
use crate::core::portfolio::PortfolioView;
use crate::core::resume::{GapVerdict, GapWatch};
use crate::core::risk::RiskWatch;
use crate::core::symbol_map::SymbolMap;
use crate::core::time::{EventTime, Span};
use crate::supervision::{ActorName, Watch};

use crate::messages::{
    AmendOrder, Barrier, BookPass, EmergencyStop, PlaceOrders, PortfolioUpdate, Shutdown, TradesClosed,
};

/// Asks for the current account (dashboard, tests).
#[derive(Message)]
#[rtype(result = "PortfolioSnapshot")]
pub struct GetPortfolio;

/// A live feed's gap (after a reconnect, or while the process was down before a resume): the
/// trades missed meanwhile (fetched over REST) have been applied. Orders they triggered are
/// reported as `order_fate_unknown`: they execute on the first book after reconnecting, but
/// the book they would have met in the gap is unknown; so are the orders of pairs whose
/// missed trades could not be fetched.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct GapReview {
    /// First event time of the gap (the last one the feed had seen).
    pub since: EventTime,
    /// Last event time of the gap (the latest trade fetched).
    pub until: EventTime,
    /// Pairs whose missed trades could not be fetched (the feed logs why).
    pub pairs_unfetched: Vec<String>,
}

/// Where PositionBook sends what it produces.
pub struct PositionBookOutputs {
    /// The journal.
    pub journal: JournalSink,
    /// RiskManager.
    pub risk: Recipient<PortfolioUpdate>,
    /// Receivers of closed trades (aggregator, RiskManager).
    pub trades_closed: Vec<Recipient<TradesClosed>>,
}

/// The PositionBook actor.
pub struct PositionBook {
    exchange: PaperExchange,
    out: PositionBookOutputs,
    /// The equity snapshot grid, the peak and the curve.
    equity: EquityTracker,
    last_time: EventTime,
    scratch: Vec<ExecEvent>,
    check_identity: bool,
    recent: std::collections::VecDeque<crate::core::execution::ClosedTrade>,
    trades_closed: u64,
    trades_won: u64,
    stale_after: Span,
    last_book: SymbolMap<EventTime>,
    /// Triggered orders not yet filled (for [`GapReview`]), and the pairs of open orders.
    gap_watch: GapWatch,
    /// RiskManager samples the portfolio on this event-time grid (µs; 0: every view).
    view_grid_us: i64,
    /// Next grid point at which a view is due (None: the next frame's view is).
    next_view_at: Option<EventTime>,
    /// RiskManager's state as the views sent so far leave it.
    watch: RiskWatch,
    /// Execution events published so far.
    exec_published: u64,
    /// Reports a panic to the engine (and the test hook).
    supervision: Watch,
}

impl Actor for PositionBook {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_started", actor = "position_book", "position book started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(event = "actor_stopped", actor = "position_book", "position book stopped");
    }
}

impl Handler<BookPass> for PositionBook {
    type Result = usize;

    /// Applies the pass's frames; answers the index one past the last event applied (the
    /// pass ends early after a frame whose consequences the other stages must see first).
    fn handle(&mut self, msg: BookPass, _ctx: &mut Self::Context) -> usize {
        self.supervision.tick();
        let BookPass { data, watch } = msg;
        self.watch = watch;
        let range = data.range.clone();
        let mut snapshots = Vec::new();
        let mut frame_ends = data.frame_ends();
        let mut next_end = frame_ends.next();
        let acted_before = self.exec_events();
        // Whether only the account currency is held, and then the equity of every frame.
        let mut only_currency = None;
        let mut constant_equity = None;
        let mut checked = None;
        for (i, (seq, ev)) in data.iter_seq().enumerate() {
            let t = ev.time();
            if t > self.last_time {
                self.last_time = t;
            }
            if let crate::core::market::MarketEvent::Book(b) = ev {
                // Updated in place: no symbol clone per event.
                *self.last_book.get_or_insert_with(&b.symbol, || t) = t;
            }
            // Equity snapshots on a fixed event-time grid, taken before the event at or past
            // the grid point is applied, so they do not depend on how events are batched.
            if let Some(at) = self.equity.due(t) {
                self.publish();
                snapshots.push(self.equity_entry(at));
                self.out.journal.do_send(Append { entries: std::mem::take(&mut snapshots) });
            }
            self.exchange.on_event(seq, ev, &mut self.scratch);
            let index = range.start + i + 1;
            if next_end != Some(index) {
                continue; // inside a frame
            }
            next_end = frame_ends.next();
            if index == range.end {
                break; // the pass's last frame: handled below
            }
            // A frame ended: what would a frame-by-frame run make of its view? Execution
            // events end the pass (none happened in its earlier frames, or it would have).
            if self.exec_events() != acted_before {
                self.end_pass();
                return index;
            }
            // Balances change only with execution events (which end the pass): what is held is
            // the same at every frame of the pass, and while only the account currency is held,
            // so is equity.
            let equity = match constant_equity {
                Some(e) => e,
                None if *only_currency.get_or_insert_with(|| self.exchange.holds_only_currency()) => {
                    *constant_equity.insert(self.exchange.equity())
                }
                None => self.exchange.equity(),
            };
            let now = self.exchange.now();
            // The same equity on the same trading day as the last frame checked: nothing new.
            let day = now.last_daily_boundary(self.watch.daily_reset_hour_utc);
            let (wanted, breach) = if checked == Some((equity, day)) && !self.watch.halted {
                (false, false)
            } else {
                self.watch.needs_view(now, equity)
            };
            checked = Some((equity, day));
            if breach {
                self.end_pass();
                return index;
            }
            if wanted || self.view_due_at(now) {
                self.send_view();
            }
        }
        self.end_pass();
        range.end
    }
}

impl Handler<PlaceOrders> for PositionBook {
    type Result = ();

    fn handle(&mut self, msg: PlaceOrders, _ctx: &mut Self::Context) {
        for t in &msg.turned {
            self.exchange.cancel_entries_against(&t.pair, t.side, t.time, &mut self.scratch);
        }
        for req in msg.orders {
            self.exchange.submit(req, &mut self.scratch);
        }
        self.publish();
    }
}

impl Handler<AmendOrder> for PositionBook {
    type Result = Result<u64, crate::core::orders::Rejection>;

    fn handle(&mut self, msg: AmendOrder, _ctx: &mut Self::Context) -> Self::Result {
        let req = crate::core::orders::AmendRequest {
            order_id: msg.order_id,
            qty: msg.qty,
            limit_price: msg.limit_price,
            trigger_price: msg.trigger_price,
            post_only: msg.post_only,
            decided_at: self.last_time,
        };
        let res = self.exchange.amend(req, &mut self.scratch);
        self.publish();
        res
    }
}

impl Handler<EmergencyStop> for PositionBook {
    type Result = ();

    fn handle(&mut self, msg: EmergencyStop, _ctx: &mut Self::Context) {
        tracing::warn!(actor = "position_book", reason = %msg.reason, "emergency stop: cancelling orders and flattening");
        self.exchange.flatten_all(msg.time, "emergency_stop", &mut self.scratch);
        self.end_pass();
    }
}

impl Handler<Barrier> for PositionBook {
    type Result = ();

    fn handle(&mut self, _msg: Barrier, _ctx: &mut Self::Context) {}
}

impl Handler<Shutdown> for PositionBook {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) {
        let time = msg.time.max(self.last_time);
        if msg.flatten {
            self.exchange.flatten_all(time, "shutdown", &mut self.scratch);
        }
        self.publish();
        let equity = self.equity_entry(time);
        let stats = Entry::new(time, "exec_stats", self.exchange.stats());
        let balances = Entry::new(time, "balances", &json!({ "balances": self.exchange.balances() }));
        self.out.journal.do_send(Append { entries: vec![equity, stats, balances] });
    }
}

impl Handler<GapReview> for PositionBook {
    type Result = ();

    fn handle(&mut self, msg: GapReview, _ctx: &mut Self::Context) {
        let mut entries = Vec::new();
        for verdict in self.gap_watch.review(msg.since, &msg.pairs_unfetched) {
            match &verdict {
                GapVerdict::Triggered { order_id, pair, time, .. } => {
                    tracing::warn!(actor = "position_book", order_id = order_id, pair = pair.as_deref().unwrap_or("-"), trigger_time = %time.to_rfc3339(), "order triggered while the feed was down: its fill price cannot be known");
                }
                GapVerdict::Unfetched { pair, orders } => {
                    tracing::warn!(actor = "position_book", pair = %pair, ?orders, "trades missed while down could not be fetched: the fate of this pair's open orders in the gap is unknown");
                }
            }
            entries.extend(verdict.records(msg.until));
        }
        if !entries.is_empty() {
            self.out.journal.do_send(Append { entries });
        }
    }
}

impl Handler<GetPortfolio> for PositionBook {
    type Result = MessageResult<GetPortfolio>;

    fn handle(&mut self, _msg: GetPortfolio, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(PortfolioSnapshot {
            view: self.exchange.portfolio(),
            stats: self.exchange.stats().clone(),
            open_positions: self.exchange.open_positions(),
            equity_curve: self.equity.curve().to_vec(),
            returns: self.equity.sampled(),
            recent_trades: self.recent.iter().cloned().collect(),
            trades_closed: self.trades_closed,
            trades_won: self.trades_won,
            starting_equity: self.equity.starting(),
            peak_equity: self.equity.peak(),
        })
    }
}

/// The account and counters at one moment.
#[derive(Clone, Debug)]
pub struct PortfolioSnapshot {
    /// The portfolio.
    pub view: PortfolioView,
    /// Execution counters.
    pub stats: ExecStats,
    /// Open positions.
    pub open_positions: usize,
    /// Equity curve (event time, equity), thinned to at most `CURVE_POINTS` points.
    pub equity_curve: Vec<(EventTime, Decimal)>,
    /// The curve so far on the statistics' grid (unthinned): the dashboard's Sharpe.
    pub returns: crate::core::return_grid::Sampled,
    /// The most recent closed trades (newest last).
    pub recent_trades: Vec<crate::core::execution::ClosedTrade>,
    /// Closed trades so far.
    pub trades_closed: u64,
    /// Closed trades with positive P&L.
    pub trades_won: u64,
    /// Starting equity.
    pub starting_equity: Decimal,
    /// Highest equity seen.
    pub peak_equity: Decimal,
}

/// Closed trades kept for the dashboard.
pub const RECENT_TRADES: usize = 200;

impl PositionBook {
    /// Books older than `stale_after` (event time) are reported untradable to RiskManager:
    /// no new exposure on a stale book.
    pub fn with_stale_book_limit(mut self, stale_after: Span) -> Self {
        self.stale_after = stale_after;
        self
    }

    /// RiskManager samples portfolio views on an event-time grid of `every`
    /// (`risk.correlation_sample_interval`): when a pass covers several frames, a view is also
    /// sent after the first frame at or past each grid point, so the samples are those a
    /// frame-by-frame run takes.
    pub fn with_view_grid(mut self, every: Span) -> Self {
        self.view_grid_us = every.as_micros().max(0);
        self
    }

    /// A PositionBook over `exchange`, writing equity snapshots every `equity_interval`.
    pub fn new(
        exchange: PaperExchange,
        out: PositionBookOutputs,
        equity_interval: Span,
        check_identity: bool,
    ) -> Self {
        let equity = EquityTracker::new(exchange.equity(), equity_interval);
        PositionBook {
            exchange,
            out,
            equity,
            last_time: EventTime::ZERO,
            scratch: Vec::new(),
            check_identity,
            recent: Default::default(),
            trades_closed: 0,
            trades_won: 0,
            stale_after: Span(i64::MAX / 4),
            last_book: Default::default(),
            gap_watch: GapWatch::default(),
            view_grid_us: 0,
            next_view_at: None,
            watch: RiskWatch::default(),
            exec_published: 0,
            supervision: Watch::inert(ActorName::PositionBook),
        }
    }

    /// Reports its failure and takes the test hook through `watch` (the engine's
    /// supervision: `supervision::Policy::StopRun`).
    pub fn supervised(mut self, watch: Watch) -> Self {
        self.supervision = watch;
        self
    }

    /// Journals the collected execution events and tells the listeners about closed trades.
    fn publish(&mut self) {
        if self.scratch.is_empty() {
            return;
        }
        self.exec_published += self.scratch.len() as u64;
        let mut entries = Vec::with_capacity(self.scratch.len());
        let mut closed = Vec::new();
        let mut had_fill = false;
        for ev in self.scratch.drain(..) {
            self.gap_watch.see(&ev);
            entries.push(Entry::new(ev.time(), ev.kind(), &ev));
            match ev {
                ExecEvent::TradeClosed(t) => {
                    self.trades_closed += 1;
                    if t.pnl > Decimal::ZERO {
                        self.trades_won += 1;
                    }
                    self.recent.push_back(t.clone());
                    if self.recent.len() > RECENT_TRADES {
                        self.recent.pop_front();
                    }
                    closed.push(t)
                }
                ExecEvent::Fill(_) => had_fill = true,
                _ => {}
            }
        }
        if had_fill
            && self.check_identity
            && let Err(e) = self.exchange.verify_identity()
        {
            tracing::error!(actor = "position_book", error = %e, "accounting identity violated");
            entries.push(Entry::new(
                self.last_time,
                "identity_violation",
                &json!({ "error": e.to_string() }),
            ));
        }
        self.out.journal.do_send(Append { entries });
        if !closed.is_empty() {
            for r in &self.out.trades_closed {
                r.do_send(TradesClosed { trades: closed.clone() });
            }
        }
    }

    /// The `equity` record.
    fn equity_entry(&mut self, time: EventTime) -> Entry {
        let view = self.exchange.portfolio();
        let equity = view.equity;
        let drawdown = self.equity.snapshot(time, equity);
        let unrealized: Decimal = view.positions.iter().map(|p| p.unrealized).sum();
        // Signed: a short's value is negative (cash then is the quote balance itself).
        let exposure: Decimal =
            view.positions.iter().map(|p| if p.qty < Decimal::ZERO { -p.notional } else { p.notional }).sum();
        Entry::new(
            time,
            "equity",
            &json!({
                "equity": equity,
                "cash": equity - exposure,
                "unrealized": unrealized,
                "open_positions": self.exchange.open_positions(),
                "drawdown": drawdown,
            }),
        )
    }

    /// Whether a view at `t` falls on RiskManager's sampling grid: the rule of
    /// `core::risk::stats::Sampler::observe`.
    fn view_due_at(&self, t: EventTime) -> bool {
        self.next_view_at.is_none_or(|next| t >= next)
    }

    /// Execution events produced so far (published or not).
    fn exec_events(&self) -> u64 {
        self.exec_published + self.scratch.len() as u64
    }

    /// The end of a pass: journal what happened, send the view.
    fn end_pass(&mut self) {
        self.publish();
        self.send_view();
    }

    /// Sends RiskManager the view after the current frame, keeping the sampling grid and
    /// the watch in step with what RiskManager will do with it.
    fn send_view(&mut self) {
        let t = self.exchange.now();
        if self.view_due_at(t) {
            let step = self.view_grid_us.max(1);
            let grid = t.as_micros().div_euclid(step) * step;
            self.next_view_at = Some(EventTime::from_micros(grid.saturating_add(step)));
        }
        let equity = self.send_portfolio();
        self.watch.see(t, equity);
    }

    /// Sends RiskManager the portfolio view; returns its equity.
    fn send_portfolio(&self) -> Decimal {
        let mut view = self.exchange.portfolio();
        let limit = self.stale_after.as_micros();
        for q in &mut view.quotes {
            let fresh = self
                .last_book
                .get(&q.instrument.symbol)
                .is_some_and(|t| self.last_time.micros_since(*t) <= limit);
            if !fresh {
                q.tradable = false;
            }
        }
        let equity = view.equity;
        self.out.risk.do_send(PortfolioUpdate { view: Arc::new(view) });
        equity
    }
}
