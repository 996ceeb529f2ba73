//! Fifty concurrent deliveries of one event against the real DynamoDB Local
//! and KMS (in process, so they truly run at once; the local HTTP gateway
//! runs one invocation per function at a time): exactly one transition.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::AppError;
use shared::domain::StoreId;
use shared::webhooks::{self, Outcome};
use system_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_deliveries_of_one_event_make_one_transition() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let app = in_process::service_app().await;
    let memory = in_process::webhook_memory();
    let payload = succeeded_event(&intent, &store, &order_id);
    let signature = stripe_signature(&whsec, &payload, shared::clock::now());
    let store_id = StoreId::parse(&store).unwrap();

    let deliveries: Vec<_> = (0..50)
        .map(|_| {
            let (payload, signature) = (payload.clone(), signature.clone());
            tokio::spawn(async move {
                webhooks::process(
                    app,
                    memory,
                    Some(store_id),
                    Some(&signature),
                    payload.as_bytes(),
                )
                .await
            })
        })
        .collect();
    let (mut applied, mut duplicates, mut retryable) = (0, 0, 0);
    for delivery in deliveries {
        match delivery.await.unwrap() {
            Ok(Outcome::Applied { .. }) => applied += 1,
            Ok(Outcome::Duplicate) => duplicates += 1,
            // DynamoDB may refuse a transaction that collides with another
            // in flight: a 5xx, which Stripe retries. It must change nothing.
            Err(AppError::Dependency { .. }) => retryable += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        applied, 1,
        "exactly one delivery applied the event (duplicates {duplicates}, retryable {retryable})"
    );
    assert_eq!(applied + duplicates + retryable, 50);
    assert_eq!(get_order(&order_id).await["status"], "paid");

    // Stripe retries the ones that got a 5xx: they are duplicates now.
    for _ in 0..retryable {
        let outcome = webhooks::process(
            app,
            memory,
            Some(store_id),
            Some(&signature),
            payload.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(outcome, Outcome::Duplicate);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_racing_its_early_refund_ends_refunded_whichever_lands_first() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let app = in_process::service_app().await;
    let memory = in_process::webhook_memory();
    let store_id = StoreId::parse(&store).unwrap();
    for round in 0..8 {
        let (order_id, intent) = paid_in_stripe(&store, &secret).await;
        let succeeded = succeeded_event(&intent, &store, &order_id);
        let refund = refund_event(&intent, 2999);
        // Each event twice, all at once: the refund is parked or applied
        // depending on which write lands first, and must apply either way.
        let deliveries: Vec<_> = [&succeeded, &refund, &succeeded, &refund]
            .into_iter()
            .map(|payload| {
                let payload = payload.clone();
                let signature = stripe_signature(&whsec, &payload, shared::clock::now());
                tokio::spawn(async move {
                    loop {
                        match webhooks::process(
                            app,
                            memory,
                            Some(store_id),
                            Some(&signature),
                            payload.as_bytes(),
                        )
                        .await
                        {
                            // A write that collided: Stripe delivers again.
                            Err(AppError::Dependency { .. }) => continue,
                            other => return other,
                        }
                    }
                })
            })
            .collect();
        for delivery in deliveries {
            let outcome = delivery.await.unwrap().unwrap();
            assert!(
                matches!(
                    outcome,
                    Outcome::Applied { .. } | Outcome::Parked { .. } | Outcome::Duplicate
                ),
                "round {round}: {outcome:?}"
            );
        }
        let order = get_order(&order_id).await;
        assert_eq!(
            (order["status"].as_str(), order["amount_refunded"].as_u64()),
            (Some("refunded"), Some(2999)),
            "round {round}: {order}"
        );
        let parked = parked_attributes(&order_id).await;
        assert!(
            parked.is_empty(),
            "round {round}: released, not left behind: {parked:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_never_parked_on_an_order_already_past_what_it_waits_for() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let app = in_process::service_app().await;
    let memory = in_process::webhook_memory();
    let store_id = StoreId::parse(&store).unwrap();
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let succeeded = succeeded_event(&intent, &store, &order_id);
    let signature = stripe_signature(&whsec, &succeeded, shared::clock::now());
    let paid = webhooks::process(
        app,
        memory,
        Some(store_id),
        Some(&signature),
        succeeded.as_bytes(),
    )
    .await
    .unwrap();
    assert!(matches!(paid, Outcome::Applied { .. }), "{paid:?}");

    // The write a delivery makes when it judged the order short of `paid`,
    // landing after the payment: refused, so the delivery applies it now.
    let refund = shared::domain::ParkedEvent {
        event_id: evt_id(),
        payment_intent: intent,
        to: shared::domain::OrderStatus::Refunded,
        requires: shared::domain::OrderStatus::Paid,
        amount_refunded: Some(2999),
        created: shared::clock::now(),
    };
    let write = app
        .table
        .park_event(&store_id, &order_id_of(&order_id), &refund)
        .await
        .unwrap();
    assert!(
        matches!(write, shared::store::EventWrite::OrderRefused(_)),
        "{write:?}"
    );
    let parked = parked_attributes(&order_id).await;
    assert!(parked.is_empty(), "{parked:?}");
}
