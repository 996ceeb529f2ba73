//! Webhook set-up for merchants, against the real DynamoDB Local and KMS with
//! Stripe played by wiremock (the emulator has no webhook-endpoint API):
//! auto-registration on connect, deletion when keys change or the store
//! disconnects, and manual steps when the key may not create endpoints.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::domain::StoreId;
use shared::store::WebhookSource;
use shared::webhooks::{self, Outcome, WebhookMemory};
use system_tests::in_process::{self, app_with_stripe_at};
use system_tests::*;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Stripe's sample endpoint as its creation answers: the only time Stripe
/// shows the signing secret.
fn endpoint(id: &str, secret: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(stripe_object(
        "webhook_endpoint",
        serde_json::json!({"id": id, "secret": secret}),
    ))
}

/// Every key here acts on one account (Stripe's sample account): key
/// changes are rolled keys, which need no consent in the link.
async fn accept_keys(stripe: &MockServer) {
    let account = stripe_sample("account");
    Mock::given(method("GET"))
        .and(path("/v1/account"))
        .respond_with(ResponseTemplate::new(200).set_body_json(account))
        .mount(stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"object": "list", "data": [], "has_more": false}),
            ),
        )
        .mount(stripe)
        .await;
    // The key may create PaymentIntents: the empty create is refused for
    // its parameters, as Stripe does.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error", "code": "parameter_missing", "param": "amount",
            "message": "Missing required param: amount."}})),
        )
        .mount(stripe)
        .await;
}

#[tokio::test]
async fn endpoints_are_created_on_connect_and_deleted_when_keys_change_or_the_store_leaves() {
    let stripe = MockServer::start().await;
    accept_keys(&stripe).await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let (first, second) = (key_body(), key_body());
    let webhook_url = format!("{}/webhook/stripe/{store}", base_url());
    let first_secret = format!("whsec_auto{first}");
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .and(header(
            "authorization",
            format!("Bearer sk_test_{first}").as_str(),
        ))
        .and(body_string_contains(format!("url={webhook_url}&")))
        .respond_with(endpoint("we_first", &first_secret))
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .and(header(
            "authorization",
            format!("Bearer sk_test_{second}").as_str(),
        ))
        .respond_with(endpoint("we_second", &format!("whsec_auto{second}")))
        .expect(1)
        .mount(&stripe)
        .await;
    // Deleted with the key that created it.
    Mock::given(method("DELETE"))
        .and(path("/v1/webhook_endpoints/we_first"))
        .and(header(
            "authorization",
            format!("Bearer sk_test_{first}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": "we_first", "deleted": true})),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/webhook_endpoints/we_second"))
        .and(header(
            "authorization",
            format!("Bearer sk_test_{second}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": "we_second", "deleted": true})),
        )
        .expect(1)
        .mount(&stripe)
        .await;

    // A new link for each save: a link works once.
    let connect = |body: &str| {
        in_process::form_post(
            &app,
            &in_process::link(&app, &store),
            "/stripe/connect",
            &[
                ("publishable_key", &format!("pk_test_{body}")),
                ("secret_key", &format!("sk_test_{body}")),
            ],
        )
    };
    let first_save = connect::handler::handle(&app, connect(&first))
        .await
        .unwrap();
    assert_eq!(first_save.status(), 303);
    let link = in_process::next_link(&app, &first_save);
    let store_id = StoreId::parse(&store).unwrap();
    let saved = app.table.get_connection(&store_id).await.unwrap().unwrap();
    let webhook = saved.webhook_secret.as_ref().unwrap();
    assert_eq!(
        (webhook.source, webhook.endpoint_id.as_deref()),
        (WebhookSource::Auto, Some("we_first"))
    );

    // The secret Stripe gave us verifies deliveries for this store.
    let payload = stripe_event(
        &evt_id(),
        "customer.created",
        false,
        stripe_sample("customer"),
    );
    let outcome = webhooks::process(
        &app,
        &WebhookMemory::default(),
        Some(store_id),
        Some(&stripe_signature(
            &first_secret,
            &payload,
            shared::clock::now(),
        )),
        payload.as_bytes(),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::NoChange { .. }), "{outcome:?}");

    // The success page says it was set up automatically.
    let page = connect::handler::handle(
        &app,
        in_process::page_get(
            &link,
            &format!("/stripe/success/{store}"),
            &[("store_id", &store)],
        ),
    )
    .await
    .unwrap();
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(html.contains("set up automatically"), "{html}");

    // New keys (a rolled key, another publishable key): a new endpoint,
    // the old one deleted.
    assert_eq!(
        connect::handler::handle(&app, connect(&second))
            .await
            .unwrap()
            .status(),
        303
    );
    let saved = app.table.get_connection(&store_id).await.unwrap().unwrap();
    assert_eq!(
        saved
            .webhook_secret
            .as_ref()
            .unwrap()
            .endpoint_id
            .as_deref(),
        Some("we_second")
    );

    shared::webhooks::setup::disconnect(&app, &store_id, "bmos:test")
        .await
        .unwrap();
    assert!(app.table.get_connection(&store_id).await.unwrap().is_none());
    let actions: Vec<String> = store_items(&store)
        .await
        .iter()
        .filter_map(|i| i.get("action").and_then(|a| a.as_s().ok()).cloned())
        .collect();
    assert_eq!(
        actions,
        [
            "stripe_connected",
            "stripe_keys_replaced",
            "stripe_disconnected"
        ]
    );
    // `expect(1)` on every mock is checked when the server drops.
}

#[tokio::test]
async fn a_key_that_may_not_create_endpoints_gets_exact_manual_steps() {
    let stripe = MockServer::start().await;
    accept_keys(&stripe).await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({"error": {"type": "invalid_request_error",
            "message": "Having the 'rak_webhook_write' permission would allow this request to continue."}})))
        .expect(1)
        .mount(&stripe)
        .await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let body = key_body();
    let link = in_process::link(&app, &store);
    let post = in_process::form_post(
        &app,
        &link,
        "/stripe/connect",
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &format!("rk_test_{body}")),
        ],
    );
    let saved = connect::handler::handle(&app, post).await.unwrap();
    assert_eq!(saved.status(), 303, "connected without a webhook");
    let link = in_process::next_link(&app, &saved);
    assert!(
        app.table
            .get_connection(&StoreId::parse(&store).unwrap())
            .await
            .unwrap()
            .unwrap()
            .webhook_secret
            .is_none()
    );

    let page = connect::handler::handle(
        &app,
        in_process::page_get(
            &link,
            &format!("/stripe/success/{store}"),
            &[("store_id", &store)],
        ),
    )
    .await
    .unwrap();
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(
        html.contains(&format!("{}/webhook/stripe/{store}", base_url())),
        "the exact URL: {html}"
    );
    for event in shared::stripe::webhook_endpoints::EVENTS {
        assert!(
            html.contains(&format!("<code>{event}</code>")),
            "{event}: {html}"
        );
    }
    assert!(
        html.contains("/stripe/webhook-secret?"),
        "a link to paste the secret: {html}"
    );
    assert!(
        html.contains("<code>rak_webhook_write</code>"),
        "names the permission that would let us set it up: {html}"
    );

    // The merchant pastes the secret on the signed page.
    let whsec = format!("whsec_{}", key_body());
    let form = connect::handler::handle(
        &app,
        in_process::page_get(&link, "/stripe/webhook-secret", &[]),
    )
    .await
    .unwrap();
    assert_eq!(form.status(), 200);
    let bad = in_process::form_post(
        &app,
        &link,
        "/stripe/webhook-secret",
        &[("webhook_secret", "sk_test_notasecret")],
    );
    let response = connect::handler::handle(&app, bad).await.unwrap();
    assert_eq!(response.status(), 422);
    assert!(!String::from_utf8_lossy(response.body().as_ref()).contains("sk_test_notasecret"));
    let good = in_process::form_post(
        &app,
        &link,
        "/stripe/webhook-secret",
        &[("webhook_secret", &whsec)],
    );
    assert_eq!(
        connect::handler::handle(&app, good).await.unwrap().status(),
        303
    );
    let saved = app
        .table
        .get_connection(&StoreId::parse(&store).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.webhook_secret.unwrap().source, WebhookSource::Manual);
}

#[tokio::test]
async fn the_secret_page_of_a_store_not_connected_says_so() {
    // Stripe is not called: an unreachable address.
    let app = app_with_stripe_at("http://127.0.0.1:9").await;
    let store = new_store_id();
    let link = in_process::webhook_secret_link(&app, &store);
    let page = connect::handler::handle(
        &app,
        in_process::page_get(&link, "/stripe/webhook-secret", &[]),
    )
    .await
    .unwrap();
    assert_eq!(page.status(), 404);
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(
        html.contains("This store has no Stripe account connected.") && !html.contains("<form"),
        "{html}"
    );
}

#[tokio::test]
async fn bmos_sets_the_secret_and_disconnects_over_the_internal_api() {
    let (store, _) = connected_store().await;
    let whsec = format!("whsec_{}", key_body());
    let response = put_webhook_secret(&store, &whsec).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let status = internal_status(&store).await;
    assert_eq!(status["webhook_configured"], true);

    let response = put_webhook_secret(&new_store_id(), &whsec).await;
    assert_eq!(response.status(), 404);

    let path = format!("/api/internal/stores/{store}/stripe");
    let response = http()
        .delete(format!("{}{path}", base_url()))
        .headers(signed_headers("DELETE", &path, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(public_status(&store).await["has_stripe"], false);
    let response = http()
        .delete(format!("{}{path}", base_url()))
        .headers(signed_headers("DELETE", &path, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "already disconnected");
}
