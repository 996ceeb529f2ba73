//! A map for what a warm container remembers: it is emptied when it
//! reaches its capacity, so memory is bounded whatever the traffic (a flood
//! of made-up store ids included), at the price of a few extra reads after.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Entries per map before it is emptied.
pub const CAPACITY: usize = 10_000;

pub struct Bounded<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    pub fn with<T>(&self, f: impl FnOnce(&mut HashMap<K, V>) -> T) -> T {
        // A panic while holding the lock leaves at worst a stale cache entry;
        // keep serving rather than poisoning every later delivery.
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut map)
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.with(|map| map.get(key).cloned())
    }

    pub fn insert(&self, key: K, value: V) {
        self.with(|map| {
            make_room(map, &key);
            map.insert(key, value);
        });
    }

    /// Reads and changes one entry under the lock (inserting `V::default()`
    /// first when absent), so two deliveries cannot both claim a turn.
    pub fn update<T>(&self, key: K, f: impl FnOnce(&mut V) -> T) -> T
    where
        V: Default,
    {
        self.with(|map| {
            make_room(map, &key);
            f(map.entry(key).or_default())
        })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.with(|map| map.len())
    }
}

pub fn make_room<K: Eq + Hash, V>(map: &mut HashMap<K, V>, key: &K) {
    if map.len() >= CAPACITY && !map.contains_key(key) {
        map.clear();
    }
}
