//! A map keyed by pair symbol for the per-event lookups of the pipeline (the paper
//! exchange's pairs and positions, the aggregator's and the sampled models' pair states).
//!
//! Iterates in symbol order like the `BTreeMap` it replaces, so results that depend on that
//! order do not change. A lookup scans the few entries for the very `Arc` it is given (the
//! decoder interns the symbols of events), then for the same first 8 bytes and length (the
//! whole name of `BTC/USD`), instead of the string comparisons of a tree search; beyond 16
//! entries it searches.

use super::instrument::Symbol;

/// Up to this many entries, lookups scan instead of searching (a run trades a few pairs).
const SCAN: usize = 16;

/// Entries by symbol, in symbol order.
#[derive(Clone, Debug)]
pub struct SymbolMap<V> {
    /// `(symbol, tag(symbol), value)`.
    entries: Vec<(Symbol, u64, V)>,
}

impl<V> Default for SymbolMap<V> {
    fn default() -> Self {
        SymbolMap { entries: Vec::new() }
    }
}

/// `key` is the text of this very `Arc`.
#[inline]
fn same_arc(s: &Symbol, key: &str) -> bool {
    std::ptr::eq(s.as_ptr(), key.as_ptr()) && s.len() == key.len()
}

/// The first 8 bytes of `s` as a number: with the length, the whole name of a symbol of up
/// to 8 bytes (`BTC/USD`), a cheap first test for longer ones.
#[inline]
fn tag(s: &str) -> u64 {
    s.as_bytes().iter().take(8).fold(0, |t, b| (t << 8) | u64::from(*b))
}

impl<V> SymbolMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Index of `key`.
    #[inline(always)]
    fn find(&self, key: &str) -> Option<usize> {
        // The same `Arc` (interned by the decoder): no need to read the name.
        if self.entries.len() <= SCAN
            && let Some(i) = self.entries.iter().position(|(s, _, _)| same_arc(s, key))
        {
            return Some(i);
        }
        self.find_by_name(key)
    }

    /// `find` when no entry has `key`'s `Arc`.
    fn find_by_name(&self, key: &str) -> Option<usize> {
        if self.entries.len() > SCAN {
            return self.entries.binary_search_by(|(s, _, _)| (**s).cmp(key)).ok();
        }
        let t = tag(key);
        self.entries
            .iter()
            .position(|(s, st, _)| *st == t && s.len() == key.len() && (key.len() <= 8 || **s == *key))
    }

    /// Where `key` (absent) would go.
    fn slot(&self, key: &str) -> usize {
        self.entries.partition_point(|(s, _, _)| **s < *key)
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).map(|i| &self.entries[i].2)
    }

    /// The value of `key`, to change it.
    #[inline]
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).map(|i| &mut self.entries[i].2)
    }

    /// The value of `key`, to change it; the entry keeps `key`'s `Arc` from now on (see
    /// `get_or_insert_with`).
    #[inline]
    pub fn get_mut_adopting(&mut self, key: &Symbol) -> Option<&mut V> {
        let i = self.find(key)?;
        self.adopt(i, key);
        Some(&mut self.entries[i].2)
    }

    /// Entry `i` (whose text is `key`'s) keeps `key`'s `Arc`.
    #[inline]
    fn adopt(&mut self, i: usize, key: &Symbol) {
        if !same_arc(&self.entries[i].0, key) {
            self.entries[i].0 = key.clone(); // the same text: the order is unchanged
        }
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The value of `key`, made by `make` (and the symbol cloned) when there is none. The
    /// entry keeps `key`'s `Arc` from now on, so that the next lookups with it (the events'
    /// symbol rather than the instrument's, say) find it by pointer.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: &Symbol, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(key) {
            Some(i) => {
                self.adopt(i, key);
                i
            }
            None => {
                let i = self.slot(key);
                self.entries.insert(i, (key.clone(), tag(key), make()));
                i
            }
        };
        &mut self.entries[i].2
    }

    /// Sets the value of `key`; returns the one it replaces.
    pub fn insert(&mut self, key: Symbol, value: V) -> Option<V> {
        match self.find(&key) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].2, value)),
            None => {
                let i = self.slot(&key);
                let t = tag(&key);
                self.entries.insert(i, (key, t, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).map(|i| self.entries.remove(i).2)
    }

    /// Entries in symbol order.
    pub fn iter(&self) -> impl Iterator<Item = (&Symbol, &V)> + '_ {
        self.entries.iter().map(|(s, _, v)| (s, v))
    }

    /// Entries in symbol order, values to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Symbol, &mut V)> + '_ {
        self.entries.iter_mut().map(|(s, _, v)| (&*s, v))
    }

    /// Symbols in order.
    pub fn keys(&self) -> impl Iterator<Item = &Symbol> + '_ {
        self.entries.iter().map(|(s, _, _)| s)
    }

    /// Values in symbol order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.iter().map(|(_, _, v)| v)
    }

    /// Values in symbol order, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.entries.iter_mut().map(|(_, _, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<V> std::ops::Index<&str> for SymbolMap<V> {
    type Output = V;

    /// The value of `key`; panics when there is none (tests).
    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no entry for {key}"),
        }
    }
}

impl<'a, V> IntoIterator for &'a SymbolMap<V> {
    type Item = (&'a Symbol, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Symbol, u64, V)>,
        fn(&'a (Symbol, u64, V)) -> (&'a Symbol, &'a V),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(s, _, v)| (s, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn finds_by_the_same_arc_and_by_equal_text_and_iterates_in_text_order() {
        let (sol, btc, eth): (Symbol, Symbol, Symbol) =
            ("SOL/USD".into(), "BTC/USD".into(), "ETH/USD".into());
        let mut m = SymbolMap::new();
        let mut b = BTreeMap::new();
        for (i, s) in [&sol, &btc, &eth].into_iter().enumerate() {
            m.insert(s.clone(), i);
            b.insert(s.clone(), i);
        }
        assert_eq!(m.get(&btc), Some(&1));
        assert_eq!(m.get("ETH/USD"), Some(&2)); // another string with the same text
        assert_eq!(m.get("XBT/USD"), None);
        assert_eq!(
            m.iter().map(|(s, v)| (s.clone(), *v)).collect::<Vec<_>>(),
            b.into_iter().collect::<Vec<_>>()
        );
        *m.get_or_insert_with(&"ADA/USD".into(), || 9) += 1;
        assert_eq!(m.keys().map(|s| &**s).collect::<Vec<_>>(), ["ADA/USD", "BTC/USD", "ETH/USD", "SOL/USD"]);
        assert_eq!(m.remove("BTC/USD"), Some(1));
        assert_eq!(m.insert(sol.clone(), 5), Some(0));
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [10, 2, 5]);
    }

    #[test]
    fn names_longer_than_the_tag_are_compared_whole() {
        let mut m = SymbolMap::new();
        m.insert("ETH/USDC.M".into(), 1);
        m.insert("ETH/USDC.X".into(), 2);
        m.insert("ETH/USDC".into(), 3);
        assert_eq!(
            (m.get("ETH/USDC.X"), m.get("ETH/USDC.M"), m.get("ETH/USDC")),
            (Some(&2), Some(&1), Some(&3))
        );
        assert_eq!(m.get("ETH/USDC.Y"), None);
        assert_eq!(m.keys().map(|s| &**s).collect::<Vec<_>>(), ["ETH/USDC", "ETH/USDC.M", "ETH/USDC.X"]);
    }
}
