//! `cargo test --lib core::sim::tests::calibration -- --ignored --nocapture` prints the figures
//! docs/simulator.md compares with the recordings.
use super::*;
use crate::core::money::{parse_decimal, to_f64};

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

#[test]
#[ignore]
fn print_calibration_figures() {
    let syms = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ETH/BTC"];
    let ps: Vec<String> = syms.iter().map(|s| s.to_string()).collect();
    let mut m = SimMarket::new(&SimConfig::default(), &ps, 10).unwrap();
    let mut frames = Vec::new();
    let t0 = m.now();
    let t_end = t0.plus_micros(3 * 3600 * MICROS_PER_SEC);
    let mut out = Vec::new();
    while m.now() < t_end {
        m.step(&mut out);
        frames.append(&mut out);
    }
    let secs = m.now().micros_since(t0) as f64 / 1e6;
    for sym in syms {
        let inst = m.instruments().into_iter().find(|i| &*i.symbol == sym).unwrap();
        let mine: Vec<&SimFrame> = frames.iter().filter(|f| f.symbol.as_deref() == Some(sym)).collect();
        let mut nlev = [0usize; 8];
        let (mut spreads, mut qty_n, mut gaps, mut tq, mut per_msg) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut buys, mut trades, mut books) = (0usize, 0usize, 0usize);
        let mut book = L2Book::new(10, Some(inst.price_precision), Some(inst.qty_precision));
        let snap = SimMarket::new(&SimConfig::default(), &ps, 10).unwrap().book_snapshot_frame(sym).unwrap();
        for text in std::iter::once(snap.as_str()).chain(mine.iter().map(|f| f.text.as_str())) {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            match v["channel"].as_str() {
                Some("book") => {
                    let d = &v["data"][0];
                    let mut n = 0;
                    for (k, side) in [("bids", Side::Buy), ("asks", Side::Sell)] {
                        for l in d[k].as_array().unwrap() {
                            book.apply(
                                side,
                                parse_decimal(&l["price"].to_string()).unwrap(),
                                parse_decimal(&l["qty"].to_string()).unwrap(),
                            );
                            n += 1;
                        }
                    }
                    book.truncate();
                    if v["type"] == "update" {
                        books += 1;
                        nlev[n.min(7)] += 1;
                    }
                    let (b, a) = (book.best_bid().unwrap(), book.best_ask().unwrap());
                    let mid = to_f64(b.price + a.price) / 2.0;
                    spreads.push(to_f64(a.price - b.price) / mid * 1e4);
                    for side in [Side::Buy, Side::Sell] {
                        let lv: Vec<_> = book.levels(side).collect();
                        for w in lv.windows(2) {
                            gaps.push((to_f64(w[0].price) - to_f64(w[1].price)).abs() / mid * 1e4);
                        }
                        qty_n.extend(lv.iter().map(|l| to_f64(l.qty) * mid));
                    }
                }
                Some("trade") => {
                    let d = v["data"].as_array().unwrap();
                    per_msg.push(d.len() as f64);
                    for t in d {
                        trades += 1;
                        buys += usize::from(t["side"] == "buy");
                        tq.push(
                            to_f64(parse_decimal(&t["qty"].to_string()).unwrap())
                                * to_f64(parse_decimal(&t["price"].to_string()).unwrap()),
                        );
                    }
                }
                _ => {}
            }
        }
        let lq: Vec<f64> = tq.iter().map(|&x| libm::log(x)).collect();
        let mean = lq.iter().sum::<f64>() / lq.len() as f64;
        let sd = (lq.iter().map(|x| libm::pow(x - mean, 2.0)).sum::<f64>() / lq.len() as f64).sqrt();
        let mut desc = tq.clone();
        desc.sort_by(|a, b| b.total_cmp(a));
        let k = desc.len() / 10;
        let hill = k as f64 / desc[..k].iter().map(|x| libm::log(x / desc[k])).sum::<f64>();
        let tot: usize = nlev.iter().sum();
        let mean_lev = nlev.iter().enumerate().map(|(i, n)| i * n).sum::<usize>() as f64 / tot as f64;
        println!(
            "{sym}: book upd/s {:.2} levels/upd mean {:.2} dist1/2/3/4+ {:.2}/{:.2}/{:.2}/{:.2}; spread bps med {:.3} mean {:.3}; gap bps med {:.3} mean {:.3}; level notional med {:.0} mean {:.0}",
            books as f64 / secs,
            mean_lev,
            nlev[1] as f64 / tot as f64,
            nlev[2] as f64 / tot as f64,
            nlev[3] as f64 / tot as f64,
            nlev[4..].iter().sum::<usize>() as f64 / tot as f64,
            pct(&mut spreads, 0.5),
            spreads.iter().sum::<f64>() / spreads.len() as f64,
            pct(&mut gaps, 0.5),
            gaps.iter().sum::<f64>() / gaps.len() as f64,
            pct(&mut qty_n, 0.5),
            qty_n.iter().sum::<f64>() / qty_n.len() as f64,
        );
        println!(
            "   trade msgs/s {:.2} trades/msg {:.2} buys {:.2}; trade notional p10 {:.0} med {:.0} mean {:.0} p90 {:.0} p99 {:.0}; log-sd {:.2} Hill(10%) {:.2}",
            per_msg.len() as f64 / secs,
            trades as f64 / per_msg.len() as f64,
            buys as f64 / trades as f64,
            pct(&mut tq, 0.1),
            pct(&mut tq, 0.5),
            tq.iter().sum::<f64>() / tq.len() as f64,
            pct(&mut tq, 0.9),
            pct(&mut tq, 0.99),
            sd,
            hill
        );
    }
    let ev: u64 = frames.iter().map(|f| u64::from(f.events)).sum();
    let book_ev = frames.iter().filter(|f| f.channel == "book").count() as f64;
    println!(
        "frames {} over {secs:.0}s, events {ev}, book share {:.3}, heartbeats {}",
        frames.len(),
        book_ev / ev as f64,
        frames.iter().filter(|f| f.channel == "heartbeat").count()
    );
}
