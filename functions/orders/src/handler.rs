//! What BMOS needs to know about an order: what it is for, where its payment
//! stands, and whether a person should look at it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::domain::{Order, OrderId};
use shared::internal_api;
use shared::{App, AppError, clock, http};

#[derive(Serialize)]
struct LineItemView<'a> {
    name: &'a str,
    unit_amount: u64,
    quantity: u64,
}

#[derive(Serialize)]
struct OrderView<'a> {
    order_id: &'a OrderId,
    store_id: String,
    status: &'static str,
    amount: u64,
    currency: &'static str,
    line_items: Vec<LineItemView<'a>>,
    livemode: bool,
    payment_intent_id: Option<&'a str>,
    customer_email: Option<&'a str>,
    metadata: &'a std::collections::BTreeMap<String, String>,
    created_at: String,
    updated_at: String,
    paid_at: Option<String>,
    last_payment_error: Option<&'a str>,
    amount_refunded: Option<u64>,
    needs_review: bool,
    review_reason: Option<&'a str>,
    /// How BMOS settled the review (`POST .../review`); `null` until then.
    review_resolution: Option<ResolutionView<'a>>,
}

#[derive(Serialize)]
struct ResolutionView<'a> {
    resolution: &'static str,
    resolved_at: String,
    resolved_by: &'a str,
}

impl<'a> From<&'a Order> for OrderView<'a> {
    fn from(o: &'a Order) -> Self {
        OrderView {
            order_id: &o.order_id,
            store_id: o.store_id.to_string(),
            status: o.status.as_str(),
            amount: o.total.minor(),
            currency: o.total.currency().code(),
            line_items: o
                .line_items
                .iter()
                .map(|li| LineItemView {
                    name: &li.name,
                    unit_amount: li.unit_amount,
                    quantity: li.quantity,
                })
                .collect(),
            livemode: o.mode.is_live(),
            payment_intent_id: o.payment_intent_id.as_deref(),
            customer_email: o.customer_email.as_deref(),
            metadata: &o.metadata,
            created_at: clock::rfc3339(o.created_at),
            updated_at: clock::rfc3339(o.updated_at),
            paid_at: o.paid_at.map(clock::rfc3339),
            last_payment_error: o.last_payment_error.as_deref(),
            amount_refunded: o.amount_refunded,
            // Flagged and nobody has decided yet.
            needs_review: o.review_reason.is_some() && o.review_resolution.is_none(),
            review_reason: o.review_reason.as_deref(),
            review_resolution: o.review_resolution.as_ref().map(|r| ResolutionView {
                resolution: r.resolution.as_str(),
                resolved_at: clock::rfc3339(r.at),
                resolved_by: &r.by,
            }),
        }
    }
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    internal_api::authenticate_bmos(app, &req).await?;
    let order_id = OrderId::parse(&http::path_param(&req, "order_id").unwrap_or_default())?;
    let order = app
        .table
        .get_order(&order_id)
        .await?
        .ok_or_else(|| AppError::not_found("unknown_order", "No such order"))?;
    Ok(http::json(StatusCode::OK, &OrderView::from(&order)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn needs_credentials_and_a_uuid() {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/orders.json")).unwrap();
        req.headers_mut().remove("x-internal-secret");
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 401);

        let req =
            lambda_http::request::from_str(include_str!("../../../events/orders-bad-id.json"))
                .unwrap();
        assert_eq!(
            handle(offline_app(), req).await.unwrap_err().code(),
            "invalid_order_id"
        );

        let req =
            lambda_http::request::from_str(include_str!("../../../events/orders.json")).unwrap();
        assert_eq!(
            handle(offline_app(), req).await.unwrap_err().status(),
            502,
            "reached the (offline) table"
        );
    }
}
