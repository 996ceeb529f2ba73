//! `Idempotency-Key` on `POST /api/internal/checkout-sessions`: BMOS sends
//! its cart or order id, and the same key with the same body within 24 hours
//! gets the first answer again (the same order and `checkout_url`, 201, with
//! `Idempotent-Replayed: true`), as Stripe does. The same key with another
//! body is 409 `idempotency_key_reused`. Keys are per store.

use crate::session_response::{SessionResponse, created};
use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use shared::domain::{IdempotencyKey, StoreId};
use shared::store::IdempotentCheckout;
use shared::vault::{EncryptionContext, Purpose};
use shared::{App, AppError, clock};
use std::time::Duration;

pub const HEADER: &str = "idempotency-key";
/// Tells a repeated answer from the first one (Stripe's header name).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The key BMOS sent, if any; malformed or repeated is 400.
pub fn key(req: &Request) -> Result<Option<IdempotencyKey>, AppError> {
    let mut values = req.headers().get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AppError::bad_request(
            "invalid_idempotency_key",
            "Send one Idempotency-Key header, not several",
        ));
    }
    let raw = value.to_str().map_err(|_| {
        AppError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)",
        )
    })?;
    IdempotencyKey::parse(raw).map(Some)
}

/// Hex SHA-256 of the body as canonical JSON (object keys sorted, no
/// whitespace), so a retry that serialises the same request differently is
/// still the same request. Computed by hand rather than by re-serialising a
/// `serde_json::Value`: whether its maps are sorted depends on a crate
/// feature any dependency could switch on.
pub fn request_hash(body: &[u8]) -> Result<String, AppError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        AppError::bad_request(
            "invalid_body",
            "Body must be a JSON checkout session request",
        )
    })?;
    let mut canonical = Vec::with_capacity(body.len());
    write_canonical(&value, &mut canonical)?;
    Ok(hex::encode(Sha256::digest(&canonical)))
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), AppError> {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).map_err(AppError::internal)?;
                out.push(b':');
                write_canonical(value, out)?;
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).map_err(AppError::internal)?,
    }
    Ok(())
}

/// The first answer again when `record` was made by this same request.
pub async fn answer_again(
    app: &App,
    req: &Request,
    record: &IdempotentCheckout,
    request_hash: &str,
) -> Result<Response<Body>, AppError> {
    if record.request_hash != request_hash {
        return Err(AppError::conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request in the last 24 hours; \
             use a new key for a different checkout",
        ));
    }
    let token = app
        .vault
        .open(
            EncryptionContext::new(record.store_id, Purpose::CheckoutToken),
            &record.token,
        )
        .await?;
    let response = SessionResponse {
        order_id: record.order_id,
        checkout_url: String::new(),
        expires_at: record.session_expires_at,
        amount: record.total.minor(),
        currency: record.total.currency().code(),
        status: record.status.as_str(),
    };
    tracing::info!(order_id = %record.order_id, store_id = %record.store_id, "checkout session answered again for its idempotency key");
    let mut response = created(app, req, response, token.expose_secret())?;
    response.headers_mut().insert(
        REPLAYED_HEADER,
        lambda_http::http::HeaderValue::from_static("true"),
    );
    Ok(response)
}

/// After a concurrent request with the same key won the write: its record,
/// once it is visible (a transaction still committing is not, for a moment).
pub async fn answer_after_losing_the_race(
    app: &App,
    req: &Request,
    store_id: &StoreId,
    key: &IdempotencyKey,
    request_hash: &str,
) -> Result<Response<Body>, AppError> {
    tracing::info!(%store_id, "a concurrent request with the same idempotency key wrote first");
    for attempt in 0..5u64 {
        if let Some(record) = app
            .table
            .get_idempotent_checkout(store_id, key, clock::now())
            .await?
        {
            return answer_again(app, req, &record, request_hash).await;
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    Err(AppError::conflict(
        "idempotency_key_in_use",
        "Another request with this Idempotency-Key is being processed; retry in a moment",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_request_serialised_differently_has_one_hash() {
        let a = request_hash(br#"{"b": [1, {"y": 2, "x": "\u00e9"}], "a": null}"#).unwrap();
        let b = request_hash("{\"a\":null,\"b\":[1,{\"x\":\"é\",\"y\":2}]}".as_bytes()).unwrap();
        assert_eq!(a, b);
        for other in [
            r#"{"a": null, "b": [{"x": "é", "y": 2}, 1]}"#,
            r#"{"a": null, "b": [1, {"x": "é", "y": 3}]}"#,
            r#"{"a": 0, "b": [1, {"x": "é", "y": 2}]}"#,
            r#"{"b": [1, {"x": "é", "y": 2}]}"#,
        ] {
            assert_ne!(request_hash(other.as_bytes()).unwrap(), a, "{other}");
        }
    }
}
