//! Handling one webhook delivery: find the store, verify the delivery with
//! that store's own signing secret, then apply the event to its order
//! exactly once (`apply.rs`). Anything unverifiable changes nothing; a
//! failure of our dependencies is a 5xx so Stripe delivers again.

use super::event::Envelope;
use super::failures::FailureReport;
use super::lookup::intent_link;
use super::memory::WebhookMemory;
use super::outcome::Outcome;
use super::signature::{self, SignatureError};
use crate::app::App;
use crate::clock;
use crate::domain::{StoreId, WebhookSecret};
use crate::error::AppError;
use crate::store::StripeConnection;
use crate::vault::{EncryptionContext, Purpose};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Instant;

/// Stripe's events are small; this bounds what we hash and parse.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

pub(super) fn unverifiable(
    code: &'static str,
    message: impl Into<std::borrow::Cow<'static, str>>,
) -> AppError {
    AppError::bad_request(code, message)
}

/// `path_store`: the store named in the URL (`/webhook/stripe/{store_id}`),
/// if any; otherwise the event itself says (metadata, or our intent link).
/// `memory`: what this container remembers between deliveries (one per
/// container, like `app`).
pub async fn process(
    app: &App,
    memory: &WebhookMemory,
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
        None => store_of(app, memory, &envelope).await?,
    };
    let delivery = Delivery {
        signature_header,
        payload,
    };
    let connection = verify_for_store(app, memory, &store_id, &delivery).await?;

    // Verified: the event comes from this store's Stripe account (which
    // other stores may share: their payments are not this store's).
    let outcome = if envelope
        .metadata_store_id()
        .is_some_and(|meta| meta != store_id.to_string())
    {
        Outcome::NoChange {
            reason: super::no_change::OTHER_STORE,
        }
    } else {
        let effect = envelope.effect().map_err(|e| {
            tracing::warn!(store_id = %store_id, event_id = %envelope.id, error = %e, "verified event we cannot read");
            unverifiable("malformed_event", "Event lacks fields we need")
        })?;
        super::apply::apply(app, memory, &store_id, &connection, &envelope, effect).await?
    };
    let now = Instant::now();
    if memory.due_for_touch(&store_id, now)
        && let Err(err) = app.table.touch_last_webhook(&store_id, clock::now()).await
    {
        // Health bookkeeping only: the event itself is safely recorded.
        tracing::warn!(store_id = %store_id, cause = %crate::error::cause_chain(&err), "could not note the webhook time");
    }
    // Failures counted since the store's last write, if its turn has come
    // and no failing delivery took it: at most one write a minute.
    if let Some(report) = memory.failures.due(&store_id, now) {
        write_failures(app, memory, &store_id, report).await;
    }
    Ok(outcome)
}

struct Delivery<'a> {
    signature_header: Option<&'a str>,
    payload: &'a [u8],
}

/// Why a delivery is not this store's verified event.
enum Rejection {
    UnknownStore,
    NoSecret,
    Signature(SignatureError),
}

/// Verifies with the store's connection as this container last read it
/// (or its lack of one), and when that fails, with a fresh read (the
/// secret or keys may have been replaced, the store connected, since), a
/// few times a second per store at most for failing deliveries
/// (`memory.rs`): a flood of forgeries costs no read each.
/// Returns the connection the delivery verified with (its key confirms
/// payments with Stripe).
async fn verify_for_store(
    app: &App,
    memory: &WebhookMemory,
    store_id: &StoreId,
    delivery: &Delivery<'_>,
) -> Result<Arc<StripeConnection>, AppError> {
    let now = Instant::now();
    if let Some(remembered) = memory.connection(store_id, now) {
        match check(app, remembered.connection.as_deref(), delivery).await? {
            Ok(()) => {
                if let Some(connection) = remembered.connection {
                    return Ok(connection);
                }
            }
            Err(rejection) if !memory.may_reread(store_id, now) => {
                return Err(reject(app, memory, store_id, rejection).await);
            }
            Err(_) => {}
        }
    }
    let connection = app.table.get_connection(store_id).await?.map(Arc::new);
    let verdict = check(app, connection.as_deref(), delivery).await?;
    memory.remember_connection(*store_id, connection.clone(), verdict.is_err(), now);
    match (verdict, connection) {
        (Ok(()), Some(connection)) => Ok(connection),
        (Ok(()), None) => Err(reject(app, memory, store_id, Rejection::UnknownStore).await),
        (Err(rejection), _) => Err(reject(app, memory, store_id, rejection).await),
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
    Ok(Ok(()))
}

/// The delivery's answer (400). A store with a connection counts the
/// failure; the count reaches its record at most once a minute.
async fn reject(
    app: &App,
    memory: &WebhookMemory,
    store_id: &StoreId,
    rejection: Rejection,
) -> AppError {
    let counted = match &rejection {
        Rejection::NoSecret => Some("no signing secret".to_owned()),
        Rejection::Signature(reason) => Some(reason.to_string()),
        _ => None,
    };
    if let Some(reason) = counted
        && let Some(report) = memory
            .failures
            .count(store_id, &reason, clock::now(), Instant::now())
    {
        write_failures(app, memory, store_id, report).await;
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
    }
}

/// Writes counted failures to the store's record. Bookkeeping only: when
/// the write fails the count waits for the store's next turn, and the
/// delivery keeps its own answer.
async fn write_failures(
    app: &App,
    memory: &WebhookMemory,
    store_id: &StoreId,
    report: FailureReport,
) {
    // One line per write, not per delivery: a flood stays quiet in the log too.
    tracing::warn!(store_id = %store_id, failures = report.count, reason = %report.reason,
        metric = "webhook_signature_failure", "webhook deliveries failed verification");
    if let Err(err) = app
        .table
        .note_webhook_failures(store_id, report.count, &report.reason, report.last_at)
        .await
    {
        tracing::warn!(store_id = %store_id, cause = %crate::error::cause_chain(&err), "could not note webhook failures");
        memory.failures.restore(store_id, report);
    }
}

async fn store_of(
    app: &App,
    memory: &WebhookMemory,
    envelope: &Envelope,
) -> Result<StoreId, AppError> {
    if let Some(id) = envelope.metadata_store_id() {
        return StoreId::parse(id)
            .map_err(|_| unverifiable("unknown_store", "Event metadata has an invalid store_id"));
    }
    if let Some(pi) = envelope.payment_intent_id()
        && let Some(link) = intent_link(app, memory, pi).await?
    {
        return Ok(link.store_id);
    }
    Err(unverifiable(
        "unknown_store",
        "Cannot tell which store this event is for; use /webhook/stripe/{store_id}",
    ))
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
