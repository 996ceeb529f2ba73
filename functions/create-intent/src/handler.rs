//! Gives the checkout page the client secret of the order's PaymentIntent,
//! created on the merchant's own Stripe account with the merchant's key.
//! Called again (reload, double click, retry) it returns the same intent
//! while that can still be paid: one order, one charge. The amount is the
//! order's; nothing in the request can change it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::checkout::{self, Checkout};
use shared::{App, AppError, clock, http};

#[derive(Serialize)]
struct IntentResponse<'a> {
    client_secret: &'a str,
    publishable_key: &'a str,
    amount: u64,
    currency: &'static str,
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    http::body_bytes(&req)?;
    let token = http::path_param(&req, "token").unwrap_or_default();
    let checkout = Checkout::open(app, &token).await?;
    let order = &checkout.order;
    if order.status.is_paid() {
        return Err(AppError::conflict(
            "already_paid",
            "This order has already been paid.",
        ));
    }
    checkout.check_not_expired(clock::now())?;
    let (connection, key) = checkout::merchant_key(app, &order.store_id).await?;
    let intent = checkout::payment_intent_for(app, order, &connection, &key).await?;
    let client_secret = intent.client_secret.as_ref().ok_or_else(|| {
        AppError::dependency("Stripe", "PaymentIntent came without a client secret")
    })?;
    Ok(http::json(
        StatusCode::OK,
        &IntentResponse {
            client_secret: client_secret.expose(),
            publishable_key: connection.publishable_key.as_str(),
            amount: order.total.minor(),
            currency: order.total.currency().code(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn an_unknown_token_shape_is_404_before_any_io() {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/create-intent.json"))
                .unwrap();
        req = lambda_http::RequestExt::with_path_parameters(
            req,
            std::collections::HashMap::from([("token".to_string(), "short".to_string())]),
        );
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (404, "unknown_checkout")
        );
    }

    #[tokio::test]
    async fn a_real_token_shape_reaches_the_table() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/create-intent.json"))
                .unwrap();
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 502);
    }
}
