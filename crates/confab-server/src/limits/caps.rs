//! Caps on open connections per key (user id, client address). A connection
//! holds a [`ConnSlot`] for as long as it lives; dropping the slot gives it
//! back, and a key with no open connection is removed from the map, so the map
//! never holds more entries than there are open connections.

use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// Counts open connections per key against a maximum.
pub struct ConnCap<K: Hash + Eq> {
    max: usize,
    counts: Counts<K>,
    /// Refusals, for `/metrics` (unregistered unless [`ConnCap::counting`]).
    refused: Counter,
}

/// One admitted connection; dropping it releases the slot.
#[must_use = "the slot is released when dropped"]
pub struct ConnSlot<K: Hash + Eq> {
    counts: Counts<K>,
    key: Option<K>,
}

fn lock<K>(counts: &Mutex<HashMap<K, usize>>) -> MutexGuard<'_, HashMap<K, usize>> {
    // Counts are plain integers updated in one step: a poisoned lock still
    // holds consistent data.
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq + Clone> ConnCap<K> {
    /// At most `max` open connections per key.
    pub fn new(max: usize) -> Self {
        ConnCap {
            max,
            counts: Arc::default(),
            refused: Counter::default(),
        }
    }

    /// Counts every refusal in `refused` (a series of the server's metrics).
    pub fn counting(mut self, refused: Counter) -> Self {
        self.refused = refused;
        self
    }

    /// Admits one more connection for `key`, or `None` when it has `max` already.
    pub fn try_acquire(&self, key: K) -> Option<ConnSlot<K>> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            self.refused.inc();
            return None;
        }
        *count += 1;
        Some(ConnSlot {
            counts: self.counts.clone(),
            key: Some(key),
        })
    }

    /// Open connections counted for `key`.
    pub fn count(&self, key: &K) -> usize {
        lock(&self.counts).get(key).copied().unwrap_or(0)
    }

    /// Keys with at least one open connection.
    pub fn keys(&self) -> usize {
        lock(&self.counts).len()
    }
}

impl<K: Hash + Eq> Drop for ConnSlot<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_key_and_released_on_drop() {
        let cap = ConnCap::new(2);
        let a1 = cap.try_acquire("a").unwrap();
        let _a2 = cap.try_acquire("a").unwrap();
        assert!(cap.try_acquire("a").is_none());
        let _b = cap.try_acquire("b").unwrap();
        drop(a1);
        assert_eq!(cap.count(&"a"), 1);
        let _a3 = cap.try_acquire("a").unwrap();
        assert!(cap.try_acquire("a").is_none());
    }

    #[test]
    fn keys_without_connections_are_removed() {
        let cap = ConnCap::new(1);
        // A refused attempt leaves no entry behind either.
        let slots: Vec<_> = (0..100).filter_map(|k| cap.try_acquire(k)).collect();
        assert!(cap.try_acquire(5).is_none());
        assert_eq!(cap.keys(), 100);
        drop(slots);
        assert_eq!(cap.keys(), 0);
    }
}
