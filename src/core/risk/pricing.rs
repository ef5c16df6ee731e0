//! Entry and exit pricing: limit prices at the touch, the order spec of an entry style, the
//! entry quantity (rounded down to the lot, pair minimums after rounding) and the protective
//! stop-loss / take-profit / trailing prices.

use rust_decimal::Decimal;

use super::limits::Rooms;
use super::sizing::{Size, Stops};
use super::{Refuse, RiskCore, reason};
use crate::core::decisions::TradeIntent;
use crate::core::instrument::Instrument;
use crate::core::market::Side;
use crate::core::money::{Price, Qty, ceil_to_step, floor_to_step};
use crate::core::orders::{EntryStyle, OrderSpec, Protection, TrailingOffset};
use crate::core::portfolio::{PortfolioView, Quote};

impl RiskCore {
    /// The order spec for `style` at the touch, and its reference price.
    pub(super) fn priced_spec(
        style: EntryStyle,
        inst: &Instrument,
        quote: &Quote,
        side: Side,
        qty: Qty,
    ) -> Result<(OrderSpec, Price), Refuse> {
        let (offset, post) = match style {
            EntryStyle::Market => {
                let reference = if side == Side::Buy { quote.ask } else { quote.bid };
                return Ok((OrderSpec::market(inst.symbol.clone(), side, qty), reference));
            }
            EntryStyle::Limit { offset_ticks } => (offset_ticks, false),
            EntryStyle::PostOnly { offset_ticks } => (offset_ticks, true),
        };
        let price = Self::touch_price(inst, quote, side, offset)?;
        let mut spec = OrderSpec::limit(inst.symbol.clone(), side, qty, price);
        spec.post_only = post;
        Ok((spec, price))
    }

    /// Touch price moved `offset` ticks toward the other side, never crossing, rounded to the
    /// tick on the passive side.
    fn touch_price(inst: &Instrument, quote: &Quote, side: Side, offset: i32) -> Result<Price, Refuse> {
        let tick = inst.price_increment;
        let shift = tick * Decimal::from(offset);
        let p = match side {
            Side::Buy => {
                let p = quote.bid + shift;
                if p >= quote.ask { quote.ask - tick } else { p }
            }
            Side::Sell => {
                let p = quote.ask - shift;
                if p <= quote.bid { quote.bid + tick } else { p }
            }
        };
        let p = inst.round_price_passive(p, side == Side::Buy);
        if p <= Decimal::ZERO {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{}: no positive limit price ({p})", inst.symbol),
            ));
        }
        Ok(p)
    }
    /// Quantity, rounded down to the lot; minimums after rounding. Returns the entry's spec
    /// (a margin order for a short), its reference price and the quantity.
    pub(super) fn entry_spec(
        &self,
        intent: &TradeIntent,
        view: &PortfolioView,
        quote: &Quote,
        size: &Size,
        rooms: &Rooms,
    ) -> Result<(OrderSpec, Price, Qty), Refuse> {
        let inst = &*quote.instrument;
        let pair = &*intent.pair;
        let (notional, wanted, binding) = (size.notional, size.wanted, size.binding);
        let (_, ref_price) = Self::priced_spec(self.entry, inst, quote, intent.side, Decimal::ZERO)?;
        let per_unit = ref_price * quote.quote_to_account;
        if per_unit <= Decimal::ZERO {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{pair}: no positive price in account currency"),
            ));
        }
        let qty = inst.round_qty_down(notional / per_unit);
        let cost = qty * ref_price;
        if qty <= Decimal::ZERO || qty < inst.qty_min || cost < inst.cost_min {
            let code = if binding == "risk" { reason::BELOW_MINIMUM } else { binding };
            return Err((
                code,
                format!(
                    "size {notional:.8} {} (wanted {wanted:.8}, bound by {binding}) gives qty {qty} cost {cost} at {ref_price}; \
                     pair minimums qty_min {} cost_min {}",
                    view.currency, inst.qty_min, inst.cost_min
                ),
            ));
        }
        let (mut spec, _) = Self::priced_spec(self.entry, inst, quote, intent.side, qty)?;
        if rooms.short {
            spec.leverage = Some(rooms.leverage); // a margin order: Kraken's `leverage`
        }
        Ok((spec, ref_price, qty))
    }

    /// Protective prices, rounded toward the entry (the loss at the stop never exceeds the
    /// budget through rounding).
    pub(super) fn protection(
        &self,
        side: Side,
        inst: &Instrument,
        ref_price: Price,
        stops: &Stops,
    ) -> Protection {
        let cfg = &self.cfg;
        let (stop_d, tp_d) = (stops.stop, stops.take_profit);
        let tick = inst.price_increment;
        let dp = inst.price_precision;
        let (stop, tp) = match side {
            Side::Buy => (
                ceil_to_step(ref_price * (Decimal::ONE - stop_d), tick).round_dp(dp),
                floor_to_step(ref_price * (Decimal::ONE + tp_d), tick).round_dp(dp),
            ),
            Side::Sell => (
                floor_to_step(ref_price * (Decimal::ONE + stop_d), tick).round_dp(dp),
                ceil_to_step(ref_price * (Decimal::ONE - tp_d), tick).round_dp(dp),
            ),
        };
        Protection {
            stop_loss: (stop > Decimal::ZERO).then_some(stop),
            take_profit: (tp_d > Decimal::ZERO && tp > Decimal::ZERO).then_some(tp),
            trailing: (cfg.trailing_stop_pct > Decimal::ZERO)
                .then(|| TrailingOffset::Percent(cfg.trailing_stop_pct * Decimal::ONE_HUNDRED)),
        }
    }
}
