//! Short margin positions: opening and rollover fees, margin call and liquidation,
//! closing a short, and Kraken's margin refusals.

use super::*;

fn margin_cfg(leverage: u32) -> ExecutionConfig {
    ExecutionConfig {
        margin: MarginConfig { enabled: true, leverage, ..Default::default() },
        ..Default::default()
    }
}

fn margin_rig(usd: Decimal) -> Rig {
    let bal = BTreeMap::from([("USD".to_string(), usd)]);
    let mut r = Rig::with(margin_cfg(5), bal, vec![margin_inst()]);
    // Mid 50,000.
    r.book(100, true, &[(dec!(49999.9), dec!(1))], &[(dec!(50000.1), dec!(1))]);
    r
}

fn margin_fees(evs: &[ExecEvent]) -> Vec<(&str, Decimal, Decimal, EventTime)> {
    evs.iter()
        .filter_map(|e| match e {
            ExecEvent::MarginFee { kind, qty, fee, time, .. } => Some((kind.as_str(), *qty, *fee, *time)),
            _ => None,
        })
        .collect()
}

/// Kraken's margin example (support 203053156) with fees: 5,000 USD, short 0.2 BTC at 5×.
fn short_open() -> Rig {
    let mut r = margin_rig(dec!(5000));
    r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
    let out = r.tick(1100);
    // 0.2 sold at the bid 49,999.9 = 9,999.98; taker 0.40 % = 39.99992.
    let f = fills(&out);
    assert_eq!((f[0].price, f[0].qty, f[0].fee), (dec!(49999.9), dec!(0.2), dec!(39.99992)));
    // Opening fee 0.01 % (BTC) of 0.2 × 49,999.9 = 0.999998 → 1.00000 at cost precision.
    assert_eq!(margin_fees(&out), vec![("opening", dec!(0.2), dec!(1.00000), t(1050))]);
    r
}

#[test]
fn short_pays_the_opening_fee_and_shows_as_an_open_position() {
    let r = short_open();
    // 5,000 + 9,999.98 − 39.99992 − 1 = 14,958.98008 USD; −0.2 BTC (borrowed).
    assert_eq!((r.bal("USD"), r.bal("BTC")), (dec!(14958.98008), dec!(-0.2)));
    // Equity at mid 50,000: 14,958.98008 − 0.2 × 50,000 = 4,958.98008.
    assert_eq!(r.ex.equity(), dec!(4958.98008));
    let v = r.ex.portfolio();
    let p = v.position(P).unwrap();
    // Short at 49,999.9 marked at 50,000: unrealized −0.2 × 50,000 + 9,999.98 = −0.02.
    assert_eq!(
        (p.qty, p.avg_price, p.notional, p.unrealized),
        (dec!(-0.2), dec!(49999.9), dec!(10000), dec!(-0.02))
    );
    // Used margin 0.2 × 50,000 / 5 = 2,000; level 4,958.98008 / 2,000 = 247.95 %.
    let m = v.margin.unwrap();
    assert_eq!(
        (m.used_margin, m.free_margin, m.margin_level),
        (dec!(2000), dec!(2958.98008), Some(dec!(247.95)))
    );
    // The sale proceeds back the short: they are not available for spot buys.
    assert_eq!(v.available_cash, dec!(14958.98008) - dec!(9999.98));
    assert_eq!(r.ex.stats().margin_fees_paid, dec!(1));
}

#[test]
fn rollover_is_charged_every_four_hours_of_event_time() {
    let mut r = short_open();
    let opened = 1050;
    assert!(margin_fees(&r.tick(opened + 14_400_000 - 1)).is_empty(), "not before 4 h");
    let out = r.tick(opened + 14_400_000 + 500);
    // 0.01 % of 0.2 × mid 50,000 = 1.00000, charged at opening + 4 h.
    assert_eq!(margin_fees(&out), vec![("rollover", dec!(0.2), dec!(1.00000), t(opened + 14_400_000))]);
    assert_eq!(r.bal("USD"), dec!(14957.98008));
    // Two more are due by opening + 12 h.
    let out = r.tick(opened + 3 * 14_400_000);
    assert_eq!(margin_fees(&out).len(), 2);
    assert_eq!(r.ex.stats().margin_fees_paid, dec!(4));
}

#[test]
fn margin_call_then_liquidation_at_margin_stop() {
    let mut r = short_open();
    r.tick(1050 + 14_400_000); // one rollover: USD 14,957.98008
    // Mid 65,000: equity 14,957.98008 − 13,000 = 1,957.98008; used 0.2 × 65,000 / 5 =
    // 2,600; level 75.31 % < 80 %: margin call, not yet liquidation.
    let out = r.book(20_000_000, true, &[(dec!(64999.9), dec!(1))], &[(dec!(65000.1), dec!(1))]);
    let calls: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            ExecEvent::MarginCall { margin_level, equity, used_margin, margin_call, .. } => {
                Some((*margin_level, *equity, *used_margin, *margin_call))
            }
            _ => None,
        })
        .collect();
    assert_eq!(calls, vec![(dec!(75.31), dec!(1957.98008), dec!(2600), 80)]);
    assert!(fills(&out).is_empty());
    // Mid 70,000: equity 957.98008, used 2,800 → 34.21 % ≤ 40 %: liquidated through the
    // book, 0.2 bought at the ask 70,000.1 = 14,000.02, taker fee 56.00008.
    let out = r.book(20_100_000, true, &[(dec!(69999.9), dec!(1))], &[(dec!(70000.1), dec!(1))]);
    let liq: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            ExecEvent::MarginLiquidation { margin_level, qty, order_id, .. } => {
                Some((*margin_level, *qty, *order_id))
            }
            _ => None,
        })
        .collect();
    assert_eq!(liq.len(), 1);
    assert_eq!((liq[0].0, liq[0].1), (dec!(34.21), dec!(0.2)));
    assert!(!out.iter().any(|e| matches!(e, ExecEvent::MarginCall { .. })), "one call per crossing");
    assert!(out.iter().any(|e| matches!(e,
        ExecEvent::OrderAccepted { order_id, origin: OrderOrigin::Liquidation, spec, .. }
            if *order_id == liq[0].2 && spec.reduce_only && spec.side == Side::Buy)));
    let f = fills(&out);
    assert_eq!(
        (f[0].order_id, f[0].price, f[0].qty, f[0].fee),
        (liq[0].2, dec!(70000.1), dec!(0.2), dec!(56.00008))
    );
    let c = closed(&out);
    // P&L: 9,999.98 − 14,000.02 − fees (39.99992 + 1 opening + 1 rollover + 56.00008 = 98)
    // = −4,098.04; the worst excursion is the close itself.
    assert_eq!((c[0].side, c[0].exit_reason.as_str()), (Side::Sell, "liquidation"));
    assert_eq!((c[0].entry_price, c[0].exit_price), (dec!(49999.9), dec!(70000.1)));
    assert_eq!(
        (c[0].fees, c[0].pnl, c[0].max_drawdown, c[0].max_pnl),
        (dec!(98), dec!(-4098.04), dec!(-4098.04), dec!(0))
    );
    // 5,000 − 4,098.04 = 901.96 USD; nothing borrowed any more.
    assert_eq!((r.bal("USD"), r.bal("BTC")), (dec!(901.96), dec!(0)));
    assert!(r.ex.shorts.positions.is_empty() && r.ex.open_positions() == 0);
    assert_eq!((r.ex.stats().margin_calls, r.ex.stats().liquidations), (1, 1));
}

#[test]
fn closing_a_short_with_a_buy_repays_and_books_the_trade() {
    let mut r = short_open();
    // Price falls: a reduce-only buy of 0.2 at the ask 45,000.1 = 9,000.02, fee 36.00008.
    r.book(5000, true, &[(dec!(44999.9), dec!(1))], &[(dec!(45000.1), dec!(1))]);
    r.reduce(OrderSpec::market(P.into(), Side::Buy, dec!(0.2)), 6000);
    let out = r.tick(6100);
    let c = closed(&out);
    // 9,999.98 − 9,000.02 − 39.99992 − 1 − 36.00008 = 922.96, a profit: sign is right.
    assert_eq!((c[0].side, c[0].pnl, c[0].fees), (Side::Sell, dec!(922.96), dec!(77)));
    assert!(c[0].max_pnl >= c[0].pnl);
    assert_eq!((r.bal("USD"), r.bal("BTC")), (dec!(5922.96), dec!(0)));
    assert!(r.ex.shorts.positions.is_empty());
    assert_eq!(r.ex.portfolio().margin.unwrap().margin_level, None);
}

#[test]
fn margin_refusals_use_krakens_strings() {
    // 1,000 USD at 5×: 0.2 BTC at the bid 49,999.9 needs 0.2 × 49,999.9 / 5 = 1,999.996
    // of margin; free margin is 1,000.
    let mut r = margin_rig(dec!(1000));
    r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
    let rej = rejections(&r.tick(1100)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(rej[0].error, "EOrder:Insufficient margin");
    assert!(
        rej[0].reason.contains("needs 1999.996") && rej[0].reason.contains("free margin 1000"),
        "{}",
        rej[0].reason
    );
    let cases = [
        // 251 BTC > short_position_limit 250 (checked before the margin).
        (short_sell(dec!(251), 5), "EOrder:Margin position size exceeded", "short_position_limit 250"),
        // Leverage 10 > the pair's 5.
        (short_sell(dec!(0.001), 10), "EGeneral:Invalid arguments:leverage", "2…5"),
        // A margin buy that is not reduce-only: only shorts are margin here.
        (
            OrderSpec { leverage: Some(2), ..buy(dec!(0.001)) },
            "EGeneral:Invalid arguments:leverage",
            "longs are spot",
        ),
        // No leverage: a spot sell without BTC.
        (
            OrderSpec::market(P.into(), Side::Sell, dec!(0.001)),
            "EOrder:Insufficient funds",
            "needs a margin order",
        ),
    ];
    for (i, (spec, _, _)) in cases.iter().enumerate() {
        r.open(spec.clone(), Protection::default(), 2000 + i as i64);
    }
    let rej = rejections(&r.tick(3000)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(rej.len(), cases.len(), "{rej:?}");
    for (rj, (_, error, why)) in rej.iter().zip(&cases) {
        assert_eq!(&rj.error, error);
        assert!(rj.reason.contains(why), "{} lacks {why}", rj.reason);
    }
    // Allowance: borrowing more BTC than configured.
    let mut cfg = margin_cfg(5);
    cfg.margin.allowance.insert("BTC".into(), dec!(0.1));
    let mut r = Rig::with(cfg, BTreeMap::from([("USD".to_string(), dec!(100000))]), vec![margin_inst()]);
    r.book(100, true, &[(dec!(49999.9), dec!(1))], &[(dec!(50000.1), dec!(1))]);
    r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
    assert_eq!(rejections(&r.tick(1100))[0].error, "EOrder:Margin allowance exceeded");
    // Margin disabled: the same order is refused for its leverage.
    let mut r = Rig::new(ExecutionConfig::default(), dec!(100000));
    r.ev(MarketEvent::Instrument { instrument: Arc::new(margin_inst()), time: t(0) });
    r.book(100, true, &[(dec!(49999.9), dec!(1))], &[(dec!(50000.1), dec!(1))]);
    r.open(short_sell(dec!(0.2), 5), Protection::default(), 1000);
    let rej = rejections(&r.tick(1100)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(rej[0].error, "EGeneral:Invalid arguments:leverage");
    assert!(rej[0].reason.contains("execution.margin.enabled"));
}

#[test]
fn margin_level_too_low_refuses_new_shorts() {
    let mut r = short_open();
    // Mid 65,000: level 75.35 % (no rollover yet) ≤ 100 %: no new margin positions.
    r.book(5000, true, &[(dec!(64999.9), dec!(1))], &[(dec!(65000.1), dec!(1))]);
    r.open(short_sell(dec!(0.001), 5), Protection::default(), 6000);
    let rej = rejections(&r.tick(6100)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(rej[0].error, "EOrder:Margin level too low");
    assert!(rej[0].reason.contains("75.35"), "{}", rej[0].reason);
}

// ---- amends ---------------------------------------------------------------------------
