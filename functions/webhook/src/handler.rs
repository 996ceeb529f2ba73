//! Stripe's deliveries, on the shared URL or the per-store URL. The body is
//! verified exactly as received (API Gateway's base64 is already undone by
//! lambda_http); the signature header is never logged.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::domain::StoreId;
use shared::webhooks::{self, Outcome};
use shared::{App, AppError, http};

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let path_store = http::path_param(&req, "store_id")
        .map(|raw| StoreId::parse(&raw))
        .transpose()?;
    let payload: &[u8] = req.body().as_ref();
    let outcome = webhooks::process(
        app,
        path_store,
        http::header(&req, "stripe-signature"),
        payload,
    )
    .await?;
    let summary = match &outcome {
        Outcome::Applied { to, .. } => format!("applied: order is now {to}"),
        Outcome::Duplicate => "duplicate: already processed".to_owned(),
        Outcome::Parked { until, .. } => format!("parked: applies once the order is {until}"),
        Outcome::NoChange { reason } => format!("no change: {reason}"),
        Outcome::Flagged { .. } => "flagged: amount does not match the order".to_owned(),
    };
    tracing::info!(outcome = %summary, "webhook processed");
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({ "received": true, "result": summary }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn an_unsigned_or_unreadable_delivery_is_refused_before_any_io() {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/webhook.json")).unwrap();
        *req.body_mut() = Body::Text("not json".into());
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (400, "malformed_event")
        );
    }

    #[tokio::test]
    async fn a_bad_store_id_in_the_path_is_400() {
        let req = lambda_http::request::from_str(include_str!(
            "../../../events/webhook-store-bad-id.json"
        ))
        .unwrap();
        assert_eq!(
            handle(offline_app(), req).await.unwrap_err().code(),
            "invalid_store_id"
        );
    }

    #[tokio::test]
    async fn a_readable_delivery_goes_on_to_find_its_store() {
        // API Gateway base64-encodes the body in this sample; the offline
        // table then fails the store lookup, which is a 5xx Stripe retries.
        let req =
            lambda_http::request::from_str(include_str!("../../../events/webhook-store.json"))
                .unwrap();
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 502);
    }
}
