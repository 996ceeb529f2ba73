//! Applying a verified event to its order, exactly once: the event id and
//! the change go in one conditional write, and only a refused write looks
//! at the order (returned with the refusal) to tell why.

use super::event::{Effect, Envelope};
use super::no_change;
use super::process::{Outcome, intent_link, unverifiable};
use super::verdict::{Change, Verdict};
use crate::app::App;
use crate::clock;
use crate::domain::{OrderStatus, StoreId};
use crate::error::AppError;
use crate::store::{EventWrite, Order, TransitionDetails};

const ATTEMPTS: usize = 3;

pub(super) async fn apply(
    app: &App,
    store_id: &StoreId,
    envelope: &Envelope,
    effect: Effect,
) -> Result<Outcome, AppError> {
    let Effect::Transition {
        payment_intent,
        status: to,
        amount,
        payment_error,
        amount_refunded,
    } = effect
    else {
        // Nothing to change, so nothing to record: a redelivery is
        // answered the same way.
        return Ok(Outcome::NoChange {
            reason: no_change::NOT_ACTED_ON,
        });
    };
    let change = Change {
        payment_intent: &payment_intent,
        to,
        amount: amount.as_ref().map(|(a, c)| (*a, c.as_str())),
        amount_refunded,
        status_as_of: envelope.status_as_of(),
        prerequisite: envelope.prerequisite(),
    };
    let details = change.details(payment_error);
    let event = Applying {
        app,
        store_id,
        event_id: &envelope.id,
        change: &change,
        details: &details,
    };

    // The order named in the event's metadata (intents and their charges
    // carry it) saves reading the intent's link. Metadata can be edited in
    // the merchant's dashboard, though: when it does not lead to an order
    // with this intent, the link, which we wrote, decides.
    let mut hinted = None;
    if let Some(order_id) = envelope.metadata_order_id() {
        match event.to_order(&order_id).await? {
            Landing::Done(outcome) => return Ok(outcome),
            Landing::Missed(miss) => hinted = Some((order_id, miss)),
        }
    }
    let (order_id, miss) = match (intent_link(app, &payment_intent).await?, hinted) {
        // Every intent we create is linked in the write that attaches it.
        (None, _) => return Ok(not_ours()),
        (Some(link), Some(hinted)) if link.order_id == hinted.0 => hinted,
        (Some(link), _) => match event.to_order(&link.order_id).await? {
            Landing::Done(outcome) => return Ok(outcome),
            Landing::Missed(miss) => (link.order_id, miss),
        },
    };
    match miss {
        Miss::NoOrder => Ok(not_ours()),
        Miss::OtherStore => Err(other_store()),
        Miss::IntentReplaced => {
            event
                .record_only(&order_id, no_change::INTENT_REPLACED)
                .await
        }
    }
}

/// Where an attempt on one order ended.
enum Landing {
    Done(Outcome),
    /// Not this intent's order (nothing written): another may be.
    Missed(Miss),
}

enum Miss {
    NoOrder,
    /// Another store's order: refused (400) unless the hint led there.
    OtherStore,
    IntentReplaced,
}

fn not_ours() -> Outcome {
    Outcome::NoChange {
        reason: no_change::NOT_OURS,
    }
}

fn other_store() -> AppError {
    unverifiable("store_mismatch", "The payment belongs to another store")
}

/// One verified event and the change it asks of its order.
struct Applying<'a> {
    app: &'a App,
    store_id: &'a StoreId,
    event_id: &'a str,
    change: &'a Change<'a>,
    details: &'a TransitionDetails,
}

impl Applying<'_> {
    async fn to_order(&self, order_id: &str) -> Result<Landing, AppError> {
        let (app, event_id, to) = (self.app, self.event_id, self.change.to);
        for _ in 0..ATTEMPTS {
            // Written first, with every rule in the condition: the common
            // case is one request.
            let order = match self.record(order_id, Some(to)).await? {
                EventWrite::Applied => {
                    tracing::info!(order_id, to = %to, event_id, source = "webhook", "order status changed");
                    return Ok(Landing::Done(Outcome::Applied {
                        order_id: order_id.to_owned(),
                        to: to.as_str(),
                    }));
                }
                EventWrite::Duplicate => return Ok(Landing::Done(Outcome::Duplicate)),
                EventWrite::NoOrder => return Ok(Landing::Missed(Miss::NoOrder)),
                EventWrite::OtherStore => return Ok(Landing::Missed(Miss::OtherStore)),
                EventWrite::OrderRefused(order) => order,
            };
            let outcome = match self.change.judge(&order) {
                // It moved between the write and its check: decide anew.
                Verdict::Allowed => continue,
                Verdict::IntentReplaced => return Ok(Landing::Missed(Miss::IntentReplaced)),
                Verdict::AmountMismatch { reason } => {
                    tracing::error!(order_id, %reason, "payment does not match its order; flagged for review");
                    app.store
                        .flag_order(order_id, &reason, clock::now())
                        .await?;
                    self.record_only(order_id, "amount mismatch").await?;
                    Outcome::Flagged {
                        order_id: order_id.to_owned(),
                    }
                }
                Verdict::TooEarly => return Err(too_early(event_id, &order)),
                Verdict::NoChange { reason } => self.record_only(order_id, reason).await?,
            };
            return Ok(Landing::Done(outcome));
        }
        Err(AppError::Dependency {
            dependency: "DynamoDB",
            throttled: true,
            source: "order kept changing under concurrent deliveries".into(),
        })
    }

    async fn record(
        &self,
        order_id: &str,
        to: Option<OrderStatus>,
    ) -> Result<EventWrite, AppError> {
        self.app
            .store
            .record_event(
                self.store_id,
                order_id,
                self.event_id,
                to.map(|to| (to, self.details)),
                clock::now(),
            )
            .await
    }

    /// Records the event without changing the order, so a redelivery is
    /// recognised as a duplicate.
    async fn record_only(&self, order_id: &str, reason: &'static str) -> Result<Outcome, AppError> {
        match self.record(order_id, None).await? {
            EventWrite::Duplicate => Ok(Outcome::Duplicate),
            EventWrite::OtherStore => Err(other_store()),
            EventWrite::Applied | EventWrite::NoOrder | EventWrite::OrderRefused(_) => {
                Ok(Outcome::NoChange { reason })
            }
        }
    }
}

/// An event that follows one the order has not seen yet (Stripe does not
/// deliver in order) is not recorded and is answered 409, so Stripe
/// delivers it again later, when it can apply. (An event applied before,
/// such as a won dispute's closure after which the order is back at
/// `paid`, is a duplicate: the write finds it in the order's record first.)
fn too_early(event_id: &str, order: &Order) -> AppError {
    tracing::info!(order_id = %order.order_id, event_id, status = %order.status, "event arrived early; asking Stripe to deliver it again");
    AppError::conflict(
        "event_too_early",
        format!(
            "The order is {}; deliver this event again after the one it follows",
            order.status
        ),
    )
}
