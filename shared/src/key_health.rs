//! A store's key that Stripe rejects (401: rolled or revoked in the
//! Dashboard) is recorded on its connection, so status shows it, BMOS gets
//! a clear 409 instead of checkout links customers cannot pay, and nothing
//! asks Stripe with that key again until the merchant saves keys (which
//! clears the mark: `functions/connect`).
//!
//! Every call to Stripe with a store's key passes its result through
//! `watch`: the checkout, the return page, the reconciler, the webhook.

use crate::app::App;
use crate::clock;
use crate::error::{AppError, cause_chain};
use crate::store::StripeConnection;
use crate::stripe::{StripeFailure, needs_reconnect};

/// Whether the store can take payments now: connected, and its key not
/// rejected by Stripe.
pub fn can_take_payments(connection: Option<&StripeConnection>) -> bool {
    connection.is_some_and(|c| c.activity.key_rejected.is_none())
}

/// 409 `store_needs_reconnect` once Stripe has rejected the connection's
/// key: asking Stripe again with it only gets another 401.
pub fn require_usable_key(connection: &StripeConnection) -> Result<(), AppError> {
    match connection.activity.key_rejected {
        None => Ok(()),
        Some(_) => Err(needs_reconnect()),
    }
}

/// Passes the result of a Stripe call made with `connection`'s key through
/// unchanged; a 401 first marks the connection as needing reconnection.
/// `call` names the Stripe call for the record (static text: never a value
/// that could hold a secret).
pub async fn watch<T>(
    app: &App,
    connection: &StripeConnection,
    call: &'static str,
    result: Result<T, StripeFailure>,
) -> Result<T, StripeFailure> {
    if matches!(result, Err(StripeFailure::InvalidKey)) {
        note_rejected(app, connection, call).await;
    }
    result
}

/// Records that Stripe rejected the key of `connection` (at the version
/// read: a newer save keeps its own keys unmarked). A failure to record is
/// logged, not raised: the caller's answer is the rejection, and the next
/// call with the key records it.
pub async fn note_rejected(app: &App, connection: &StripeConnection, call: &'static str) {
    tracing::warn!(
        store_id = %connection.store_id,
        version = connection.version,
        call,
        "Stripe rejected the store's key; the store needs reconnecting"
    );
    let reason = format!("Stripe answered 401 (invalid API key) to {call}");
    if let Err(err) = app
        .table
        .note_key_rejected(
            &connection.store_id,
            connection.version,
            &reason,
            clock::now(),
        )
        .await
    {
        tracing::warn!(store_id = %connection.store_id, cause = %cause_chain(&err), "could not mark the store as needing reconnection");
    }
}
