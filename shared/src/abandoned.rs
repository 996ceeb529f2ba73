//! Checkouts that end without a payment. Once a checkout is abandoned
//! (`Order::abandoned_at`) its intent is cancelled in Stripe and the order
//! ends `canceled`, or `expired` when there is no intent of ours left to
//! cancel; either way it leaves the reconciler's index. An intent replaced by
//! a new one is cancelled at once: an open intent is money that can still
//! arrive (a second tab, a late 3-D Secure). Money that arrived on an intent
//! the order no longer uses goes to a person (`needs_review`), never nowhere.
//!
//! Cancel first, then write: the order is only marked ended once Stripe can
//! no longer take money on its intent, and a cancel Stripe refuses because
//! the intent succeeded meanwhile pays the order the normal way.

use crate::app::App;
use crate::checkout::{self, PaymentState};
use crate::clock;
use crate::domain::{OrderStatus, SecretKey};
use crate::error::{AppError, cause_chain};
use crate::metrics::PaidVia;
use crate::store::{Order, Transition, TransitionDetails};
use crate::stripe::pace::Pace;
use crate::stripe::{IntentStatus, PaymentIntent, StripeFailure};

/// What asking Stripe to cancel an intent found.
#[derive(Debug)]
pub enum Cancel {
    /// Cancelled now or before: nothing can be charged on it any more.
    Canceled,
    /// Stripe does not know it under this key (another account or mode).
    Unknown,
    /// Stripe would not cancel it (it succeeded, or is processing): its state.
    NotCancelable(Box<PaymentIntent>),
}

/// Cancels intent `id` on the merchant's account. Stripe refuses to cancel
/// an intent that succeeded, is processing or is already canceled (400);
/// the intent is then read back to say which.
pub async fn cancel_in_stripe(
    app: &App,
    key: &SecretKey,
    id: &str,
    pace: &impl Pace,
) -> Result<Cancel, StripeFailure> {
    pace.turn().await;
    let intent = match app.stripe.cancel_intent(key, id).await {
        Ok(intent) => intent,
        Err(StripeFailure::Refused { status: 404, .. }) => return Ok(Cancel::Unknown),
        Err(StripeFailure::Refused { status: 400, .. }) => {
            pace.turn().await;
            match app.stripe.retrieve_intent(key, id).await {
                Ok(intent) => intent,
                Err(StripeFailure::Refused { status: 404, .. }) => return Ok(Cancel::Unknown),
                Err(other) => return Err(other),
            }
        }
        Err(other) => return Err(other),
    };
    Ok(if intent.status == IntentStatus::Canceled {
        Cancel::Canceled
    } else {
        Cancel::NotCancelable(Box::new(intent))
    })
}

/// Where ending an abandoned checkout left the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The order's status now (`canceled`, `expired`, or `paid`/`processing`
    /// when Stripe had taken the money after all).
    Status(OrderStatus),
    /// Stripe's amount or currency did not match the order: flagged.
    Flagged,
    /// Stripe could not cancel the intent and it is not paid (say, a
    /// capture pending): look again later.
    NotYet,
}

/// Ends an order whose checkout was abandoned: cancels its intent with the
/// store's `key` (none: the order never got one) and records the end.
pub async fn end_abandoned(
    app: &App,
    order: &Order,
    key: &SecretKey,
    pace: &impl Pace,
) -> Result<Ended, AppError> {
    let Some(intent_id) = order.payment_intent_id.as_deref() else {
        return end_as(app, order, OrderStatus::Expired).await;
    };
    match cancel_in_stripe(app, key, intent_id, pace).await? {
        Cancel::Canceled => end_as(app, order, OrderStatus::Canceled).await,
        // Made with a key the store has since replaced: we cannot cancel it,
        // and a payment on it would reach us as an event for review.
        Cancel::Unknown => end_as(app, order, OrderStatus::Expired).await,
        Cancel::NotCancelable(intent) => Ok(
            match checkout::apply_intent(app, order, &intent, PaidVia::Reconciler).await? {
                PaymentState::Paid => Ended::Status(OrderStatus::Paid),
                PaymentState::Processing => Ended::Status(OrderStatus::Processing),
                PaymentState::Flagged => Ended::Flagged,
                PaymentState::Failed { .. } | PaymentState::Unfinished => Ended::NotYet,
            },
        ),
    }
}

/// An order without an intent needs no key to end.
pub async fn end_without_intent(app: &App, order: &Order) -> Result<Ended, AppError> {
    end_as(app, order, OrderStatus::Expired).await
}

async fn end_as(app: &App, order: &Order, status: OrderStatus) -> Result<Ended, AppError> {
    let details = TransitionDetails {
        // Only the intent we cancelled: one attached meanwhile is not.
        payment_intent_id: order.payment_intent_id.clone(),
        ..TransitionDetails::default()
    };
    let now = match app
        .store
        .transition_order(&order.order_id, status, &details, clock::now())
        .await?
    {
        Transition::Applied { from, .. } => {
            tracing::info!(order_id = %order.order_id, %from, to = %status, source = "abandoned", "order status changed");
            status
        }
        Transition::Refused { current } => current,
    };
    Ok(Ended::Status(now))
}

/// Cancels the intents the order replaced (`Order::intents_to_cancel`),
/// taking each off the list once it can no longer take money. One that
/// succeeded puts the order in `needs_review`. Returns whether it did.
pub async fn cancel_replaced(
    app: &App,
    order: &Order,
    key: &SecretKey,
    pace: &impl Pace,
) -> Result<bool, AppError> {
    let mut reviewed = false;
    for id in &order.intents_to_cancel {
        match cancel_in_stripe(app, key, id, pace).await? {
            Cancel::Canceled | Cancel::Unknown => {}
            Cancel::NotCancelable(intent) if intent.status == IntentStatus::Succeeded => {
                review_replaced_payment(app, order, &intent).await?;
                reviewed = true;
            }
            // Processing: Stripe decides soon; look again then.
            Cancel::NotCancelable(_) => continue,
        }
        app.store.intent_cancelled(&order.order_id, id).await?;
    }
    Ok(reviewed)
}

/// Cancels the intent `replaced` right after a new one took its place on
/// the order. A failure is logged, not raised: the customer has the new
/// intent, and the order still lists the old one for the reconciler.
pub async fn cancel_replaced_now(
    app: &App,
    order: &Order,
    key: &SecretKey,
    replaced: &str,
    current: &str,
) {
    let listed = Order {
        payment_intent_id: Some(current.to_owned()),
        intents_to_cancel: vec![replaced.to_owned()],
        ..order.clone()
    };
    if let Err(err) = cancel_replaced(app, &listed, key, &crate::stripe::pace::Unpaced).await {
        tracing::warn!(
            order_id = %order.order_id, payment_intent = %replaced, cause = %cause_chain(&err),
            "could not cancel the replaced intent; the reconciler will"
        );
    }
}

/// Money Stripe took on an intent the order no longer uses: a person
/// decides (refund it, or take it as the payment). An order that was paid
/// meanwhile keeps its status and is flagged: it was paid twice.
async fn review_replaced_payment(
    app: &App,
    order: &Order,
    intent: &PaymentIntent,
) -> Result<(), AppError> {
    let reason = format!(
        "Stripe took {} {} on intent {}, which this order no longer uses (replaced by {})",
        intent.amount,
        intent.currency,
        intent.id,
        order.payment_intent_id.as_deref().unwrap_or("none"),
    );
    tracing::error!(order_id = %order.order_id, %reason, "payment on a replaced intent; order needs review");
    let details = TransitionDetails {
        review_reason: Some(reason.clone()),
        ..TransitionDetails::default()
    };
    match app
        .store
        .transition_order(
            &order.order_id,
            OrderStatus::NeedsReview,
            &details,
            clock::now(),
        )
        .await?
    {
        Transition::Applied { .. } => Ok(()),
        Transition::Refused {
            current: OrderStatus::NeedsReview,
        } => Ok(()),
        Transition::Refused { .. } => {
            app.store
                .flag_order(&order.order_id, &reason, clock::now())
                .await
        }
    }
}
