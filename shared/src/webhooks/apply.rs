//! What a verified event asks of its order: a payment's success is
//! confirmed with Stripe first (`confirm.rs`); every other change is landed
//! as it comes (`landing.rs`).

use super::event::{Effect, Envelope, EventTransition};
use super::landing::{Applying, event_mode};
use super::memory::WebhookMemory;
use super::no_change;
use super::outcome::{Outcome, not_ours};
use super::verdict::Change;
use crate::app::App;
use crate::domain::{Move, OrderStatus, StoreId};
use crate::error::AppError;
use crate::store::StripeConnection;

pub(super) async fn apply(
    app: &App,
    memory: &WebhookMemory,
    store_id: &StoreId,
    connection: &StripeConnection,
    envelope: &Envelope,
    effect: Effect,
) -> Result<Outcome, AppError> {
    let transition = match effect {
        Effect::Transition(transition) => transition,
        Effect::Succeeded { payment_intent } => {
            return super::confirm::confirm(
                app,
                memory,
                store_id,
                connection,
                envelope,
                &payment_intent,
            )
            .await;
        }
        // Nothing to change, so nothing to record: a redelivery is
        // answered the same way.
        Effect::NotOurs => return Ok(not_ours()),
        Effect::Ignore => {
            return Ok(Outcome::NoChange {
                reason: no_change::NOT_ACTED_ON,
            });
        }
    };
    let change = event_change(envelope, &transition);
    let event = Applying {
        app,
        memory,
        store_id,
        event_id: &envelope.id,
        created: envelope.created.unwrap_or_default(),
        change,
        payment_error: transition.payment_error.clone(),
    };
    event
        .to_intents_order(envelope.metadata_order_id(), &transition.payment_intent)
        .await
}

/// The change an event's transition asks of its order, as first written
/// (before any refusal fits it to the order). Public so the bench and the
/// property tests check end states with the webhook's own decisions.
pub fn event_change<'a>(envelope: &Envelope, transition: &'a EventTransition) -> Change<'a> {
    let EventTransition {
        payment_intent,
        status: to,
        amount_refunded,
        why,
        refund_failed,
        ..
    } = transition;
    let (to, why) = (*to, *why);
    // Moves computed from the order's refunded total start from a guess
    // (no refunds before the dispute; the failed refund was the whole
    // total), written on that condition and fitted to the order if refused.
    let refunded_was = match why {
        Move::DisputeClosed if to != OrderStatus::Lost => Some(0),
        Move::RefundFailed => *refund_failed,
        _ => None,
    };
    Change {
        payment_intent,
        to,
        amount: None,
        amount_refunded: *amount_refunded,
        status_as_of: envelope.status_as_of(),
        prerequisite: envelope.prerequisite(),
        why,
        refund_failed: *refund_failed,
        refunded_was,
        mode: Some(event_mode(envelope)),
    }
}
