//! The unmeasured part: stores with signing secrets, orders with intents,
//! and the shuffled, signed deliveries.

use super::lifecycle::{self, Lifecycle, StripeEvent};
use super::payload::{self, StripeIds, Subject};
use crate::BoxError;
use crate::fixtures;
use crate::rng::Rng;
use shared::domain::StoreId;
use shared::{App, clock};
use std::collections::HashSet;
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
    /// Building, signing and shuffling the deliveries.
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

    // Every event once, plus duplicates of events picked at random; then all
    // shuffled together, so each order's events arrive in any order.
    let mut slots: Vec<(usize, usize)> = orders
        .iter()
        .enumerate()
        .flat_map(|(o, plan)| (0..plan.events.len()).map(move |e| (o, e)))
        .collect();
    let distinct_events = slots.len();
    for _ in 0..shape.duplicates {
        let again = slots[rng.below(distinct_events)];
        slots.push(again);
    }
    rng.shuffle(&mut slots);

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
            let Some((i, (store, ids, lifecycle, event_ids))) = pending.next() else {
                break;
            };
            let app = app.clone();
            let store_id = stores[store].store_id;
            running.spawn(async move {
                let checkout = fixtures::create_checkout_with_intent(
                    &app,
                    store_id,
                    lifecycle.amount,
                    &ids.payment_intent,
                )
                .await?;
                let events = lifecycle.events();
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
