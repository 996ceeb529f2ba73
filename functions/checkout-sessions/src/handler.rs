//! Creates a pending order for BMOS's cart and a checkout session whose
//! 256-bit token is the customer's link; only the token's hash is stored.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::auth::{internal, session_token};
use shared::domain::CartRequest;
use shared::store::{CheckoutSession, Order};
use shared::{App, AppError, clock, http};

const MIN_TTL: u64 = 5 * 60;
const MAX_TTL: u64 = 24 * 60 * 60;

#[derive(Debug, Serialize)]
pub struct SessionResponse {
    pub order_id: String,
    pub checkout_url: String,
    pub expires_at: u64,
    pub amount: u64,
    pub currency: &'static str,
    pub status: &'static str,
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    internal::authenticate_request(&app.config.internal_secret, &app.store, &req).await?;
    let body: CartRequest = serde_json::from_slice(http::body_bytes(&req)?).map_err(|e| {
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
    let connection = app
        .store
        .get_connection(&cart.store_id)
        .await?
        .ok_or_else(|| {
            AppError::not_found(
                "store_not_connected",
                "This store has not connected a Stripe account.",
            )
        })?;

    let now = clock::now();
    let (token, token_hash) =
        session_token::generate().map_err(|e| AppError::internal(e.to_string()))?;
    let order = Order::from_cart(cart, connection.mode(), now);
    let session = CheckoutSession {
        token_hash,
        order_id: order.order_id.clone(),
        store_id: order.store_id,
        expires_at: now + ttl,
        created_at: now,
    };
    app.store.create_checkout(&order, &session).await?;
    tracing::info!(order_id = %order.order_id, store_id = %order.store_id, amount = order.amount, currency = order.currency.code(), "checkout session created");
    let checkout_url = http::public_base_url(&app.config, &req)?
        .join(&format!("checkout/{token}"))
        .map_err(AppError::internal)?
        .to_string();
    let response = SessionResponse {
        order_id: order.order_id.clone(),
        checkout_url,
        expires_at: session.expires_at,
        amount: order.amount,
        currency: order.currency.code(),
        status: order.status.as_str(),
    };
    Ok(http::json(StatusCode::CREATED, &response))
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
