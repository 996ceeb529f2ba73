//! `GET /checkout/{token}`: the order and Stripe's payment form, loaded with
//! the merchant's publishable key. No card data ever reaches us.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::checkout::Checkout;
use shared::pages::{self, CheckoutPage, ItemRow, PageScripts};
use shared::{App, AppError, clock, http};

pub async fn handle(app: &App, req: &Request, token: &str) -> Result<Response<Body>, AppError> {
    let checkout = Checkout::open(app, token).await?;
    let order = &checkout.order;
    if order.status.is_paid() {
        return crate::complete::result_page(app, order, crate::complete::Outcome::Paid);
    }
    checkout.check_not_expired(clock::now())?;
    if !order.status.awaits_payment() {
        return Err(AppError::conflict(
            "order_closed",
            format!("This order is {} and cannot be paid.", order.status),
        ));
    }
    let connection = app
        .table
        .get_connection(&order.store_id)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "store_not_connected",
                "This shop cannot take payments right now.",
            )
        })?;
    shared::key_health::require_usable_key(&connection)?;
    let base = http::public_base_url(&app.config, req)?;
    let nonce = http::nonce();
    let page = CheckoutPage {
        nonce: nonce.clone(),
        store_name: order.store_name.as_deref(),
        test_mode: !connection.mode().is_live(),
        items: ItemRow::for_order(order),
        total: order.total.to_string(),
        previous_error: order
            .last_payment_error
            .as_deref()
            .filter(|_| order.status == shared::domain::OrderStatus::Failed),
        publishable_key: connection.publishable_key.as_str(),
        stripe_js_url: app.config.stripe_js_url.as_str(),
        intent_url: format!("/checkout/{token}/payment-intent"),
        return_url: base
            .join(&format!("checkout/{token}/complete"))
            .map_err(AppError::internal)?
            .to_string(),
    };
    let sources = app.config.stripe_js_sources();
    pages::render(
        StatusCode::OK,
        &page,
        &nonce,
        PageScripts::StripeJs { sources: &sources },
    )
}
