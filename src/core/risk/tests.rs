//! Unit tests of the risk core; every expected number is worked out in a comment.

use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::core::instrument::{Instrument, PairStatus};
use crate::core::money::from_f64;
use crate::core::orders::{OrderType, TrailingOffset};
use crate::core::portfolio::PositionView;
use crate::core::time::Span;
use crate::core::validate::Issues;

const T0: i64 = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z
const MIN: i64 = 60_000_000;
const HOUR: i64 = 3_600_000_000;

fn t(us: i64) -> EventTime {
    EventTime::from_micros(T0 + us)
}

fn inst(symbol: &str, tick: Decimal, qty_min: Decimal) -> Arc<Instrument> {
    let (base, quote) = symbol.split_once('/').unwrap();
    Arc::new(Instrument {
        symbol: symbol.into(),
        base: base.into(),
        quote: quote.into(),
        status: PairStatus::Online,
        price_precision: tick.scale(),
        qty_precision: 8,
        cost_precision: 5,
        price_increment: tick,
        qty_increment: dec!(0.00000001),
        qty_min,
        cost_min: dec!(0.5),
        marginable: false,
        margin: None,
    })
}

fn quote(symbol: &str, bid: Decimal, ask: Decimal) -> Quote {
    let tick = if symbol.starts_with("BTC") { dec!(0.1) } else { dec!(0.01) };
    let qmin = if symbol.starts_with("BTC") { dec!(0.00005) } else { dec!(0.002) };
    Quote { instrument: inst(symbol, tick, qmin), bid, ask, quote_to_account: Decimal::ONE, tradable: true }
}

fn btc() -> Quote {
    quote("BTC/USD", dec!(50000.0), dec!(50000.1))
}

fn eth() -> Quote {
    quote("ETH/USD", dec!(2000.00), dec!(2000.01))
}

fn long(pair: &str, qty: Decimal, mark: Decimal) -> PositionView {
    PositionView {
        pair: pair.into(),
        qty,
        avg_price: mark,
        mark,
        notional: qty * mark,
        unrealized: Decimal::ZERO,
    }
}

fn view(time: EventTime, equity: Decimal, positions: Vec<PositionView>, quotes: Vec<Quote>) -> PortfolioView {
    PortfolioView {
        time,
        currency: "USD".into(),
        equity,
        available_cash: equity,
        positions,
        open_orders: Vec::new(),
        quotes,
        margin: None,
    }
}

fn intent(id: u64, pair: &str, side: Side, confidence: f64, time: EventTime) -> TradeIntent {
    TradeIntent {
        intent_id: id,
        pair: pair.into(),
        side,
        confidence,
        volatility: 0.0,
        time,
        event_seq: id,
        contributions: Vec::new(),
        overrides: Default::default(),
    }
}

/// Config with every cap out of the way, so one rule at a time can be tested.
fn loose() -> RiskConfig {
    RiskConfig {
        max_position_fraction: Decimal::ONE,
        max_total_exposure: Decimal::ONE,
        max_exposure_per_asset: Decimal::ONE,
        max_order_notional: dec!(1000000),
        fee_reserve: Decimal::ZERO,
        target_volatility: 0.0,
        correlation_prior: 0.0,
        ..RiskConfig::default()
    }
}

fn core(cfg: RiskConfig) -> RiskCore {
    RiskCore::new(&cfg, EntryStyle::default())
}

fn approved(v: Verdict) -> Box<OrderRequest> {
    match v {
        Verdict::Approved(o) => o,
        other => panic!("expected approval, got {other:?}"),
    }
}

fn refused(v: Verdict) -> Refusal {
    match v {
        Verdict::Refused(r) => r,
        other => panic!("expected refusal, got {other:?}"),
    }
}

fn ct(pnl: Decimal) -> ClosedTrade {
    ClosedTrade {
        trade_id: 1,
        pair: "BTC/USD".into(),
        side: Side::Buy,
        qty: dec!(0.01),
        entry_time: t(0),
        exit_time: t(1),
        entry_price: dec!(50000),
        exit_price: dec!(50000),
        fees: Decimal::ZERO,
        pnl,
        max_pnl: Decimal::ZERO,
        max_drawdown: Decimal::ZERO,
        contributions: Vec::new(),
        tags: Vec::new(),
        exit_reason: "signal".into(),
    }
}

// ---- sizing ---------------------------------------------------------------------------

#[test]
fn sizes_fixed_fractional_scaled_by_confidence() {
    // equity 10,000, risk 1 %, stop 1 %: risk notional = 10,000 × 0.01 / 0.01 = 10,000;
    // confidence 0.2 → 2,000 USD. Limit at the touch: buy at the bid 50,000.0.
    // qty = 2,000 / 50,000 = 0.04 BTC; stop 50,000 × 0.99 = 49,500.0, TP × 1.02 = 51,000.0.
    // Loss at the stop: 0.04 × 500 = 20 USD = 0.2 % of equity = 1 % × confidence.
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    let o = approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(0))));
    assert_eq!(o.spec().order_type, OrderType::Limit);
    assert_eq!(o.spec().price, Some(dec!(50000.0)));
    assert_eq!(o.spec().qty, dec!(0.04));
    assert_eq!(o.protection().stop_loss, Some(dec!(49500.0)));
    assert_eq!(o.protection().take_profit, Some(dec!(51000.0)));
    assert_eq!(o.origin(), &OrderOrigin::Intent { intent_id: 1 });
    assert!(!o.spec().reduce_only);
    let s = rc.last_sizing().unwrap();
    assert_eq!(s.risk_notional, dec!(10000));
    assert_eq!(s.binding, "risk");
}

#[test]
fn order_api_overrides_set_stops_and_tags() {
    // open_position(BTC/USD, buy, confidence 0.2, stop 2 %, take profit 5 %, tags [manual]):
    // risk notional = 10,000 × 0.01 / 0.02 = 5,000; × 0.2 = 1,000 USD → 0.02 BTC at 50,000.0;
    // stop 50,000 × 0.98 = 49,000.0, take profit × 1.05 = 52,500.0.
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    let mut i = intent(1, "BTC/USD", Side::Buy, 0.2, t(0));
    i.overrides = crate::core::decisions::IntentOverrides {
        stop_loss_pct: Some(dec!(0.02)),
        take_profit_pct: Some(dec!(0.05)),
        tags: vec!["manual".into()],
    };
    let o = approved(rc.evaluate(&i));
    assert_eq!(o.spec().qty, dec!(0.02));
    assert_eq!(o.protection().stop_loss, Some(dec!(49000.0)));
    assert_eq!(o.protection().take_profit, Some(dec!(52500.0)));
    assert_eq!(o.tags(), &["manual".to_string()]);
}

#[test]
fn volatility_target_scales_the_size() {
    // σ_day = 0.06 (intent σ per √s = 0.06 / √86400); target 0.03 → scale 0.5.
    // 10,000 × 0.2 × 0.5 = 1,000 USD → 0.02 BTC.
    let mut rc = core(RiskConfig { target_volatility: 0.03, ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    let mut i = intent(1, "BTC/USD", Side::Buy, 0.2, t(0));
    i.volatility = 0.06 / 86_400f64.sqrt();
    let o = approved(rc.evaluate(&i));
    assert_eq!(o.spec().qty, dec!(0.02));
    // A calm pair (σ_day 0.0075) would scale by 4, capped at vol_scale_max 2: 4,000 USD.
    let mut rc = core(RiskConfig { target_volatility: 0.03, ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    i.volatility = 0.0075 / 86_400f64.sqrt();
    assert_eq!(approved(rc.evaluate(&i)).spec().qty, dec!(0.08));
}

#[test]
fn volatility_stops_use_k_sigma_sqrt_horizon() {
    // σ = 0.0001 /√s, horizon 1h = 3600 s → σ√h = 0.006; stop 2 × 0.006 = 1.2 %, TP 4 × = 2.4 %.
    // Entry 50,000.0: stop 49,400.0, TP 51,200.0. Size 10,000 × 0.01 / 0.012 = 8,333.33…
    // → qty 8,333.33… / 50,000 = 0.16666666 (rounded down to 1e-8).
    let mut rc = core(RiskConfig { stop_mode: StopMode::Volatility, ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    let mut i = intent(1, "BTC/USD", Side::Buy, 1.0, t(0));
    i.volatility = 0.0001;
    let o = approved(rc.evaluate(&i));
    assert_eq!(o.protection().stop_loss, Some(dec!(49400.0)));
    assert_eq!(o.protection().take_profit, Some(dec!(51200.0)));
    assert_eq!(o.spec().qty, dec!(0.16666666));
}

#[test]
fn trailing_stop_goes_into_protection() {
    let mut rc = core(RiskConfig { trailing_stop_pct: dec!(0.015), ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    let o = approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(0))));
    assert_eq!(o.protection().trailing, Some(TrailingOffset::Percent(dec!(1.5))));
}

#[test]
fn entry_styles_price_from_the_touch_without_crossing() {
    let wide = quote("BTC/USD", dec!(50000.0), dec!(50001.0));
    for (style, price, post) in [
        (EntryStyle::Limit { offset_ticks: 3 }, Some(dec!(50000.3)), false), // bid + 3 ticks
        (EntryStyle::Limit { offset_ticks: 50 }, Some(dec!(50000.9)), false), // capped at ask − 1 tick
        (EntryStyle::Limit { offset_ticks: -2 }, Some(dec!(49999.8)), false), // behind the touch
        (EntryStyle::PostOnly { offset_ticks: 0 }, Some(dec!(50000.0)), true),
        (EntryStyle::Market, None, false),
    ] {
        let mut rc = RiskCore::new(&loose(), style);
        rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![wide.clone()]));
        let o = approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(0))));
        assert_eq!(o.spec().price, price, "{style:?}");
        assert_eq!(o.spec().post_only, post, "{style:?}");
    }
}

#[test]
fn kelly_caps_the_position_after_enough_trades() {
    // Wanted: 10,000 × 0.01 / 0.01 × 1.0 = 10,000; max_position_fraction 0.25 → 2,500.
    let cfg = RiskConfig { max_position_fraction: dec!(0.25), ..loose() };
    let mut rc = core(cfg.clone());
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    // 19 trades (< kelly_min_trades 20): only max_position_fraction: 2,500 / 50,000 = 0.05 BTC.
    for k in 0..19 {
        rc.on_trade_closed(&ct(if k < 12 { dec!(30) } else { dec!(-20) }));
    }
    assert_eq!(approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 1.0, t(0)))).spec().qty, dec!(0.05));
    // 20 trades: 12 wins of +30, 8 losses of −20 → W = 0.6, R = 30/20 = 1.5,
    // f* = 0.6 − 0.4 / 1.5 = 1/3; half Kelly = 1/6 → cap 10,000 / 6 = 1,666.67 USD
    // → qty 1,666.666… / 50,000 = 0.03333333.
    let mut rc = core(cfg);
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    for k in 0..20 {
        rc.on_trade_closed(&ct(if k < 12 { dec!(30) } else { dec!(-20) }));
    }
    let o = approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 1.0, t(0))));
    assert_eq!(o.spec().qty, dec!(0.03333333));
    assert_eq!(rc.last_sizing().unwrap().binding, reason::KELLY_CAP);
}

#[test]
fn negative_kelly_edge_falls_back_to_the_floor() {
    // 5 wins of +10, 15 losses of −10: W = 0.25, R = 1 → f* = 0.25 − 0.75 = −0.5 → the floor
    // kelly_floor_fraction 0.02 → 200 USD → 0.004 BTC.
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    for k in 0..20 {
        rc.on_trade_closed(&ct(if k < 5 { dec!(10) } else { dec!(-10) }));
    }
    assert_eq!(approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 1.0, t(0)))).spec().qty, dec!(0.004));
}

#[test]
fn refuses_below_the_pair_minimums() {
    // equity 100: 100 × 0.01 / 0.01 × 0.01 = 1 USD → qty 0.00002 < qty_min 0.00005.
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(100), vec![], vec![btc()]));
    let r = refused(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.01, t(0))));
    assert_eq!(r.reason, reason::BELOW_MINIMUM);
    // cost_min: ETH qty_min 0.002 ok but cost_min raised to 5 USD; 1 USD / 2,000 = 0.0005 ETH
    // < qty_min too; use equity 1,000 → 10 USD wanted … so make the pair's cost_min 20:
    // 10 USD / 2,000 = 0.005 ETH ≥ qty_min 0.002, cost 10 < cost_min 20 → below_minimum.
    let mut q = eth();
    let mut i = (*q.instrument).clone();
    i.cost_min = dec!(20);
    q.instrument = Arc::new(i);
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(1000), vec![], vec![q]));
    let r = refused(rc.evaluate(&intent(2, "ETH/USD", Side::Buy, 0.01, t(0))));
    assert_eq!(r.reason, reason::BELOW_MINIMUM);
    assert!(r.detail.contains("cost_min 20"), "{}", r.detail);
}

#[test]
fn caps_by_available_cash_with_fee_reserve() {
    // Wanted 10,000, cash 1,005, fee_reserve 0.005 → 1,005 / 1.005 = 1,000 USD → 0.02 BTC.
    let mut rc = core(RiskConfig { fee_reserve: dec!(0.005), ..loose() });
    let mut v = view(t(0), dec!(10000), vec![], vec![btc()]);
    v.available_cash = dec!(1005);
    rc.on_portfolio(&v);
    assert_eq!(approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 1.0, t(0)))).spec().qty, dec!(0.02));
    assert_eq!(rc.last_sizing().unwrap().binding, reason::INSUFFICIENT_CASH);
}

// ---- limits ---------------------------------------------------------------------------

#[test]
fn each_limit_refuses_with_its_reason() {
    let base = || view(t(0), dec!(10000), vec![], vec![btc(), eth()]);
    let buy = |time| intent(9, "BTC/USD", Side::Buy, 0.2, time);
    let cases: Vec<(&str, RiskConfig, PortfolioView)> = vec![
        ("pair_not_tradable", loose(), {
            let mut v = base();
            v.quotes[0].tradable = false;
            v
        }),
        ("pair_not_tradable", loose(), view(t(0), dec!(10000), vec![], vec![eth()])),
        ("pair_not_tradable", loose(), {
            let mut v = base();
            let mut i = (*v.quotes[0].instrument).clone();
            i.status = PairStatus::CancelOnly;
            v.quotes[0].instrument = Arc::new(i);
            v
        }),
        ("already_in_position", loose(), {
            let mut v = base();
            v.positions.push(long("BTC/USD", dec!(0.01), dec!(50000)));
            v
        }),
        // one ETH position, limit 1 position.
        ("max_open_positions", RiskConfig { max_open_positions: 1, ..loose() }, {
            let mut v = base();
            v.positions.push(long("ETH/USD", dec!(1), dec!(2000)));
            v
        }),
        ("open_orders_on_pair", loose(), {
            let mut v = base();
            v.open_orders.push(("BTC/USD".into(), 1));
            v
        }),
        // BTC/EUR holds 5,000 of BTC (no quote: the asset comes from the symbol);
        // 0.5 × 10,000 − 5,000 = 0 room.
        ("max_exposure_per_asset", RiskConfig { max_exposure_per_asset: dec!(0.5), ..loose() }, {
            let mut v = base();
            v.positions.push(long("BTC/EUR", dec!(0.1), dec!(50000)));
            v
        }),
        // ETH 9,000: 0.9 × 10,000 − 9,000 = 0 room.
        ("max_total_exposure", RiskConfig { max_total_exposure: dec!(0.9), ..loose() }, {
            let mut v = base();
            v.positions.push(long("ETH/USD", dec!(4.5), dec!(2000)));
            v
        }),
        // ETH 5,000, leverage 0.5 → 0.5 × 10,000 − 5,000 = 0 room (total exposure room 5,000).
        ("max_leverage", RiskConfig { max_leverage: dec!(0.5), ..loose() }, {
            let mut v = base();
            v.positions.push(long("ETH/USD", dec!(2.5), dec!(2000)));
            v
        }),
        // capped to 1 USD → 0.00002 BTC < qty_min: refused by the cap that made it too small.
        ("max_order_notional", RiskConfig { max_order_notional: dec!(1), ..loose() }, base()),
        ("max_position_fraction", RiskConfig { max_position_fraction: dec!(0.0001), ..loose() }, base()),
        ("insufficient_cash", loose(), {
            let mut v = base();
            v.available_cash = Decimal::ZERO;
            v
        }),
    ];
    for (want, cfg, v) in cases {
        let mut rc = core(cfg);
        rc.on_portfolio(&v);
        let r = refused(rc.evaluate(&buy(t(0))));
        assert_eq!(r.reason, want, "{}", r.detail);
        assert_eq!(rc.metrics()["refused_by_reason"][want], 1);
    }
}

#[test]
fn sell_without_position_is_refused_and_against_a_long_exits() {
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    assert_eq!(
        refused(rc.evaluate(&intent(1, "BTC/USD", Side::Sell, 0.5, t(0)))).reason,
        reason::NO_POSITION
    );

    rc.on_portfolio(&view(
        t(MIN),
        dec!(10000),
        vec![long("BTC/USD", dec!(0.123456789), dec!(50000))],
        vec![btc()],
    ));
    match rc.evaluate(&intent(2, "BTC/USD", Side::Sell, 0.5, t(MIN))) {
        Verdict::Exit(o) => {
            assert!(o.spec().reduce_only);
            assert_eq!(o.spec().side, Side::Sell);
            assert_eq!(o.spec().order_type, OrderType::Market); // exit_style default
            assert_eq!(o.spec().qty, dec!(0.12345678)); // rounded down to the lot
            assert_eq!(o.origin(), &OrderOrigin::Intent { intent_id: 2 });
        }
        other => panic!("expected exit, got {other:?}"),
    }
    let m = rc.metrics();
    assert_eq!(m["exit_intents"], 1);
    assert_eq!(m["refused_intents"], 1);
}

/// A BTC/USD quote whose pair can be shorted (AssetPairs: leverage_sell up to 10, 80 / 40).
fn marginable_btc() -> Quote {
    let mut q = btc();
    let mut i = (*q.instrument).clone();
    i.marginable = true;
    i.margin = Some(crate::core::instrument::MarginTerms {
        max_leverage_sell: 10,
        margin_call: 80,
        margin_stop: 40,
        short_position_limit: Some(dec!(250)),
    });
    q.instrument = Arc::new(i);
    q
}

fn margin_view(free: Decimal, leverage: u32) -> Option<crate::core::portfolio::MarginView> {
    Some(crate::core::portfolio::MarginView {
        leverage,
        used_margin: Decimal::ZERO,
        free_margin: free,
        margin_level: None,
        positions: 0,
    })
}

#[test]
fn with_margin_a_sell_without_position_opens_a_short() {
    // Same sizing as a long: 10,000 × 1 % / 1 % × confidence 0.2 = 2,000 USD; a limit sell
    // at the ask 50,000.1 → qty 2,000 / 50,000.1 = 0.03999992 (rounded down to the lot).
    // Stop above: 50,000.1 × 1.01 = 50,500.101 → 50,500.1 (toward the entry); take profit
    // below: × 0.98 = 49,000.098 → 49,000.1. Leverage 3 (config) ≤ the pair's 10.
    let mut rc = core(loose());
    let mut v = view(t(0), dec!(10000), vec![], vec![marginable_btc()]);
    v.margin = margin_view(dec!(10000), 3);
    rc.on_portfolio(&v);
    let o = approved(rc.evaluate(&intent(1, "BTC/USD", Side::Sell, 0.2, t(0))));
    assert_eq!(
        (o.spec().side, o.spec().price, o.spec().qty),
        (Side::Sell, Some(dec!(50000.1)), dec!(0.03999992))
    );
    assert_eq!(o.spec().leverage, Some(3));
    assert!(!o.spec().reduce_only);
    assert_eq!(o.protection().stop_loss, Some(dec!(50500.1)));
    assert_eq!(o.protection().take_profit, Some(dec!(49000.1)));
    // The pending short counts against max_open_positions like a long.
    let mut rc2 = core(RiskConfig { max_open_positions: 1, ..loose() });
    let mut v2 = view(t(0), dec!(10000), vec![], vec![marginable_btc(), eth()]);
    v2.margin = margin_view(dec!(10000), 3);
    rc2.on_portfolio(&v2);
    approved(rc2.evaluate(&intent(1, "BTC/USD", Side::Sell, 0.2, t(0))));
    assert_eq!(
        refused(rc2.evaluate(&intent(2, "ETH/USD", Side::Buy, 0.2, t(0)))).reason,
        reason::MAX_OPEN_POSITIONS
    );
}

#[test]
fn short_size_is_capped_by_free_margin_times_leverage() {
    // Free margin 300 at 2× with fee reserve 0.5 %: 300 × 2 / 1.005 = 597.0149… USD; the
    // risk size (2,000) is bigger, so margin binds: qty = 597.0149… / 50,000.1 = 0.01194027.
    let mut rc = core(RiskConfig { fee_reserve: dec!(0.005), ..loose() });
    let mut v = view(t(0), dec!(10000), vec![], vec![marginable_btc()]);
    v.margin = margin_view(dec!(300), 2);
    rc.on_portfolio(&v);
    let o = approved(rc.evaluate(&intent(1, "BTC/USD", Side::Sell, 0.2, t(0))));
    assert_eq!(o.spec().qty, dec!(0.01194027));
    assert_eq!(rc.last_sizing().unwrap().binding, reason::INSUFFICIENT_MARGIN);
    // No free margin: refused with the margin reason.
    let mut rc = core(loose());
    v.margin = margin_view(dec!(0), 2);
    rc.on_portfolio(&v);
    assert_eq!(
        refused(rc.evaluate(&intent(2, "BTC/USD", Side::Sell, 0.2, t(0)))).reason,
        reason::INSUFFICIENT_MARGIN
    );
}

#[test]
fn margin_on_but_pair_not_marginable_still_refuses_the_sell() {
    let mut rc = core(loose());
    let mut v = view(t(0), dec!(10000), vec![], vec![btc()]);
    v.margin = margin_view(dec!(10000), 2);
    rc.on_portfolio(&v);
    let r = refused(rc.evaluate(&intent(1, "BTC/USD", Side::Sell, 0.5, t(0))));
    assert_eq!(r.reason, reason::NO_POSITION);
    assert!(r.detail.contains("not marginable"), "{}", r.detail);
    // Against a short, a buy intent is a reduce-only exit.
    let mut short = long("BTC/USD", dec!(-0.02), dec!(50000));
    short.notional = dec!(1000);
    let mut v = view(t(MIN), dec!(10000), vec![short], vec![marginable_btc()]);
    v.margin = margin_view(dec!(9500), 2);
    rc.on_portfolio(&v);
    match rc.evaluate(&intent(2, "BTC/USD", Side::Buy, 0.5, t(MIN))) {
        Verdict::Exit(o) => {
            assert_eq!((o.spec().side, o.spec().qty, o.spec().reduce_only), (Side::Buy, dec!(0.02), true))
        }
        other => panic!("expected exit, got {other:?}"),
    }
}

#[test]
fn min_trade_interval_is_per_pair_in_event_time() {
    let mut rc = core(loose()); // 60 s
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc(), eth()]));
    approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(0))));
    // Still pending (the view has not moved on): a second BTC entry is refused.
    assert_eq!(
        refused(rc.evaluate(&intent(2, "BTC/USD", Side::Buy, 0.2, t(0)))).reason,
        reason::OPEN_ORDERS_ON_PAIR
    );
    // 10 s later the entry was cancelled (no order, no position): interval not elapsed.
    rc.on_portfolio(&view(t(10_000_000), dec!(10000), vec![], vec![btc(), eth()]));
    let r = refused(rc.evaluate(&intent(3, "BTC/USD", Side::Buy, 0.2, t(10_000_000))));
    assert_eq!(r.reason, reason::MIN_TRADE_INTERVAL);
    // Another pair is not affected.
    approved(rc.evaluate(&intent(4, "ETH/USD", Side::Buy, 0.2, t(10_000_000))));
    // 60 s after the first order: allowed again.
    rc.on_portfolio(&view(t(MIN), dec!(10000), vec![], vec![btc(), eth()]));
    approved(rc.evaluate(&intent(5, "BTC/USD", Side::Buy, 0.2, t(MIN))));
}

#[test]
fn daily_loss_limit_resets_at_the_configured_hour() {
    // Reset hour 5 UTC. Day start (00:00 view belongs to the day that began at 05:00 the day
    // before) equity 10,000; at 04:00 equity 9,400: loss 6 % ≥ 5 % → refused.
    let mut rc = core(RiskConfig { daily_reset_hour_utc: 5, max_drawdown: dec!(0.5), ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    rc.on_portfolio(&view(t(4 * HOUR), dec!(9400), vec![], vec![btc()]));
    let r = refused(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(4 * HOUR))));
    assert_eq!(r.reason, reason::DAILY_LOSS_LIMIT);
    // 04:59: same day, still refused.
    rc.on_portfolio(&view(t(5 * HOUR - MIN), dec!(9400), vec![], vec![btc()]));
    assert_eq!(
        refused(rc.evaluate(&intent(2, "BTC/USD", Side::Buy, 0.2, t(5 * HOUR - MIN)))).reason,
        "daily_loss_limit"
    );
    // 05:00: new day, day start = 9,400, loss 0 → approved.
    rc.on_portfolio(&view(t(5 * HOUR), dec!(9400), vec![], vec![btc()]));
    approved(rc.evaluate(&intent(3, "BTC/USD", Side::Buy, 0.2, t(5 * HOUR))));
    assert_eq!(rc.state().day_start_equity, dec!(9400));
}

// ---- correlation ----------------------------------------------------------------------

/// Feeds 41 views one minute apart (40 returns ≥ min_samples 30); BTC moves +1 %, +1 %,
/// −1 %, −1 % …; ETH either the same pattern (ρ = 1) or +1 %, −1 %, +1 %, −1 % (ρ ≈ 0).
/// The last view holds 0.05 BTC (2,500 USD, w = 0.25).
fn correlated_core(eth_same: bool) -> RiskCore {
    let mut rc = core(loose());
    let (mut b, mut e) = (50000.0f64, 2000.0f64);
    for k in 0..41 {
        if k > 0 {
            let up_b = (k - 1) % 4 < 2;
            let up_e = if eth_same { up_b } else { (k - 1) % 2 == 0 };
            b *= if up_b { 1.01 } else { 1.0 / 1.01 };
            e *= if up_e { 1.01 } else { 1.0 / 1.01 };
        }
        let bq = quote("BTC/USD", from_f64(b).round_dp(1), from_f64(b).round_dp(1) + dec!(0.1));
        let eq = quote("ETH/USD", from_f64(e).round_dp(2), from_f64(e).round_dp(2) + dec!(0.01));
        let pos = if k == 40 { vec![long("BTC/USD", dec!(0.05), dec!(50000))] } else { vec![] };
        rc.on_portfolio(&view(t(k * MIN), dec!(10000), pos, vec![bq, eq]));
    }
    rc
}

#[test]
fn perfectly_correlated_second_position_is_halved() {
    // ρ = 1, w_BTC = 0.25 ≥ w_ETH = 0.2 (wanted 2,000) → C = 1 × min(1, 0.25/0.2) = 1,
    // shrink = 1/(1+1) = 0.5 → 1,000 USD of ETH.
    let mut rc = correlated_core(true);
    let o = approved(rc.evaluate(&intent(1, "ETH/USD", Side::Buy, 0.2, t(40 * MIN))));
    let s = rc.last_sizing().unwrap();
    assert!((s.correlation_shrink - 0.5).abs() < 1e-6, "{}", s.correlation_shrink);
    let notional = o.spec().qty * o.spec().price.unwrap();
    assert!((notional - dec!(1000)).abs() < dec!(0.05), "{notional}");
    assert!(rc.metrics()["correlation"]["BTC/USD|ETH/USD"].as_f64().unwrap() > 0.999);
}

#[test]
fn independent_second_position_is_unchanged() {
    // ρ ≈ 0 → C ≈ 0, shrink ≈ 1 → 2,000 USD of ETH.
    let mut rc = correlated_core(false);
    let o = approved(rc.evaluate(&intent(1, "ETH/USD", Side::Buy, 0.2, t(40 * MIN))));
    let s = rc.last_sizing().unwrap();
    assert!((s.correlation_shrink - 1.0).abs() < 1e-3, "{}", s.correlation_shrink);
    let notional = o.spec().qty * o.spec().price.unwrap();
    assert!((notional - dec!(2000)).abs() < dec!(2), "{notional}");
}

#[test]
fn correlation_prior_applies_before_enough_samples() {
    // No samples: ρ = prior 0.5; w_BTC 0.25 ≥ w_ETH 0.2 → shrink = 1 / (1 + 0.5) = 2/3
    // → 2,000 × 2/3 = 1,333.33 USD.
    let mut rc = core(RiskConfig { correlation_prior: 0.5, ..loose() });
    rc.on_portfolio(&view(
        t(0),
        dec!(10000),
        vec![long("BTC/USD", dec!(0.05), dec!(50000))],
        vec![btc(), eth()],
    ));
    approved(rc.evaluate(&intent(1, "ETH/USD", Side::Buy, 0.2, t(0))));
    let s = rc.last_sizing().unwrap();
    assert!((s.correlation_shrink - 2.0 / 3.0).abs() < 1e-9);
}

// ---- drawdown and halt ----------------------------------------------------------------

#[test]
fn drawdown_breach_halts_once_and_refuses() {
    let mut rc = core(loose()); // max_drawdown 0.1, cooldown 1h
    assert!(rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()])).is_none());
    // (10,000 − 9,000) / 10,000 = 0.10: not above the limit.
    assert!(rc.on_portfolio(&view(t(1), dec!(9000), vec![], vec![btc()])).is_none());
    // (10,000 − 8,900) / 10,000 = 0.11 > 0.10: breach, unrealised equity counts.
    let b = rc.on_portfolio(&view(t(2), dec!(8900), vec![], vec![btc()])).unwrap();
    assert!((b.drawdown - 0.11).abs() < 1e-12);
    assert_eq!((b.equity, b.peak, b.limit), (dec!(8900), dec!(10000), 0.1));
    assert!(rc.halted());
    // Only once.
    assert!(rc.on_portfolio(&view(t(3), dec!(8800), vec![], vec![btc()])).is_none());
    let r = refused(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(3))));
    assert_eq!(r.reason, reason::HALTED);
    let m = rc.metrics();
    assert_eq!(m["emergency_stops"], 1);
    assert!((m["max_drawdown"].as_f64().unwrap() - 0.12).abs() < 1e-12);
    assert!((m["current_drawdown_pct"].as_f64().unwrap() - 12.0).abs() < 1e-9);
}

#[test]
fn cooldown_lifts_the_halt_and_resets_the_peak() {
    // The daily loss limit (11 % lost today) would still refuse; widen it for this test.
    let mut rc = core(RiskConfig { daily_loss_limit: dec!(0.5), ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    rc.on_portfolio(&view(t(MIN), dec!(8900), vec![], vec![btc()])).unwrap();
    // 59 min after the breach: still halted.
    rc.on_portfolio(&view(t(MIN + HOUR - MIN), dec!(8900), vec![], vec![btc()]));
    assert!(rc.halted());
    // 1 h after: lifted, peak = 8,900, drawdown 0; trading allowed.
    assert!(rc.on_portfolio(&view(t(MIN + HOUR), dec!(8900), vec![], vec![btc()])).is_none());
    assert!(!rc.halted());
    assert_eq!(rc.state().peak, dec!(8900));
    approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(MIN + HOUR))));
    // A new 11 % fall from the new peak breaches again: 8,900 × 0.89 = 7,921.
    let b = rc.on_portfolio(&view(t(2 * HOUR), dec!(7921), vec![], vec![btc()])).unwrap();
    assert_eq!(b.peak, dec!(8900));
    assert_eq!(rc.metrics()["emergency_stops"], 2);
}

#[test]
fn operator_only_halt_waits_for_lift_halt() {
    let mut rc = core(RiskConfig { halt_cooldown: None, ..loose() });
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    rc.on_portfolio(&view(t(1), dec!(8000), vec![], vec![btc()])).unwrap();
    rc.on_portfolio(&view(t(48 * HOUR), dec!(8000), vec![], vec![btc()]));
    assert!(rc.halted());
    rc.lift_halt(t(48 * HOUR));
    assert!(!rc.halted());
    assert_eq!(rc.state().peak, dec!(8000));
    // 8,000 → 7,500 is 6.25 % from the new peak: no breach.
    assert!(rc.on_portfolio(&view(t(49 * HOUR), dec!(7500), vec![], vec![btc()])).is_none());
}

#[test]
fn state_round_trips_through_json() {
    let mut rc = core(loose());
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    approved(rc.evaluate(&intent(1, "BTC/USD", Side::Buy, 0.2, t(0))));
    refused(rc.evaluate(&intent(2, "BTC/USD", Side::Sell, 0.2, t(0))));
    rc.on_trade_closed(&ct(dec!(12.5)));
    rc.on_portfolio(&view(t(MIN), dec!(8000), vec![], vec![btc()])).unwrap();
    let json = serde_json::to_string(&rc.state()).unwrap();
    let mut back = core(loose());
    back.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(back.state(), rc.state());
    assert!(back.halted());
    assert_eq!(back.metrics()["refused_by_reason"]["no_position"], 1);
    // The restored last-trade time still blocks BTC once the halt has lifted.
    back.on_portfolio(&view(t(MIN + 30_000_000), dec!(8000), vec![], vec![btc()]));
    back.lift_halt(t(MIN + 30_000_000));
    let r = refused(back.evaluate(&intent(3, "BTC/USD", Side::Buy, 0.2, t(30_000_000))));
    assert_eq!(r.reason, reason::MIN_TRADE_INTERVAL);
}

// ---- metrics --------------------------------------------------------------------------

#[test]
fn historical_var_is_the_5th_percentile_loss_scaled_to_a_day() {
    // 100 equity returns on a 60 s grid: 5 of −2 %, 95 of +0.1 %. ⌈0.05 × 100⌉ = 5th worst
    // = −2 % → VaR per interval 0.02; per day × √(86400/60) = √1440 ≈ 37.947 → 0.7589.
    let mut rc = core(RiskConfig { max_drawdown: Decimal::ONE, ..loose() });
    let mut e = 10000.0f64;
    for k in 0..101 {
        if k > 0 {
            e *= if k % 20 == 0 { 0.98 } else { 1.001 };
        }
        rc.on_portfolio(&view(t(k * MIN), from_f64(e).round_dp(10), vec![], vec![btc()]));
    }
    let m = rc.metrics();
    assert_eq!(m["var_samples"], 100);
    assert!((m["var_95_interval"].as_f64().unwrap() - 0.02).abs() < 1e-9);
    assert!((m["var_95_1d"].as_f64().unwrap() - 0.02 * 1440f64.sqrt()).abs() < 1e-7);
}

#[test]
fn metrics_report_exposure_per_asset() {
    // BTC 0.05 × 50,000 = 2,500 (0.25), ETH 1 × 2,000 = 2,000 (0.2); total 0.45.
    let mut rc = core(loose());
    rc.on_portfolio(&view(
        t(0),
        dec!(10000),
        vec![long("BTC/USD", dec!(0.05), dec!(50000)), long("ETH/USD", dec!(1), dec!(2000))],
        vec![btc(), eth()],
    ));
    let m = rc.metrics();
    assert!((m["exposure_by_asset"]["BTC"].as_f64().unwrap() - 0.25).abs() < 1e-12);
    assert!((m["exposure_by_asset"]["ETH"].as_f64().unwrap() - 0.2).abs() < 1e-12);
    assert!((m["total_exposure"].as_f64().unwrap() - 0.45).abs() < 1e-12);
    // Prior ρ 0 (loose): √(0.25² + 0.2²) = 0.3202; effective bets 0.45² / 0.1025 = 1.9756.
    assert!((m["correlation_exposure"].as_f64().unwrap() - 0.1025f64.sqrt()).abs() < 1e-9);
    assert!((m["effective_bets"].as_f64().unwrap() - 0.45 * 0.45 / 0.1025).abs() < 1e-9);
}

// ---- config ---------------------------------------------------------------------------

#[test]
fn validation_names_the_key() {
    let mut is = Issues::default();
    RiskConfig::default().validate(&mut is);
    assert!(is.is_empty(), "{is}");
    let mut is = Issues::default();
    RiskConfig {
        max_drawdown: dec!(-0.1),
        daily_reset_hour_utc: 24,
        correlation_prior: 2.0,
        ..RiskConfig::default()
    }
    .validate(&mut is);
    let keys: Vec<&str> = is.list.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["risk.max_drawdown", "risk.daily_reset_hour_utc", "risk.correlation_prior"]);
}

#[test]
fn halt_cooldown_reads_durations_and_none() {
    let c: RiskConfig = serde_json::from_str(r#"{"halt_cooldown":"none"}"#).unwrap();
    assert_eq!(c.halt_cooldown, None);
    let c: RiskConfig = serde_json::from_str(r#"{"halt_cooldown":"2h","stop_mode":"volatility"}"#).unwrap();
    assert_eq!(c.halt_cooldown, Some(Span::from_secs(7200)));
    assert_eq!(c.stop_mode, StopMode::Volatility);
    assert!(serde_json::from_str::<RiskConfig>(r#"{"halt_cooldown":"soon"}"#).is_err());
    assert!(serde_json::from_str::<RiskConfig>(r#"{"max_drawdwn":0.1}"#).is_err());
    let back: RiskConfig =
        serde_json::from_str(&serde_json::to_string(&RiskConfig::default()).unwrap()).unwrap();
    assert_eq!(back, RiskConfig::default());
}

/// PositionBook skips the views RiskWatch says change nothing: for a path of equities over
/// days, every skipped view leaves the core's state as it was, a breach is always announced,
/// and the watch kept by `see` equals the core's own after every view sent.
#[test]
fn risk_watch_announces_every_view_that_changes_the_core() {
    let mut cfg = loose();
    cfg.max_drawdown = dec!(0.08);
    cfg.halt_cooldown = None;
    let mut core = RiskCore::new(&cfg, crate::core::orders::EntryStyle::default());
    let mut rng = crate::core::rng::Rng::new(7);
    let mut equity = dec!(10000);
    let mut watch = core.watch();
    let (mut skipped, mut sent) = (0, 0);
    for i in 0..5000i64 {
        // A random walk of ±0.4 %, over about three days (a daily reset inside).
        let step = Decimal::from(rng.below(81) as i64 - 40) / dec!(10000);
        equity = (equity * (Decimal::ONE + step)).round_dp(2);
        let time = t(i * MIN);
        let v = view(time, equity, Vec::new(), Vec::new());
        let (wanted, breach) = watch.needs_view(time, equity);
        let before = core.watch();
        let got = core.on_portfolio(&v);
        assert_eq!(got.is_some(), breach, "breach announced wrongly at view {i}");
        if wanted {
            watch.see(time, equity);
            sent += 1;
        } else {
            assert_eq!(core.watch(), before, "view {i} changed the core but was not wanted");
            skipped += 1;
        }
        assert_eq!(watch, core.watch(), "watch out of step after view {i}");
    }
    assert!(skipped > 1000 && sent > 10, "skipped {skipped}, sent {sent}");
}

#[test]
fn trading_state_records_why_and_keeps_the_text_forms() {
    let mut rc = core(RiskConfig { halt_cooldown: None, ..loose() });
    assert_eq!(rc.trading_state(), TradingState::Active);
    rc.on_portfolio(&view(t(0), dec!(10000), vec![], vec![btc()]));
    rc.on_portfolio(&view(t(1), dec!(8000), vec![], vec![btc()])).unwrap();
    assert_eq!(
        rc.trading_state(),
        TradingState::Halted { since: t(1), reason: Some(EmergencyReason::MaxDrawdown) }
    );
    assert!(rc.halt_now(t(2)).is_none(), "already halted");
    rc.lift_halt(t(2));
    assert_eq!(rc.trading_state(), TradingState::Active);
    rc.halt_now(t(3)).unwrap();
    assert_eq!(
        rc.trading_state(),
        TradingState::Halted { since: t(3), reason: Some(EmergencyReason::Operator) }
    );
    assert_eq!(rc.state().halted_since, Some(t(3)));
    // A restored halt keeps its time; the journaled state never held the reason.
    let mut back = core(RiskConfig { halt_cooldown: None, ..loose() });
    back.restore(rc.state());
    assert_eq!(back.trading_state(), TradingState::Halted { since: t(3), reason: None });
    // The strings journal records, logs, report.json and the HTTP API have always shown.
    assert_eq!(EmergencyReason::MaxDrawdown.to_string(), "max_drawdown");
    assert_eq!(serde_json::to_value(EmergencyReason::Operator).unwrap(), "operator");
    assert_eq!(HaltLiftedBy::Cooldown.to_string(), "cooldown");
    assert_eq!(serde_json::json!({ "by": HaltLiftedBy::Operator }).to_string(), r#"{"by":"operator"}"#);
}
