//! The answer BMOS gets for a checkout session, the first time and on an
//! idempotent retry alike.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::domain::OrderId;
use shared::{App, AppError, http};

#[derive(Debug, Serialize)]
pub struct SessionResponse {
    pub order_id: OrderId,
    /// Filled in by `created` from the token.
    pub checkout_url: String,
    pub expires_at: u64,
    pub amount: u64,
    pub currency: &'static str,
    pub status: &'static str,
}

/// 201 with the session, its link built from `token` on this request's origin.
pub fn created(
    app: &App,
    req: &Request,
    mut response: SessionResponse,
    token: &str,
) -> Result<Response<Body>, AppError> {
    response.checkout_url = http::public_base_url(&app.config, req)?
        .join(&format!("checkout/{token}"))
        .map_err(AppError::internal)?
        .to_string();
    Ok(http::json(StatusCode::CREATED, &response))
}
