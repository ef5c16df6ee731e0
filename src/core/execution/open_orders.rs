//! The paper exchange's order desk: the open orders, the protection groups, the amends
//! travelling to the exchange, and the counters that number them.
//!
//! The open orders carry a change counter, so that the event path can tell without scanning
//! them whether anything changed since the timers were last scanned, and whether any order
//! is at a given stage (most events meet only waiting stops). The counter is bumped by the
//! only methods that can change an order (`insert`, `remove`, `get_mut`).
//!
//! Part of the paper execution core (`core::execution`): `lifecycle`, `matching` and `amend`
//! change what is here; the facade reads it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Index;

use super::{Group, Order, PendingAmend, Stage};
use crate::core::orders::OrderId;

/// Open orders, protection groups and amends in flight, with the numbering of each.
pub(super) struct OrderDesk {
    pub(super) orders: OpenOrders,
    /// Protection groups by number (an entry and its OCO children).
    pub(super) groups: BTreeMap<u64, Group>,
    /// AmendOrder requests travelling to the exchange, by number.
    pub(super) amends: BTreeMap<u64, PendingAmend>,
    next_order: u64,
    next_group: u64,
    next_amend: u64,
}

impl OrderDesk {
    pub(super) fn new() -> OrderDesk {
        OrderDesk {
            orders: OpenOrders::default(),
            groups: BTreeMap::new(),
            amends: BTreeMap::new(),
            next_order: 1,
            next_group: 1,
            next_amend: 1,
        }
    }

    /// The id the next order will get (ids are never reused).
    #[inline]
    pub(super) fn peek_order_id(&self) -> OrderId {
        OrderId(self.next_order)
    }

    /// Takes the next order id.
    #[inline]
    pub(super) fn take_order_id(&mut self) -> OrderId {
        let id = OrderId(self.next_order);
        self.next_order += 1;
        id
    }

    /// Takes the next protection group number.
    #[inline]
    pub(super) fn take_group(&mut self) -> u64 {
        let g = self.next_group;
        self.next_group += 1;
        g
    }

    /// Takes the next amend number.
    #[inline]
    pub(super) fn take_amend(&mut self) -> u64 {
        let a = self.next_amend;
        self.next_amend += 1;
        a
    }
}

/// Open orders by id (ascending id is submission order, which results depend on).
#[derive(Default)]
pub(super) struct OpenOrders {
    map: BTreeMap<OrderId, Order>,
    /// Bumped by every access that can change an order: what was derived from the orders
    /// at one value (the earliest timer) holds while it is unchanged.
    version: u64,
    /// Orders per stage (`Stage as usize`), as counted at a version.
    stages: Cell<Option<(u64, [usize; 4])>>,
}

impl OpenOrders {
    /// The order `id`.
    pub(super) fn get(&self, id: &OrderId) -> Option<&Order> {
        self.map.get(id)
    }

    /// The order `id`, to change it (counts as a change).
    pub(super) fn get_mut(&mut self, id: &OrderId) -> Option<&mut Order> {
        self.version += 1;
        self.map.get_mut(id)
    }

    /// Adds (or replaces) the order `id`.
    pub(super) fn insert(&mut self, id: OrderId, o: Order) {
        self.version += 1;
        self.map.insert(id, o);
    }

    /// Removes the order `id`.
    pub(super) fn remove(&mut self, id: &OrderId) -> Option<Order> {
        self.version += 1;
        self.map.remove(id)
    }

    /// Whether any order is at `stage` (counted again after a change).
    #[inline]
    pub(super) fn any_at(&self, stage: Stage) -> bool {
        let counts = match self.stages.get() {
            Some((v, counts)) if v == self.version => counts,
            _ => self.count_stages(),
        };
        counts[stage as usize] > 0
    }

    fn count_stages(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for o in self.map.values() {
            counts[o.stage as usize] += 1;
        }
        self.stages.set(Some((self.version, counts)));
        counts
    }

    /// Changes so far (see `version`).
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// Whether the order `id` is open.
    pub(super) fn contains_key(&self, id: &OrderId) -> bool {
        self.map.contains_key(id)
    }

    /// Ids in ascending order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &OrderId> + '_ {
        self.map.keys()
    }

    /// Orders by ascending id.
    pub(super) fn values(&self) -> impl Iterator<Item = &Order> + '_ {
        self.map.values()
    }
}

impl Index<&OrderId> for OpenOrders {
    type Output = Order;

    fn index(&self, id: &OrderId) -> &Order {
        &self.map[id]
    }
}
