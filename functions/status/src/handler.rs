//! Public status: whether a store has Stripe connected, in which mode, and
//! whether it can take payments now.
//! Anyone may ask (BMOS storefronts call it from the browser), so it says
//! nothing more than that.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::domain::StoreId;
use shared::{App, AppError, http, key_health};

#[derive(Debug, Serialize, PartialEq)]
pub struct Status {
    pub store_id: String,
    /// Keys are saved (the seed's meaning), whether or not Stripe accepts them.
    pub has_stripe: bool,
    pub is_live_mode: bool,
    /// Connected and Stripe has not rejected the key: checkout works now.
    pub can_take_payments: bool,
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let store_id = StoreId::parse(&http::path_param(&req, "store_id").unwrap_or_default())?;
    let connection = app.table.get_connection(&store_id).await?;
    let status = Status {
        store_id: store_id.to_string(),
        has_stripe: connection.is_some(),
        is_live_mode: connection.as_ref().is_some_and(|c| c.mode().is_live()),
        can_take_payments: key_health::can_take_payments(connection.as_ref()),
    };
    let mut response = http::json(StatusCode::OK, &status);
    response
        .headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn a_malformed_store_id_is_400_before_any_lookup() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/status-bad-id.json"))
                .unwrap();
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.code(), "invalid_store_id");
    }

    #[tokio::test]
    async fn an_unreachable_table_is_a_dependency_error_not_a_false_answer() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/status.json")).unwrap();
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!(err.status(), 502, "{err:?}");
    }
}
