//! Handling one webhook delivery: find the store, verify the delivery with
//! that store's own signing secret, then apply the event to its order
//! exactly once (`apply.rs`). Anything unverifiable changes nothing; a
//! failure of our dependencies is a 5xx so Stripe delivers again.

use super::event::Envelope;
use super::signature::{self, SignatureError};
use crate::app::App;
use crate::clock;
use crate::domain::{Mode, StoreId, WebhookSecret};
use crate::error::AppError;
use crate::store::{IntentLink, StripeConnection};
use crate::vault::{EncryptionContext, Purpose};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Instant;

/// Stripe's events are small; this bounds what we hash and parse.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// What a delivery did, for the response and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        order_id: String,
        to: &'static str,
    },
    Duplicate,
    /// Arrived before the event it follows (a refund or dispute before the
    /// payment, a dispute's closure before its creation): recorded and kept
    /// on the order, applied once the order is `until`.
    Parked {
        order_id: String,
        until: &'static str,
    },
    /// Verified, but nothing to change (an event type we do not act on, an
    /// intent that is not ours, a move the order does not allow, such as
    /// `payment_failed` after `succeeded`, or news older than what the
    /// order already shows). Recorded on its order when it has one.
    NoChange {
        reason: &'static str,
    },
    /// Money that does not match the order: flagged for review, not paid.
    Flagged {
        order_id: String,
    },
}

pub(super) fn unverifiable(
    code: &'static str,
    message: impl Into<std::borrow::Cow<'static, str>>,
) -> AppError {
    AppError::bad_request(code, message)
}

/// `path_store`: the store named in the URL (`/webhook/stripe/{store_id}`),
/// if any; otherwise the event itself says (metadata, or our intent link).
pub async fn process(
    app: &App,
    path_store: Option<StoreId>,
    signature_header: Option<&str>,
    payload: &[u8],
) -> Result<Outcome, AppError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    // Read (not trusted) only to choose whose secret to verify with.
    let envelope = Envelope::parse(payload)
        .map_err(|_| unverifiable("malformed_event", "Body is not a Stripe event"))?;
    let store_id = match path_store {
        Some(id) => id,
        None => store_of(app, &envelope).await?,
    };
    let delivery = Delivery {
        envelope: &envelope,
        signature_header,
        payload,
    };
    verify_for_store(app, &store_id, &delivery).await?;

    // Verified: the event comes from this store's Stripe account.
    let effect = envelope.effect().map_err(|e| {
        tracing::warn!(store_id = %store_id, event_id = %envelope.id, error = %e, "verified event we cannot read");
        unverifiable("malformed_event", "Event lacks fields we need")
    })?;
    let outcome = super::apply::apply(app, &store_id, &envelope, effect).await?;
    if app.webhook_memory.due_for_touch(&store_id, Instant::now())
        && let Err(err) = app.store.touch_last_webhook(&store_id, clock::now()).await
    {
        // Health bookkeeping only: the event itself is safely recorded.
        tracing::warn!(store_id = %store_id, cause = %crate::error::cause_chain(&err), "could not note the webhook time");
    }
    Ok(outcome)
}

struct Delivery<'a> {
    envelope: &'a Envelope,
    signature_header: Option<&'a str>,
    payload: &'a [u8],
}

/// Why a delivery is not this store's verified event.
enum Rejection {
    UnknownStore,
    NoSecret,
    Signature(SignatureError),
    StoreMismatch,
    ModeMismatch { event_live: bool, store_mode: Mode },
}

/// Verifies with the store's connection as this container last read it,
/// and when that fails, with a fresh read (the secret or keys may have been
/// replaced since): a stale connection never turns a good delivery away,
/// and only a fresh one's verdict is reported and counted.
async fn verify_for_store(
    app: &App,
    store_id: &StoreId,
    delivery: &Delivery<'_>,
) -> Result<(), AppError> {
    let now = Instant::now();
    if let Some(remembered) = app.webhook_memory.connection(store_id, now) {
        if check(app, Some(&remembered), delivery).await?.is_ok() {
            return Ok(());
        }
        app.webhook_memory.forget_connection(store_id);
    }
    let connection = app.store.get_connection(store_id).await?.map(Arc::new);
    match check(app, connection.as_deref(), delivery).await? {
        Ok(()) => {
            if let Some(connection) = connection {
                app.webhook_memory.remember_connection(connection, now);
            }
            Ok(())
        }
        Err(rejection) => Err(reject(app, store_id, rejection).await),
    }
}

/// `Ok(Err(_))`: not verified; `Err(_)`: we could not tell (5xx).
async fn check(
    app: &App,
    connection: Option<&StripeConnection>,
    delivery: &Delivery<'_>,
) -> Result<Result<(), Rejection>, AppError> {
    let Some(connection) = connection else {
        return Ok(Err(Rejection::UnknownStore));
    };
    let Some(secret) = webhook_secret(app, connection).await? else {
        return Ok(Err(Rejection::NoSecret));
    };
    if let Err(reason) = signature::verify(
        delivery.signature_header,
        delivery.payload,
        &secret,
        clock::now(),
    ) {
        return Ok(Err(Rejection::Signature(reason)));
    }
    let envelope = delivery.envelope;
    if envelope
        .metadata_store_id()
        .is_some_and(|meta| meta != connection.store_id.to_string())
    {
        return Ok(Err(Rejection::StoreMismatch));
    }
    if envelope.livemode != connection.mode().is_live() {
        return Ok(Err(Rejection::ModeMismatch {
            event_live: envelope.livemode,
            store_mode: connection.mode(),
        }));
    }
    Ok(Ok(()))
}

async fn reject(app: &App, store_id: &StoreId, rejection: Rejection) -> AppError {
    let noted = match &rejection {
        Rejection::NoSecret => Some("no signing secret".to_owned()),
        Rejection::Signature(reason) => {
            tracing::warn!(store_id = %store_id, reason = %reason, metric = "webhook_signature_failure", "webhook rejected");
            Some(reason.to_string())
        }
        _ => None,
    };
    if let Some(reason) = noted
        && let Err(err) = app
            .store
            .note_webhook_failure(store_id, &reason, clock::now())
            .await
    {
        return err;
    }
    match rejection {
        Rejection::UnknownStore => {
            unverifiable("unknown_store", "No Stripe connection for this store")
        }
        Rejection::NoSecret => unverifiable(
            "no_webhook_secret",
            "This store has no webhook signing secret",
        ),
        Rejection::Signature(reason) => unverifiable(
            "invalid_signature",
            format!("Webhook not verified: {reason}"),
        ),
        Rejection::StoreMismatch => {
            unverifiable("store_mismatch", "Event metadata names another store")
        }
        Rejection::ModeMismatch {
            event_live,
            store_mode,
        } => unverifiable(
            "mode_mismatch",
            format!(
                "A {} event for a store connected in {} mode",
                if event_live { "live" } else { "test" },
                store_mode.as_str()
            ),
        ),
    }
}

async fn store_of(app: &App, envelope: &Envelope) -> Result<StoreId, AppError> {
    if let Some(id) = envelope.metadata_store_id() {
        return StoreId::parse(id)
            .map_err(|_| unverifiable("unknown_store", "Event metadata has an invalid store_id"));
    }
    if let Some(pi) = envelope.payment_intent_id()
        && let Some(link) = intent_link(app, pi).await?
    {
        return Ok(link.store_id);
    }
    Err(unverifiable(
        "unknown_store",
        "Cannot tell which store this event is for; use /webhook/stripe/{store_id}",
    ))
}

/// Links never change once written, so the container keeps them.
pub(super) async fn intent_link(
    app: &App,
    payment_intent: &str,
) -> Result<Option<IntentLink>, AppError> {
    if let Some(link) = app.webhook_memory.intent_link(payment_intent) {
        return Ok(Some(link));
    }
    let link = app.store.intent_link(payment_intent).await?;
    if let Some(link) = &link {
        app.webhook_memory
            .remember_intent_link(payment_intent, link.clone());
    }
    Ok(link)
}

async fn webhook_secret(
    app: &App,
    connection: &StripeConnection,
) -> Result<Option<WebhookSecret>, AppError> {
    let Some(webhook) = &connection.webhook_secret else {
        return Ok(None);
    };
    let opened = app
        .vault
        .open(
            EncryptionContext::new(connection.store_id, Purpose::WebhookSecret),
            &webhook.secret,
        )
        .await?;
    WebhookSecret::parse(opened.expose_secret())
        .map(Some)
        .map_err(|_| AppError::internal("stored webhook secret no longer parses"))
}
