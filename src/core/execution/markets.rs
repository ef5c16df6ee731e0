//! The market side the paper exchange keeps: per pair its instrument, its L2 book copy, its
//! last trade, its trading rate counter and what the event path remembers of it; Kraken's
//! system status; and the fee schedules Kraken published (REST AssetPairs), which replace
//! the built-in tables for those pairs.
//!
//! Part of the paper execution core (`core::execution`): market events write here, the
//! facade and its parts read marks and books from here.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::MarkConvention;
use super::fill_model::PairBook;
use super::memo::PairMemo;
use crate::core::fees::{PairFees, RateCounter};
use crate::core::instrument::{Instrument, Symbol};
use crate::core::market::SystemStatus;
use crate::core::money::Price;
use crate::core::symbol_map::SymbolMap;

/// Per-pair market state.
#[derive(Clone, Debug, Default)]
pub(super) struct PairState {
    pub(super) inst: Option<Arc<Instrument>>,
    pub(super) book: PairBook,
    pub(super) last_trade: Option<Price>,
    pub(super) rate: RateCounter,
    /// What the event path remembers of this pair (see `memo`).
    pub(super) memo: PairMemo,
}

/// Every pair's market state, the system status and the published fee schedules.
pub(super) struct Markets {
    pub(super) pairs: SymbolMap<PairState>,
    pub(super) system: SystemStatus,
    /// Fee schedules published by Kraken (REST AssetPairs) per pair: they replace the
    /// built-in tables for those pairs.
    pub(super) fee_schedules: BTreeMap<Symbol, Arc<PairFees>>,
}

impl Markets {
    pub(super) fn new() -> Markets {
        Markets { pairs: SymbolMap::new(), system: SystemStatus::Online, fee_schedules: BTreeMap::new() }
    }

    /// The state of `pair`, created empty on first use.
    #[inline]
    pub(super) fn pair_mut(&mut self, pair: &Symbol) -> &mut PairState {
        self.pairs.get_or_insert_with(pair, PairState::default)
    }

    /// The instrument of `pair`, once its Instrument event arrived.
    #[inline]
    pub(super) fn inst(&self, pair: &str) -> Option<Arc<Instrument>> {
        self.pairs.get(pair).and_then(|s| s.inst.clone())
    }
}

/// A pair's mark under `convention` (`long`: the side of the holding).
#[inline]
pub(super) fn mark_of(st: &PairState, convention: MarkConvention, long: bool) -> Option<Price> {
    // The mid only when it is needed: computed on first read after a touch change.
    let mid = || st.book.mid();
    match convention {
        MarkConvention::Mid => mid().or(st.last_trade),
        MarkConvention::Last => st.last_trade.or_else(mid),
        MarkConvention::Exit => {
            if long { st.book.bid() } else { st.book.ask() }.or_else(mid).or(st.last_trade)
        }
    }
}
