//! A key Stripe rejects (rolled or revoked in the Dashboard) marks its store
//! as needing reconnection: status says so, BMOS gets a 409 instead of links
//! customers cannot pay, the reconciler leaves the store's orders for later,
//! and the merchant saving keys again clears it.
//!
//! Stripe is the emulator where it can play the part: it answers a
//! restricted key (which it does not support) with a 401, so replacing a
//! connected store's stored key with one leaves the store as a roll in the
//! Dashboard would. The reconciler's case uses wiremock answering with
//! Stripe's own 401 body, which quotes part of the key.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::domain::StoreId;
use shared::reconcile::{self, Limits};
use shared::store::{AuditEntry, StripeConnection};
use shared::vault::{EncryptionContext, Purpose};
use shared::{App, clock, key_health};
use system_tests::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MESSAGE: &str = "Invalid API key: the merchant needs to re-enter their current keys";

async fn connection(app: &App, store: &str) -> StripeConnection {
    app.table
        .get_connection(&StoreId::parse(store).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// Replaces the store's stored key with `key`, as if the merchant's key had
/// been swapped for one Stripe no longer accepts; returns the new version.
async fn store_key(app: &App, store: &str, key: &str) -> u64 {
    let current = connection(app, store).await;
    let sealed = app
        .vault
        .seal(
            EncryptionContext::new(current.store_id, Purpose::StripeSecretKey),
            key,
        )
        .await
        .unwrap();
    let rolled = StripeConnection {
        secret_key: sealed,
        version: current.version + 1,
        updated_at: clock::now(),
        ..current
    };
    let audit = AuditEntry {
        action: "test_key_swapped",
        actor: "system-test".into(),
        at_millis: clock::now_millis(),
        source_ip: None,
        replacement: None,
    };
    app.table
        .save_connection(&rolled, &audit, None)
        .await
        .unwrap();
    rolled.version
}

async fn reconnect(store: &str) {
    let body = key_body();
    let link = connect_link(store, "http://localhost:3000/admin").await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &format!("sk_test_{body}")),
        ],
    )
    .await;
    assert_eq!(response.status(), 303, "reconnect");
}

fn assert_needs_reconnect(status: u16, body: &serde_json::Value) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "store_needs_reconnect", "{body}");
    assert_eq!(body["error"]["message"], MESSAGE, "{body}");
}

#[tokio::test]
async fn a_key_stripe_rejects_stops_checkout_until_the_merchant_reconnects() {
    let app = in_process::service_app().await;
    let (store, _) = connected_store().await;
    let status = public_status(&store).await;
    assert_eq!(
        (&status["has_stripe"], &status["can_take_payments"]),
        (&true.into(), &true.into()),
        "{status}"
    );
    let (code, session) = create_session(&cart(&store)).await;
    assert_eq!(code, 201, "{session}");
    let token = token_of(session["checkout_url"].as_str().unwrap());

    // The key stops working in Stripe; the customer's page is the first to ask.
    let rejected = format!("rk_test_{}", key_body());
    store_key(app, &store, &rejected).await;
    let (code, body) = create_intent(&token, "{}").await;
    assert_needs_reconnect(code, &body);

    let status = public_status(&store).await;
    assert_eq!(status["has_stripe"], true, "the seed's meaning: {status}");
    assert_eq!(status["can_take_payments"], false, "{status}");
    let internal = internal_status(&store).await;
    assert_eq!(
        (&internal["has_stripe"], &internal["can_take_payments"]),
        (&true.into(), &false.into()),
        "{internal}"
    );
    assert_eq!(internal["needs_reconnect"], true, "{internal}");
    assert!(internal["key_rejected_at"].is_string(), "{internal}");
    let reason = internal["key_rejected_reason"].as_str().unwrap();
    assert!(reason.contains("401"), "{reason}");
    let stored = format!("{:?}", store_items(&store).await);
    assert!(
        !internal.to_string().contains("rk_test_")
            && !internal.to_string().contains("sk_test_")
            && !stored.contains(&rejected[8..]),
        "no key in status or the table's clear text: {internal}"
    );

    // BMOS is told before a customer gets a link that cannot be paid.
    let (code, body) = create_session(&cart(&store)).await;
    assert_needs_reconnect(code, &body);
    // And the customer's page no longer offers a form.
    let page = http()
        .get(format!("{}/checkout/{token}", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 409);
    assert!(page.text().await.unwrap().contains(MESSAGE));

    // Saving current keys clears it.
    reconnect(&store).await;
    let status = public_status(&store).await;
    assert_eq!(status["can_take_payments"], true, "{status}");
    let internal = internal_status(&store).await;
    assert_eq!(
        (
            &internal["needs_reconnect"],
            &internal["key_rejected_at"],
            &internal["key_rejected_reason"]
        ),
        (
            &false.into(),
            &serde_json::Value::Null,
            &serde_json::Value::Null
        ),
        "{internal}"
    );
    let (code, session) = create_session(&cart(&store)).await;
    assert_eq!(code, 201, "{session}");
    let (code, intent) =
        create_intent(&token_of(session["checkout_url"].as_str().unwrap()), "{}").await;
    assert_eq!(code, 200, "{intent}");
}

#[tokio::test]
async fn a_rejection_never_marks_keys_saved_after_the_rejected_ones() {
    let app = in_process::service_app().await;
    let (store, _) = connected_store().await;
    let old = connection(app, &store).await;
    // The merchant saves new keys while a call with the old ones is in flight.
    reconnect(&store).await;
    key_health::note_rejected(app, &old, "retrieve PaymentIntent").await;
    let now = connection(app, &store).await;
    assert!(now.version > old.version);
    assert_eq!(now.activity.key_rejected, None, "the new keys stay usable");
    assert_eq!(public_status(&store).await["can_take_payments"], true);

    // At the version that failed, it lands, and a repeat keeps the first time.
    key_health::note_rejected(app, &now, "create PaymentIntent").await;
    let first = connection(app, &store).await.activity.key_rejected.unwrap();
    key_health::note_rejected(app, &now, "retrieve PaymentIntent").await;
    let again = connection(app, &store).await.activity.key_rejected.unwrap();
    assert_eq!(first.at, again.at);
    assert_eq!(public_status(&store).await["can_take_payments"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_leaves_a_rejected_stores_orders_for_later() {
    let (store, secret) = connected_store().await;
    // An order waiting in the reconciler's index, paid in Stripe.
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;

    // Stripe (wiremock, with Stripe's own 401 body) now refuses the key.
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/payment_intents/{intent}")))
        .and(header("authorization", format!("Bearer {secret}").as_str()))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic realm=\"Stripe\"")
                .set_body_json(serde_json::json!({"error": {
                    "message": format!("Invalid API Key provided: sk_test_****{}", &secret[secret.len() - 4..]),
                    "type": "invalid_request_error"}})),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    let app = in_process::app_with_stripe_at(&stripe.uri()).await;
    let limits = Limits {
        max_orders: 1000,
        ..Limits::default()
    };
    let first = reconcile::run(&app, clock::now() + 600, limits)
        .await
        .unwrap();
    assert!(first.deferred >= 1, "{first:?}");
    let internal = internal_status(&store).await;
    assert_eq!(internal["needs_reconnect"], true, "{internal}");
    let reason = internal["key_rejected_reason"].as_str().unwrap();
    assert!(
        reason.contains("401") && !reason.contains("sk_test") && !reason.contains("****"),
        "Stripe's message quotes the key; the record does not: {reason}"
    );

    // Later runs do not ask Stripe with the rejected key again (wiremock
    // expects one call), and the order waits, unchanged, in the index
    // (looked at again once its back-off has passed).
    let second = reconcile::run(&app, clock::now() + 1200, limits)
        .await
        .unwrap();
    assert!(second.deferred >= 1, "{second:?}");
    assert_eq!(get_order(&order_id).await["status"], "pending");
    assert!(order_item(&order_id).await.contains_key("pending_pk"));

    // Reconnected, the next run that reaches it (after its back-off)
    // settles it (a run may first meet a thousand other due orders, left by
    // earlier runs on this stack: `make repeat`'s run 20 did).
    reconnect(&store).await;
    reconcile_until_settled(
        in_process::service_app().await,
        clock::now() + 2400,
        limits,
        &order_id,
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "paid");
    stripe.verify().await;
}
