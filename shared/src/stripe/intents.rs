//! PaymentIntents on the merchant's account, with the merchant's key.

use super::{StripeApi, StripeFailure};
use crate::domain::{Money, OrderId, Secret, SecretKey, StoreId};
use stripe::{IdempotencyKey, RequestStrategy};
use stripe_client_core::{RequestBuilder, StripeMethod};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    Other(String),
}

impl IntentStatus {
    fn parse(raw: &str) -> Self {
        match raw {
            "requires_payment_method" => IntentStatus::RequiresPaymentMethod,
            "requires_confirmation" => IntentStatus::RequiresConfirmation,
            "requires_action" => IntentStatus::RequiresAction,
            "processing" => IntentStatus::Processing,
            "requires_capture" => IntentStatus::RequiresCapture,
            "canceled" => IntentStatus::Canceled,
            "succeeded" => IntentStatus::Succeeded,
            other => IntentStatus::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Processing => "processing",
            IntentStatus::RequiresCapture => "requires_capture",
            IntentStatus::Canceled => "canceled",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Other(other) => other,
        }
    }

    /// The customer can still pay with this intent.
    pub fn is_usable(&self) -> bool {
        matches!(
            self,
            IntentStatus::RequiresPaymentMethod
                | IntentStatus::RequiresConfirmation
                | IntentStatus::RequiresAction
        )
    }
}

/// The intent's client secret: handed to the customer's browser and to
/// nobody else (never logged).
#[derive(Clone, Debug)]
pub struct ClientSecret(Secret<String>);

impl ClientSecret {
    pub(super) fn new(value: String) -> Self {
        ClientSecret(Secret::new(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// The fields of a PaymentIntent we use.
#[derive(Clone, Debug)]
pub struct PaymentIntent {
    pub id: String,
    pub status: IntentStatus,
    pub amount: u64,
    pub currency: String,
    pub livemode: Option<bool>,
    pub client_secret: Option<ClientSecret>,
    pub order_id: Option<String>,
    pub store_id: Option<String>,
    /// Stripe's customer-facing message for the last failed attempt.
    pub last_error: Option<String>,
}

impl PaymentIntent {
    /// Whether our metadata on the intent names `order_id`.
    pub fn is_for(&self, order_id: &OrderId) -> bool {
        self.order_id.as_deref().is_some_and(|id| order_id.is(id))
    }
}

#[derive(miniserde::Deserialize)]
struct IntentWire {
    id: String,
    object: String,
    status: String,
    amount: u64,
    currency: String,
    livemode: Option<bool>,
    client_secret: Option<String>,
    metadata: Option<MetadataWire>,
    last_payment_error: Option<PaymentErrorWire>,
}

#[derive(miniserde::Deserialize)]
struct MetadataWire {
    store_id: Option<String>,
    order_id: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct PaymentErrorWire {
    message: Option<String>,
}

impl IntentWire {
    fn into_intent(self) -> Result<PaymentIntent, StripeFailure> {
        if self.object != "payment_intent" {
            return Err(StripeFailure::Unreachable(
                format!("expected a payment_intent, got `{}`", self.object).into(),
            ));
        }
        let metadata = self.metadata.unwrap_or(MetadataWire {
            store_id: None,
            order_id: None,
        });
        Ok(PaymentIntent {
            id: self.id,
            status: IntentStatus::parse(&self.status),
            amount: self.amount,
            currency: self.currency,
            livemode: self.livemode,
            client_secret: self.client_secret.map(ClientSecret::new),
            order_id: metadata.order_id,
            store_id: metadata.store_id,
            last_error: self.last_payment_error.and_then(|e| e.message),
        })
    }
}

/// What to charge, from the order (never from the browser).
pub struct NewIntent<'a> {
    pub amount: Money,
    pub store_id: &'a StoreId,
    pub order_id: &'a OrderId,
    /// Derived from the order, so a retry or a double click asks Stripe for
    /// the same intent instead of a second charge.
    pub idempotency_key: String,
    /// `None`: Stripe chooses (automatic payment methods, the Payment
    /// Element's documented flow); `Some`: exactly these types.
    pub payment_method_types: Option<&'a [String]>,
}

#[derive(serde::Serialize)]
struct CreateForm<'a> {
    amount: u64,
    currency: &'a str,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    automatic_payment_methods: Option<Automatic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_method_types: Option<&'a [String]>,
}

#[derive(serde::Serialize)]
struct Metadata<'a> {
    store_id: String,
    order_id: &'a OrderId,
}

#[derive(serde::Serialize)]
struct Automatic {
    enabled: bool,
}

/// Ids go into the URL path: only an intent's id shape is sent.
fn check_intent_id(id: &str) -> Result<(), StripeFailure> {
    if !is_intent_id(id) {
        return Err(StripeFailure::Unreachable(
            format!("not a PaymentIntent id: {id}").into(),
        ));
    }
    Ok(())
}

impl StripeApi {
    pub async fn create_intent(
        &self,
        key: &SecretKey,
        new: &NewIntent<'_>,
    ) -> Result<PaymentIntent, StripeFailure> {
        let form = CreateForm {
            amount: new.amount.minor(),
            currency: new.amount.currency().code(),
            metadata: Metadata {
                store_id: new.store_id.to_string(),
                order_id: new.order_id,
            },
            automatic_payment_methods: new
                .payment_method_types
                .is_none()
                .then_some(Automatic { enabled: true }),
            payment_method_types: new.payment_method_types,
        };
        let key_header = IdempotencyKey::new(&new.idempotency_key).map_err(|e| {
            StripeFailure::Unreachable(format!("invalid idempotency key: {e:?}").into())
        })?;
        let wire: IntentWire = RequestBuilder::new(StripeMethod::Post, "/payment_intents")
            .form(&form)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key_header))
            .send(&self.client(key)?)
            .await
            .map_err(StripeFailure::from_client)?;
        wire.into_intent()
    }

    pub async fn retrieve_intent(
        &self,
        key: &SecretKey,
        id: &str,
    ) -> Result<PaymentIntent, StripeFailure> {
        check_intent_id(id)?;
        let wire: IntentWire =
            RequestBuilder::new(StripeMethod::Get, format!("/payment_intents/{id}"))
                .customize()
                .send(&self.client(key)?)
                .await
                .map_err(StripeFailure::from_client)?;
        wire.into_intent()
    }

    pub async fn cancel_intent(
        &self,
        key: &SecretKey,
        id: &str,
    ) -> Result<PaymentIntent, StripeFailure> {
        check_intent_id(id)?;
        let wire: IntentWire =
            RequestBuilder::new(StripeMethod::Post, format!("/payment_intents/{id}/cancel"))
                .customize()
                .send(&self.client(key)?)
                .await
                .map_err(StripeFailure::from_client)?;
        wire.into_intent()
    }
}

/// A PaymentIntent id, which becomes part of a request path.
pub(super) fn is_intent_id(id: &str) -> bool {
    id.starts_with("pi_") && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use url::Url;
    use wiremock::matchers::{body_string, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const STORE_A: &str = "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";
    const STORE_B: &str = "5a0f8d3c-1111-4c2b-8e7e-0a9b8c7d6e5f";
    const ORDER_A: &str = "5d9e7c1a-0000-4000-8000-00000000000a";
    const ORDER_B: &str = "5d9e7c1a-0000-4000-8000-00000000000b";

    /// Stripe's sample PaymentIntent as ours: every field Stripe sends, the
    /// ones we ignore included, so parsing must skip them.
    fn stripe_intent(
        id: &str,
        status: &str,
        amount: u64,
        order_id: &str,
        store_id: &str,
    ) -> serde_json::Value {
        crate::stripe::samples::object(
            "payment_intent",
            serde_json::json!({"id": id, "status": status, "amount": amount, "currency": "eur",
                   "client_secret": format!("{id}_secret_abc"),
                   "metadata": {"order_id": order_id, "store_id": store_id}}),
        )
    }

    fn api(server: &MockServer) -> StripeApi {
        StripeApi::new(
            Url::parse(&format!("{}/", server.uri())).unwrap(),
            Duration::from_secs(2),
        )
    }

    fn new_intent<'a>(store: &'a StoreId, order: &'a OrderId) -> NewIntent<'a> {
        NewIntent {
            amount: Money::new(2999, crate::domain::Currency::parse("eur").unwrap()),
            store_id: store,
            order_id: order,
            idempotency_key: format!("checkout-{order}-1"),
            payment_method_types: None,
        }
    }

    #[tokio::test]
    async fn creates_with_the_exact_form_the_merchants_key_and_a_stable_idempotency_key() {
        let server = MockServer::start().await;
        let key_a = SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap();
        let key_b = SecretKey::parse("sk_test_storeBBBBBBBBBBBB").unwrap();
        let a = StoreId::parse(STORE_A).unwrap();
        let b = StoreId::parse(STORE_B).unwrap();
        for (key, store, order) in [(&key_a, &a, ORDER_A), (&key_b, &b, ORDER_B)] {
            Mock::given(method("POST"))
                .and(path("/v1/payment_intents"))
                .and(header("authorization", format!("Bearer {}", key.expose()).as_str()))
                .and(header("idempotency-key", format!("checkout-{order}-1").as_str()))
                .and(body_string(format!(
                    "amount=2999&currency=eur&metadata[store_id]={store}&metadata[order_id]={order}&automatic_payment_methods[enabled]=true"
                )))
                .respond_with(ResponseTemplate::new(200).set_body_json(stripe_intent("pi_1", "requires_payment_method", 2999, order, &store.to_string())))
                .expect(2)
                .mount(&server)
                .await;
        }
        let api = api(&server);
        // Two stores interleaved, each call twice (a retry): every request
        // carries its own store's key and the same idempotency key.
        for _ in 0..2 {
            for (key, store, order) in [(&key_a, &a, ORDER_A), (&key_b, &b, ORDER_B)] {
                let intent = api
                    .create_intent(key, &new_intent(store, &OrderId::parse(order).unwrap()))
                    .await
                    .unwrap();
                assert_eq!(intent.order_id.as_deref(), Some(order));
                assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
                assert_eq!(intent.client_secret.unwrap().expose(), "pi_1_secret_abc");
            }
        }
    }

    #[tokio::test]
    async fn explicit_payment_method_types_replace_automatic() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(|req: &Request| {
                let body = String::from_utf8_lossy(&req.body).into_owned();
                assert!(body.contains("payment_method_types[0]=card"), "{body}");
                assert!(!body.contains("automatic_payment_methods"), "{body}");
                ResponseTemplate::new(200).set_body_json(stripe_intent(
                    "pi_2",
                    "requires_payment_method",
                    2999,
                    "o",
                    STORE_A,
                ))
            })
            .expect(1)
            .mount(&server)
            .await;
        let store = StoreId::parse(STORE_A).unwrap();
        let types = vec!["card".to_string()];
        let order = OrderId::parse(ORDER_A).unwrap();
        let mut new = new_intent(&store, &order);
        new.payment_method_types = Some(&types);
        api(&server)
            .create_intent(
                &SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap(),
                &new,
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn card_declines_rate_limits_and_outages_are_told_apart() {
        let cases: Vec<(ResponseTemplate, &str)> = vec![
            (
                ResponseTemplate::new(402).set_body_json(serde_json::json!({"error": {
                    "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                    "message": "Your card has insufficient funds.", "param": ""}})),
                "402 insufficient_funds Your card has insufficient funds.",
            ),
            (
                ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": {
                    "type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****AAAA"}})),
                "409 store_needs_reconnect",
            ),
            (
                ResponseTemplate::new(429).set_body_json(serde_json::json!({"error": {"type": "rate_limit_error", "message": "Too many"}})),
                "503 dependency_throttled",
            ),
            (
                ResponseTemplate::new(503).set_body_json(serde_json::json!({"error": {"type": "api_error", "message": "down"}})),
                "502 dependency_failed",
            ),
        ];
        let store = StoreId::parse(STORE_A).unwrap();
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let failure = api(&server)
                .create_intent(
                    &SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap(),
                    &new_intent(&store, &OrderId::parse(ORDER_A).unwrap()),
                )
                .await
                .unwrap_err();
            let err = crate::error::AppError::from(failure);
            let got = match &err {
                crate::error::AppError::PaymentFailed { .. } => {
                    format!("{} {} {}", err.status().as_u16(), err.code(), err)
                }
                _ => format!("{} {}", err.status().as_u16(), err.code()),
            };
            assert_eq!(got, expected);
            assert!(!format!("{err:?}").contains("sk_test"), "{err:?}");
        }
    }

    #[tokio::test]
    async fn retrieves_and_refuses_ids_that_are_not_intents() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payment_intents/pi_3"))
            .respond_with(ResponseTemplate::new(200).set_body_json(stripe_intent(
                "pi_3",
                "succeeded",
                2999,
                "o",
                STORE_A,
            )))
            .mount(&server)
            .await;
        let key = SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap();
        let intent = api(&server).retrieve_intent(&key, "pi_3").await.unwrap();
        assert_eq!(intent.status, IntentStatus::Succeeded);
        assert_eq!(intent.amount, 2999);
        assert!(
            api(&server)
                .retrieve_intent(&key, "../charges")
                .await
                .is_err()
        );
    }
}
