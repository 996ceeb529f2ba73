//! The door of BMOS's internal API (`/api/internal/...`): takes a request
//! as API Gateway delivered it, has `auth::internal` verify its bytes and
//! headers, and records a signed request that changes something so it works
//! once. Here, not in `auth`, because it reads the request and the table:
//! auth only judges what it is given.

use crate::app::App;
use crate::auth::canonical_path;
use crate::auth::internal::{
    Caller, PlainHeader, SignedParts, Verified, authenticate, is_recorded,
};
use crate::error::AppError;
use crate::{clock, http};

/// Who is calling, with the function's BMOS authentication secret and
/// plain-header setting; a replayed signed write is 401 `replayed`.
pub async fn authenticate_bmos(app: &App, req: &lambda_http::Request) -> Result<Caller, AppError> {
    let keys = app.bmos_keys().await?;
    let plain = PlainHeader::from_flag(app.config.allow_plain_secret_header);
    // What is signed is the path exactly as sent, never lambda_http's
    // normalised URI.
    let path_and_query = http::path_and_query(req);
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query.as_str(), |(path, _)| path);
    canonical_path::require(path)?;
    let parts = SignedParts {
        method: req.method().as_str(),
        path_and_query: &path_and_query,
        body: http::body_bytes(req)?,
    };
    let verified = authenticate(&keys, plain, req.headers(), &parts, clock::now())?;
    if let Verified::Signed(signed) = &verified
        && is_recorded(req.method())
        && !app
            .table
            .record_signed_request(&signed.mac_hash, signed.record_expires_at)
            .await?
    {
        return Err(AppError::unauthorized(
            "replayed",
            "This signed request was already used; sign every request anew, with the current time",
        ));
    }
    let caller = verified.caller();
    tracing::debug!(caller = caller.as_str(), "internal caller authenticated");
    Ok(caller)
}
