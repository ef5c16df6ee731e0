//! Tests of the paper exchange through its public calls, on a rig that checks the identity
//! and the shortcut invariant after every event.

use super::*;
use crate::core::market::{Level, TopOfBook};
use crate::core::orders::{RiskApproval, Sealed};
use rust_decimal_macros::dec;

use super::accounting::add_holding;
pub(super) use crate::core::instrument::{Instrument, MarginTerms, PairStatus};
use crate::core::market::{BookEvent, TradeEvent};
use crate::core::orders::{Fill, FillCause, TimeInForce, TrailingOffset};
use crate::core::time::Span;
use crate::core::validate::Issues;
pub(super) use std::sync::Arc;

/// An approval as the risk core would give it (tests live inside `crate::core`).
pub(crate) fn approval_for_tests() -> RiskApproval {
    RiskApproval { _sealed: Sealed::new_for_risk() }
}

const P: &str = "BTC/USD";

fn t(ms: i64) -> EventTime {
    EventTime::from_millis(ms)
}

fn instrument(symbol: &str, base: &str, quote: &str) -> Instrument {
    Instrument {
        symbol: symbol.into(),
        base: base.into(),
        quote: quote.into(),
        status: PairStatus::Online,
        price_precision: 1,
        qty_precision: 8,
        cost_precision: 5,
        price_increment: dec!(0.1),
        qty_increment: dec!(0.00000001),
        qty_min: dec!(0.00005),
        cost_min: dec!(0.5),
        marginable: false,
        margin: None,
    }
}

fn levels(v: &[(Decimal, Decimal)]) -> Vec<Level> {
    v.iter().map(|&(price, qty)| Level { price, qty }).collect()
}

struct Rig {
    ex: PaperExchange,
    seq: u64,
}

impl Rig {
    fn new(cfg: ExecutionConfig, usd: Decimal) -> Rig {
        let bal = BTreeMap::from([("USD".to_string(), usd)]);
        Rig::with(cfg, bal, vec![instrument(P, "BTC", "USD")])
    }
    fn with(cfg: ExecutionConfig, bal: BTreeMap<String, Decimal>, insts: Vec<Instrument>) -> Rig {
        let mut r = Rig { ex: PaperExchange::new(&cfg, "USD", &bal), seq: 0 };
        for i in insts {
            r.ev(MarketEvent::Instrument { instrument: Arc::new(i), time: t(0) });
        }
        r
    }
    fn ev(&mut self, e: MarketEvent) -> Vec<ExecEvent> {
        self.seq += 1;
        let mut out = Vec::new();
        self.ex.on_event(self.seq, &e, &mut out);
        self.ex.verify_identity().unwrap();
        self.ex.check_shortcuts();
        // The remembered equity is the one computed afresh, digit for digit.
        assert_eq!(self.ex.equity().serialize(), self.ex.equity_from_balances().serialize());
        out
    }
    fn book_on(
        &mut self,
        pair: &str,
        ms: i64,
        snapshot: bool,
        bids: &[(Decimal, Decimal)],
        asks: &[(Decimal, Decimal)],
    ) -> Vec<ExecEvent> {
        self.ev(MarketEvent::Book(BookEvent {
            symbol: pair.into(),
            time: t(ms),
            snapshot,
            depth: 10,
            bids: levels(bids).into(),
            asks: levels(asks).into(),
            top: TopOfBook::default(),
        }))
    }
    fn book(
        &mut self,
        ms: i64,
        snapshot: bool,
        bids: &[(Decimal, Decimal)],
        asks: &[(Decimal, Decimal)],
    ) -> Vec<ExecEvent> {
        self.book_on(P, ms, snapshot, bids, asks)
    }
    /// An event that changes nothing we trade on (a ticker), to let time pass.
    fn tick(&mut self, ms: i64) -> Vec<ExecEvent> {
        self.ev(MarketEvent::Ticker(crate::core::market::TickerEvent {
            symbol: P.into(),
            time: t(ms),
            bid: dec!(0),
            ask: dec!(0),
            last: dec!(0),
            volume: dec!(0),
            vwap: dec!(0),
        }))
    }
    fn trade(&mut self, ms: i64, side: Side, price: Decimal, qty: Decimal) -> Vec<ExecEvent> {
        self.ev(MarketEvent::Trade(TradeEvent {
            symbol: P.into(),
            time: t(ms),
            side,
            price,
            qty,
            trade_id: self.seq + 1,
            market_order: true,
        }))
    }
    fn open(&mut self, spec: OrderSpec, protection: Protection, ms: i64) -> (OrderId, Vec<ExecEvent>) {
        let req = OrderRequest::opening(
            spec,
            protection,
            OrderOrigin::Intent { intent_id: 7 },
            t(ms),
            Vec::new(),
            vec!["test".into()],
            approval_for_tests(),
        );
        let mut out = Vec::new();
        let id = self.ex.submit(req, &mut out);
        (id, out)
    }
    fn reduce(&mut self, spec: OrderSpec, ms: i64) -> OrderId {
        let mut out = Vec::new();
        self.ex.submit(OrderRequest::reducing(spec, OrderOrigin::Api, t(ms)), &mut out)
    }
    fn bal(&self, a: &str) -> Decimal {
        self.ex.balances().get(a).copied().unwrap_or_default()
    }
}

fn fills(evs: &[ExecEvent]) -> Vec<&Fill> {
    evs.iter()
        .filter_map(|e| match e {
            ExecEvent::Fill(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn rejections(evs: &[ExecEvent]) -> Vec<&Rejection> {
    evs.iter()
        .filter_map(|e| match e {
            ExecEvent::OrderRejected { rejection, .. } => Some(rejection),
            _ => None,
        })
        .collect()
}

fn cancels(evs: &[ExecEvent]) -> Vec<(OrderId, &str)> {
    evs.iter()
        .filter_map(|e| match e {
            ExecEvent::OrderCanceled { order_id, reason, .. } => Some((*order_id, reason.as_str())),
            _ => None,
        })
        .collect()
}

fn closed(evs: &[ExecEvent]) -> Vec<&ClosedTrade> {
    evs.iter()
        .filter_map(|e| match e {
            ExecEvent::TradeClosed(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn buy(qty: Decimal) -> OrderSpec {
    OrderSpec::market(P.into(), Side::Buy, qty)
}

fn standard_book(r: &mut Rig) {
    r.book(
        100,
        true,
        &[(dec!(99.5), dec!(1))],
        &[(dec!(100.0), dec!(0.5)), (dec!(100.5), dec!(0.3)), (dec!(101.0), dec!(1.0))],
    );
}

/// Long 1 BTC bought at 100.0 (fee 0.4) on a 99.0 / 100.0 book.
fn long_one() -> Rig {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(5))], &[(dec!(100.0), dec!(5))]);
    r.open(buy(dec!(1)), Protection::default(), 1000);
    let out = r.tick(1100);
    assert_eq!(fills(&out)[0].price, dec!(100.0));
    r
}

/// BTC/USD as AssetPairs would describe it for margin (5× max, 80 / 40, 250 BTC short).
fn margin_inst() -> Instrument {
    let mut i = instrument(P, "BTC", "USD");
    i.marginable = true;
    i.margin = Some(MarginTerms {
        max_leverage_sell: 5,
        margin_call: 80,
        margin_stop: 40,
        short_position_limit: Some(dec!(250)),
    });
    i
}

fn short_sell(qty: Decimal, leverage: u32) -> OrderSpec {
    OrderSpec { leverage: Some(leverage), ..OrderSpec::market(P.into(), Side::Sell, qty) }
}

mod amend_tests;
mod margin_tests;
mod matching_tests;
mod orders_tests;
mod property_tests;
