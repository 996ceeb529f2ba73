//! What a warm webhook container remembers between deliveries, so a
//! delivery usually costs one DynamoDB request (the event's write on its
//! order) instead of five. Every entry is either immutable or safe to use stale:
//!
//! - intent links never change once written;
//! - a store's connection is used to verify signatures; a stale one can
//!   only make verification fail (a replaced secret), and a failure is
//!   retried with a fresh read, so it never turns a good delivery away.
//!   The other way round it is bounded by `CONNECTION_TTL`: for that long a
//!   container may still accept events signed with a secret just replaced
//!   or a store just disconnected, which only applies Stripe's own news;
//! - the time this container last noted a delivery for a store, to skip
//!   rewriting `last_webhook_at` on busy stores (health needs minutes, not
//!   seconds).

use crate::domain::StoreId;
use crate::store::{IntentLink, StripeConnection};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CONNECTION_TTL: Duration = Duration::from_secs(30);
/// `last_webhook_at` is rewritten at most this often per store and container.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Entries per map before it is emptied: bounds a container's memory
/// whatever the traffic, at the price of a few extra reads afterwards.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct WebhookMemory {
    connections: Bounded<StoreId, (Arc<StripeConnection>, Instant)>,
    links: Bounded<String, IntentLink>,
    touched: Bounded<StoreId, Instant>,
}

impl WebhookMemory {
    pub fn connection(&self, store_id: &StoreId, now: Instant) -> Option<Arc<StripeConnection>> {
        self.connections
            .get(store_id)
            .filter(|(_, at)| now.saturating_duration_since(*at) < CONNECTION_TTL)
            .map(|(connection, _)| connection)
    }

    pub fn remember_connection(&self, connection: Arc<StripeConnection>, now: Instant) {
        self.connections
            .insert(connection.store_id, (connection, now));
    }

    pub fn forget_connection(&self, store_id: &StoreId) {
        self.connections.remove(store_id);
    }

    pub fn intent_link(&self, payment_intent: &str) -> Option<IntentLink> {
        self.links.get(payment_intent)
    }

    pub fn remember_intent_link(&self, payment_intent: &str, link: IntentLink) {
        self.links.insert(payment_intent.to_owned(), link);
    }

    /// True when this container has not noted a delivery for the store
    /// within `TOUCH_INTERVAL`; records `now` as noted if so.
    pub fn due_for_touch(&self, store_id: &StoreId, now: Instant) -> bool {
        let due = self
            .touched
            .get(store_id)
            .is_none_or(|at| now.saturating_duration_since(at) >= TOUCH_INTERVAL);
        if due {
            self.touched.insert(*store_id, now);
        }
        due
    }
}

/// A map emptied when it reaches `CAPACITY`.
struct Bounded<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<K, V>) -> T) -> T {
        // A panic while holding the lock leaves at worst a stale cache entry;
        // keep serving rather than poisoning every later delivery.
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut map)
    }

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.with(|map| map.get(key).cloned())
    }

    fn insert(&self, key: K, value: V) {
        self.with(|map| {
            if map.len() >= CAPACITY && !map.contains_key(&key) {
                map.clear();
            }
            map.insert(key, value);
        });
    }

    fn remove(&self, key: &K) {
        self.with(|map| map.remove(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(n: u128) -> StoreId {
        StoreId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
    }

    #[test]
    fn a_store_is_touched_once_per_interval() {
        let memory = WebhookMemory::default();
        let start = Instant::now();
        assert!(memory.due_for_touch(&store(1), start));
        assert!(!memory.due_for_touch(&store(1), start + Duration::from_secs(59)));
        assert!(
            memory.due_for_touch(&store(2), start),
            "stores are independent"
        );
        assert!(memory.due_for_touch(&store(1), start + TOUCH_INTERVAL));
    }

    fn connection(store_id: StoreId) -> Arc<StripeConnection> {
        Arc::new(StripeConnection {
            store_id,
            publishable_key: crate::domain::PublishableKey::parse("pk_test_123456789").unwrap(),
            key_kind: crate::domain::KeyKind::Secret,
            account_id: None,
            secret_key: crate::vault::SealedSecret {
                wrapped_key: vec![1],
                token: "t".into(),
            },
            webhook_secret: None,
            connected_at: 1,
            updated_at: 1,
            version: 1,
            activity: Default::default(),
            last_key_replacement: None,
        })
    }

    #[test]
    fn connections_are_kept_for_the_ttl_only() {
        let memory = WebhookMemory::default();
        let start = Instant::now();
        memory.remember_connection(connection(store(1)), start);
        let within = start + CONNECTION_TTL - Duration::from_millis(1);
        assert_eq!(
            memory.connection(&store(1), within).map(|c| c.store_id),
            Some(store(1))
        );
        assert!(
            memory
                .connection(&store(1), start + CONNECTION_TTL)
                .is_none()
        );
        assert!(memory.connection(&store(2), start).is_none());
        memory.forget_connection(&store(1));
        assert!(memory.connection(&store(1), start).is_none());
    }

    #[test]
    fn links_are_remembered_and_the_maps_stay_bounded() {
        let memory = WebhookMemory::default();
        let link = IntentLink {
            order_id: "o1".into(),
            store_id: store(1),
        };
        memory.remember_intent_link("pi_0", link.clone());
        assert_eq!(memory.intent_link("pi_0"), Some(link.clone()));
        assert_eq!(memory.intent_link("pi_other"), None);
        for i in 1..=CAPACITY {
            memory.remember_intent_link(&format!("pi_{i}"), link.clone());
        }
        let size = memory.links.with(|map| map.len());
        assert!(size <= CAPACITY, "{size} entries");
        assert_eq!(
            memory.intent_link("pi_0"),
            None,
            "emptied when full, then refilled"
        );
    }
}
