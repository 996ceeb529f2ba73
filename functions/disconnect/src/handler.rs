//! Forgets a store's Stripe keys (with an audit entry) and deletes the
//! webhook endpoint we created in their account. Orders stay; new payments
//! are refused until the store connects again.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::domain::StoreId;
use shared::internal_api;
use shared::webhooks::setup;
use shared::{App, AppError, http};

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let caller = internal_api::authenticate_bmos(app, &req).await?;
    let store_id = StoreId::parse(&http::path_param(&req, "store_id").unwrap_or_default())?;
    setup::disconnect(app, &store_id, caller.as_str()).await?;
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({ "store_id": store_id.to_string(), "has_stripe": false }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn needs_credentials_then_reaches_the_table() {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/disconnect.json"))
                .unwrap();
        req.headers_mut().remove("x-internal-secret");
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 401);
        let req = lambda_http::request::from_str(include_str!("../../../events/disconnect.json"))
            .unwrap();
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 502);
    }
}
