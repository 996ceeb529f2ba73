//! The unmeasured part: stores with signing secrets, orders with intents,
//! and the signed deliveries, shuffled or in Stripe's order per order.

use super::lifecycle::{self, Lifecycle, StripeEvent};
use super::payload::{self, StripeIds, Subject};
use crate::BoxError;
use crate::fixtures;
use crate::rng::Rng;
use shared::domain::StoreId;
use shared::{App, clock};
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Store {
    pub store_id: StoreId,
    pub whsec: String,
}

/// One order, its story at Stripe and the events it produced.
pub struct OrderPlan {
    pub store: usize,
    pub order_id: String,
    pub ids: StripeIds,
    pub lifecycle: Lifecycle,
    pub events: Vec<StripeEvent>,
    pub event_ids: Vec<String>,
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
    /// In delivery order.
    pub deliveries: Vec<Delivery>,
    pub distinct_events: usize,
    /// When the deliveries were signed (their `t=`).
    pub signed_at: u64,
    /// Stripe's `created` of each order's first event; the others follow
    /// at `lifecycle::created_at`.
    pub first_created: u64,
    /// Writing the stores and orders.
    pub setup_time: Duration,
    /// Building, signing and ordering the deliveries.
    pub build_time: Duration,
}

pub struct Shape {
    pub stores: usize,
    pub orders: usize,
    pub distinct_events: usize,
    pub duplicates: usize,
    pub seed: u64,
    /// Orders written at once during setup.
    pub setup_concurrency: usize,
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

impl DeliveryOrder {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryOrder::Shuffled => "shuffled",
            DeliveryOrder::Stripe => "stripe",
        }
    }
}

impl FromStr for DeliveryOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shuffled" => Ok(DeliveryOrder::Shuffled),
            "stripe" => Ok(DeliveryOrder::Stripe),
            _ => Err(format!("unknown delivery order {s:?} (shuffled or stripe)")),
        }
    }
}

/// Connects the stores and writes the orders with their intents (through
/// `app`, whose counters nobody reads), then builds the deliveries.
pub async fn prepare(app: Arc<App>, shape: &Shape) -> Result<Workload, BoxError> {
    let started = Instant::now();
    let mut rng = Rng::new(shape.seed);
    let lifecycles = lifecycle::plan(shape.orders, shape.distinct_events, &mut rng)?;

    let mut stores = Vec::with_capacity(shape.stores);
    for _ in 0..shape.stores {
        let (store_id, whsec) = fixtures::connect_store_with_webhook(&app).await?;
        stores.push(Store { store_id, whsec });
    }

    // Ids first, then the writes in parallel. The seed fixes the stories
    // and the delivery order; ids are new each run, so runs can share a
    // stack (a `PI#` link is forever).
    let mut id_rng = Rng::new(uuid::Uuid::new_v4().as_u64_pair().0);
    let mut seen_ids = HashSet::new();
    let mut plans: Vec<(usize, StripeIds, Lifecycle, Vec<String>)> = Vec::new();
    for (i, lifecycle) in lifecycles.into_iter().enumerate() {
        let ids = StripeIds::new(&mut id_rng);
        let event_ids: Vec<String> = (0..lifecycle.event_count())
            .map(|_| format!("evt_3{}", id_rng.alphanumeric(23)))
            .collect();
        for id in event_ids.iter().chain([&ids.payment_intent]) {
            if !seen_ids.insert(id.clone()) {
                return Err(format!("generated id {id} twice").into());
            }
        }
        plans.push((i % shape.stores, ids, lifecycle, event_ids));
    }
    let orders = write_orders(app, &stores, plans, shape.setup_concurrency).await?;
    let setup_time = started.elapsed();

    let event_counts: Vec<usize> = orders.iter().map(|plan| plan.events.len()).collect();
    let slots = delivery_slots(&event_counts, shape.duplicates, shape.order, &mut rng);
    let distinct_events = event_counts.iter().sum();

    let api_version = shared::stripe::webhook_endpoints::api_version();
    let signed_at = clock::now();
    let first_created = signed_at - 3600;
    let bodies: Vec<Vec<Vec<u8>>> = orders
        .iter()
        .map(|plan| {
            let subject = Subject {
                store_id: stores[plan.store].store_id,
                order_id: &plan.order_id,
                amount: plan.lifecycle.amount,
                ids: &plan.ids,
            };
            let mut refunds = 0;
            plan.events
                .iter()
                .zip(&plan.event_ids)
                .enumerate()
                .map(|(i, (event, event_id))| {
                    if matches!(event, StripeEvent::Refunded { .. }) {
                        refunds += 1;
                    }
                    // A minute apart, in Stripe's order (what the model
                    // assumes).
                    let created = lifecycle::created_at(first_created, i);
                    payload::event_body(event_id, event, &subject, refunds, created, &api_version)
                        .into_bytes()
                })
                .collect()
        })
        .collect();
    let deliveries = slots
        .into_iter()
        .map(|(order, event)| {
            let store = &stores[orders[order].store];
            let body = bodies[order][event].clone();
            Delivery {
                order,
                event,
                store_id: store.store_id,
                signature: payload::sign(&store.whsec, signed_at, &body),
                body,
            }
        })
        .collect();
    Ok(Workload {
        stores,
        orders,
        deliveries,
        distinct_events,
        signed_at,
        first_created,
        setup_time,
        build_time: started.elapsed() - setup_time,
    })
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

async fn write_orders(
    app: Arc<App>,
    stores: &[Store],
    plans: Vec<(usize, StripeIds, Lifecycle, Vec<String>)>,
    concurrency: usize,
) -> Result<Vec<OrderPlan>, BoxError> {
    let total = plans.len();
    let mut pending = plans.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut done: Vec<Option<OrderPlan>> = (0..total).map(|_| None).collect();
    loop {
        while running.len() < concurrency.max(1) {
            let Some((i, (store, mut ids, lifecycle, event_ids))) = pending.next() else {
                break;
            };
            let app = app.clone();
            let store_id = stores[store].store_id;
            running.spawn(async move {
                let events = lifecycle.events();
                // The webhook pays an order only on Stripe's word: the
                // intent is made (and paid, if the story pays) in the
                // emulator, so each `succeeded` is confirmed by one read.
                let paid = events.contains(&StripeEvent::Succeeded);
                let (checkout, payment_intent) = fixtures::create_checkout_with_stripe_intent(
                    &app,
                    store_id,
                    lifecycle.amount,
                    paid,
                )
                .await?;
                ids.payment_intent = payment_intent;
                Ok::<_, BoxError>((
                    i,
                    OrderPlan {
                        store,
                        order_id: checkout.order_id,
                        ids,
                        lifecycle,
                        events,
                        event_ids,
                    },
                ))
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, plan) = joined??;
        done[i] = Some(plan);
    }
    done.into_iter()
        .map(|plan| plan.ok_or_else(|| BoxError::from("an order was not written")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SEED: u64 = 20_261_128;

    /// The default run's event counts: 1,000 orders, 7,000 events.
    fn event_counts(rng: &mut Rng) -> Vec<usize> {
        lifecycle::plan(1000, 7000, rng)
            .unwrap()
            .iter()
            .map(Lifecycle::event_count)
            .collect()
    }

    fn slots(order: DeliveryOrder, seed: u64) -> (Vec<usize>, Vec<(usize, usize)>) {
        let mut rng = Rng::new(seed);
        let counts = event_counts(&mut rng);
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
    fn shuffled_is_todays_order() {
        // What `prepare` did before `--order`: the same picks, then one shuffle.
        let mut rng = Rng::new(SEED);
        let counts = event_counts(&mut rng);
        let mut expected: Vec<(usize, usize)> = counts
            .iter()
            .enumerate()
            .flat_map(|(o, &n)| (0..n).map(move |e| (o, e)))
            .collect();
        let distinct = expected.len();
        for _ in 0..3000 {
            let again = expected[rng.below(distinct)];
            expected.push(again);
        }
        rng.shuffle(&mut expected);
        assert_eq!(slots(DeliveryOrder::Shuffled, SEED).1, expected);
    }

    #[test]
    fn stripe_order_has_the_same_deliveries_as_shuffled() {
        let (counts, stripe) = slots(DeliveryOrder::Stripe, SEED);
        let (_, shuffled) = slots(DeliveryOrder::Shuffled, SEED);
        assert_eq!(counts.iter().sum::<usize>(), 7000);
        assert_eq!(stripe.len(), 10_000);
        // Every event at least once, and the same duplicates (same picks).
        let copies = copies(&stripe);
        assert_eq!(copies.len(), 7000);
        assert_eq!(copies, self::copies(&shuffled));
    }

    #[test]
    fn stripe_order_keeps_each_orders_events_in_order_and_far_apart() {
        let (counts, slots) = slots(DeliveryOrder::Stripe, SEED);
        let mut first: Vec<Vec<Option<usize>>> = counts.iter().map(|&n| vec![None; n]).collect();
        for (d, &(o, e)) in slots.iter().enumerate() {
            first[o][e].get_or_insert(d);
        }
        let mut closest = usize::MAX;
        for (o, firsts) in first.iter().enumerate() {
            let firsts: Vec<usize> = firsts.iter().map(|f| f.unwrap()).collect();
            assert!(
                firsts.windows(2).all(|w| w[0] < w[1]),
                "order {o}: {firsts:?}"
            );
            closest = closest.min(
                firsts
                    .windows(2)
                    .map(|w| w[1] - w[0])
                    .min()
                    .unwrap_or(usize::MAX),
            );
        }
        // With 8 senders, events of one order never in flight together.
        assert!(
            closest > 100,
            "closest events of one order: {closest} apart"
        );
    }

    #[test]
    fn stripe_order_puts_each_duplicate_shortly_after_its_original() {
        let (_, slots) = slots(DeliveryOrder::Stripe, SEED);
        let mut first: HashMap<(usize, usize), usize> = HashMap::new();
        let mut distinct_seen = 0;
        let mut duplicates = 0;
        for &slot in &slots {
            match first.get(&slot) {
                None => {
                    first.insert(slot, distinct_seen);
                    distinct_seen += 1;
                }
                Some(&original) => {
                    // Counted in distinct events since the original.
                    let delay = distinct_seen - 1 - original;
                    assert!(
                        (1..=MAX_DUPLICATE_DELAY).contains(&delay)
                            || distinct_seen == 7000 && delay < MAX_DUPLICATE_DELAY,
                        "{slot:?}: {delay}"
                    );
                    duplicates += 1;
                }
            }
        }
        assert_eq!((distinct_seen, duplicates), (7000, 3000));
    }

    #[test]
    fn same_seed_same_order_other_seed_another() {
        for order in [DeliveryOrder::Shuffled, DeliveryOrder::Stripe] {
            assert_eq!(slots(order, SEED), slots(order, SEED), "{order:?}");
            assert_ne!(slots(order, SEED).1, slots(order, SEED + 1).1, "{order:?}");
        }
        assert_ne!(
            slots(DeliveryOrder::Stripe, SEED).1,
            slots(DeliveryOrder::Shuffled, SEED).1
        );
    }

    #[test]
    fn delivery_order_parses_its_names() {
        for order in [DeliveryOrder::Shuffled, DeliveryOrder::Stripe] {
            assert_eq!(order.name().parse::<DeliveryOrder>(), Ok(order));
        }
        assert!("random".parse::<DeliveryOrder>().is_err());
    }
}
