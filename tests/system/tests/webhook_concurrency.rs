//! Fifty concurrent deliveries of one event against the real DynamoDB Local
//! and KMS (in process, so they truly run at once; the local HTTP gateway
//! runs one invocation per function at a time): exactly one transition.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::config::Config;
use shared::domain::StoreId;
use shared::vault::KmsDataKeys;
use shared::webhooks::{self, Outcome};
use shared::{App, AppError};
use std::sync::Arc;
use system_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_deliveries_of_one_event_make_one_transition() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(aws().await), env("KMS_KEY_ID"));
    let app: &'static App = Box::leak(Box::new(App::with_parts(
        Config::from_env().unwrap(),
        dynamodb().await,
        Arc::new(kms),
    )));
    let payload = serde_json::json!({
        "id": format!("evt_{}", key_body()), "object": "event", "livemode": false, "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent, "object": "payment_intent", "amount": 2999, "currency": "eur",
                            "metadata": {"store_id": store, "order_id": order_id}}}
    })
    .to_string();
    let signature = stripe_signature(&whsec, &payload, shared::clock::now());
    let store_id = StoreId::parse(&store).unwrap();

    let deliveries: Vec<_> = (0..50)
        .map(|_| {
            let (payload, signature) = (payload.clone(), signature.clone());
            tokio::spawn(async move {
                webhooks::process(app, Some(store_id), Some(&signature), payload.as_bytes()).await
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
        let outcome = webhooks::process(app, Some(store_id), Some(&signature), payload.as_bytes())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Duplicate);
    }
}
