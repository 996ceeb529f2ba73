//! How the connect form answers each way Stripe can refuse or fail, with
//! Stripe played by wiremock (the emulator cannot answer 403 or 5xx) and the
//! real DynamoDB Local and KMS behind the handler. Whatever Stripe says,
//! nothing is stored and no secret reaches a log line.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::App;
use std::io::Write;
use std::sync::{Arc, Mutex};
use system_tests::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A connect form post for a fresh store, signed and CSRF-protected like the real form.
fn post(app: &App, store: &str, pk: &str, sk: &str) -> lambda_http::Request {
    let link = in_process::link(app, store);
    in_process::form_post(
        app,
        &link,
        "/stripe/connect",
        &[("publishable_key", pk), ("secret_key", sk)],
    )
}

#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_stripe_refusal_gets_its_answer_and_stores_nothing() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cases: Vec<(ResponseTemplate, u16, &str)> = vec![
        (
            ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": {
                "type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****abcd"}})),
            422,
            "Invalid API key",
        ),
        (
            ResponseTemplate::new(403).set_body_json(serde_json::json!({"error": {
                "type": "invalid_request_error",
                "message": "The provided key 'rk_test_****abcd' does not have the required permissions for this endpoint on account 'acct_1'. Having the 'rak_payment_intent_read' permission would allow this request to continue."}})),
            422,
            "rak_payment_intent_read",
        ),
        (
            ResponseTemplate::new(500).set_body_json(serde_json::json!({"error": {"type": "api_error", "message": "oops"}})),
            502,
            "Stripe could not be reached; nothing was changed",
        ),
        (
            ResponseTemplate::new(429).set_body_json(serde_json::json!({"error": {"type": "rate_limit_error", "message": "slow down"}})),
            503,
            "nothing was changed",
        ),
    ];
    for (response, status, message) in cases {
        let stripe = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents"))
            .respond_with(response)
            .expect(1)
            .mount(&stripe)
            .await;
        let app = &in_process::app_with_stripe_at(&stripe.uri()).await;
        let store = new_store_id();
        let body = key_body();
        let sk = format!("rk_test_{body}");
        let response =
            connect::handler::handle(app, post(app, &store, &format!("pk_test_{body}"), &sk))
                .await
                .unwrap();
        let html = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert_eq!(response.status(), status, "{html}");
        assert!(html.contains(message), "expected {message:?} in {html}");
        assert!(!html.contains(&sk) && !html.contains("rk_test_"), "{html}");
        assert!(
            store_items(&store).await.is_empty(),
            "nothing stored after a {status}"
        );
    }

    // A Stripe that never answers in time is a 502 too.
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
        .mount(&stripe)
        .await;
    let mut app = in_process::app_with_stripe_at(&stripe.uri()).await;
    app.stripe = shared::stripe::StripeApi::new(
        app.config.stripe_api_base.clone(),
        std::time::Duration::from_millis(300),
    );
    let store = new_store_id();
    let body = key_body();
    let response = connect::handler::handle(
        &app,
        post(
            &app,
            &store,
            &format!("pk_test_{body}"),
            &format!("sk_test_{body}"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 502);
    assert!(store_items(&store).await.is_empty());

    let captured = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        captured.contains("request rejected") || captured.contains("request failed"),
        "logs were captured: {captured}"
    );
    for needle in ["sk_test_", "rk_test_", "whsec_", "Bearer"] {
        assert!(!captured.contains(needle), "{needle} in logs: {captured}");
    }
}

#[tokio::test]
async fn a_read_only_restricted_key_is_refused_naming_the_missing_permission() {
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"object": "list", "data": [], "has_more": false, "url": "/v1/payment_intents"}),
        ))
        .mount(&stripe)
        .await;
    // Stripe's answer to a key with PaymentIntents: Read only.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error",
            "message": "The provided key 'rk_test_****abcd' does not have the required permissions for this endpoint on account 'acct_1Nv0FGQ9RKHgCVdK'. Having the 'rak_payment_intent_write' permission would allow this request to continue."}})))
        .expect(1)
        .mount(&stripe)
        .await;
    let app = &in_process::app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let body = key_body();
    let sk = format!("rk_test_{body}");
    let response =
        connect::handler::handle(app, post(app, &store, &format!("pk_test_{body}"), &sk))
            .await
            .unwrap();
    let html = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    assert_eq!(response.status(), 422, "{html}");
    assert!(html.contains("rak_payment_intent_write"), "{html}");
    assert!(!html.contains("rk_test_"), "{html}");
    assert!(store_items(&store).await.is_empty(), "nothing stored");
}
