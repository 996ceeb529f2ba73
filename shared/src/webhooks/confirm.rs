//! `payment_intent.succeeded` is a notification, not a fact: paying an order
//! is what makes BMOS ship, and whoever holds a store's signing secret can
//! sign any event. So the order is read first (a duplicate, an order past
//! paying or of the other mode costs no Stripe call), then the intent is
//! read back from Stripe with the store's own key, and what Stripe says
//! (status, amount, currency; `checkout::stripe_view`, the reading the
//! return page and the reconciler use) is written with the event id, by the
//! same guarded write as every other event (`apply.rs`). At most one Stripe
//! GET per paid order, barring first deliveries of its event that overlap
//! in different containers (within one they take turns: `in_flight.rs`).

use super::event::Envelope;
use super::landing::{Applying, Landing, Miss, event_mode, record_only};
use super::lookup::intent_link;
use super::memory::WebhookMemory;
use super::no_change;
use super::outcome::{FLAGGED_AMOUNT, FLAGGED_REPLACED, Outcome, not_ours, other_store};
use super::parked::release_parked;
use super::verdict::Change;
use crate::app::App;
use crate::checkout::{StripeView, stripe_view};
use crate::clock;
use crate::domain::{Mode, Move, Order, OrderStatus, StoreId};
use crate::error::AppError;
use crate::key_health;
use crate::store::StripeConnection;
use crate::stripe::{IntentStatus, PaymentIntent, StripeFailure};

pub(super) async fn confirm(
    app: &App,
    memory: &WebhookMemory,
    store_id: &StoreId,
    connection: &StripeConnection,
    envelope: &Envelope,
    payment_intent: &str,
) -> Result<Outcome, AppError> {
    // An overlapping delivery of this event waits, then finds it recorded.
    let _turn = memory.confirming.turn(&envelope.id).await;
    let (order, seen) = match find(app, memory, store_id, envelope, payment_intent).await? {
        Found::Order(order, seen) => (*order, seen),
        Found::NotOurs => return Ok(not_ours()),
        Found::OtherStore => return Ok(other_store()),
    };
    let order_id = order.order_id;
    if seen {
        // A delivery that applied the event may have failed while
        // releasing the order's parked events: this one finishes that.
        if !order.parked.is_empty() {
            release_parked(app, order).await?;
        }
        return Ok(Outcome::Duplicate);
    }
    if order.mode != event_mode(envelope) {
        tracing::warn!(%order_id, event_id = %envelope.id, mode = %order.mode.as_str(), "succeeded event of the other mode than its order; not applied");
        return Ok(Outcome::NoChange {
            reason: no_change::OTHER_MODE,
        });
    }
    let replaced = order.payment_intent_id.as_deref() != Some(payment_intent);
    if !replaced && !order.status.awaits_payment() {
        // Paid already (or ended another way): nothing Stripe can say
        // changes that, so it is not asked. Not recorded either (a write
        // per late event for nothing); a redelivery is answered the same.
        if !order.parked.is_empty() {
            release_parked(app, order).await?;
        }
        return Ok(Outcome::NoChange {
            reason: no_change::NOT_ALLOWED,
        });
    }
    if connection.mode() != order.mode {
        // The store's keys are now of the other mode: Stripe cannot be
        // asked about this order's intent with them.
        tracing::warn!(%order_id, event_id = %envelope.id, "store's keys are of the other mode than the order; payment not confirmed");
        return Ok(Outcome::NoChange {
            reason: no_change::NOT_CONFIRMED,
        });
    }

    let intent = match read_intent(app, connection, payment_intent).await? {
        Some(intent) => intent,
        None => {
            tracing::warn!(%order_id, event_id = %envelope.id, payment_intent, "Stripe does not know the intent with the store's key; not paid");
            return record_only(
                app,
                store_id,
                &envelope.id,
                &order_id,
                no_change::NOT_CONFIRMED,
            )
            .await;
        }
    };
    let (event_id, order_ref) = (envelope.id.as_str(), &order_id);
    let record = move |reason| record_only(app, store_id, event_id, order_ref, reason);
    if replaced {
        return replaced_intent(app, store_id, &envelope.id, &order, &intent).await;
    }
    let to = match stripe_view(&order, &intent) {
        StripeView::Status(to) => to,
        StripeView::Mismatch { reason } => {
            tracing::error!(%order_id, %reason, "payment does not match its order; flagged for review");
            app.table
                .flag_order(&order_id, &reason, clock::now())
                .await?;
            record("amount mismatch").await?;
            return Ok(Outcome::Flagged {
                order_id,
                why: FLAGGED_AMOUNT,
            });
        }
        StripeView::Unsettled | StripeView::NotTheOrders => {
            tracing::warn!(%order_id, event_id = %envelope.id, stripe_status = %intent.status.as_str(), "succeeded event that Stripe does not confirm; not paid");
            return record(no_change::NOT_CONFIRMED).await;
        }
    };
    // Stripe's word, written with the event id under every rule of the
    // order's state machine (a dispute or a refund is never undone).
    let applying = Applying {
        app,
        memory,
        store_id,
        event_id: &envelope.id,
        created: envelope.created.unwrap_or_default(),
        change: confirmed_change(
            envelope,
            payment_intent,
            to,
            &intent,
            order.mode,
            clock::now(),
        ),
        payment_error: intent
            .last_error
            .clone()
            .filter(|_| to == OrderStatus::Failed),
    };
    match applying.to_order(&order_id).await? {
        Landing::Done(outcome) => Ok(outcome),
        Landing::Missed(Miss::NoOrder) => Ok(not_ours()),
        Landing::Missed(Miss::OtherStore) => Ok(other_store()),
        Landing::Missed(Miss::IntentReplaced) => record(no_change::INTENT_REPLACED).await,
    }
}

/// The change Stripe's word `to` about the event's intent asks of its
/// order (of `mode`), read from Stripe at `now`. Public for the bench, as
/// `event_change`.
pub fn confirmed_change<'a>(
    envelope: &Envelope,
    payment_intent: &'a str,
    to: OrderStatus,
    intent: &'a PaymentIntent,
    mode: Mode,
    now: u64,
) -> Change<'a> {
    Change {
        payment_intent,
        to,
        amount: Some((intent.amount, intent.currency.as_str())),
        amount_refunded: None,
        // Read from Stripe after the event was sent, so at least as new
        // as the event: dated by it (never later than now, so a forged
        // date cannot hold back the intent's later news).
        status_as_of: Some(
            envelope
                .status_as_of()
                .map_or(now, |created| created.min(now)),
        ),
        prerequisite: None,
        why: Move::Course,
        refund_failed: None,
        refunded_was: None,
        mode: Some(mode),
    }
}

enum Found {
    /// The intent's order, and whether the event is already recorded on it.
    Order(Box<Order>, bool),
    NotOurs,
    OtherStore,
}

/// The intent's order: the one the metadata names if it has this intent
/// (one read), else the one our link names (which also finds the order of
/// an intent it has since replaced).
async fn find(
    app: &App,
    memory: &WebhookMemory,
    store_id: &StoreId,
    envelope: &Envelope,
    payment_intent: &str,
) -> Result<Found, AppError> {
    let mut hinted = None;
    if let Some(hint) = envelope.metadata_order_id()
        && let Some((order, seen)) = app.table.order_for_event(&hint, &envelope.id).await?
    {
        if order.store_id == *store_id && order.payment_intent_id.as_deref() == Some(payment_intent)
        {
            return Ok(Found::Order(Box::new(order), seen));
        }
        hinted = Some((order, seen));
    }
    let Some(link) = intent_link(app, memory, payment_intent).await? else {
        return Ok(Found::NotOurs);
    };
    if link.store_id != *store_id {
        return Ok(Found::OtherStore);
    }
    let found = match hinted {
        Some((order, seen)) if order.order_id == link.order_id => Some((order, seen)),
        _ => {
            app.table
                .order_for_event(&link.order_id, &envelope.id)
                .await?
        }
    };
    Ok(match found {
        None => Found::NotOurs,
        Some((order, _)) if order.store_id != *store_id => Found::OtherStore,
        Some((order, seen)) => Found::Order(Box::new(order), seen),
    })
}

/// The intent as Stripe has it, read with the store's own key; `None` when
/// Stripe does not know it under that key. Any other failure (Stripe down,
/// slow, rate limiting, the key rolled) is a 503 with nothing recorded, so
/// Stripe delivers the event again (for days: time for the merchant to
/// reconnect a rolled key, which `key_health` marks and status shows).
async fn read_intent(
    app: &App,
    connection: &StripeConnection,
    payment_intent: &str,
) -> Result<Option<PaymentIntent>, AppError> {
    let unconfirmed = |source: crate::error::BoxError| AppError::Dependency {
        dependency: "Stripe",
        throttled: true,
        source,
    };
    if connection.activity.key_rejected.is_some() {
        // Asking again with a key Stripe rejected only gets another 401.
        return Err(unconfirmed(
            "the store's key was rejected by Stripe; waiting for the merchant to reconnect".into(),
        ));
    }
    let key = super::setup::open_secret_key(app, connection).await?;
    let read = app.stripe.retrieve_intent(&key, payment_intent).await;
    match key_health::watch(app, connection, "retrieve PaymentIntent (webhook)", read).await {
        Ok(intent) => Ok(Some(intent)),
        Err(StripeFailure::Refused { status: 404, .. }) => Ok(None),
        Err(failure) => {
            tracing::warn!(store_id = %connection.store_id, payment_intent, error = %failure, "could not confirm a payment with Stripe; Stripe will deliver again");
            Err(unconfirmed(failure.into()))
        }
    }
}

/// Stripe says an intent the order replaced succeeded: the customer paid
/// (a second tab, a late 3D Secure) while the order waits on another
/// intent, or was paid by it. Never paid on it; flagged for a person
/// (refund it, or accept it as the order's payment).
async fn replaced_intent(
    app: &App,
    store_id: &StoreId,
    event_id: &str,
    order: &Order,
    intent: &PaymentIntent,
) -> Result<Outcome, AppError> {
    let order_id = &order.order_id;
    let record = move |reason| record_only(app, store_id, event_id, order_id, reason);
    let ours = intent.is_for(&order.order_id);
    if intent.status != IntentStatus::Succeeded || !ours {
        return record(no_change::INTENT_REPLACED).await;
    }
    // One way for the webhook and the reconciler: the order waits for a
    // person (status `needs_review`), or is flagged if it was paid meanwhile.
    crate::replaced::review_replaced_payment(app, order, intent).await?;
    record(FLAGGED_REPLACED).await?;
    Ok(Outcome::Flagged {
        order_id: order.order_id,
        why: FLAGGED_REPLACED,
    })
}
