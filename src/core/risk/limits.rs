//! Entry limits: the gates an entry passes before it is sized (pair status, open positions,
//! open orders and pending entries on the pair, trade interval, daily loss, equity) and the
//! headroom the exposure limits leave it (asset, total, leverage, cash or margin).

use rust_decimal::Decimal;

use super::{Refuse, RiskCore, reason};
use crate::core::decisions::TradeIntent;
use crate::core::instrument::{Instrument, PairStatus};
use crate::core::market::Side;
use crate::core::money::{Cash, to_f64};
use crate::core::orders::EntryStyle;
use crate::core::portfolio::PortfolioView;

/// Headroom of the exposure limits for one entry (account currency), and how a short is
/// margined.
pub(super) struct Rooms {
    /// Room under `risk.max_exposure_per_asset`.
    pub(super) asset: Cash,
    /// Room under `risk.max_total_exposure`.
    pub(super) total: Cash,
    /// Room under `risk.max_leverage`.
    pub(super) leverage_room: Cash,
    /// `insufficient_margin` for a margined short, else `insufficient_cash`.
    pub(super) cash_code: &'static str,
    /// Free margin × leverage (short) or available cash, less the fee reserve.
    pub(super) cash: Cash,
    /// A sell intent (a short entry).
    pub(super) short: bool,
    /// The short's leverage (0 for a long).
    pub(super) leverage: u32,
}

impl RiskCore {
    /// Whether a pair in `status` takes an order of `style` (`reducing`: an exit).
    pub(super) fn status_allows(status: PairStatus, style: EntryStyle, reducing: bool) -> bool {
        match status {
            PairStatus::Online => true,
            PairStatus::LimitOnly => !matches!(style, EntryStyle::Market),
            PairStatus::PostOnly => matches!(style, EntryStyle::PostOnly { .. }),
            PairStatus::ReduceOnly => reducing,
            _ => false,
        }
    }

    /// The gates before sizing, in this order: pair status, open positions, open orders on
    /// the pair, a pending entry on the pair, the trade interval, the daily loss, equity.
    /// Returns the equity.
    pub(super) fn entry_gates(
        &self,
        intent: &TradeIntent,
        view: &PortfolioView,
        inst: &Instrument,
    ) -> Result<Cash, Refuse> {
        let cfg = &self.cfg;
        let pair = &*intent.pair;
        let now = intent.time;
        if !Self::status_allows(inst.status, self.entry, false) {
            return Err((
                reason::PAIR_NOT_TRADABLE,
                format!("{pair}: status {} does not allow a {:?} entry", inst.status.as_str(), self.entry),
            ));
        }
        let open_positions = view.positions.iter().filter(|p| !p.qty.is_zero()).count()
            + self.pending.keys().filter(|k| view.position(k).is_none_or(|p| p.qty.is_zero())).count();
        if open_positions >= cfg.max_open_positions {
            return Err((
                reason::MAX_OPEN_POSITIONS,
                format!(
                    "{open_positions} open positions, limit risk.max_open_positions = {}",
                    cfg.max_open_positions
                ),
            ));
        }
        let orders = view.open_orders_on(pair);
        if orders > cfg.max_open_orders_per_pair {
            return Err((
                reason::OPEN_ORDERS_ON_PAIR,
                format!("{orders} open orders on {pair}, limit {}", cfg.max_open_orders_per_pair),
            ));
        }
        if let Some(p) = self.pending.get(pair) {
            return Err((
                reason::OPEN_ORDERS_ON_PAIR,
                format!("entry on {pair} approved at {} still pending", p.at),
            ));
        }
        if let Some(last) = self.last_trade.get(pair) {
            let since = now.micros_since(*last);
            if since < cfg.min_trade_interval.as_micros() {
                return Err((
                    reason::MIN_TRADE_INTERVAL,
                    format!(
                        "last order on {pair} at {last}, {:.3}s ago < risk.min_trade_interval {}",
                        since as f64 / 1e6,
                        cfg.min_trade_interval
                    ),
                ));
            }
        }
        let equity = view.equity;
        if self.day_start_equity > Decimal::ZERO {
            let loss = (self.day_start_equity - equity) / self.day_start_equity;
            if loss >= cfg.daily_loss_limit {
                return Err((
                    reason::DAILY_LOSS_LIMIT,
                    format!(
                        "day loss {:.4} (equity {equity} vs {} at day start) ≥ risk.daily_loss_limit {}",
                        to_f64(loss),
                        self.day_start_equity,
                        cfg.daily_loss_limit
                    ),
                ));
            }
        }
        if equity <= Decimal::ZERO {
            return Err((reason::NO_EQUITY, format!("equity {equity}")));
        }
        Ok(equity)
    }

    /// Headrooms of the exposure limits (account currency); refuses when one leaves no room.
    pub(super) fn rooms(
        &self,
        intent: &TradeIntent,
        view: &PortfolioView,
        inst: &Instrument,
        equity: Cash,
    ) -> Result<Rooms, Refuse> {
        let cfg = &self.cfg;
        let exp = self.exposures(view);
        let asset = inst.base.to_string();
        let asset_now = exp.by_asset.get(&asset).copied().unwrap_or(Decimal::ZERO);
        let room_asset = cfg.max_exposure_per_asset * equity - asset_now;
        let room_total = cfg.max_total_exposure * equity - exp.total;
        let room_lev = cfg.max_leverage * equity - exp.total;
        // A long spends cash; a short needs margin: free margin × the order's leverage.
        let short = intent.side == Side::Sell;
        let leverage = match (&view.margin, &inst.margin) {
            (Some(m), Some(t)) if short => m.leverage.min(t.max_leverage_sell),
            _ => 0,
        };
        let (cash_code, cash_room, cash_what) = match &view.margin {
            Some(m) if short => (
                reason::INSUFFICIENT_MARGIN,
                m.free_margin * Decimal::from(leverage) / (Decimal::ONE + cfg.fee_reserve),
                format!("free margin {} at {leverage}×", m.free_margin),
            ),
            _ => (
                reason::INSUFFICIENT_CASH,
                view.available_cash / (Decimal::ONE + cfg.fee_reserve),
                format!("available cash {}", view.available_cash),
            ),
        };
        for (code, room, what) in [
            (reason::MAX_EXPOSURE_PER_ASSET, room_asset, format!("{asset} exposure {asset_now}")),
            (reason::MAX_TOTAL_EXPOSURE, room_total, format!("total exposure {}", exp.total)),
            (reason::MAX_LEVERAGE, room_lev, format!("total notional {}", exp.total)),
            (cash_code, cash_room, cash_what),
        ] {
            if room <= Decimal::ZERO {
                return Err((code, format!("{what} leaves no room (equity {equity})")));
            }
        }
        Ok(Rooms {
            asset: room_asset,
            total: room_total,
            leverage_room: room_lev,
            cash_code,
            cash: cash_room,
            short,
            leverage,
        })
    }
}
