//! What a warm webhook container remembers between deliveries, so a
//! delivery usually costs one DynamoDB request (the event's write on its
//! order) instead of five, and a forged one none. Every entry is either
//! immutable or safe to use stale:
//!
//! - intent links never change once written;
//! - a store's connection, or that it has none, is used to verify
//!   signatures. A stale one can only make verification fail (a replaced
//!   secret, a store connected since), and a failure is retried with a
//!   fresh read, so it does not turn a good delivery away; but at most
//!   `REREADS_PER_INTERVAL` failing deliveries per store read again within
//!   `REREAD_INTERVAL`, so a flood of forgeries (or of deliveries for a
//!   store that is not connected) costs a few reads a second, not a read
//!   each. The price, under such a flood only: for up to `REREAD_INTERVAL`,
//!   a delivery signed with a secret saved just before, or for a store
//!   connected just before, can be turned away (400), and Stripe delivers
//!   it again later. The other way round it is bounded by `CONNECTION_TTL`:
//!   for that long a container may still accept events signed with a
//!   secret just replaced or a store just disconnected, which only applies
//!   Stripe's own news;
//! - the time this container last noted a delivery for a store, to skip
//!   rewriting `last_webhook_at` on busy stores (health needs minutes, not
//!   seconds);
//! - failed deliveries not yet written (`failures.rs`);
//! - the `succeeded` events this container is confirming with Stripe, so
//!   overlapping deliveries of one ask Stripe once (`in_flight.rs`).
//!
//! Every map is bounded (`bounded.rs`).

use super::bounded::Bounded;
use super::failures::FailureTally;
use crate::domain::StoreId;
use crate::store::{IntentLink, StripeConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CONNECTION_TTL: Duration = Duration::from_secs(30);
/// Failing deliveries read a store again at most `REREADS_PER_INTERVAL`
/// times per `REREAD_INTERVAL`: enough that the few failures of a quiet
/// store (a secret saved a moment after a failing delivery, Stripe's
/// retry) each see a fresh read; a flood costs three reads a second.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(1);
pub const REREADS_PER_INTERVAL: u32 = 3;
/// `last_webhook_at` is rewritten at most this often per store and container.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// A store's connection as this container last read it.
#[derive(Clone)]
pub struct Remembered {
    /// `None`: the store had no connection when it was read.
    pub connection: Option<Arc<StripeConnection>>,
    read_at: Instant,
    /// When the current window of reads for failing deliveries began, and
    /// how many it has had.
    rereads: Option<(Instant, u32)>,
}

#[derive(Default)]
pub struct WebhookMemory {
    connections: Bounded<StoreId, Remembered>,
    links: Bounded<String, IntentLink>,
    touched: Bounded<StoreId, Instant>,
    pub failures: FailureTally,
    /// `succeeded` events being confirmed with Stripe (`in_flight.rs`).
    pub confirming: super::in_flight::InFlight,
}

impl WebhookMemory {
    pub fn connection(&self, store_id: &StoreId, now: Instant) -> Option<Remembered> {
        self.connections
            .get(store_id)
            .filter(|remembered| now.saturating_duration_since(remembered.read_at) < CONNECTION_TTL)
    }

    /// `connection` was just read for a delivery; `failed`: that delivery
    /// did not verify with it.
    pub fn remember_connection(
        &self,
        store_id: StoreId,
        connection: Option<Arc<StripeConnection>>,
        failed: bool,
        now: Instant,
    ) {
        self.connections.with(|map| {
            // A failed read belongs to the current window (`may_reread`
            // counted it) or opens one; a verified one ends it.
            let rereads = failed.then(|| {
                map.get(&store_id)
                    .and_then(|r| r.rereads)
                    .filter(|(start, _)| now.saturating_duration_since(*start) < REREAD_INTERVAL)
                    .unwrap_or((now, 1))
            });
            let remembered = Remembered {
                connection,
                read_at: now,
                rereads,
            };
            super::bounded::make_room(map, &store_id);
            map.insert(store_id, remembered);
        });
    }

    /// For a delivery that failed with the remembered connection: true
    /// (and the read is counted) while the store's current window has had
    /// fewer than `REREADS_PER_INTERVAL` reads.
    pub fn may_reread(&self, store_id: &StoreId, now: Instant) -> bool {
        self.connections.with(|map| {
            let Some(remembered) = map.get_mut(store_id) else {
                return true;
            };
            match &mut remembered.rereads {
                Some((start, reads)) if now.saturating_duration_since(*start) < REREAD_INTERVAL => {
                    let allowed = *reads < REREADS_PER_INTERVAL;
                    if allowed {
                        *reads += 1;
                    }
                    allowed
                }
                window => {
                    *window = Some((now, 1));
                    true
                }
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderId;
    use crate::webhooks::bounded::CAPACITY;

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
            publishable_key_proven_at: None,
        })
    }

    fn remembered_store(memory: &WebhookMemory, n: u128, now: Instant) -> Option<StoreId> {
        memory
            .connection(&store(n), now)
            .and_then(|r| r.connection)
            .map(|c| c.store_id)
    }

    #[test]
    fn connections_are_kept_for_the_ttl_only() {
        let memory = WebhookMemory::default();
        let start = Instant::now();
        memory.remember_connection(store(1), Some(connection(store(1))), false, start);
        let within = start + CONNECTION_TTL - Duration::from_millis(1);
        assert_eq!(remembered_store(&memory, 1, within), Some(store(1)));
        assert!(
            memory
                .connection(&store(1), start + CONNECTION_TTL)
                .is_none()
        );
        assert!(memory.connection(&store(2), start).is_none());
    }

    #[test]
    fn a_store_without_a_connection_is_remembered_as_such() {
        let memory = WebhookMemory::default();
        let start = Instant::now();
        memory.remember_connection(store(1), None, true, start);
        let remembered = memory.connection(&store(1), start).expect("remembered");
        assert!(remembered.connection.is_none());
        assert!(
            memory
                .connection(&store(1), start + CONNECTION_TTL)
                .is_none()
        );
    }

    #[test]
    fn failing_deliveries_reread_a_few_times_a_second_at_most() {
        let memory = WebhookMemory::default();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let rereads_at =
            |n: u128, at: Instant| (0..10).filter(|_| memory.may_reread(&store(n), at)).count();
        // Verified with it: failures after it are read again, a few a second.
        memory.remember_connection(store(1), Some(connection(store(1))), false, start);
        assert!(memory.may_reread(&store(1), ms(1)), "a secret saved since");
        // That read failed too (it was a forgery): it counts in the window.
        memory.remember_connection(store(1), Some(connection(store(1))), true, ms(2));
        assert_eq!(rereads_at(1, ms(3)), REREADS_PER_INTERVAL as usize - 1);
        assert_eq!(
            rereads_at(1, ms(1) + REREAD_INTERVAL - Duration::from_millis(1)),
            0
        );
        assert_eq!(
            rereads_at(1, ms(1) + REREAD_INTERVAL),
            REREADS_PER_INTERVAL as usize,
            "a new window"
        );
        // A verified read ends the window.
        memory.remember_connection(store(1), Some(connection(store(1))), false, ms(1500));
        assert!(memory.may_reread(&store(1), ms(1501)));
        // A store never read, or not connected when read: the same rule, the
        // first read opening the window.
        assert!(memory.may_reread(&store(2), start));
        memory.remember_connection(store(3), None, true, start);
        assert_eq!(rereads_at(3, ms(999)), REREADS_PER_INTERVAL as usize - 1);
        assert!(memory.may_reread(&store(3), start + REREAD_INTERVAL));
    }

    #[test]
    fn a_flood_of_made_up_store_ids_keeps_the_memory_bounded() {
        let memory = WebhookMemory::default();
        let now = Instant::now();
        for n in 0..(CAPACITY as u128 + 10) {
            memory.remember_connection(store(n), None, true, now);
        }
        assert!(
            memory.connections.len() <= CAPACITY,
            "{}",
            memory.connections.len()
        );
    }

    #[test]
    fn links_are_remembered_and_the_maps_stay_bounded() {
        let memory = WebhookMemory::default();
        let link = IntentLink {
            order_id: OrderId::parse("5d9e7c1a-0000-4000-8000-000000000001").unwrap(),
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
