//! The messages actors exchange, in the order data flows through the engine.
//!
//! ```text
//! MarketFeed ──MarketData (whole batch)──► signal actors ──SignalBatch──► SignalAggregator
//!            ──NextDecision──► SignalAggregator   (where the pass must end at the latest)
//!   then per pass (a run of whole frames):
//!            ──BookPass───► PositionBook ──PortfolioUpdate──► RiskManager   (answers: events applied)
//!            ──MarketData──► RiskManager                       (drawdown → EmergencyStop ──► all)
//!            ──MarketData──► SignalAggregator ──TradeIntents──► RiskManager
//!            ──WatchRequest► RiskManager ──PlaceOrders──► PositionBook     (answers: RiskWatch)
//!            ──Barrier────► PositionBook                      ──TradesClosed──► SignalAggregator, RiskManager
//!            ──Flush──────► Journal   (every actor ──Append──► Journal)
//! ```
//!
//! The feed awaits every hop, so each pass is fully handled (orders placed, records appended)
//! before the next one starts: the order of everything is fixed by the data, which is what
//! makes journals byte-identical. A pass covers frames up to the next one at which the
//! aggregator can decide ([`NextDecision`]); PositionBook ends it earlier after a frame whose
//! consequences the others must see first ([`BookPass`]); while RiskManager is halted a pass
//! is one frame. Every way of grouping frames gives the journal of frame-by-frame passes, so
//! results do not depend on batching.
//! Actix mailboxes are FIFO, so a message an actor sends while handling a hop is handled by
//! its receiver before the feed's next hop to that receiver (the barriers).

use std::sync::Arc;

use actix::prelude::*;

use crate::core::decisions::{Signal, TradeIntent};
use crate::core::execution::ClosedTrade;
use crate::core::journal::Entry;
use crate::core::market::{MarketBatch, MarketEvent};
use crate::core::orders::OrderRequest;
use crate::core::portfolio::PortfolioView;
use crate::core::rate_limit::RestCall;
use crate::core::risk::RiskWatch;
use crate::core::time::EventTime;

/// A run of verified market events (MarketFeed → PositionBook, RiskManager, signal actors,
/// SignalAggregator). Answered when the receiver has handled every event of it.
///
/// `batch` holds whole frames; the message covers the events `range` of it (signal actors get
/// the whole batch at once, the other stages one pass of frames at a time).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct MarketData {
    /// The decoded frames; event `i` has global sequence number `batch.first_seq + i`.
    pub batch: Arc<MarketBatch>,
    /// The events of `batch` this message is about.
    pub range: std::ops::Range<usize>,
}

impl MarketData {
    /// All of `batch`.
    pub fn whole(batch: Arc<MarketBatch>) -> MarketData {
        let range = 0..batch.events.len();
        MarketData { batch, range }
    }
    /// Iterates `(seq, event)` over this message's events.
    pub fn iter_seq(&self) -> impl Iterator<Item = (u64, &MarketEvent)> {
        let first = self.batch.first_seq + self.range.start as u64;
        self.events().iter().enumerate().map(move |(i, e)| (first + i as u64, e))
    }
    /// This message's events.
    pub fn events(&self) -> &[MarketEvent] {
        self.batch.events.get(self.range.clone()).unwrap_or(&[])
    }
    /// Where each frame with events in this message ends (index one past its last event in
    /// `batch.events`), in order; frames without events are left out.
    pub fn frame_ends(&self) -> impl Iterator<Item = usize> + '_ {
        let r = self.range.clone();
        let mut prev = r.start;
        self.batch.frames.iter().map(|m| m.end).filter(move |&e| {
            let new = e > prev && e <= r.end;
            prev = prev.max(e);
            new
        })
    }
    /// The last event of each frame with events in this message, in order.
    pub fn frame_last_events(&self) -> impl Iterator<Item = &MarketEvent> {
        self.frame_ends().filter_map(|e| self.batch.events.get(e - 1))
    }
    /// Sequence number of the last event, if any.
    pub fn last_seq(&self) -> Option<u64> {
        (!self.range.is_empty()).then(|| self.batch.first_seq + self.range.end as u64 - 1)
    }
}

/// PositionBook's part of a pass (MarketFeed → PositionBook): the frames of `data`, and what
/// RiskManager watches ([`RiskWatch`], from its last answer). PositionBook sends RiskManager
/// a view after every frame at which a frame-by-frame run would have it act or change state,
/// and ends the pass early — answering how many events it applied — after the first frame
/// with an execution event (fill, order accepted, cancel, trigger, …) or a possible drawdown
/// breach: what follows must see that frame's consequences first.
#[derive(Message, Clone, Debug)]
#[rtype(result = "usize")]
pub struct BookPass {
    /// The frames of the pass.
    pub data: MarketData,
    /// RiskManager's state as of the last pass.
    pub watch: RiskWatch,
}

/// "Handle what was sent to you before this, and say what a view can change" (MarketFeed →
/// RiskManager, after the aggregator's hop): the end-of-pass barrier of RiskManager.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "RiskWatch")]
pub struct WatchRequest;

/// Signals computed from one batch (signal actors → SignalAggregator).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct SignalBatch {
    /// The signals, in event order.
    pub signals: Vec<Signal>,
}

/// The aggregator's decisions (SignalAggregator → RiskManager).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct TradeIntents {
    /// Intents, in decision order.
    pub intents: Vec<TradeIntent>,
}

/// Orders for the paper exchange (RiskManager → PositionBook). Opening orders can only be
/// built by the risk core (see `core::orders::OrderRequest::opening`).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PlaceOrders {
    /// Signals that turned, handled first: each cancels its pair's open entry orders on the
    /// other side (`PaperExchange::cancel_entries_against`).
    pub turned: Vec<SignalTurned>,
    /// The orders.
    pub orders: Vec<OrderRequest>,
}

/// A trade intent's side on a pair, at its event time: entries of the other side on that
/// pair are no longer wanted.
#[derive(Clone, Debug)]
pub struct SignalTurned {
    /// Pair.
    pub pair: crate::core::instrument::Symbol,
    /// The intent's side.
    pub side: crate::core::market::Side,
    /// The intent's event time.
    pub time: EventTime,
}

/// The account after a batch (PositionBook → RiskManager).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct PortfolioUpdate {
    /// Equity, positions, quotes.
    pub view: Arc<PortfolioView>,
}

/// Round trips that closed (PositionBook → SignalAggregator and RiskManager: feedback).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct TradesClosed {
    /// The trades.
    pub trades: Vec<ClosedTrade>,
}

/// Trading halt (RiskManager → every actor). Awaited by its sender, so it is handled by
/// everyone before the next market event is processed.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct EmergencyStop {
    /// Event time of the breach.
    pub time: EventTime,
    /// Drawdown from the equity peak (fraction).
    pub drawdown: f64,
    /// Configured limit (fraction).
    pub limit: f64,
    /// Why (shown as `max_drawdown`, `operator`).
    pub reason: crate::core::risk::EmergencyReason,
}

/// The halt was lifted (RiskManager → every actor).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct HaltLifted {
    /// Event time.
    pub time: EventTime,
    /// Who lifted it (shown as `cooldown`, `operator`).
    pub by: crate::core::risk::HaltLiftedBy,
}

/// "Handle everything sent to you before this" (MarketFeed → PositionBook).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Barrier;

/// "From which event on can you decide something?" (MarketFeed → SignalAggregator, after the
/// signal actors had the batch). Answered with the lowest event sequence number at which a
/// signal it holds can become live (None: it holds none), so the feed ends a pass there.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "Option<u64>")]
pub struct NextDecision;

/// Appends records (every actor → Journal; sequence numbers are given by the journal).
/// Senders hold a `JournalSink` (`crate::pipeline`), which counts them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Append {
    /// The records, in order.
    pub entries: Vec<Entry>,
}

/// Writes buffered records and syncs them to disk per the durability policy (MarketFeed →
/// Journal, after each pass that appended something: the durability barrier).
#[derive(Message)]
#[rtype(result = "Result<JournalPosition, crate::core::journal::JournalError>")]
pub struct Flush;

/// Where the journal stands (the answer to [`Flush`] and to the journal's `Close`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalPosition {
    /// Last sequence number written (0 if none).
    pub last_seq: u64,
    /// Event time of the last record.
    pub last_event_time: EventTime,
    /// Records written by this process.
    pub written: u64,
}

/// End of the run (engine → PositionBook, RiskManager, SignalAggregator, MarketFeed): write the
/// final records. Answered when they are appended.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Shutdown {
    /// Last event time seen.
    pub time: EventTime,
    /// Close every position before stopping.
    pub flatten: bool,
}

/// An operator command from the HTTP API (engine → RiskManager).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<OperatorOutcome, OperatorError>")]
pub enum OperatorCommand {
    /// Halt trading now, as on a drawdown breach.
    EmergencyStop,
    /// Lift a halt in force.
    Resume,
}

/// What an [`OperatorCommand`] did; its `Display` is the `result` text of the HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorOutcome {
    /// Trading is halted now.
    Halted,
    /// A halt was already in force; nothing changed.
    AlreadyHalted,
    /// The halt in force was lifted.
    HaltLifted,
    /// No halt was in force; nothing changed.
    NotHalted,
}

impl std::fmt::Display for OperatorOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OperatorOutcome::Halted => "halted",
            OperatorOutcome::AlreadyHalted => "already halted",
            OperatorOutcome::HaltLifted => "halt lifted",
            OperatorOutcome::NotHalted => "not halted",
        })
    }
}

/// Why an [`OperatorCommand`] was refused. No command is refused today (both are
/// idempotent); the HTTP API answers a refusal with 409 and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {}

impl crate::core::error::Classified for OperatorError {
    /// No variant yet: nothing to classify.
    fn disposition(&self) -> crate::core::error::Disposition {
        match *self {}
    }
}

/// Kraken's AmendOrder through the order API (your code → PositionBook): change an open
/// order in place — same id, fills kept; a quantity reduction keeps its queue priority, a new
/// price loses it. Answered with the amend id once it is on its way to the book (it arrives
/// after `execution.latency`; the outcome is journaled as `order_amended` or
/// `amend_rejected`), or at once with Kraken's error (`EOrder:Unknown order`, …).
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<u64, crate::core::orders::Rejection>")]
pub struct AmendOrder {
    /// The order.
    pub order_id: crate::core::orders::OrderId,
    /// New total quantity (`order_qty`), base units.
    pub qty: Option<crate::core::money::Qty>,
    /// New limit price (`limit_price`).
    pub limit_price: Option<crate::core::money::Price>,
    /// New trigger price (`trigger_price`).
    pub trigger_price: Option<crate::core::money::Price>,
    /// Refuse a limit price change that would take liquidity.
    pub post_only: bool,
}

/// The order API's convenience call (engine, HTTP or your own actor → RiskManager): open a
/// position on `pair`. Sized and checked by the risk core like any intent; answered with the
/// order it approved or the refusal.
#[derive(Message, Clone, Debug)]
#[rtype(result = "Result<crate::core::orders::OrderSpec, crate::core::risk::Refusal>")]
pub struct OpenPosition {
    /// Pair (WS v2 symbol).
    pub pair: String,
    /// Buy opens a long (or closes a short); Sell closes a long, or opens a short when
    /// `execution.margin.enabled` and the pair is marginable.
    pub side: crate::core::market::Side,
    /// Confidence in [0, 1] (scales the size).
    pub confidence: f64,
    /// Volatility per √second (0: the risk core's own estimate).
    pub volatility: f64,
    /// Stop distance, fraction of price (None: `risk.stop_loss_pct`).
    pub stop_loss_pct: Option<rust_decimal::Decimal>,
    /// Take-profit distance, fraction of price (None: `risk.take_profit_pct`).
    pub take_profit_pct: Option<rust_decimal::Decimal>,
    /// Tags carried to the orders and the closed trade.
    pub tags: Vec<String>,
}

/// Waits until `call` may be sent (KrakenRest → RateLimiter, before every REST request);
/// answers with the seconds waited. Wall time: REST limits are the exchange's, in real
/// seconds, and nothing here is journaled.
#[derive(Message)]
#[rtype(result = "f64")]
pub struct Acquire {
    /// The call.
    pub call: RestCall,
}
