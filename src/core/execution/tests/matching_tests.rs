//! Fills against the book and trades, fees, triggers and trailing stops.

use super::*;

#[test]
fn a_holding_adds_what_balance_times_value_adds_to_the_digit() {
    // Sums with and without digits, zero sums with a scale or a sign, big ones; zero
    // balances with scales and signs (never valued), and ordinary ones.
    let big = Decimal::from_i128_with_scale(12_345_678_901_234_567_890_123, 4);
    let sums = [dec!(0), dec!(10000), dec!(9993.84152), dec!(0.00), -dec!(0.0), dec!(-12.5), big];
    let balances = [dec!(0), dec!(0.000), -dec!(0.00), dec!(1.5), dec!(-0.25)];
    let values = [dec!(0), dec!(97.125), dec!(1), dec!(0.0001)];
    for sum in sums {
        for balance in balances {
            for value in values {
                let got = add_holding(sum, balance, || value);
                let want = sum + balance * value;
                assert_eq!(got.serialize(), want.serialize(), "{sum} + {balance} × {value}: {got} vs {want}");
            }
        }
    }
    // Zero balances are never valued.
    assert_eq!(add_holding(dec!(5), dec!(0.00), || unreachable!()), dec!(5));
}

#[test]
fn market_buy_walks_three_levels() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    standard_book(&mut r);
    let (id, acc) = r.open(buy(dec!(1)), Protection::default(), 1000);
    assert_eq!(acc.len(), 1, "only accepted before the latency elapses");
    let out = r.tick(1100); // arrival at 1000 + 50 ms
    let f = fills(&out);
    // 0.5 @ 100.0, 0.3 @ 100.5, 0.2 @ 101.0 = 50 + 30.15 + 20.2 = 100.35 → VWAP 100.35.
    let got: Vec<_> = f.iter().map(|f| (f.price, f.qty, f.fee, f.slippage, f.partial)).collect();
    // Taker 0.40 %: 0.2, 0.1206, 0.0808. Slippage vs mid 99.75: 0.125, 0.225, 0.25.
    assert_eq!(
        got,
        vec![
            (dec!(100.0), dec!(0.5), dec!(0.2), dec!(0.125), true),
            (dec!(100.5), dec!(0.3), dec!(0.1206), dec!(0.225), true),
            (dec!(101.0), dec!(0.2), dec!(0.0808), dec!(0.25), false),
        ]
    );
    assert!(f.iter().all(|f| f.order_id == id && f.time == t(1050) && f.liquidity == Liquidity::Taker));
    let vwap = f.iter().map(|f| f.price * f.qty).sum::<Decimal>() / dec!(1);
    assert_eq!(vwap, dec!(100.35));
    // 10000 − 100.35 − 0.4014 = 9899.2486 USD, 1 BTC.
    assert_eq!(r.bal("USD"), dec!(9899.2486));
    assert_eq!(r.bal("BTC"), dec!(1));
    let s = r.ex.stats();
    assert_eq!((s.fills, s.partial_fills, s.taker_fills), (3, 2, 3));
    assert_eq!((s.fees_paid, s.slippage_paid), (dec!(0.4014), dec!(0.6)));
    // What we took stays taken: another 0.3 starts at 101.0 (0.8 left there).
    r.open(buy(dec!(0.3)), Protection::default(), 1100);
    let out = r.tick(1200);
    assert_eq!(
        fills(&out).iter().map(|f| (f.price, f.qty)).collect::<Vec<_>>(),
        vec![(dec!(101.0), dec!(0.3))]
    );
    // Equity at mid 99.75: 9899.2486 − 30.3 − 0.1212 + 1.3 × 99.75 = 9998.5024.
    assert_eq!(r.ex.equity(), dec!(9998.5024));
}

#[test]
fn market_remainder_beyond_the_book_is_cancelled() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    standard_book(&mut r);
    let (id, _) = r.open(buy(dec!(2)), Protection::default(), 1000);
    let out = r.tick(1100);
    // 1.8 displayed: the 0.2 remainder is cancelled (IOC-like).
    assert_eq!(fills(&out).iter().map(|f| f.qty).sum::<Decimal>(), dec!(1.8));
    assert_eq!(cancels(&out), vec![(id, "book_exhausted")]);
}

#[test]
fn fee_tier_follows_configured_volume() {
    let cfg = ExecutionConfig { fee_tier_volume: dec!(50000), ..Default::default() };
    let mut r = Rig::new(cfg, dec!(10000));
    standard_book(&mut r);
    r.open(buy(dec!(0.5)), Protection::default(), 1000);
    let out = r.tick(1100);
    // 50,000 USD tier: taker 0.24 % of 50 = 0.12.
    assert_eq!(fills(&out)[0].fee, dec!(0.12));
}

#[test]
fn rest_fee_schedule_replaces_the_built_in_one_for_its_pair_with_its_tiers() {
    let cfg = ExecutionConfig { fee_tier_volume: dec!(50000), ..Default::default() };
    let mut r = Rig::new(cfg, dec!(10000));
    standard_book(&mut r);
    let rows = |r: &[(i64, Decimal)]| -> Vec<(Decimal, Decimal)> {
        r.iter().map(|(v, p)| (Decimal::from(*v), *p)).collect()
    };
    let fees = PairFees::new(
        rows(&[(0, dec!(0.30)), (50000, dec!(0.26)), (100000, dec!(0.20))]),
        rows(&[(0, dec!(0.20)), (50000, dec!(0.16))]),
        "ZUSD",
    )
    .unwrap();
    let out = r.ev(MarketEvent::FeeSchedule { symbol: P.into(), time: t(900), fees: Arc::new(fees) });
    // Journaled with the rates at the account's 50,000 USD volume.
    match &out[..] {
        [ExecEvent::FeeSchedule { pair, taker_rate, maker_rate, volume_currency, .. }] => {
            assert_eq!((&**pair, *taker_rate, *maker_rate), (P, dec!(0.0026), dec!(0.0016)));
            assert_eq!(volume_currency, "ZUSD");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out[0].kind(), "fee_schedule");
    r.open(buy(dec!(0.5)), Protection::default(), 1000);
    let out = r.tick(1100);
    // The 50,000 row of Kraken's table for the pair: taker 0.26 % of 50 = 0.13 (the
    // built-in table would charge 0.24 %: 0.12).
    assert_eq!(fills(&out)[0].fee, dec!(0.13));
}

#[test]
fn post_only_that_would_cross_is_rejected() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    standard_book(&mut r);
    let mut spec = OrderSpec::limit(P.into(), Side::Buy, dec!(0.1), dec!(100.0));
    spec.post_only = true;
    r.open(spec.clone(), Protection::default(), 1000);
    spec.price = Some(dec!(99.9));
    r.open(spec, Protection::default(), 1000);
    let out = r.tick(1100);
    let rej = rejections(&out);
    assert_eq!(rej.len(), 1, "{out:?}");
    assert_eq!(rej[0].error, "EOrder:Post only order");
    assert!(rej[0].reason.contains("100.0"), "{}", rej[0].reason);
    assert!(fills(&out).is_empty());
    assert_eq!(r.ex.portfolio().open_orders_on(P), 1, "the 99.9 bid rests");
}

#[test]
fn resting_limit_fills_on_trade_through_after_the_queue() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.5), dec!(2))], &[(dec!(100.0), dec!(1))]);
    let (id, _) =
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
    r.tick(1100); // rests behind 2.0
    // 1.5 sold at our price: the queue ahead drops to 0.5, nothing reaches us.
    assert!(fills(&r.trade(1200, Side::Sell, dec!(99.5), dec!(1.5))).is_empty());
    // The level shrinks to 0.4: removed size was ahead of us → queue 0.4.
    r.book(1300, false, &[(dec!(99.5), dec!(0.4))], &[]);
    // 1.0 printed through at 99.4: 0.4 goes to the queue, 0.6 to us at our price.
    let out = r.trade(1400, Side::Sell, dec!(99.4), dec!(1.0));
    let f = fills(&out);
    assert_eq!(f.len(), 1);
    // Maker 0.25 % of 0.6 × 99.5 = 59.7 → 0.14925.
    assert_eq!(
        (f[0].price, f[0].qty, f[0].fee, f[0].liquidity, f[0].partial),
        (dec!(99.5), dec!(0.6), dec!(0.14925), Liquidity::Maker, true)
    );
    assert!(
        matches!(f[0].cause, FillCause::Trade { trade_price, trade_qty, .. } if trade_price == dec!(99.4) && trade_qty == dec!(1.0))
    );
    // A trade at our price now fills the rest (queue empty): 0.4 × 99.5 = 39.8, fee 0.0995.
    let out = r.trade(1500, Side::Sell, dec!(99.5), dec!(3));
    let f = fills(&out);
    assert_eq!((f[0].order_id, f[0].qty, f[0].partial), (id, dec!(0.4), false));
    // 10000 − 99.5 − 0.14925 − 0.0995 = 9900.25125.
    assert_eq!(r.bal("USD"), dec!(9900.25125));
    assert_eq!(r.ex.stats().maker_fills, 2);
}

#[test]
fn touch_alone_does_not_fill_unless_configured() {
    for (at_touch, want) in [(false, dec!(0)), (true, dec!(0.3))] {
        let cfg = ExecutionConfig { fill_at_touch: at_touch, ..Default::default() };
        let mut r = Rig::new(cfg, dec!(10000));
        r.book(100, true, &[(dec!(99.5), dec!(2))], &[(dec!(100.0), dec!(1))]);
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
        r.tick(1100);
        let out = r.trade(1200, Side::Sell, dec!(99.5), dec!(0.3));
        assert_eq!(fills(&out).iter().map(|f| f.qty).sum::<Decimal>(), want, "fill_at_touch={at_touch}");
    }
}

#[test]
fn resting_order_crossed_by_the_book_fills_as_maker_at_our_price() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(1))], &[(dec!(100.0), dec!(1))]);
    r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
    r.tick(1100);
    // An ask appears at 99.4 for 0.7: we buy 0.7 at our 99.5 as maker.
    let out = r.book(1200, false, &[], &[(dec!(99.4), dec!(0.7))]);
    let f = fills(&out);
    assert_eq!((f[0].price, f[0].qty, f[0].liquidity), (dec!(99.5), dec!(0.7), Liquidity::Maker));
}

#[test]
fn stop_loss_triggers_on_last_trade_and_fills_at_next_book() {
    let mut r = long_one();
    let stop = OrderSpec {
        order_type: OrderType::StopLoss,
        price: Some(dec!(95.0)),
        ..OrderSpec::market(P.into(), Side::Sell, dec!(1))
    };
    let id = r.reduce(stop, 1100);
    r.tick(1200);
    assert!(r.trade(1300, Side::Sell, dec!(95.5), dec!(0.1)).is_empty());
    let out = r.trade(1400, Side::Sell, dec!(94.9), dec!(0.1));
    assert_eq!(
        out,
        vec![ExecEvent::OrderTriggered { time: t(1400), order_id: id, trigger_price: dec!(94.9) }]
    );
    // The next book: 0.4 @ 94.8 and 0.6 @ 94.5.
    let out =
        r.book(1500, false, &[(dec!(99.0), dec!(0)), (dec!(94.8), dec!(0.4)), (dec!(94.5), dec!(1))], &[]);
    let f = fills(&out);
    // 37.92 (fee 0.15168) + 56.7 (fee 0.2268).
    assert_eq!(
        f.iter().map(|f| (f.price, f.qty, f.fee)).collect::<Vec<_>>(),
        vec![(dec!(94.8), dec!(0.4), dec!(0.15168)), (dec!(94.5), dec!(0.6), dec!(0.2268))]
    );
    let c = closed(&out);
    assert_eq!(c.len(), 1);
    // P&L: 94.62 − 100 − 0.4 − 0.37848 = −6.15848; exit VWAP 94.62.
    assert_eq!(
        (c[0].pnl, c[0].fees, c[0].exit_price, c[0].entry_price),
        (dec!(-6.15848), dec!(0.77848), dec!(94.62), dec!(100))
    );
    assert_eq!(c[0].exit_reason, "stop_loss");
    assert_eq!(c[0].max_drawdown, dec!(-6.15848));
    assert_eq!(c[0].tags, vec!["test".to_string()]);
    assert_eq!(r.ex.stats().stops_triggered, 1);
    assert_eq!(r.ex.open_positions(), 0);
    // 10000 − 100.4 + 94.62 − 0.37848 = 9993.84152.
    assert_eq!(r.bal("USD"), dec!(9993.84152));
}

#[test]
fn trailing_stop_follows_the_best_trade_then_triggers() {
    let mut r = long_one();
    r.trade(1150, Side::Buy, dec!(100.0), dec!(0.1));
    let trail = OrderSpec {
        order_type: OrderType::TrailingStop,
        trailing: Some(TrailingOffset::Absolute(dec!(2.0))),
        ..OrderSpec::market(P.into(), Side::Sell, dec!(1))
    };
    let id = r.reduce(trail, 1150);
    r.tick(1250);
    // Best 101 → stop 99.0; best 103 → stop 101.0; 101.5 is above it.
    for (ms, px) in [(1300, dec!(101.0)), (1400, dec!(103.0)), (1500, dec!(101.5))] {
        assert!(r.trade(ms, Side::Buy, px, dec!(0.1)).is_empty(), "{px}");
    }
    let out = r.trade(1600, Side::Sell, dec!(100.9), dec!(0.1));
    assert_eq!(
        out,
        vec![ExecEvent::OrderTriggered { time: t(1600), order_id: id, trigger_price: dec!(100.9) }]
    );
    let out =
        r.book(1700, false, &[(dec!(100.8), dec!(2))], &[(dec!(100.0), dec!(0)), (dec!(101.0), dec!(1))]);
    let f = fills(&out);
    assert_eq!((f[0].price, f[0].qty), (dec!(100.8), dec!(1)));
    assert_eq!(closed(&out)[0].exit_reason, "trailing_stop");
}
