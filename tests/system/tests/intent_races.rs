//! One order, one charge, even when Stripe is at its least helpful: the real
//! DynamoDB Local and KMS behind `checkout::payment_intent_for`, with Stripe
//! played by wiremock so it can fail, or ignore idempotency keys entirely.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::checkout;
use shared::domain::{KeyKind, Mode, Order, PublishableKey, StoreId};
use shared::store::{AuditEntry, CheckoutSession, StripeConnection};
use shared::vault::{EncryptionContext, Purpose};
use shared::{App, clock};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use system_tests::*;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

async fn app_with_stripe_at(stripe: &MockServer) -> &'static App {
    Box::leak(Box::new(
        in_process::app_with_stripe_at(&stripe.uri()).await,
    ))
}

/// A connected store and a pending order, written straight to the table.
async fn store_and_order(app: &App) -> (StripeConnection, Order) {
    let store_id = StoreId::parse(&new_store_id()).unwrap();
    let body = key_body();
    let sealed = app
        .vault
        .seal(
            EncryptionContext::new(store_id, Purpose::StripeSecretKey),
            &format!("sk_test_{body}"),
        )
        .await
        .unwrap();
    let connection = StripeConnection {
        store_id,
        publishable_key: PublishableKey::parse(&format!("pk_test_{body}")).unwrap(),
        key_kind: KeyKind::Secret,
        account_id: None,
        secret_key: sealed,
        webhook_secret: None,
        connected_at: clock::now(),
        updated_at: clock::now(),
        version: 1,
        activity: Default::default(),
        last_key_replacement: None,
        publishable_key_proven_at: None,
    };
    let audit = AuditEntry {
        action: "stripe_connected",
        actor: "test".into(),
        at_millis: clock::now_millis(),
        source_ip: None,
        replacement: None,
    };
    app.table
        .save_connection(&connection, &audit, None)
        .await
        .unwrap();
    let order = one_item_order(store_id, Mode::Test, 2999);
    let session = CheckoutSession {
        token_hash: format!("{:064x}", uuid::Uuid::new_v4().as_u128()),
        order_id: order.order_id,
        store_id,
        expires_at: clock::now() + 600,
        created_at: clock::now(),
    };
    app.table
        .create_checkout(&order, &session, None, clock::now())
        .await
        .unwrap();
    (connection, order)
}

/// Stripe's sample PaymentIntent as the order's, in `status`.
fn intent_json(id: &str, order: &Order, status: &str) -> serde_json::Value {
    stripe_object(
        "payment_intent",
        serde_json::json!({"id": id, "amount": order.total.minor(), "currency": "eur", "status": status,
               "client_secret": format!("{id}_secret_x"),
               "metadata": {"order_id": order.order_id, "store_id": order.store_id.to_string()}}),
    )
}

#[tokio::test]
async fn concurrent_first_calls_attach_exactly_one_intent_and_cancel_the_rest() {
    let stripe = MockServer::start().await;
    let app = app_with_stripe_at(&stripe).await;
    let (connection, order) = store_and_order(app).await;
    // Intent ids unique to this run: PI links outlive a test run.
    let prefix = format!("pi_race{}x", key_body());
    let created = Arc::new(AtomicUsize::new(0));
    let counter = created.clone();
    let order_for_mock = order.clone();
    let mock_prefix = prefix.clone();
    // Worst case: Stripe ignores the idempotency key and makes a new intent each time.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(intent_json(
                &format!("{mock_prefix}{n}"),
                &order_for_mock,
                "requires_payment_method",
            ))
        })
        .mount(&stripe)
        .await;
    let order_for_get = order.clone();
    Mock::given(method("GET"))
        .and(path_regex(format!("^/v1/payment_intents/{prefix}[0-9]+$")))
        .respond_with(move |req: &Request| {
            let id = req.url.path().rsplit('/').next().unwrap().to_owned();
            ResponseTemplate::new(200).set_body_json(intent_json(
                &id,
                &order_for_get,
                "requires_payment_method",
            ))
        })
        .mount(&stripe)
        .await;
    let order_for_cancel = order.clone();
    Mock::given(method("POST"))
        .and(path_regex(format!(
            "^/v1/payment_intents/{prefix}[0-9]+/cancel$"
        )))
        .respond_with(move |req: &Request| {
            let id = req.url.path().split('/').nth(3).unwrap().to_owned();
            ResponseTemplate::new(200).set_body_json(intent_json(
                &id,
                &order_for_cancel,
                "canceled",
            ))
        })
        .mount(&stripe)
        .await;

    let (_, key) = checkout::merchant_key(app, &order.store_id).await.unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (order, connection, key) = (order.clone(), connection.clone(), key.clone());
            tokio::spawn(async move {
                checkout::payment_intent_for(app, &order, &connection, &key)
                    .await
                    .map(|i| i.id)
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for call in calls {
        ids.insert(call.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1, "every caller got the same intent: {ids:?}");
    let winner = ids.into_iter().next().unwrap();
    let stored = app.table.get_order(&order.order_id).await.unwrap().unwrap();
    assert_eq!(stored.payment_intent_id.as_deref(), Some(winner.as_str()));

    let made = created.load(Ordering::SeqCst);
    // Every caller read the order before anyone attached, so each made one.
    assert_eq!(made, 8, "the race really happened");
    let cancels = stripe
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/cancel"))
        .count();
    assert_eq!(
        cancels,
        made - 1,
        "every losing intent was cancelled, the winner was not"
    );
    for n in 0..made {
        let link = dynamodb()
            .await
            .get_item()
            .table_name(env("TABLE_NAME"))
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("PI#{prefix}{n}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("PI".into()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            link.item.is_some(),
            format!("{prefix}{n}") == winner,
            "{prefix}{n}"
        );
    }
}

#[tokio::test]
async fn a_stripe_failure_writes_nothing_and_the_retry_reuses_the_idempotency_key() {
    let stripe = MockServer::start().await;
    let app = app_with_stripe_at(&stripe).await;
    let (connection, order) = store_and_order(app).await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(serde_json::json!({"error": {"type": "api_error", "message": "x"}})),
        )
        .up_to_n_times(1)
        .mount(&stripe)
        .await;
    let order_for_mock = order.clone();
    let id = format!("pi_retry{}", key_body());
    let mock_id = id.clone();
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(move |_: &Request| {
            ResponseTemplate::new(200).set_body_json(intent_json(
                &mock_id,
                &order_for_mock,
                "requires_payment_method",
            ))
        })
        .mount(&stripe)
        .await;
    let (_, key) = checkout::merchant_key(app, &order.store_id).await.unwrap();

    let err = checkout::payment_intent_for(app, &order, &connection, &key)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 502);
    assert_eq!(
        app.table
            .get_order(&order.order_id)
            .await
            .unwrap()
            .unwrap()
            .payment_intent_id,
        None,
        "nothing written"
    );

    let intent = checkout::payment_intent_for(app, &order, &connection, &key)
        .await
        .unwrap();
    assert_eq!(intent.id, id);
    let keys: Vec<String> = stripe
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        keys,
        vec![format!("checkout-{}-1", order.order_id); 2],
        "same key on the retry"
    );
}

#[tokio::test]
async fn a_store_without_stripe_is_409_and_an_invalid_key_asks_to_reconnect() {
    let stripe = MockServer::start().await;
    let app = app_with_stripe_at(&stripe).await;
    let err = checkout::merchant_key(app, &StoreId::parse(&new_store_id()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.to_string().as_str()),
        (409, "Store not connected to Stripe")
    );

    let (connection, order) = store_and_order(app).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****"}})))
        .mount(&stripe)
        .await;
    let (_, key) = checkout::merchant_key(app, &order.store_id).await.unwrap();
    let err = checkout::payment_intent_for(app, &order, &connection, &key)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (409, "store_needs_reconnect")
    );
    assert_eq!(
        err.to_string(),
        "Invalid API key: the merchant needs to re-enter their current keys"
    );
    // The store is marked: its key is not tried again.
    let err = checkout::merchant_key(app, &order.store_id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "store_needs_reconnect");
}
