//! How the connect form answers each way Stripe can refuse or fail, with
//! Stripe played by wiremock (the emulator cannot answer 403 or 5xx) and the
//! real DynamoDB Local and KMS behind the handler. Whatever Stripe says,
//! nothing is stored and no secret reaches a log line.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use lambda_http::{Body, Request};
use shared::auth::connect_link::{self, ConnectLink, Expiry, LinkParams};
use shared::auth::csrf;
use shared::config::Config;
use shared::domain::StoreId;
use shared::vault::KmsDataKeys;
use shared::{App, clock};
use std::io::Write;
use std::sync::{Arc, Mutex};
use system_tests::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn app_with_stripe_at(stripe: &MockServer) -> App {
    let mut config = Config::from_env().expect("service configuration in the environment");
    config.stripe_api_base = url::Url::parse(&format!("{}/", stripe.uri())).unwrap();
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(aws().await), env("KMS_KEY_ID"));
    App::with_parts(config, dynamodb().await, Arc::new(kms))
}

/// A form post for a fresh store, signed and CSRF-protected like the real form.
fn post(app: &App, store: &str, pk: &str, sk: &str) -> Request {
    let id = StoreId::parse(store).unwrap();
    let return_url = "http://localhost:3000/back";
    let expires = clock::now() + 600;
    let params = LinkParams {
        store_id: store.into(),
        return_url: return_url.into(),
        expires: expires.to_string(),
        signature: connect_link::sign(&app.config.internal_secret, &id, return_url, expires),
    };
    let link = ConnectLink::verify(
        params.clone(),
        &app.config.internal_secret,
        &app.config.return_urls,
        clock::now(),
        Expiry::Enforce,
    )
    .unwrap();
    let form = serde_urlencoded::to_string([
        ("store_id", params.store_id.as_str()),
        ("return_url", params.return_url.as_str()),
        ("expires", params.expires.as_str()),
        ("signature", params.signature.as_str()),
        (
            "csrf_token",
            csrf::token(&app.config.internal_secret, &link).as_str(),
        ),
        ("publishable_key", pk),
        ("secret_key", sk),
    ])
    .unwrap();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/stripe/connect")
        .header("origin", app.config.public_origin())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::Text(form))
        .unwrap()
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
        let app = app_with_stripe_at(&stripe).await;
        let store = new_store_id();
        let body = key_body();
        let sk = format!("rk_test_{body}");
        let response =
            connect::handler::handle(&app, post(&app, &store, &format!("pk_test_{body}"), &sk))
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
    let mut app = app_with_stripe_at(&stripe).await;
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
