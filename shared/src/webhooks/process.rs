//! Handling one webhook delivery: find the store, verify the delivery with
//! that store's own signing secret, and apply the event to its order
//! exactly once. Anything unverifiable changes nothing; a failure of our
//! dependencies is a 5xx so Stripe delivers again.

use super::event::{Effect, Envelope};
use super::signature::{self, SignatureError};
use crate::app::App;
use crate::clock;
use crate::domain::{StoreId, WebhookSecret};
use crate::error::AppError;
use crate::store::{EventWrite, StripeConnection, TransitionDetails};
use crate::vault::{EncryptionContext, Purpose};
use secrecy::ExposeSecret;

/// Stripe's events are small; this bounds what we hash and parse.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
const ATTEMPTS: usize = 3;

/// What a delivery did, for the response and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        order_id: String,
        to: &'static str,
    },
    Duplicate,
    /// Verified and recorded, but nothing to change (an event type we do
    /// not act on, an intent that is not ours, or a move the order does not
    /// allow, such as `payment_failed` after `succeeded`).
    NoChange {
        reason: &'static str,
    },
    /// Money that does not match the order: flagged for review, not paid.
    Flagged {
        order_id: String,
    },
}

fn unverifiable(
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
    let connection = app
        .store
        .get_connection(&store_id)
        .await?
        .ok_or_else(|| unverifiable("unknown_store", "No Stripe connection for this store"))?;
    let secret = webhook_secret(app, &connection).await?;
    if let Err(reason) = signature::verify(signature_header, payload, &secret, clock::now()) {
        return Err(rejected(app, &store_id, reason).await);
    }

    // Verified: the event comes from this store's Stripe account.
    if envelope
        .metadata_store_id()
        .is_some_and(|meta| meta != store_id.to_string())
    {
        return Err(unverifiable(
            "store_mismatch",
            "Event metadata names another store",
        ));
    }
    if envelope.livemode != connection.mode().is_live() {
        return Err(unverifiable(
            "mode_mismatch",
            format!(
                "A {} event for a store connected in {} mode",
                if envelope.livemode { "live" } else { "test" },
                connection.mode().as_str()
            ),
        ));
    }
    let effect = envelope.effect().map_err(|e| {
        tracing::warn!(store_id = %store_id, event_id = %envelope.id, error = %e, "verified event we cannot read");
        unverifiable("malformed_event", "Event lacks fields we need")
    })?;
    let outcome = apply(app, &store_id, &envelope.id, effect).await?;
    if let Err(err) = app.store.touch_last_webhook(&store_id, clock::now()).await {
        // Health bookkeeping only: the event itself is safely recorded.
        tracing::warn!(store_id = %store_id, cause = %crate::error::cause_chain(&err), "could not note the webhook time");
    }
    Ok(outcome)
}

async fn store_of(app: &App, envelope: &Envelope) -> Result<StoreId, AppError> {
    if let Some(id) = envelope.metadata_store_id() {
        return StoreId::parse(id)
            .map_err(|_| unverifiable("unknown_store", "Event metadata has an invalid store_id"));
    }
    if let Some(pi) = envelope.payment_intent_id()
        && let Some(link) = app.store.intent_link(pi).await?
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
) -> Result<WebhookSecret, AppError> {
    let Some(webhook) = &connection.webhook_secret else {
        let err = unverifiable(
            "no_webhook_secret",
            "This store has no webhook signing secret",
        );
        app.store
            .note_webhook_failure(&connection.store_id, "no signing secret", clock::now())
            .await?;
        return Err(err);
    };
    let opened = app
        .vault
        .open(
            EncryptionContext::new(connection.store_id, Purpose::WebhookSecret),
            &webhook.secret,
        )
        .await?;
    WebhookSecret::parse(opened.expose_secret())
        .map_err(|_| AppError::internal("stored webhook secret no longer parses"))
}

async fn rejected(app: &App, store_id: &StoreId, reason: SignatureError) -> AppError {
    tracing::warn!(store_id = %store_id, reason = %reason, metric = "webhook_signature_failure", "webhook rejected");
    if let Err(err) = app
        .store
        .note_webhook_failure(store_id, &reason.to_string(), clock::now())
        .await
    {
        return err;
    }
    unverifiable(
        "invalid_signature",
        format!("Webhook not verified: {reason}"),
    )
}

async fn apply(
    app: &App,
    store_id: &StoreId,
    event_id: &str,
    effect: Effect,
) -> Result<Outcome, AppError> {
    let now = clock::now;
    let Effect::Transition {
        payment_intent,
        status: to,
        amount,
        payment_error,
        amount_refunded,
    } = effect
    else {
        return record_only(app, store_id, event_id, "event type not acted on").await;
    };
    let Some(link) = app.store.intent_link(&payment_intent).await? else {
        return record_only(app, store_id, event_id, "payment intent not made by us").await;
    };
    if link.store_id != *store_id {
        return Err(unverifiable(
            "store_mismatch",
            "The payment belongs to another store",
        ));
    }
    let details = TransitionDetails {
        payment_intent_id: Some(payment_intent.clone()),
        payment_error,
        amount_refunded,
        ..TransitionDetails::default()
    };
    for _ in 0..ATTEMPTS {
        let order = app.store.get_order(&link.order_id).await?.ok_or_else(|| {
            AppError::internal(format!("intent link to missing order {}", link.order_id))
        })?;
        if order.payment_intent_id.as_deref() != Some(payment_intent.as_str()) {
            return record_only(app, store_id, event_id, "intent was replaced on the order").await;
        }
        if let Some((got, currency)) = &amount
            && (*got != order.amount || !currency.eq_ignore_ascii_case(order.currency.code()))
        {
            let reason = format!(
                "Stripe reports {got} {currency} for intent {payment_intent}, the order expects {} {}",
                order.amount,
                order.currency.code()
            );
            tracing::error!(order_id = %order.order_id, %reason, "payment does not match its order; flagged for review");
            app.store
                .flag_order(&order.order_id, &reason, now())
                .await?;
            record_only(app, store_id, event_id, "amount mismatch").await?;
            return Ok(Outcome::Flagged {
                order_id: order.order_id,
            });
        }
        if !order.status.can_become(to) {
            return record_only(app, store_id, event_id, "order does not allow this change").await;
        }
        match app
            .store
            .record_event(
                store_id,
                event_id,
                Some((&order.order_id, to, &details)),
                now(),
            )
            .await?
        {
            EventWrite::Applied => {
                tracing::info!(order_id = %order.order_id, from = %order.status, to = %to, event_id, source = "webhook", "order status changed");
                return Ok(Outcome::Applied {
                    order_id: order.order_id,
                    to: to.as_str(),
                });
            }
            EventWrite::Duplicate => return Ok(Outcome::Duplicate),
            // Another delivery moved the order between our read and write.
            EventWrite::OrderChanged => continue,
        }
    }
    Err(AppError::Dependency {
        dependency: "DynamoDB",
        throttled: true,
        source: "order kept changing under concurrent deliveries".into(),
    })
}

async fn record_only(
    app: &App,
    store_id: &StoreId,
    event_id: &str,
    reason: &'static str,
) -> Result<Outcome, AppError> {
    Ok(
        match app
            .store
            .record_event(store_id, event_id, None, clock::now())
            .await?
        {
            EventWrite::Duplicate => Outcome::Duplicate,
            _ => Outcome::NoChange { reason },
        },
    )
}
