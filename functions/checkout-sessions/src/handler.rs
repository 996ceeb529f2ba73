//! Creates a pending order for BMOS's cart and a checkout session whose
//! 256-bit token is the customer's link; only the token's hash is stored.
//! With an `Idempotency-Key`, a retry gets the same order and link
//! (`idempotency.rs`).

use crate::idempotency;
use crate::session_response::{SessionResponse, created};
use lambda_http::{Body, Request, Response};
use shared::auth::session_token;
use shared::domain::{CartRequest, Order};
use shared::internal_api;
use shared::store::{CheckoutSession, CheckoutWrite, IdempotentCheckout};
use shared::vault::{EncryptionContext, Purpose};
use shared::{App, AppError, clock, http};

const MIN_TTL: u64 = 5 * 60;
const MAX_TTL: u64 = shared::domain::LONGEST_SESSION_SECS;

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    internal_api::authenticate_bmos(app, &req).await?;
    let idempotency_key = idempotency::key(&req)?;
    let raw = http::body_bytes(&req)?;
    let body: CartRequest = serde_json::from_slice(raw).map_err(|e| {
        AppError::bad_request(
            "invalid_body",
            format!("Body must be a JSON checkout session request: {e}"),
        )
    })?;
    let ttl = body
        .expires_in
        .unwrap_or(app.config.checkout_session_ttl.as_secs());
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(AppError::unprocessable(
            "invalid_field",
            format!("expires_in: must be between {MIN_TTL} and {MAX_TTL} seconds"),
        ));
    }
    let cart = body.validate(app.config.local_mode)?;
    let now = clock::now();
    // A retry is answered from the record alone, before anything else is
    // read: the first answer stands even if the store changed since.
    let idempotent = match idempotency_key {
        None => None,
        Some(key) => {
            let request_hash = idempotency::request_hash(raw)?;
            if let Some(record) = app
                .table
                .get_idempotent_checkout(&cart.store_id, &key, now)
                .await?
            {
                return idempotency::answer_again(app, &req, &record, &request_hash).await;
            }
            Some((key, request_hash))
        }
    };
    let connection = app
        .table
        .get_connection(&cart.store_id)
        .await?
        .ok_or_else(|| {
            AppError::not_found(
                "store_not_connected",
                "This store has not connected a Stripe account.",
            )
        })?;
    // Stripe rejected the store's key: a link made now could not be paid.
    shared::key_health::require_usable_key(&connection)?;

    let (token, token_hash) =
        session_token::generate().map_err(|e| AppError::internal(e.to_string()))?;
    let order = Order {
        session_expires_at: Some(now + ttl),
        ..Order::from_cart(cart, connection.mode(), now)
    };
    let session = CheckoutSession {
        token_hash,
        order_id: order.order_id,
        store_id: order.store_id,
        expires_at: now + ttl,
        created_at: now,
    };
    let record = match &idempotent {
        None => None,
        // Sealed, not derived from a secret: BMOS holds the internal secret,
        // and a token it (or a leak of it) could compute from an order id
        // would open the customer's checkout.
        Some((key, request_hash)) => Some(IdempotentCheckout {
            store_id: order.store_id,
            key_hash: key.hash(),
            request_hash: request_hash.clone(),
            order_id: order.order_id,
            total: order.total,
            status: order.status,
            session_expires_at: session.expires_at,
            token: app
                .vault
                .seal(
                    EncryptionContext::new(order.store_id, Purpose::CheckoutToken),
                    &token,
                )
                .await?,
            created_at: now,
        }),
    };
    match (
        app.table
            .create_checkout(&order, &session, record.as_ref(), now)
            .await?,
        &idempotent,
    ) {
        (CheckoutWrite::Created, _) => {}
        (CheckoutWrite::KeyTaken, Some((key, request_hash))) => {
            return idempotency::answer_after_losing_the_race(
                app,
                &req,
                &order.store_id,
                key,
                request_hash,
            )
            .await;
        }
        (CheckoutWrite::KeyTaken, None) => {
            return Err(AppError::internal(
                "an idempotency key was taken by a request that sent none",
            ));
        }
    }
    tracing::info!(order_id = %order.order_id, store_id = %order.store_id, amount = order.total.minor(), currency = order.total.currency().code(), idempotent = idempotent.is_some(), "checkout session created");
    let response = SessionResponse {
        order_id: order.order_id,
        checkout_url: String::new(),
        expires_at: session.expires_at,
        amount: order.total.minor(),
        currency: order.total.currency().code(),
        status: order.status.as_str(),
    };
    created(app, &req, response, &token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    fn event(body: &str) -> Request {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/checkout-sessions.json"))
                .unwrap();
        *req.body_mut() = Body::Text(body.to_owned());
        req
    }

    #[tokio::test]
    async fn the_sample_event_is_valid_up_to_the_store_lookup() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/checkout-sessions.json"))
                .unwrap();
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(
            err.status(),
            502,
            "validation passed, then the offline table failed: {err:?}"
        );
    }

    #[tokio::test]
    async fn bad_idempotency_keys_are_refused_before_any_io() {
        for key in ["", "A 17", &"k".repeat(256)] {
            let mut req = lambda_http::request::from_str(include_str!(
                "../../../events/checkout-sessions.json"
            ))
            .unwrap();
            req.headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
            let err = handle(offline_app(), req).await.unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (400, "invalid_idempotency_key"),
                "{key:?}"
            );
        }
        // Bytes that are not UTF-8 (the local router answers 500 itself for
        // these; API Gateway passes them on): still 400, never a 5xx.
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/checkout-sessions.json"))
                .unwrap();
        req.headers_mut().insert(
            "idempotency-key",
            lambda_http::http::HeaderValue::from_bytes(&[0xd7, 0xf8, 0x9b]).unwrap(),
        );
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(err.code(), "invalid_idempotency_key");
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/checkout-sessions.json"))
                .unwrap();
        req.headers_mut()
            .append("idempotency-key", "A-17".parse().unwrap());
        req.headers_mut()
            .append("idempotency-key", "A-18".parse().unwrap());
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(err.code(), "invalid_idempotency_key");
    }

    #[tokio::test]
    async fn a_good_key_goes_on_to_the_table() {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/checkout-sessions.json"))
                .unwrap();
        req.headers_mut()
            .insert("idempotency-key", "cart-A-17".parse().unwrap());
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(err.status(), 502, "{err:?}");
    }

    #[tokio::test]
    async fn bad_carts_are_refused_before_any_io() {
        let cases = [
            ("{", 400, "invalid_body"),
            (
                r#"{"store_id": "x", "currency": "eur", "line_items": []}"#,
                400,
                "invalid_store_id",
            ),
            (
                r#"{"store_id": "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11", "currency": "eur", "line_items": [{"name": "A", "unit_amount": 1.5, "quantity": 1}]}"#,
                422,
                "invalid_field",
            ),
            (
                r#"{"store_id": "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11", "currency": "eur", "line_items": [{"name": "A", "unit_amount": 100, "quantity": 1}], "expires_in": 10}"#,
                422,
                "invalid_field",
            ),
            (
                r#"{"store_id": "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11", "currency": "eur", "line_items": [{"name": "A", "unit_amount": 100, "quantity": 1}], "amount": 1}"#,
                400,
                "invalid_body",
            ),
        ];
        for (body, status, code) in cases {
            let err = handle(offline_app(), event(body)).await.unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{body}"
            );
        }
    }
}
