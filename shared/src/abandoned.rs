//! Checkouts that end without a payment. Once a checkout is abandoned
//! (`Order::abandoned_at`) its intent is cancelled in Stripe
//! (`replaced::cancel_in_stripe`) and the order ends `canceled`, or
//! `expired` when there is no intent of ours left to cancel; either way it
//! leaves the reconciler's index.
//!
//! Cancel first, then write: the order is only marked ended once Stripe can
//! no longer take money on its intent, and a cancel Stripe refuses because
//! the intent succeeded meanwhile pays the order the normal way.

use crate::app::App;
use crate::checkout::{self, PaymentState};
use crate::clock;
use crate::domain::{Order, OrderStatus, SecretKey};
use crate::error::AppError;
use crate::metrics::PaidVia;
use crate::replaced::{Cancel, cancel_in_stripe};
use crate::store::{Transition, TransitionDetails};
use crate::stripe::pace::Pace;

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
    match cancel_in_stripe(&app.stripe, key, intent_id, pace).await? {
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
        .table
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
