//! Kraken's order rules, funds, rate counter, cancels, OCO groups, the chase, flatten,
//! untrusted books, valuation across currencies, and the `execution.*` config.

use super::*;

#[test]
fn kraken_rules_reject_with_kraken_strings() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(1000));
    standard_book(&mut r);
    let lim = |q, p| OrderSpec::limit(P.into(), Side::Buy, q, p);
    let cases = [
        (lim(dec!(0.00001), dec!(99.0)), "EOrder:Order minimum not met", "0.00001 < ordermin 0.00005"),
        (lim(dec!(0.00005), dec!(5000.0)), "EOrder:Cost minimum not met", "< costmin 0.5"),
        (
            lim(dec!(0.1), dec!(99.05)),
            "EOrder:Invalid price:BTC/USD price can only be specified up to 1 decimals.",
            "2 decimals",
        ),
        (lim(dec!(0.000000001), dec!(99.0)), "EGeneral:Invalid arguments:volume", "lot decimals 8"),
        // 10.1 × 99 × 1.004 (taker fee reserved) = 1003.9 > 1000.
        (lim(dec!(10.1), dec!(99.0)), "EOrder:Insufficient funds", "available 1000"),
        // No BTC held: a sell would be a short.
        (
            OrderSpec::market(P.into(), Side::Sell, dec!(0.1)),
            "EOrder:Insufficient funds",
            "shorts are not supported",
        ),
    ];
    for (i, (spec, _, _)) in cases.iter().enumerate() {
        r.open(spec.clone(), Protection::default(), 1000 + i as i64);
    }
    let out = r.tick(2000);
    let rej = rejections(&out);
    assert_eq!(rej.len(), cases.len(), "{rej:?}");
    for (rj, (_, error, why)) in rej.iter().zip(&cases) {
        assert_eq!(&rj.error, error);
        assert!(rj.reason.contains(why), "{} lacks {why}", rj.reason);
    }
    assert_eq!(r.ex.stats().rejected_orders, 6);
    // A tick of 0.5: 100.3 fails the tick check.
    let mut i = instrument(P, "BTC", "USD");
    i.price_increment = dec!(0.5);
    r.ev(MarketEvent::Instrument { instrument: Arc::new(i), time: t(2000) });
    r.open(lim(dec!(0.1), dec!(99.3)), Protection::default(), 2000);
    assert_eq!(rejections(&r.tick(2100))[0].error, "EOrder:Tick size check failed");
}

#[test]
fn funds_held_by_open_orders_count() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(1000));
    standard_book(&mut r);
    let lim = |q| OrderSpec::limit(P.into(), Side::Buy, q, dec!(99.0));
    // Holds: 6 × 99 × 1.004 = 596.376; 4 × 99 × 1.004 = 397.584 → 993.96 held.
    r.open(lim(dec!(6)), Protection::default(), 1000);
    r.open(lim(dec!(4)), Protection::default(), 1001);
    // 0.1 more needs 9.9396 > 1000 − 993.96 = 6.04.
    r.open(lim(dec!(0.1)), Protection::default(), 1002);
    let out = r.tick(1100);
    let rej = rejections(&out);
    assert_eq!(rej.len(), 1);
    assert!(rej[0].reason.contains("held 993.96"), "{}", rej[0].reason);
    // Available cash in the view excludes the holds.
    assert_eq!(r.ex.portfolio().available_cash, dec!(6.04));
}

#[test]
fn rate_counter_and_open_order_limit_reject() {
    // Starter: threshold 60. 61 adds in one instant: the 61st is refused.
    let cfg =
        ExecutionConfig { tier: Tier::Starter, max_open_orders_per_pair: Some(100), ..Default::default() };
    let mut r = Rig::new(cfg, dec!(10000));
    standard_book(&mut r);
    for _ in 0..61 {
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(0.01), dec!(90.0)), Protection::default(), 1000);
    }
    let out = r.tick(1100);
    let rej = rejections(&out);
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].error, "EOrder:Rate limit exceeded");
    // Cancelling a 1 s old order costs 8; the counter decayed 1 s × 1/s to 59: 59 + 8 > 60.
    let mut out = Vec::new();
    r.ex.cancel(OrderId(1), t(2000), "requested", &mut out);
    let out = r.tick(2100);
    assert_eq!(rejections(&out)[0].error, "EOrder:Rate limit exceeded");
    assert_eq!(r.ex.portfolio().open_orders_on(P), 60);

    let cfg = ExecutionConfig { max_open_orders_per_pair: Some(2), ..Default::default() };
    let mut r = Rig::new(cfg, dec!(10000));
    standard_book(&mut r);
    for _ in 0..3 {
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(0.01), dec!(90.0)), Protection::default(), 1000);
    }
    let rej = rejections(&r.tick(1100)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].error, "EOrder:Orders limit exceeded");
}

#[test]
fn cancel_arrives_after_latency() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    standard_book(&mut r);
    let (id, _) =
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(0.1), dec!(90.0)), Protection::default(), 1000);
    r.tick(1100);
    let mut out = Vec::new();
    r.ex.cancel(id, t(20000), "requested", &mut out);
    assert!(out.is_empty());
    let out = r.tick(20100);
    assert_eq!(cancels(&out), vec![(id, "requested")]);
}

#[test]
fn oco_children_cancel_each_other() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(5))], &[(dec!(100.0), dec!(5))]);
    let prot = Protection { stop_loss: Some(dec!(95.0)), take_profit: Some(dec!(105.0)), trailing: None };
    let (entry, _) = r.open(buy(dec!(1)), prot, 1000);
    let out = r.tick(1100);
    let children: Vec<(OrderId, OrderType, Qty)> = out
        .iter()
        .filter_map(|e| match e {
            ExecEvent::OrderAccepted {
                order_id, spec, origin: OrderOrigin::Protective { parent }, ..
            } => {
                assert_eq!(*parent, entry);
                assert!(spec.reduce_only && spec.side == Side::Sell);
                Some((*order_id, spec.order_type, spec.qty))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        children.iter().map(|c| (c.1, c.2)).collect::<Vec<_>>(),
        vec![(OrderType::StopLoss, dec!(1)), (OrderType::TakeProfit, dec!(1))]
    );
    r.tick(1200); // children arrive (fill time 1050 + 50 ms)
    let out = r.trade(1300, Side::Buy, dec!(105.0), dec!(0.1));
    let (stop, take) = (children[0].0, children[1].0);
    assert!(out.contains(&ExecEvent::OrderTriggered {
        time: t(1300),
        order_id: take,
        trigger_price: dec!(105.0)
    }));
    assert_eq!(cancels(&out), vec![(stop, "oco")]);
    let out = r.book(
        1400,
        false,
        &[(dec!(99.0), dec!(0)), (dec!(104.9), dec!(3))],
        &[(dec!(100.0), dec!(0)), (dec!(105.0), dec!(1))],
    );
    assert_eq!(fills(&out)[0].price, dec!(104.9));
    assert_eq!(closed(&out)[0].exit_reason, "take_profit");
    assert!(r.ex.portfolio().open_orders.is_empty());
}

#[test]
fn children_resize_with_each_entry_fill() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(1))], &[(dec!(100.0), dec!(5))]);
    let prot = Protection { stop_loss: Some(dec!(95.0)), ..Default::default() };
    r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.0)), prot, 1000);
    r.tick(1100);
    // Queue 1 ahead: a 1.4 trade through fills 0.4, the child is placed for 0.4…
    let out = r.trade(1200, Side::Sell, dec!(98.9), dec!(1.4));
    let child = out.iter().find_map(|e| match e {
        ExecEvent::OrderAccepted { order_id, spec, .. } => Some((*order_id, spec.qty)),
        _ => None,
    });
    let (cid, q) = child.unwrap();
    assert_eq!(q, dec!(0.4));
    // …and resized to 1.0 when the rest fills.
    r.trade(1300, Side::Sell, dec!(98.8), dec!(1.0));
    assert_eq!(r.ex.desk.orders[&cid].spec.qty, dec!(1));
}

#[test]
fn unfilled_entry_is_chased_after_timeout() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(2))], &[(dec!(100.0), dec!(5))]);
    let (id, _) =
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.0)), Protection::default(), 1000);
    r.tick(1100); // rests from 1050
    // 2.5 sold at 99.0: 2 for the queue, 0.5 for us.
    assert_eq!(fills(&r.trade(5000, Side::Sell, dec!(99.0), dec!(2.5)))[0].qty, dec!(0.5));
    assert!(r.tick(31000).is_empty(), "not yet: 1050 + 30 s = 31050");
    let out = r.tick(31100);
    assert_eq!(cancels(&out), vec![(id, "chase")]);
    // The remainder goes as a market order arriving at 31050 + 50 ms, and fills now.
    let f = fills(&out);
    assert_eq!(
        (f[0].qty, f[0].price, f[0].liquidity, f[0].time),
        (dec!(0.5), dec!(100.0), Liquidity::Taker, t(31100))
    );
    assert_eq!(r.bal("BTC"), dec!(1));
}

#[test]
fn flatten_sells_now_and_retries_what_the_book_cannot_take() {
    let mut r = long_one();
    r.book(1200, false, &[(dec!(99.0), dec!(0.3))], &[]);
    let mut out = Vec::new();
    r.ex.flatten_all(t(1300), "emergency_stop", &mut out);
    assert_eq!(
        fills(&out).iter().map(|f| (f.price, f.qty, f.time)).collect::<Vec<_>>(),
        vec![(dec!(99.0), dec!(0.3), t(1300))]
    );
    let out = r.book(1400, false, &[(dec!(98.5), dec!(2))], &[]);
    assert_eq!(fills(&out)[0].qty, dec!(0.7));
    assert_eq!(closed(&out)[0].exit_reason, "flatten");
    assert_eq!(r.ex.open_positions(), 0);
}

#[test]
fn untrusted_book_pauses_trading_until_the_next_snapshot() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    standard_book(&mut r);
    r.ev(MarketEvent::BookInvalid {
        symbol: P.into(),
        time: t(500),
        reason: crate::core::market::BookInvalidReason::ChecksumMismatch,
    });
    assert!(!r.ex.portfolio().quote(P).unwrap().tradable);
    r.open(buy(dec!(0.1)), Protection::default(), 1000);
    assert!(fills(&r.tick(1100)).is_empty());
    let out = r.book(1200, true, &[(dec!(99.0), dec!(1))], &[(dec!(99.5), dec!(1))]);
    assert_eq!(fills(&out)[0].price, dec!(99.5));
    assert!(r.ex.portfolio().quote(P).unwrap().tradable);
}

#[test]
fn cross_currency_positions_value_through_the_quote_mid() {
    let bal = BTreeMap::from([("USD".to_string(), dec!(1000)), ("BTC".to_string(), dec!(1))]);
    let mut eth = instrument("ETH/BTC", "ETH", "BTC");
    eth.price_precision = 5;
    eth.price_increment = dec!(0.00001);
    eth.cost_precision = 10;
    eth.cost_min = dec!(0.00002);
    let mut r = Rig::with(ExecutionConfig::default(), bal, vec![instrument(P, "BTC", "USD"), eth]);
    r.book(100, true, &[(dec!(99.0), dec!(1))], &[(dec!(101.0), dec!(1))]);
    r.book_on("ETH/BTC", 100, true, &[(dec!(0.04990), dec!(10))], &[(dec!(0.05010), dec!(10))]);
    // 1000 USD + 1 BTC × 100 (mid).
    assert_eq!(r.ex.equity(), dec!(1100));
    let mut out = Vec::new();
    let spec = OrderSpec::market("ETH/BTC".into(), Side::Buy, dec!(2));
    let req = OrderRequest::opening(
        spec,
        Protection::default(),
        OrderOrigin::Api,
        t(1000),
        vec![],
        vec![],
        approval_for_tests(),
    );
    r.ex.submit(req, &mut out);
    r.tick(1100);
    // Cost 2 × 0.0501 = 0.1002 BTC, fee 0.4 % = 0.0004008 BTC.
    assert_eq!(r.bal("BTC"), dec!(0.8993992));
    // Equity: 1000 + 0.8993992 × 100 + 2 × 0.05 × 100 = 1099.93992.
    assert_eq!(r.ex.equity(), dec!(1099.93992));
    let view = r.ex.portfolio();
    assert_eq!(view.quote("ETH/BTC").unwrap().quote_to_account, dec!(100));
    // Unrealized: (2 × 0.05 − 0.1002) BTC × 100 = −0.02 USD.
    assert_eq!(view.position("ETH/BTC").unwrap().unrealized, dec!(-0.02));
}

#[test]
fn unknown_pair_is_refused() {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    standard_book(&mut r);
    r.open(OrderSpec::market("XYZ/USD".into(), Side::Buy, dec!(1)), Protection::default(), 1000);
    assert_eq!(rejections(&r.tick(1100))[0].error, "EQuery:Unknown asset pair");
}

#[test]
fn config_reads_every_key_with_defaults() {
    let cfg: ExecutionConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(cfg, ExecutionConfig::default());
    let cfg: ExecutionConfig = serde_json::from_str(
        r#"{"tier":"pro","entry_timeout":"10s","fee_tier_volume":"50000","max_open_orders_per_pair":5,
            "entry":{"type":"post_only","offset_ticks":1},"mark":"exit","fill_at_touch":true,"latency":"0ms"}"#,
    )
    .unwrap();
    assert_eq!(
        (cfg.tier, cfg.entry_timeout, cfg.max_open_orders_per_pair),
        (Tier::Pro, Span::from_secs(10), Some(5))
    );
    assert!(serde_json::from_str::<ExecutionConfig>(r#"{"allow_shorts":true}"#).is_err());
}

#[test]
fn kinds_and_times() {
    let e = ExecEvent::OrderCanceled { time: t(5), order_id: OrderId(1), reason: "x".into() };
    assert_eq!((e.kind(), e.time()), ("order_canceled", t(5)));
}

#[test]
fn config_validation_names_keys() {
    let mut is = Issues::default();
    let cfg = ExecutionConfig {
        latency: Span(-1),
        fee_tier_volume: dec!(-1),
        max_open_orders_per_pair: Some(0),
        ..Default::default()
    };
    cfg.validate(&mut is);
    let keys: Vec<_> = is.list.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["execution.latency", "execution.fee_tier_volume", "execution.max_open_orders_per_pair"]
    );
    let mut is = Issues::default();
    ExecutionConfig::default().validate(&mut is);
    assert!(is.is_empty());
}

// ---- shorts (margin) ------------------------------------------------------------------

#[test]
fn a_turned_signal_cancels_resting_entries_and_the_remainder_after_an_exit() {
    let turn = |r: &mut Rig, side, ms| {
        let mut out = Vec::new();
        r.ex.cancel_entries_against(&P.into(), side, t(ms), &mut out)
    };
    let lim = || OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5));
    // A resting entry (new level at 99.5, nothing queued ahead).
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(2))], &[(dec!(100.0), dec!(1))]);
    let (id, _) = r.open(lim(), Protection::default(), 1000);
    r.tick(1100);
    assert_eq!(turn(&mut r, Side::Buy, 1200), 0, "a signal on the entry's side keeps it");
    assert_eq!(turn(&mut r, Side::Sell, 1200), 1);
    assert_eq!(turn(&mut r, Side::Sell, 1210), 0, "already being cancelled");
    // The cancel arrives after the 50 ms latency.
    assert_eq!(cancels(&r.tick(1300)), vec![(id, "signal_reversed")]);
    assert!(fills(&r.trade(1400, Side::Sell, dec!(99.4), dec!(5))).is_empty());

    // A partly filled entry, then its position's exit: the remainder goes, the exit stays.
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(2))], &[(dec!(100.0), dec!(1))]);
    let (id, _) = r.open(lim(), Protection::default(), 1000);
    r.tick(1100);
    let f = fills(&r.trade(1200, Side::Sell, dec!(99.5), dec!(0.4)))
        .iter()
        .map(|f| (f.qty, f.partial))
        .collect::<Vec<_>>();
    assert_eq!(f, vec![(dec!(0.4), true)]);
    r.reduce(OrderSpec::market(P.into(), Side::Sell, dec!(0.4)), 1300);
    assert_eq!(turn(&mut r, Side::Sell, 1300), 1, "the exit itself is reduce-only and stays");
    let out = r.tick(1400);
    assert_eq!(cancels(&out), vec![(id, "signal_reversed")]);
    assert_eq!(closed(&out).len(), 1, "the exit closed the 0.4");
    assert!(fills(&r.trade(1500, Side::Sell, dec!(99.4), dec!(5))).is_empty(), "no new position");
    assert_eq!(r.ex.open_positions(), 0);
}
