//! The unmeasured part: stores with signing secrets, their orders (each
//! order's story at Stripe), and the signed deliveries, shuffled or in
//! Stripe's order per order.

use super::lifecycle::{self, Lifecycle, StripeEvent};
use super::payload::{self, Subject};
use crate::BoxError;
use crate::fixtures;
use crate::rng::Rng;
use shared::domain::{OrderId, StoreId};
use shared::{App, clock};
use std::sync::Arc;

pub struct Store {
    pub store_id: StoreId,
    pub whsec: String,
}

/// One order, its story at Stripe and the events it produced.
pub struct OrderPlan {
    pub store: usize,
    pub order_id: OrderId,
    /// The checkout token the customer's browser holds.
    pub token: String,
    /// Set by create-intent.
    pub payment_intent: String,
    pub lifecycle: Lifecycle,
    pub events: Vec<StripeEvent>,
    pub event_ids: Vec<String>,
}

impl OrderPlan {
    /// The story pays: Stripe holds the intent succeeded.
    pub fn paid(&self) -> bool {
        self.events.contains(&StripeEvent::Succeeded)
    }
}

/// One POST Stripe makes: the same event may be delivered several times.
pub struct Delivery {
    pub order: usize,
    /// Index into the order's events.
    pub event: usize,
    pub store_id: StoreId,
    pub body: Vec<u8>,
    pub signature: String,
}

pub struct Workload {
    pub stores: Vec<Store>,
    pub orders: Vec<OrderPlan>,
    /// Each order's event bodies, in Stripe's order.
    pub bodies: Vec<Vec<Vec<u8>>>,
    /// In delivery order (shared with the senders).
    pub deliveries: Arc<Vec<Delivery>>,
    /// When the deliveries were signed (their `t=`).
    pub signed_at: u64,
    /// Picks the duplicates and the delivery order (after the stories).
    rng: Rng,
}

pub struct Shape {
    pub stores: usize,
    pub orders: usize,
    pub distinct_events: usize,
    pub duplicates: usize,
    pub seed: u64,
    /// How the deliveries are ordered.
    pub order: DeliveryOrder,
}

/// How the deliveries are ordered (`--order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOrder {
    /// Every delivery shuffled together: each order's events arrive in any
    /// order (the worst case).
    Shuffled,
    /// Each order's events in the order Stripe generated them, orders
    /// interleaved, each duplicate 1–[`MAX_DUPLICATE_DELAY`] events after
    /// its original (as Stripe's retries would be).
    Stripe,
}

/// A duplicate in [`DeliveryOrder::Stripe`] comes this many distinct events
/// after its original at most.
pub const MAX_DUPLICATE_DELAY: usize = 50;

/// Connects the stores and writes the orders with their checkout sessions
/// (through `app`, whose counters nobody reads); the stories come from the
/// seed. Ids are new each run, so runs can share a stack.
pub async fn prepare(app: &App, shape: &Shape) -> Result<Workload, BoxError> {
    let mut rng = Rng::new(shape.seed);
    let lifecycles = lifecycle::plan(shape.orders, shape.distinct_events, &mut rng)?;
    let mut stores = Vec::with_capacity(shape.stores);
    for _ in 0..shape.stores {
        let (store_id, whsec) = fixtures::connect_store_with_webhook(app).await?;
        stores.push(Store { store_id, whsec });
    }
    let mut orders = Vec::with_capacity(lifecycles.len());
    for (i, lifecycle) in lifecycles.into_iter().enumerate() {
        let store = i % shape.stores;
        let checkout =
            fixtures::create_checkout(app, stores[store].store_id, lifecycle.amount).await?;
        let event_ids = (0..lifecycle.event_count())
            .map(|_| format!("evt_3{}", uuid::Uuid::new_v4().simple()))
            .collect();
        orders.push(OrderPlan {
            store,
            order_id: checkout.order_id,
            token: checkout.token,
            payment_intent: String::new(),
            events: lifecycle.events(),
            lifecycle,
            event_ids,
        });
    }
    Ok(Workload {
        stores,
        orders,
        bodies: Vec::new(),
        deliveries: Arc::default(),
        signed_at: 0,
        rng,
    })
}

impl Workload {
    /// Once every order has its intent: the event bodies, created a minute
    /// apart in Stripe's order (the first an hour ago), and the deliveries
    /// signed now with each store's secret, in `shape.order`.
    pub fn sign_deliveries(&mut self, shape: &Shape) {
        self.signed_at = clock::now();
        let first_created = self.signed_at - 3600;
        self.bodies = self
            .orders
            .iter()
            .map(|plan| {
                let subject = Subject {
                    store_id: self.stores[plan.store].store_id,
                    order_id: &plan.order_id,
                    amount: plan.lifecycle.amount,
                    payment_intent: &plan.payment_intent,
                };
                let created = |i| lifecycle::created_at(first_created, i);
                (plan.events.iter().zip(&plan.event_ids).enumerate())
                    .map(|(i, (event, id))| {
                        payload::event_body(id, event, &subject, created(i)).into_bytes()
                    })
                    .collect()
            })
            .collect();
        let counts: Vec<usize> = self.orders.iter().map(|plan| plan.events.len()).collect();
        let slots = delivery_slots(&counts, shape.duplicates, shape.order, &mut self.rng);
        let deliveries = slots
            .into_iter()
            .map(|(order, event)| {
                let store = &self.stores[self.orders[order].store];
                let body = self.bodies[order][event].clone();
                Delivery {
                    order,
                    event,
                    store_id: store.store_id,
                    signature: payload::sign(&store.whsec, self.signed_at, &body),
                    body,
                }
            })
            .collect();
        self.deliveries = Arc::new(deliveries);
    }

    pub fn distinct_events(&self) -> usize {
        self.orders.iter().map(|plan| plan.events.len()).sum()
    }
}

/// The deliveries as (order, event index) pairs, in delivery order: every
/// event of every order (`event_counts[o]` events for order `o`) once, plus
/// `duplicates` deliveries again of events picked uniformly at random (with
/// replacement). `rng` makes the same picks whatever `order`; then
/// - `Shuffled`: everything shuffled together, so each order's events arrive
///   in any order;
/// - `Stripe`: each order's events spread evenly over the stream in Stripe's
///   order, from a random phase per order (event `i` of an order of `k`
///   events at `(i + phase) / k` of the stream), so consecutive events of one
///   order are about `distinct / k` deliveries apart; each duplicate then
///   1–[`MAX_DUPLICATE_DELAY`] distinct events after its original.
pub fn delivery_slots(
    event_counts: &[usize],
    duplicates: usize,
    order: DeliveryOrder,
    rng: &mut Rng,
) -> Vec<(usize, usize)> {
    let mut slots: Vec<(usize, usize)> = event_counts
        .iter()
        .enumerate()
        .flat_map(|(o, &count)| (0..count).map(move |e| (o, e)))
        .collect();
    let distinct = slots.len();
    let picks: Vec<usize> = (0..duplicates).map(|_| rng.below(distinct)).collect();
    match order {
        DeliveryOrder::Shuffled => {
            for &i in &picks {
                slots.push(slots[i]);
            }
            rng.shuffle(&mut slots);
            slots
        }
        DeliveryOrder::Stripe => {
            // Where event `e` of order `o` falls in the stream, as a 64.64
            // fixed-point fraction: (e + phase) / count, increasing in `e`.
            let mut keyed: Vec<(u128, usize)> = Vec::with_capacity(distinct);
            let mut first = 0;
            for &count in event_counts {
                let phase = u128::from(rng.next_u64());
                for e in 0..count {
                    keyed.push((((e as u128) << 64 | phase) / count as u128, first + e));
                }
                first += count;
            }
            // Ties (equal keys) by slot index, so the sort is deterministic
            // and an order's own events keep their order.
            keyed.sort_unstable();
            let mut position = vec![0; distinct];
            for (p, &(_, slot)) in keyed.iter().enumerate() {
                position[slot] = p;
            }
            // Duplicates delivered after the distinct event at `after[p]`.
            let mut after: Vec<Vec<usize>> = vec![Vec::new(); distinct];
            for &slot in &picks {
                let delay = rng.between(1, MAX_DUPLICATE_DELAY as u64) as usize;
                after[(position[slot] + delay).min(distinct - 1)].push(slot);
            }
            let mut ordered = Vec::with_capacity(distinct + duplicates);
            for (&(_, slot), again) in keyed.iter().zip(&after) {
                ordered.push(slots[slot]);
                ordered.extend(again.iter().map(|&i| slots[i]));
            }
            ordered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The default run's event counts (1,000 orders, 7,000 events) and slots.
    fn slots(order: DeliveryOrder) -> (Vec<usize>, Vec<(usize, usize)>) {
        let mut rng = Rng::new(20_261_128);
        let counts: Vec<usize> = lifecycle::plan(1000, 7000, &mut rng)
            .unwrap()
            .iter()
            .map(Lifecycle::event_count)
            .collect();
        let slots = delivery_slots(&counts, 3000, order, &mut rng);
        (counts, slots)
    }

    fn copies(slots: &[(usize, usize)]) -> HashMap<(usize, usize), usize> {
        let mut copies = HashMap::new();
        for &slot in slots {
            *copies.entry(slot).or_default() += 1;
        }
        copies
    }

    #[test]
    fn both_orders_deliver_every_event_and_the_same_duplicates() {
        let (_, stripe) = slots(DeliveryOrder::Stripe);
        let (_, shuffled) = slots(DeliveryOrder::Shuffled);
        assert_eq!((stripe.len(), copies(&stripe).len()), (10_000, 7000));
        assert_eq!(copies(&stripe), copies(&shuffled));
        assert_ne!(stripe, shuffled);
    }

    #[test]
    fn stripe_order_keeps_each_orders_events_in_order() {
        let (counts, slots) = slots(DeliveryOrder::Stripe);
        let mut next = vec![0; counts.len()];
        for (o, e) in slots {
            if e == next[o] {
                next[o] += 1;
            } else {
                assert!(e < next[o], "order {o}: event {e} before event {}", next[o]);
            }
        }
        assert_eq!(next, counts);
    }
}
