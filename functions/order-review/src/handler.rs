//! BMOS settles an order flagged for review (`needs_review`: a payment that
//! did not match its order): `accepted` (the payment is good, the order is
//! paid) or `settled_outside` (the money was returned another way, the order
//! is refunded). Signed requests only, each accepted once; the same decision
//! sent again gets the same answer, another decision on a resolved order is
//! a conflict.

use crate::request::{self, ReviewRequest};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::auth::internal::Caller;
use shared::domain::{Order, OrderId, ReviewResolution};
use shared::internal_api;
use shared::store::ReviewNote;
use shared::{App, AppError, clock, http};

/// Reads and writes before giving up when the order keeps changing under
/// concurrent webhook deliveries.
const ATTEMPTS: usize = 3;

#[derive(Debug, Serialize)]
pub struct ReviewView<'a> {
    pub order_id: &'a OrderId,
    pub status: &'static str,
    pub needs_review: bool,
    pub review_reason: Option<&'a str>,
    pub resolution: &'static str,
    pub resolved_at: String,
    pub resolved_by: &'a str,
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let caller = internal_api::authenticate_bmos(app, &req).await?;
    if caller != Caller::SignedRequest {
        // A decision that can release goods must not be replayable from a
        // captured header: the signed form is accepted once.
        return Err(AppError::unauthorized(
            "signed_request_required",
            "This route takes signed requests only (X-Internal-Timestamp and X-Internal-Signature).",
        ));
    }
    let order_id = OrderId::parse(&http::path_param(&req, "order_id").unwrap_or_default())?;
    let wanted = request::parse(http::body_bytes(&req)?)?;
    let note = ReviewNote {
        caller: caller.as_str(),
        note: wanted.note.clone(),
        source_ip: http::source_ip(&req),
    };
    for _ in 0..ATTEMPTS {
        let order = app
            .table
            .get_order(&order_id)
            .await?
            .ok_or_else(|| AppError::not_found("unknown_order", "No such order"))?;
        if let Some(done) = settled(&order, &wanted)? {
            return Ok(answer(&order, done));
        }
        let resolved = ReviewResolution {
            resolution: wanted.resolution,
            at: clock::now(),
            by: wanted
                .resolved_by
                .clone()
                .unwrap_or_else(|| caller.as_str().to_owned()),
        };
        let to = wanted.resolution.status_from(order.status);
        if app
            .table
            .resolve_review(&order, &resolved, to, &note)
            .await?
        {
            tracing::info!(%order_id, resolution = %resolved.resolution, from = %order.status, %to, "order review resolved");
            let resolved_order = Order {
                status: to,
                review_resolution: Some(resolved.clone()),
                ..order
            };
            return Ok(answer(&resolved_order, &resolved));
        }
        // It changed since we read it: decide again on what it is now.
    }
    Err(AppError::conflict(
        "concurrent_update",
        "The order kept changing while it was being resolved; nothing was changed. Please try again.",
    ))
}

/// `Some` when the order already carries this decision (the same answer
/// again), an error when it cannot take it, `None` when it can.
fn settled<'a>(
    order: &'a Order,
    wanted: &ReviewRequest,
) -> Result<Option<&'a ReviewResolution>, AppError> {
    match &order.review_resolution {
        Some(done) if done.resolution == wanted.resolution => Ok(Some(done)),
        Some(done) => Err(AppError::conflict(
            "review_already_resolved",
            format!(
                "This order's review was already resolved as {}.",
                done.resolution
            ),
        )),
        None if order.review_reason.is_none() => Err(AppError::conflict(
            "order_not_flagged",
            "This order is not flagged for review.",
        )),
        None => Ok(None),
    }
}

fn answer(order: &Order, resolved: &ReviewResolution) -> Response<Body> {
    http::json(
        StatusCode::OK,
        &ReviewView {
            order_id: &order.order_id,
            status: order.status.as_str(),
            needs_review: false,
            review_reason: order.review_reason.as_deref(),
            resolution: resolved.resolution.as_str(),
            resolved_at: clock::rfc3339(resolved.at),
            resolved_by: &resolved.by,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{Resolution, StoreId};
    use shared::testing::offline_app;

    fn event() -> Request {
        lambda_http::request::from_str(include_str!("../../../events/order-review.json")).unwrap()
    }

    #[tokio::test]
    async fn the_plain_secret_header_is_not_enough() {
        // The sample event carries the right plain secret: authentication
        // passes, the route still refuses it before any read.
        let err = handle(offline_app(), event()).await.unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (401, "signed_request_required")
        );
        let mut req = event();
        req.headers_mut().remove("x-internal-secret");
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 401);
    }

    fn flagged(resolution: Option<Resolution>) -> Order {
        let mut order = Order::pending(
            StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").unwrap(),
            shared::domain::Mode::Test,
            shared::domain::Money::new(2999, shared::domain::Currency::parse("eur").unwrap()),
            Vec::new(),
            1,
        );
        order.review_reason = Some("Stripe reports 100 eur".into());
        order.review_resolution = resolution.map(|resolution| ReviewResolution {
            resolution,
            at: 2,
            by: "staff-1".into(),
        });
        order
    }

    fn wanting(resolution: Resolution) -> ReviewRequest {
        ReviewRequest {
            resolution,
            resolved_by: None,
            note: None,
        }
    }

    #[test]
    fn only_a_flagged_order_takes_a_decision_and_only_one() {
        let accept = wanting(Resolution::Accepted);
        assert_eq!(settled(&flagged(None), &accept).unwrap(), None);
        let done = flagged(Some(Resolution::Accepted));
        assert_eq!(
            settled(&done, &accept).unwrap().map(|r| r.by.as_str()),
            Some("staff-1"),
            "the same decision again is answered as before"
        );
        let other = settled(&done, &wanting(Resolution::SettledOutside)).unwrap_err();
        assert_eq!(
            (other.status().as_u16(), other.code()),
            (409, "review_already_resolved")
        );
        let mut plain = flagged(None);
        plain.review_reason = None;
        let err = settled(&plain, &accept).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (409, "order_not_flagged")
        );
    }
}
