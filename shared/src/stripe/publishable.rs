//! Whether a publishable key belongs to the same Stripe account as the
//! secret key it was entered with.
//!
//! Stripe documents no call that names a publishable key's account. It
//! documents one that the browser makes with it: retrieving a PaymentIntent
//! with the publishable key and the intent's client secret ("Retrieve a
//! PaymentIntent": `client_secret` is required when using a publishable
//! key). Stripe looks for the intent in the key's own account only, so
//! retrieving one of the secret key's intents proves the pair, and another
//! account's publishable key gets 404 `resource_missing`. Nothing is
//! created.
//!
//! It needs an intent. An account that never had one cannot be proven at
//! connect without creating an object in the merchant's account; it is
//! saved as not yet proven. A wrong publishable key cannot divert money
//! either way: intents are made with the secret key, in its account, and a
//! publishable key of another account only fails the customer's
//! confirmation (Stripe.js cannot find the intent).

use super::{ClientSecret, StripeApi, StripeFailure};
use crate::domain::PublishableKey;
use stripe_client_core::{RequestBuilder, StripeMethod};

/// One PaymentIntent of the secret key's account, as listed with it.
/// (`Debug` prints the client secret redacted.)
#[derive(Debug)]
pub struct IntentHandle {
    id: String,
    client_secret: ClientSecret,
}

impl IntentHandle {
    /// `None` unless `id` is a PaymentIntent id (it becomes part of a path).
    pub fn new(id: String, client_secret: String) -> Option<Self> {
        super::intents::is_intent_id(&id).then_some(IntentHandle {
            id,
            client_secret: ClientSecret::new(client_secret),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What Stripe let us tell about a publishable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishableKeyCheck {
    /// It found the secret key's intent: one account.
    SameAccount,
    /// It did not: the publishable key acts on another account.
    OtherAccount,
    /// The account has no PaymentIntent to try it on.
    NoIntentYet,
}

#[derive(serde::Serialize)]
struct WithClientSecret<'a> {
    client_secret: &'a str,
}

#[derive(miniserde::Deserialize)]
struct Found {
    id: String,
    object: String,
}

impl StripeApi {
    /// `newest`: an intent of the secret key's account (`check_key` returns
    /// its newest). A publishable key Stripe does not know at all is
    /// `InvalidKey`, as for a secret key.
    pub async fn check_publishable_key(
        &self,
        key: &PublishableKey,
        newest: Option<&IntentHandle>,
    ) -> Result<PublishableKeyCheck, StripeFailure> {
        let Some(intent) = newest else {
            return Ok(PublishableKeyCheck::NoIntentYet);
        };
        let found: Result<Found, _> =
            RequestBuilder::new(StripeMethod::Get, format!("/payment_intents/{}", intent.id))
                .query(&WithClientSecret {
                    client_secret: intent.client_secret.expose(),
                })
                .customize()
                .send(&self.client_with(key.as_str())?)
                .await;
        match found {
            Ok(found) if found.object == "payment_intent" && found.id == intent.id => {
                Ok(PublishableKeyCheck::SameAccount)
            }
            Ok(found) => Err(StripeFailure::Unreachable(
                format!("unexpected object `{}`", found.object).into(),
            )),
            Err(stripe::StripeError::Stripe(_, 404)) => Ok(PublishableKeyCheck::OtherAccount),
            Err(err) => Err(StripeFailure::from_client(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use url::Url;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PK: &str = "pk_test_51HqLyjWDarjtT1zdp7dcXYZ";
    /// Stripe's sample PaymentIntent (fixtures3.json), as the secret key lists it.
    const INTENT: &str = include_str!("../../../tests/system/fixtures/stripe/payment_intent.json");

    fn sample() -> (serde_json::Value, IntentHandle) {
        let intent: serde_json::Value = serde_json::from_str(INTENT).unwrap();
        let handle = IntentHandle::new(
            intent["id"].as_str().unwrap().to_owned(),
            intent["client_secret"].as_str().unwrap().to_owned(),
        )
        .unwrap();
        (intent, handle)
    }

    async fn check_with(answer: ResponseTemplate) -> Result<PublishableKeyCheck, StripeFailure> {
        let (intent, handle) = sample();
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/v1/payment_intents/{}", handle.id)))
            .and(query_param(
                "client_secret",
                intent["client_secret"].as_str().unwrap(),
            ))
            .and(header("authorization", format!("Bearer {PK}").as_str()))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        StripeApi::new(
            Url::parse(&format!("{}/", server.uri())).unwrap(),
            Duration::from_secs(2),
        )
        .check_publishable_key(&PublishableKey::parse(PK).unwrap(), Some(&handle))
        .await
    }

    #[tokio::test]
    async fn the_secret_keys_intent_found_with_the_publishable_key_proves_one_account() {
        let (intent, _) = sample();
        let found = check_with(ResponseTemplate::new(200).set_body_json(intent)).await;
        assert_eq!(found.unwrap(), PublishableKeyCheck::SameAccount);
    }

    #[tokio::test]
    async fn another_accounts_publishable_key_does_not_find_it() {
        // Stripe's answer when the intent is not in the key's account.
        let missing = ResponseTemplate::new(404).set_body_json(serde_json::json!({"error": {
            "code": "resource_missing", "param": "intent", "type": "invalid_request_error",
            "message": "No such payment_intent: 'pi_1PgafyB7WZ01zgkWSjxsAJo3'",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing"}}));
        assert_eq!(
            check_with(missing).await.unwrap(),
            PublishableKeyCheck::OtherAccount
        );
    }

    #[tokio::test]
    async fn an_unknown_publishable_key_and_an_outage_are_failures_not_answers() {
        let invalid = ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error", "message": "Invalid API Key provided: pk_test_****XYZ"}}));
        assert!(matches!(
            check_with(invalid).await,
            Err(StripeFailure::InvalidKey)
        ));
        let down = ResponseTemplate::new(503).set_body_json(serde_json::json!({"error": {
            "type": "api_error", "message": "try again"}}));
        assert!(matches!(
            check_with(down).await,
            Err(StripeFailure::Unreachable(_))
        ));
        let (mut other, _) = sample();
        other["id"] = "pi_somebody_else".into();
        assert!(matches!(
            check_with(ResponseTemplate::new(200).set_body_json(other)).await,
            Err(StripeFailure::Unreachable(_))
        ));
    }

    #[tokio::test]
    async fn an_account_without_intents_asks_nothing() {
        let api = StripeApi::new(
            Url::parse("http://127.0.0.1:9/").unwrap(),
            Duration::from_millis(100),
        );
        let found = api
            .check_publishable_key(&PublishableKey::parse(PK).unwrap(), None)
            .await;
        assert_eq!(found.unwrap(), PublishableKeyCheck::NoIntentYet);
    }

    #[test]
    fn only_intent_ids_make_a_handle() {
        assert!(IntentHandle::new("../charges".into(), "s".into()).is_none());
        assert!(IntentHandle::new("pi_1/x".into(), "s".into()).is_none());
        assert!(IntentHandle::new("pi_1Abc".into(), "s".into()).is_some());
    }
}
