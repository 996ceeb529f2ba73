//! Test support for the functions' handler tests (feature `testing`): an app
//! whose every dependency is unreachable, to prove a request is rejected
//! before any I/O, or that a dependency failure becomes a clean 5xx; and
//! (`counting`) an app that counts its KMS calls and DynamoDB requests.

pub mod counting;

use crate::app::App;
use crate::config::Config;
use crate::vault::fake::FakeKms;
use std::sync::{Arc, OnceLock};

/// Settings of a deployment at `https://pay.checkout.best/`. Both secrets
/// are `TEST_INTERNAL_SECRET`: the sample events in `events/` (links and
/// BMOS requests) are signed with it. Their separation is proven by the
/// auth unit tests and the system test against Secrets Manager.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let base = [
        ("TABLE_NAME", "checkout-best-test"),
        ("KMS_KEY_ID", "alias/checkout-best-test"),
        ("BMOS_AUTH_SECRET", TEST_INTERNAL_SECRET),
        ("LINK_SIGNING_SECRET", TEST_INTERNAL_SECRET),
        ("PUBLIC_BASE_URL", "https://pay.checkout.best/"),
        ("ALLOWED_RETURN_HOSTS", "bmos.example"),
        // Nothing listens on port 9 (discard) on loopback here.
        ("STRIPE_API_BASE", "http://127.0.0.1:9/"),
        ("STRIPE_TIMEOUT_SECONDS", "2"),
    ];
    let lookup = |name: &str| {
        overrides
            .iter()
            .chain(base.iter())
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    match Config::from_lookup(lookup) {
        Ok(config) => config,
        Err(err) => panic!("test configuration is invalid: {err}"),
    }
}

pub const TEST_INTERNAL_SECRET: &str = "handler-test-internal-secret-0123456789";

/// A DynamoDB client for `endpoint` with dummy credentials and no retries.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// An app with no reachable DynamoDB, Stripe or KMS.
pub fn offline_app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| offline_app_with(&[]))
}

/// `offline_app` with some settings changed.
pub fn offline_app_with(overrides: &[(&str, &str)]) -> App {
    let kms = Arc::new(FakeKms::default());
    kms.down.store(true, std::sync::atomic::Ordering::SeqCst);
    App::with_parts(
        config(overrides),
        dynamodb_client("http://127.0.0.1:9"),
        kms,
    )
}

/// A stack without a custom domain (`PUBLIC_BASE_URL` empty), reached on
/// its execute-api domain, `EXECUTE_API_DOMAIN`.
pub fn app_without_custom_domain() -> App {
    offline_app_with(&[("PUBLIC_BASE_URL", "")])
}

pub const EXECUTE_API_DOMAIN: &str = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";

/// The API Gateway sample event `json` as if it came in on `domain`.
pub fn event_on_domain(json: &str, domain: &str) -> lambda_http::Request {
    let mut event: serde_json::Value = match serde_json::from_str(json) {
        Ok(event) => event,
        Err(err) => panic!("sample event is not JSON: {err}"),
    };
    event["requestContext"]["domainName"] = domain.into();
    match lambda_http::request::from_str(&event.to_string()) {
        Ok(req) => req,
        Err(err) => panic!("sample event is not an API Gateway request: {err}"),
    }
}
