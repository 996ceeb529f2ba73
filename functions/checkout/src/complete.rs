//! `GET /checkout/{token}/complete`: where Stripe sends the customer back.
//! We do not trust the query Stripe appends: we ask Stripe about the intent
//! with the merchant's key and record the outcome through the same guarded
//! transition webhooks use, so the order is paid even without a webhook.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use shared::checkout::{self, Checkout, PaymentState};
use shared::domain::Order;
use shared::metrics::PaidVia;
use shared::pages::{self, CheckoutResult, ItemRow, Link, PageScripts};
use shared::{App, AppError, http, key_health};

pub enum Outcome {
    Paid,
    Processing,
    Review,
}

pub async fn handle(app: &App, token: &str) -> Result<Response<Body>, AppError> {
    let checkout = Checkout::open(app, token).await?;
    let order = &checkout.order;
    let back_to_page = || http::see_other(&format!("/checkout/{token}"));
    if order.status.is_paid() {
        return paid(order, token);
    }
    if order.payment_intent_id.is_none() {
        return back_to_page();
    }
    let (connection, key) = checkout::merchant_key(app, &order.store_id).await?;
    let Some(intent_id) = order.payment_intent_id.as_deref() else {
        return back_to_page();
    };
    // The return URL can be reloaded in a loop too: each is a Stripe read
    // on the merchant's key, so it spends the order's read budget.
    checkout::spend_intent_read(app, order).await?;
    let read = app.stripe.retrieve_intent(&key, intent_id).await;
    let intent = key_health::watch(app, &connection, "retrieve PaymentIntent", read).await?;
    match checkout::apply_intent(app, order, &intent, PaidVia::Return).await? {
        PaymentState::Paid => paid(order, token),
        PaymentState::Processing => result_page(app, order, Outcome::Processing),
        PaymentState::Flagged => result_page(app, order, Outcome::Review),
        // The page shows the failure reason recorded on the order.
        PaymentState::Failed { .. } | PaymentState::Unfinished => back_to_page(),
    }
}

/// Paid: on to the shop's success page if it gave one, else to the checkout
/// page, which shows the receipt (and drops the client secret Stripe put in
/// this URL from the address bar).
fn paid(order: &Order, token: &str) -> Result<Response<Body>, AppError> {
    match &order.success_url {
        Some(url) => {
            let mut url = url::Url::parse(url).map_err(AppError::internal)?;
            url.query_pairs_mut()
                .append_pair("order_id", &order.order_id.to_string());
            http::see_other(url.as_str())
        }
        None => http::see_other(&format!("/checkout/{token}")),
    }
}

pub fn result_page(
    _app: &App,
    order: &Order,
    outcome: Outcome,
) -> Result<Response<Body>, AppError> {
    let (title, message) = match outcome {
        Outcome::Paid => (
            "Payment received",
            "Thank you! Your payment went through. You can close this page.",
        ),
        Outcome::Processing => (
            "Payment processing",
            "Your payment is being processed. The shop will confirm your order as soon as it completes.",
        ),
        Outcome::Review => (
            "We are checking your payment",
            "Your payment needs a quick check by the shop before your order is confirmed. You will not be charged twice.",
        ),
    };
    let link = match (&outcome, &order.success_url) {
        (Outcome::Paid, Some(url)) => Some(Link {
            href: url.clone(),
            label: "Back to the shop",
        }),
        _ => order.cancel_url.clone().map(|href| Link {
            href,
            label: "Back to the shop",
        }),
    };
    let nonce = http::nonce();
    let page = CheckoutResult {
        nonce: nonce.clone(),
        title,
        message,
        paid: matches!(outcome, Outcome::Paid),
        items: ItemRow::for_order(order),
        total: order.total.to_string(),
        order_id: &order.order_id,
        link,
    };
    pages::render(StatusCode::OK, &page, &nonce, PageScripts::None)
}
