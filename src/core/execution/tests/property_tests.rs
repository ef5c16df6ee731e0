//! Random sessions (proptest): after every step the identity and the shortcut invariant hold.

use super::*;
use proptest::prelude::*;

/// One step of a random session.
#[derive(Clone, Debug)]
enum Op {
    /// Snapshot: best bid in ticks, spread in ticks, level sizes (1e-4 BTC units).
    Snapshot {
        bid: i64,
        spread: i64,
        bids: Vec<u32>,
        asks: Vec<u32>,
    },
    /// Update one level: side, price offset from 100.0 in ticks, size (0 deletes).
    Update {
        buy: bool,
        ticks: i64,
        size: u32,
    },
    /// A trade: taker side, price offset in ticks, size.
    Trade {
        buy: bool,
        ticks: i64,
        size: u32,
    },
    /// An order: kind 0..6, side, size, price offset, flags.
    Order {
        kind: u8,
        buy: bool,
        size: u32,
        ticks: i64,
        post: bool,
        ioc: bool,
        protect: bool,
    },
    Cancel {
        id: u64,
    },
    Flatten,
    /// A margin sell (short) of `size` at `leverage`: market or limit at `ticks`.
    Short {
        size: u32,
        leverage: u32,
        limit: bool,
        ticks: i64,
    },
    /// A price shock: a snapshot `ticks` (tenths of a USD) above 100, up to +60 %.
    Shock {
        ticks: i64,
        sizes: Vec<u32>,
    },
    /// Event time passes (hours): rollovers fall due.
    Wait {
        hours: i64,
    },
    /// An amend of order `id`: new size and/or price offset.
    Amend {
        id: u64,
        size: Option<u32>,
        ticks: Option<i64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (-20i64..20, 1i64..6, prop::collection::vec(1u32..20000, 1..5), prop::collection::vec(1u32..20000, 1..5))
            .prop_map(|(bid, spread, bids, asks)| Op::Snapshot { bid, spread, bids, asks }),
        6 => (any::<bool>(), -25i64..25, 0u32..20000).prop_map(|(buy, ticks, size)| Op::Update { buy, ticks, size }),
        5 => (any::<bool>(), -25i64..25, 1u32..30000).prop_map(|(buy, ticks, size)| Op::Trade { buy, ticks, size }),
        5 => (0u8..7, any::<bool>(), 1u32..30000, -30i64..30, any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(kind, buy, size, ticks, post, ioc, protect)| Op::Order { kind, buy, size, ticks, post, ioc, protect }),
        1 => (1u64..40).prop_map(|id| Op::Cancel { id }),
        1 => Just(Op::Flatten),
        3 => (1000u32..40000, 2u32..7, any::<bool>(), -30i64..30)
            .prop_map(|(size, leverage, limit, ticks)| Op::Short { size, leverage, limit, ticks }),
        2 => (100i64..600, prop::collection::vec(1u32..40000, 1..4)).prop_map(|(ticks, sizes)| Op::Shock { ticks, sizes }),
        1 => (1i64..9).prop_map(|hours| Op::Wait { hours }),
        2 => (1u64..40, prop::option::of(1u32..30000), prop::option::of(-30i64..30))
            .prop_map(|(id, size, ticks)| Op::Amend { id, size, ticks }),
    ]
}

fn px(ticks: i64) -> Decimal {
    dec!(100.0) + Decimal::new(ticks, 1)
}

fn qty(units: u32) -> Decimal {
    Decimal::new(i64::from(units), 4)
}

fn order_spec(kind: u8, buy: bool, size: u32, ticks: i64, post: bool, ioc: bool) -> OrderSpec {
    let side = if buy { Side::Buy } else { Side::Sell };
    let mut s = OrderSpec::market(P.into(), side, qty(size));
    let p = px(ticks);
    match kind {
        0 => {}
        1 | 2 => {
            s.order_type = OrderType::Limit;
            s.price = Some(p);
            s.post_only = post;
            s.time_in_force = if ioc { TimeInForce::Ioc } else { TimeInForce::Gtc };
        }
        3 => {
            s.order_type = OrderType::StopLoss;
            s.price = Some(p);
        }
        4 => {
            s.order_type = OrderType::TakeProfit;
            s.price = Some(p);
        }
        5 => {
            s.order_type = OrderType::StopLossLimit;
            s.price = Some(p);
            s.price2 = Some(p - Decimal::new(i64::from(size % 5), 1));
        }
        _ => {
            s.order_type = OrderType::TrailingStop;
            s.trailing = Some(TrailingOffset::Absolute(Decimal::new(i64::from(1 + size % 20), 1)));
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_conserve_money_and_respect_the_book(
        ops in prop::collection::vec((op(), 1i64..20000), 1..80),
        usd in 50u32..5000,
        btc in 0u32..3,
        margin in any::<bool>(),
        reprices in 0u32..3,
    ) {
        // With shorts on, a small account (22…270 USD, at most 1 BTC) so that shorts
        // near the caps and the shocks reach margin calls and liquidations.
        let (usd, btc) = if margin { (usd / 20 + 20, btc.min(1)) } else { (usd, btc) };
        let bal = BTreeMap::from([
            ("USD".to_string(), Decimal::from(usd)),
            ("BTC".to_string(), Decimal::from(btc)),
        ]);
        // Shorts on (5× max, a 3 BTC position limit and a 4 BTC allowance, so the caps
        // bind) or off (every margin sell is then refused).
        let mut cfg = ExecutionConfig { entry_timeout: Span::from_secs(20), chase_reprices: reprices, ..Default::default() };
        cfg.margin.enabled = margin;
        cfg.margin.allowance.insert("BTC".into(), dec!(4));
        let mut inst = margin_inst();
        if let Some(m) = inst.margin.as_mut() {
            m.short_position_limit = Some(dec!(3));
        }
        let mut r = Rig::with(cfg, bal, vec![inst]);
        let mut ms = 0i64;
        // Σ qty taken per (book event, side, level) and per trade, across the whole run.
        let mut from_level: BTreeMap<(u64, Side, Decimal), (Decimal, Decimal)> = BTreeMap::new();
        let mut from_trade: BTreeMap<(u64, Side), (Decimal, Decimal)> = BTreeMap::new();
        for (op, dt) in ops {
            ms += dt;
            let before = r.ex.balances();
            let mut out = Vec::new();
            match op {
                Op::Snapshot { bid, spread, bids, asks } => {
                    let b: Vec<_> = bids.iter().enumerate().map(|(i, q)| (px(bid - i as i64), qty(*q))).collect();
                    let a: Vec<_> = asks.iter().enumerate().map(|(i, q)| (px(bid + spread + i as i64), qty(*q))).collect();
                    out = r.book(ms, true, &b, &a);
                }
                Op::Update { buy, ticks, size } => {
                    let l = [(px(ticks), qty(size))];
                    out = if buy { r.book(ms, false, &l, &[]) } else { r.book(ms, false, &[], &l) };
                }
                Op::Trade { buy, ticks, size } => {
                    out = r.trade(ms, if buy { Side::Buy } else { Side::Sell }, px(ticks), qty(size));
                }
                Op::Order { kind, buy, size, ticks, post, ioc, protect } => {
                    let spec = order_spec(kind, buy, size, ticks, post, ioc);
                    let prot = if protect && buy {
                        Protection { stop_loss: Some(px(ticks - 20)), take_profit: Some(px(ticks + 20)), trailing: None }
                    } else {
                        Protection::default()
                    };
                    let (_, o) = r.open(spec, prot, ms);
                    out.extend(o);
                    out.extend(r.tick(ms + 1));
                }
                Op::Cancel { id } => {
                    r.ex.cancel(OrderId(id), t(ms), "requested", &mut out);
                    out.extend(r.tick(ms + 1));
                }
                Op::Flatten => {
                    r.ex.flatten_all(t(ms), "emergency_stop", &mut out);
                }
                Op::Short { size, leverage, limit, ticks } => {
                    let mut spec = short_sell(qty(size), leverage);
                    if limit {
                        spec.order_type = OrderType::Limit;
                        spec.price = Some(px(ticks));
                    }
                    // Half of them carry a protective stop (a reduce-only buy above).
                    let stop = (size % 2 == 0).then(|| px(ticks + 30));
                    let (_, o) = r.open(spec, Protection { stop_loss: stop, ..Default::default() }, ms);
                    out.extend(o);
                    out.extend(r.tick(ms + 1));
                }
                Op::Shock { ticks, sizes } => {
                    let b: Vec<_> = sizes.iter().enumerate().map(|(i, q)| (px(ticks - i as i64), qty(*q))).collect();
                    let a: Vec<_> = sizes.iter().enumerate().map(|(i, q)| (px(ticks + 1 + i as i64), qty(*q))).collect();
                    out = r.book(ms, true, &b, &a);
                }
                Op::Wait { hours } => {
                    ms += hours * 3_600_000;
                    out = r.tick(ms);
                }
                Op::Amend { id, size, ticks } => {
                    let req = AmendRequest {
                        order_id: OrderId(id),
                        qty: size.map(qty),
                        limit_price: ticks.map(px),
                        trigger_price: None,
                        post_only: false,
                        decided_at: t(ms),
                    };
                    let _ = r.ex.amend(req, &mut out);
                    out.extend(r.tick(ms + 1));
                }
            }
            r.ex.verify_identity().map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Every fill moves exactly price × qty and the fee, every margin fee its fee;
            // nothing else moves.
            let after = r.ex.balances();
            let (mut d_usd, mut d_btc) = (Decimal::ZERO, Decimal::ZERO);
            for e in &out {
                if let ExecEvent::MarginFee { fee, currency, .. } = e {
                    prop_assert_eq!(&**currency, "USD");
                    prop_assert!(*fee > Decimal::ZERO && fee.normalize().scale() <= 5, "{e:?}");
                    d_usd -= *fee;
                }
            }
            for f in fills(&out) {
                let sign = Decimal::from(f.side.sign());
                d_usd += -sign * f.price * f.qty - f.fee;
                d_btc += sign * f.qty;
                // Precision: tick 0.1, 8 lot decimals, fees at cost precision 5.
                prop_assert!(f.price.normalize().scale() <= 1 && (f.price % dec!(0.1)).is_zero(), "{f:?}");
                prop_assert!(f.qty.normalize().scale() <= 8 && f.qty > Decimal::ZERO, "{f:?}");
                prop_assert!(f.fee.normalize().scale() <= 5 && f.fee >= Decimal::ZERO, "{f:?}");
                match &f.cause {
                    FillCause::BookLevel { event_seq, level_price, level_qty } => {
                        let e = from_level.entry((*event_seq, f.side, *level_price)).or_insert((Decimal::ZERO, *level_qty));
                        e.0 += f.qty;
                        prop_assert!(e.0 <= e.1, "took {} from a level showing {}", e.0, e.1);
                    }
                    FillCause::Trade { event_seq, trade_qty, trade_price, .. } => {
                        let e = from_trade.entry((*event_seq, f.side)).or_insert((Decimal::ZERO, *trade_qty));
                        e.0 += f.qty;
                        prop_assert!(e.0 <= e.1, "filled {} from a trade of {}", e.0, e.1);
                        // Maker at our price, which the trade reached or went through.
                        let reached = match f.side { Side::Buy => *trade_price <= f.price, Side::Sell => *trade_price >= f.price };
                        prop_assert!(reached, "{f:?}");
                    }
                }
            }
            let get = |m: &BTreeMap<String, Decimal>, k: &str| m.get(k).copied().unwrap_or_default();
            prop_assert_eq!(get(&after, "USD") - get(&before, "USD"), d_usd);
            prop_assert_eq!(get(&after, "BTC") - get(&before, "BTC"), d_btc);
            // Below zero only by what is borrowed (BTC, within the caps) or margin fees
            // owed (USD).
            let borrowed: Decimal = r.ex.shorts.positions.values().map(|m| m.qty).sum();
            prop_assert!(borrowed <= dec!(3), "short_position_limit 3 exceeded: {borrowed}");
            prop_assert!(get(&after, "BTC") >= -borrowed, "{after:?} borrowed {borrowed}");
            prop_assert!(get(&after, "USD") >= -r.ex.stats().margin_fees_paid, "{after:?}");
            if !margin {
                prop_assert!(borrowed.is_zero() && get(&after, "BTC") >= Decimal::ZERO && get(&after, "USD") >= Decimal::ZERO);
            }
        }
        let s = r.ex.stats();
        prop_assert_eq!(s.fills, s.maker_fills + s.taker_fills);
    }
}
