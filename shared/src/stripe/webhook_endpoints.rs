//! Webhook endpoints in the merchant's Stripe account, created (and deleted)
//! for them when their key allows it, so the merchant has nothing to set up.

use super::{StripeApi, StripeFailure};
use crate::domain::{StoreId, WebhookSecret};
use stripe_client_core::{RequestBuilder, StripeMethod};

/// The events we act on (and nothing else, to keep deliveries down).
pub const EVENTS: [&str; 8] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "charge.refunded",
    // A refund that failed gives its amount back.
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.closed",
];

/// Pinned so the shape of deliveries does not change under us when the
/// merchant upgrades their account's default version.
pub fn api_version() -> String {
    stripe_client_core::VERSION.to_string()
}

pub struct CreatedEndpoint {
    pub id: String,
    pub secret: WebhookSecret,
}

#[derive(serde::Serialize)]
struct CreateForm<'a> {
    url: &'a str,
    enabled_events: &'a [&'a str],
    api_version: String,
    description: &'a str,
    metadata: Metadata,
}

#[derive(serde::Serialize)]
struct Metadata {
    store_id: String,
}

#[derive(miniserde::Deserialize)]
struct EndpointWire {
    id: String,
    object: String,
    secret: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct DeletedWire {
    deleted: bool,
}

impl StripeApi {
    pub async fn create_webhook_endpoint(
        &self,
        key: &crate::domain::SecretKey,
        url: &str,
        store_id: &StoreId,
    ) -> Result<CreatedEndpoint, StripeFailure> {
        let form = CreateForm {
            url,
            enabled_events: &EVENTS,
            api_version: api_version(),
            description: "checkout.best: order payments",
            metadata: Metadata {
                store_id: store_id.to_string(),
            },
        };
        let wire: EndpointWire = RequestBuilder::new(StripeMethod::Post, "/webhook_endpoints")
            .form(&form)
            .customize()
            .send(&self.client(key)?)
            .await
            .map_err(StripeFailure::from_client)?;
        let unexpected = |what: &str| {
            StripeFailure::Unreachable(format!("webhook endpoint answer {what}").into())
        };
        if wire.object != "webhook_endpoint" {
            return Err(unexpected("is not a webhook_endpoint"));
        }
        let secret = wire.secret.ok_or_else(|| unexpected("has no secret"))?;
        let secret =
            WebhookSecret::parse(&secret).map_err(|_| unexpected("has a malformed secret"))?;
        Ok(CreatedEndpoint {
            id: wire.id,
            secret,
        })
    }

    pub async fn delete_webhook_endpoint(
        &self,
        key: &crate::domain::SecretKey,
        id: &str,
    ) -> Result<(), StripeFailure> {
        if !id.starts_with("we_") || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StripeFailure::Unreachable(
                format!("not a webhook endpoint id: {id}").into(),
            ));
        }
        let wire: DeletedWire =
            RequestBuilder::new(StripeMethod::Delete, format!("/webhook_endpoints/{id}"))
                .customize()
                .send(&self.client(key)?)
                .await
                .map_err(StripeFailure::from_client)?;
        if !wire.deleted {
            return Err(StripeFailure::Unreachable(
                "Stripe did not delete the endpoint".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SecretKey;
    use crate::stripe::samples;
    use std::time::Duration;
    use url::Url;
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const STORE: &str = "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";

    fn api(server: &MockServer) -> StripeApi {
        StripeApi::new(
            Url::parse(&format!("{}/", server.uri())).unwrap(),
            Duration::from_secs(2),
        )
    }

    #[tokio::test]
    async fn creates_the_endpoint_with_our_url_events_version_and_store() {
        let server = MockServer::start().await;
        let key = SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap();
        let url = format!("https://pay.example/webhook/stripe/{STORE}");
        let mut mock = Mock::given(method("POST"))
            .and(path("/v1/webhook_endpoints"))
            .and(header("authorization", "Bearer sk_test_storeAAAAAAAAAAAA"))
            .and(body_string_contains(format!("url={url}&")))
            .and(body_string_contains(format!(
                "api_version={}",
                api_version()
            )))
            .and(body_string_contains(format!("metadata[store_id]={STORE}")));
        for (i, event) in EVENTS.iter().enumerate() {
            mock = mock.and(body_string_contains(format!("enabled_events[{i}]={event}")));
        }
        // Stripe's sample endpoint, as its creation answers (the one answer
        // with the secret).
        mock.respond_with(ResponseTemplate::new(200).set_body_json(samples::object(
            "webhook_endpoint",
            serde_json::json!({"id": "we_123", "api_version": api_version(), "enabled_events": EVENTS,
                   "metadata": {"store_id": STORE}, "secret": "whsec_generated0123456789", "url": url}),
        )))
        .expect(1)
        .mount(&server)
        .await;
        let created = api(&server)
            .create_webhook_endpoint(&key, &url, &StoreId::parse(STORE).unwrap())
            .await
            .unwrap();
        assert_eq!(created.id, "we_123");
        assert_eq!(created.secret.expose(), "whsec_generated0123456789");
    }

    #[tokio::test]
    async fn a_restricted_key_without_the_permission_is_told_apart() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({"error": {"type": "invalid_request_error",
                "message": "Having the 'rak_webhook_write' permission would allow this request to continue."}})))
            .mount(&server)
            .await;
        let key = SecretKey::parse("rk_test_storeAAAAAAAAAAAA").unwrap();
        let failure = api(&server)
            .create_webhook_endpoint(
                &key,
                "https://pay.example/webhook/stripe/x",
                &StoreId::parse(STORE).unwrap(),
            )
            .await
            .err()
            .unwrap();
        assert!(
            matches!(failure, StripeFailure::MissingPermission { permission: Some(ref p) } if p == "rak_webhook_write"),
            "{failure:?}"
        );
    }

    #[tokio::test]
    async fn deletes_by_id_with_the_key_that_made_it() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/v1/webhook_endpoints/we_123"))
            .and(header("authorization", "Bearer sk_test_storeAAAAAAAAAAAA"))
            .respond_with(ResponseTemplate::new(200).set_body_json(samples::object(
                "deleted_webhook_endpoint",
                serde_json::json!({"id": "we_123"}),
            )))
            .expect(1)
            .mount(&server)
            .await;
        let key = SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap();
        api(&server)
            .delete_webhook_endpoint(&key, "we_123")
            .await
            .unwrap();
        assert!(
            api(&server)
                .delete_webhook_endpoint(&key, "../payment_intents")
                .await
                .is_err()
        );
    }
}
