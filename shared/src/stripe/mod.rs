//! Calls to Stripe on behalf of one merchant, always with that merchant's own
//! key: there is no global client. Responses are parsed into our own small
//! structs (only the fields we use), so a merchant account pinned to another
//! API version, or an emulator missing fields, cannot break us.
//!
//! Stripe's error messages can quote part of the key, so they never leave
//! this module: callers get a `StripeFailure` that names what went wrong.

mod account;
mod intents;
pub mod pace;
mod publishable;
#[cfg(any(test, feature = "testing"))]
pub mod samples;
pub mod webhook_endpoints;

pub use intents::{ClientSecret, IntentStatus, NewIntent, PaymentIntent};
pub use publishable::{IntentHandle, PublishableKeyCheck};

use crate::domain::SecretKey;
use crate::error::{AppError, BoxError};
use std::time::Duration;
use stripe_client_core::{RequestBuilder, StripeMethod};
use url::Url;

#[derive(Clone, Debug)]
pub struct StripeApi {
    base: Url,
    timeout: Duration,
}

/// Why a Stripe call failed, without Stripe's free text.
#[derive(Debug, thiserror::Error)]
pub enum StripeFailure {
    #[error("Stripe rejected the API key (401)")]
    InvalidKey,
    /// A restricted key without the permission this call needs (403).
    #[error("the restricted key lacks a permission (403): {}", .permission.as_deref().unwrap_or("unknown"))]
    MissingPermission { permission: Option<String> },
    #[error("Stripe rate limited the request (429)")]
    RateLimited,
    /// Any other 4xx: Stripe's error type and code, which are enum-like and
    /// safe to log.
    #[error("Stripe refused the request ({status}, {kind}, {})", .code.as_deref().unwrap_or("no code"))]
    Refused {
        status: u16,
        kind: String,
        code: Option<String>,
        decline_code: Option<String>,
        /// Stripe's message, kept only for card errors: it is written for
        /// the customer and names no key.
        card_message: Option<String>,
    },
    /// Network failure, timeout, 5xx or an unreadable answer.
    #[error("Stripe could not be reached")]
    Unreachable(#[source] BoxError),
}

impl StripeFailure {
    fn from_client(err: stripe::StripeError) -> Self {
        match err {
            stripe::StripeError::Stripe(api, status) => match status {
                401 => StripeFailure::InvalidKey,
                403 => StripeFailure::MissingPermission {
                    permission: api.message.as_deref().and_then(permission_named),
                },
                429 => StripeFailure::RateLimited,
                400..=499 => {
                    let kind = api.type_.to_string();
                    StripeFailure::Refused {
                        status,
                        card_message: if kind == "card_error" {
                            api.message.clone()
                        } else {
                            None
                        },
                        kind,
                        code: api.code.map(|c| c.to_string()),
                        decline_code: api.decline_code.clone(),
                    }
                }
                _ => StripeFailure::Unreachable(format!("Stripe answered {status}").into()),
            },
            stripe::StripeError::Timeout => StripeFailure::Unreachable("timed out".into()),
            // These carry transport or parser text, never the key or Stripe's message.
            stripe::StripeError::ClientError(text)
            | stripe::StripeError::JSONDeserialize(text)
            | stripe::StripeError::ConfigError(text) => StripeFailure::Unreachable(text.into()),
        }
    }
}

impl From<StripeFailure> for AppError {
    /// The generic mapping; handlers with a better message for a case
    /// (e.g. the connect form) match on the failure first.
    fn from(failure: StripeFailure) -> Self {
        match failure {
            StripeFailure::RateLimited => AppError::Dependency {
                dependency: "Stripe",
                throttled: true,
                source: failure.into(),
            },
            StripeFailure::Unreachable(_) => AppError::dependency("Stripe", failure),
            StripeFailure::InvalidKey => needs_reconnect(),
            StripeFailure::MissingPermission { ref permission } => AppError::unprocessable(
                "stripe_permission_missing",
                format!(
                    "The merchant's restricted key lacks the {} permission; the merchant must update it or reconnect Stripe",
                    permission.as_deref().unwrap_or("required")
                ),
            ),
            StripeFailure::Refused {
                status: 402,
                ref card_message,
                ref decline_code,
                ref code,
                ..
            } => AppError::PaymentFailed {
                code: decline_code
                    .clone()
                    .or_else(|| code.clone())
                    .unwrap_or_else(|| "card_declined".into()),
                message: card_message
                    .clone()
                    .unwrap_or_else(|| "The card was declined.".into()),
            },
            StripeFailure::Refused { ref code, .. } => AppError::unprocessable(
                "stripe_refused",
                format!(
                    "Stripe refused the request ({})",
                    code.as_deref().unwrap_or("no code")
                ),
            ),
        }
    }
}

/// What callers are told while Stripe rejects a store's key (rolled or
/// revoked): only the merchant can fix it, by saving their current keys.
pub fn needs_reconnect() -> AppError {
    AppError::conflict(
        "store_needs_reconnect",
        "Invalid API key: the merchant needs to re-enter their current keys",
    )
}

/// Stripe names the missing permission as `'rak_<resource>_<read|write>'` in
/// its 403 message; keep only that token.
fn permission_named(message: &str) -> Option<String> {
    let start = message.find("rak_")?;
    let name: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
        .collect();
    (name.len() > 4).then_some(name)
}

/// The permission a restricted key needs to take payments.
pub const WRITE_INTENTS: &str = "rak_payment_intent_write";

/// Stripe's request builder form-encodes structs (a slice of pairs would
/// come out as `0[0]=limit`).
#[derive(serde::Serialize)]
struct ListParams {
    limit: u8,
}

#[derive(miniserde::Deserialize)]
struct ListEnvelope {
    object: String,
}

/// `GET /v1/payment_intents?limit=1`: the newest intent, if any.
#[derive(miniserde::Deserialize)]
struct IntentList {
    object: String,
    data: Option<Vec<ListedIntent>>,
}

#[derive(miniserde::Deserialize)]
struct ListedIntent {
    id: String,
    client_secret: Option<String>,
}

impl StripeApi {
    pub fn new(base: Url, timeout: Duration) -> Self {
        StripeApi { base, timeout }
    }

    pub(crate) fn client(&self, key: &SecretKey) -> Result<stripe::Client, StripeFailure> {
        self.client_with(key.expose())
    }

    /// Any key: the secret key for our calls, the publishable key for the
    /// one call the browser would make (`publishable.rs`).
    fn client_with(&self, key: &str) -> Result<stripe::Client, StripeFailure> {
        stripe::ClientBuilder::new(key)
            .url(self.base.as_str())
            .timeout(self.timeout)
            .build()
            .map_err(StripeFailure::from_client)
    }

    /// Proves the key can do everything checkout needs, leaving nothing in
    /// the merchant's account: read PaymentIntents (the return page and the
    /// reconciler), and create them (taking a payment). A read-only
    /// restricted key would otherwise be saved and fail the first customer.
    ///
    /// Returns the account's newest PaymentIntent, which the read brings
    /// anyway: with it the publishable key can be proven (`publishable.rs`).
    pub async fn check_key(&self, key: &SecretKey) -> Result<Option<IntentHandle>, StripeFailure> {
        let client = self.client(key)?;
        let list: IntentList = RequestBuilder::new(StripeMethod::Get, "/payment_intents")
            .query(&ListParams { limit: 1 })
            .customize()
            .send(&client)
            .await
            .map_err(StripeFailure::from_client)?;
        if list.object != "list" {
            return Err(StripeFailure::Unreachable(
                format!("unexpected object `{}`", list.object).into(),
            ));
        }
        self.check_can_create(&client, "/payment_intents", WRITE_INTENTS)
            .await?;
        Ok(list
            .data
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|intent| IntentHandle::new(intent.id, intent.client_secret?)))
    }

    /// Proves write access to `path` without creating anything: Stripe checks
    /// a restricted key's permissions before the request's parameters, so a
    /// create with no parameters is refused for them (400) when the key may
    /// create, and with a permission error (403) when it may not.
    async fn check_can_create(
        &self,
        client: &stripe::Client,
        path: &str,
        permission: &str,
    ) -> Result<(), StripeFailure> {
        let created: Result<ListEnvelope, _> = RequestBuilder::new(StripeMethod::Post, path)
            .customize()
            .send(client)
            .await;
        match created {
            Err(stripe::StripeError::Stripe(_, 400)) => Ok(()),
            Err(err) => Err(match StripeFailure::from_client(err) {
                // Stripe names the permission; if it ever stops, we know it.
                StripeFailure::MissingPermission { permission: named } => {
                    StripeFailure::MissingPermission {
                        permission: named.or_else(|| Some(permission.to_owned())),
                    }
                }
                other => other,
            }),
            Ok(made) => Err(StripeFailure::Unreachable(
                format!("Stripe accepted an empty create of `{}`", made.object).into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "rk_test_51HqLyjWDarjtT1zdp7dcXYZ";

    async fn api(server: &MockServer) -> StripeApi {
        StripeApi::new(
            Url::parse(&format!("{}/", server.uri())).unwrap(),
            Duration::from_secs(2),
        )
    }

    fn stripe_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "error": { "type": kind, "message": message }
        }))
    }

    async fn check(server: &MockServer) -> Result<(), StripeFailure> {
        api(server)
            .await
            .check_key(&SecretKey::parse(KEY).unwrap())
            .await
            .map(|_| ())
    }

    /// What Stripe answers an empty PaymentIntent create from a key that may create them.
    fn missing_amount() -> ResponseTemplate {
        ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error", "code": "parameter_missing", "param": "amount",
            "message": "Missing required param: amount.",
            "doc_url": "https://stripe.com/docs/error-codes/parameter-missing"}}))
    }

    async fn readable(server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "object": "list", "data": [], "has_more": false, "url": "/v1/payment_intents"
            })))
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn a_key_that_may_read_but_not_create_intents_is_refused_naming_the_permission() {
        for (message, named) in [
            // Stripe's wording for a read-only restricted key.
            (
                "The provided key 'rk_test_****XYZ' does not have the required permissions for this endpoint on account 'acct_1Nv0FGQ9RKHgCVdK'. Having the 'rak_payment_intent_write' permission would allow this request to continue.",
                "rak_payment_intent_write",
            ),
            // Should Stripe stop naming it, we still know which call it was.
            (
                "The provided key does not have the required permissions.",
                WRITE_INTENTS,
            ),
        ] {
            let server = MockServer::start().await;
            readable(&server).await;
            Mock::given(method("POST"))
                .and(path("/v1/payment_intents"))
                .respond_with(stripe_error(403, "invalid_request_error", message))
                .expect(1)
                .mount(&server)
                .await;
            match check(&server).await {
                Err(StripeFailure::MissingPermission { permission }) => {
                    assert_eq!(permission.as_deref(), Some(named));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_read_brings_the_newest_intent_to_prove_the_publishable_key_with() {
        let intent = samples::sample("payment_intent");
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "object": "list", "data": [intent], "has_more": true, "url": "/v1/payment_intents"
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(missing_amount())
            .mount(&server)
            .await;
        let newest = api(&server)
            .await
            .check_key(&SecretKey::parse(KEY).unwrap())
            .await
            .unwrap();
        assert_eq!(
            newest.as_ref().map(IntentHandle::id),
            Some("pi_1PgafyB7WZ01zgkWSjxsAJo3")
        );
    }

    #[tokio::test]
    async fn the_write_check_creates_nothing() {
        let server = MockServer::start().await;
        readable(&server).await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .and(wiremock::matchers::body_string(""))
            .respond_with(missing_amount())
            .expect(1)
            .mount(&server)
            .await;
        check(&server).await.expect("a key that may create intents");
        // An API that took the empty create (not Stripe) is not believed.
        let lenient = MockServer::start().await;
        readable(&lenient).await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(samples::sample("payment_intent")),
            )
            .mount(&lenient)
            .await;
        assert!(matches!(
            check(&lenient).await,
            Err(StripeFailure::Unreachable(_))
        ));
    }

    #[tokio::test]
    async fn sends_the_merchants_key_and_accepts_a_list() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(missing_amount())
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents"))
            .and(query_param("limit", "1"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "object": "list", "data": [], "has_more": false, "url": "/v1/payment_intents"
            })))
            .expect(1)
            .mount(&server)
            .await;
        check(&server).await.expect("key accepted");
    }

    #[tokio::test]
    async fn maps_stripe_errors_without_their_text() {
        let cases = [
            (
                stripe_error(
                    401,
                    "invalid_request_error",
                    "Invalid API Key provided: rk_test_****XYZ",
                ),
                "InvalidKey",
            ),
            (
                stripe_error(
                    403,
                    "invalid_request_error",
                    "The provided key 'rk_test_****XYZ' does not have the required permissions for this endpoint on account 'acct_1'. Having the 'rak_payment_intent_read' permission would allow this request to continue.",
                ),
                "MissingPermission",
            ),
            (
                stripe_error(429, "rate_limit_error", "Too many requests"),
                "RateLimited",
            ),
            (stripe_error(500, "api_error", "boom"), "Unreachable"),
            (
                ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"),
                "Unreachable",
            ),
        ];
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(response)
                .mount(&server)
                .await;
            let failure = check(&server).await.unwrap_err();
            let printed = format!("{failure:?} {failure}");
            assert!(printed.starts_with(expected), "{printed}");
            assert!(!printed.contains("rk_test"), "no key fragment: {printed}");
            if let StripeFailure::MissingPermission { permission } = failure {
                assert_eq!(permission.as_deref(), Some("rak_payment_intent_read"));
            }
        }
    }

    #[tokio::test]
    async fn unreachable_stripe_is_a_dependency_failure() {
        // Bind and drop a listener: nothing answers on that port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = StripeApi::new(
            Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            Duration::from_secs(2),
        );
        let failure = api
            .check_key(&SecretKey::parse(KEY).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(failure, StripeFailure::Unreachable(_)),
            "{failure:?}"
        );
        assert_eq!(AppError::from(failure).status(), 502);
    }

    #[test]
    fn finds_the_permission_name() {
        assert_eq!(
            permission_named("Having the 'rak_charge_write' permission").as_deref(),
            Some("rak_charge_write")
        );
        assert_eq!(permission_named("no permission named"), None);
    }
}
