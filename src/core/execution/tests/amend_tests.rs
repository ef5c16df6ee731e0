//! AmendOrder: queue priority, rate-counter penalties, refusals, and the chase's re-prices.

use super::*;

fn amend(
    r: &mut Rig,
    id: OrderId,
    qty: Option<Decimal>,
    price: Option<Decimal>,
    ms: i64,
) -> (Result<u64, Rejection>, Vec<ExecEvent>) {
    let mut out = Vec::new();
    let req = AmendRequest {
        order_id: id,
        qty,
        limit_price: price,
        trigger_price: None,
        post_only: false,
        decided_at: t(ms),
    };
    let res = r.ex.amend(req, &mut out);
    (res, out)
}

fn amended(evs: &[ExecEvent]) -> Vec<(Decimal, Option<Decimal>, bool, Decimal)> {
    evs.iter()
        .filter_map(|e| match e {
            ExecEvent::OrderAmended { qty, price, queue_kept, penalty, .. } => {
                Some((*qty, *price, *queue_kept, *penalty))
            }
            _ => None,
        })
        .collect()
}

/// A 1.0 bid at 99.5 resting behind 2.0 displayed; a 1.5 print takes the queue to 0.5.
fn resting_bid() -> (Rig, OrderId) {
    let mut r = Rig::new(ExecutionConfig::default(), dec!(10000));
    r.book(100, true, &[(dec!(99.5), dec!(2)), (dec!(99.4), dec!(1))], &[(dec!(100.0), dec!(1))]);
    let (id, _) =
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.5)), Protection::default(), 1000);
    r.tick(1100); // rests from 1050
    assert!(fills(&r.trade(1200, Side::Sell, dec!(99.5), dec!(1.5))).is_empty());
    assert_eq!(r.ex.desk.orders[&id].queue_ahead, dec!(0.5));
    (r, id)
}

#[test]
fn amend_down_keeps_the_queue_and_counts_the_penalty() {
    let (mut r, id) = resting_bid();
    let (res, out) = amend(&mut r, id, Some(dec!(0.6)), None, 2000);
    assert!(res.is_ok() && out.is_empty(), "travels 50 ms");
    let out = r.tick(2100);
    // Rested 2050 − 1050 = 1.0 s: penalty 1 fixed + 3 (< 5 s) = 4; the counter (1 from
    // the add at 1050) decayed 2.34/s × 1 s to 0 first, so it now reads 4.
    assert_eq!(amended(&out), vec![(dec!(0.6), Some(dec!(99.5)), true, dec!(4))]);
    assert_eq!(r.ex.markets.pairs[P].rate.value_at(t(2050), Tier::Intermediate), dec!(4));
    let o = &r.ex.desk.orders[&id];
    assert_eq!((o.queue_ahead, o.placed_at, o.spec.qty), (dec!(0.5), t(1050), dec!(0.6)));
    // A 1.0 print at 99.5: 0.5 to the queue, 0.5 to us.
    assert_eq!(fills(&r.trade(2200, Side::Sell, dec!(99.5), dec!(1.0)))[0].qty, dec!(0.5));
    assert_eq!(r.ex.stats().amends, 1);
}

#[test]
fn amend_of_the_price_loses_the_queue() {
    let (mut r, id) = resting_bid();
    amend(&mut r, id, None, Some(dec!(99.4)), 2000).0.unwrap();
    let out = r.tick(2100);
    assert_eq!(amended(&out), vec![(dec!(1), Some(dec!(99.4)), false, dec!(4))]);
    // Behind all 1.0 displayed at 99.4, with time priority from the amend.
    let o = &r.ex.desk.orders[&id];
    assert_eq!((o.queue_ahead, o.placed_at, o.spec.price), (dec!(1), t(2050), Some(dec!(99.4))));
    // A larger size loses it too: back behind the 1.0 displayed.
    r.trade(2200, Side::Sell, dec!(99.4), dec!(0.4)); // queue 1.0 → 0.6
    amend(&mut r, id, Some(dec!(2)), None, 3000).0.unwrap();
    let out = r.tick(3100);
    assert!(!amended(&out)[0].2, "qty increase loses the queue");
    assert_eq!(r.ex.desk.orders[&id].queue_ahead, dec!(1));
    // A new price that crosses takes at once, as a taker: 1.0 ask at 100.0.
    amend(&mut r, id, None, Some(dec!(100.0)), 4000).0.unwrap();
    let f = fills(&r.tick(4100)).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!((f[0].price, f[0].qty, f[0].liquidity), (dec!(100.0), dec!(1), Liquidity::Taker));
}

#[test]
fn amend_refusals_use_krakens_strings() {
    let (mut r, id) = resting_bid();
    // Unknown now: refused at once (and journaled).
    let (res, out) = amend(&mut r, OrderId(99), Some(dec!(1)), None, 2000);
    assert_eq!(res.unwrap_err().error, "EOrder:Unknown order");
    assert!(matches!(out[0], ExecEvent::AmendRejected { .. }));
    // Values that break the rules, refused at the book; the order is unchanged.
    let cases = [
        (
            None,
            Some(dec!(99.55)),
            "EOrder:Invalid price:BTC/USD price can only be specified up to 1 decimals.",
        ),
        (Some(dec!(0.00001) + dec!(0.3)), Some(dec!(1000000.0)), "EOrder:Insufficient funds"),
    ];
    for (i, (q, p, _)) in cases.iter().enumerate() {
        amend(&mut r, id, *q, *p, 2000 + i as i64).0.unwrap();
    }
    let out = r.tick(2200);
    let errs: Vec<&str> = out
        .iter()
        .filter_map(|e| match e {
            ExecEvent::AmendRejected { rejection, .. } => Some(rejection.error.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(errs, cases.iter().map(|c| c.2).collect::<Vec<_>>());
    assert_eq!(r.ex.desk.orders[&id].spec.price, Some(dec!(99.5)));
    // Gone before the amend arrives: filled by a print while the amend travels.
    amend(&mut r, id, Some(dec!(0.8)), None, 3000).0.unwrap();
    let out = r.trade(3010, Side::Sell, dec!(99.0), dec!(5));
    assert_eq!(fills(&out)[0].qty, dec!(1));
    let out = r.tick(3100);
    assert!(
        matches!(&out[0], ExecEvent::AmendRejected { rejection, .. } if rejection.error == "EOrder:Unknown order")
    );
}

#[test]
fn amend_below_the_filled_quantity_cancels_the_rest() {
    let (mut r, id) = resting_bid();
    r.trade(1300, Side::Sell, dec!(99.5), dec!(0.8)); // 0.5 queue, 0.3 to us
    amend(&mut r, id, Some(dec!(0.2)), None, 2000).0.unwrap();
    let out = r.tick(2100);
    // Cancel penalty (rested 1 s: 8) instead of the amend's.
    assert_eq!(amended(&out), vec![(dec!(0.3), Some(dec!(99.5)), true, dec!(8))]);
    assert_eq!(cancels(&out), vec![(id, "amended_below_filled")]);
}

#[test]
fn chase_reprices_with_amends_before_going_to_market() {
    let cfg = ExecutionConfig { chase_reprices: 1, ..Default::default() };
    let mut r = Rig::new(cfg, dec!(10000));
    r.book(100, true, &[(dec!(99.0), dec!(2))], &[(dec!(100.0), dec!(5))]);
    let (id, _) =
        r.open(OrderSpec::limit(P.into(), Side::Buy, dec!(1), dec!(99.0)), Protection::default(), 1000);
    r.tick(1100);
    r.book(5000, false, &[(dec!(99.4), dec!(1))], &[]); // the bid moved up
    // 30 s after 1050 the entry is re-priced to the bid 99.4 (arrives 50 ms later).
    let out = r.tick(31_200);
    assert_eq!(amended(&out), vec![(dec!(1), Some(dec!(99.4)), false, dec!(1))]);
    assert!(cancels(&out).is_empty());
    // 30 s after the re-price the remainder goes to market as today.
    let out = r.tick(61_200);
    assert_eq!(cancels(&out), vec![(id, "chase")]);
    assert_eq!(fills(&out)[0].price, dec!(100.0));
}
