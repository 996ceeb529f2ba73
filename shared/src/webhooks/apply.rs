//! Applying a verified event to its order, exactly once: the event id and
//! the change go in one conditional write, and only a refused write looks
//! at the order (returned with the refusal) to tell why.

use super::event::{Effect, Envelope};
use super::no_change;
use super::parked::release_parked;
use super::process::{Outcome, intent_link, unverifiable};
use super::verdict::{Change, Verdict};
use crate::app::App;
use crate::clock;
use crate::domain::{OrderStatus, StoreId};
use crate::error::AppError;
use crate::metrics::{Metric, PaidVia};
use crate::store::{EventWrite, ParkedEvent, TransitionDetails};

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
        created: envelope.created.unwrap_or_default(),
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
    /// Stripe's `created`, to release parked events in Stripe's order.
    created: u64,
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
                EventWrite::Applied(holding_parked) => {
                    tracing::info!(order_id, to = %to, event_id, source = "webhook", "order status changed");
                    // A payment (it carries the money), not a won dispute's return to paid.
                    if to == OrderStatus::Paid && self.change.amount.is_some() {
                        app.metrics.emit(Metric::OrderPaid(PaidVia::Webhook));
                    }
                    if let Some(order) = holding_parked {
                        release_parked(app, *order).await?;
                    }
                    return Ok(Landing::Done(Outcome::Applied {
                        order_id: order_id.to_owned(),
                        to: to.as_str(),
                    }));
                }
                EventWrite::Duplicate(holding_parked) => {
                    if let Some(order) = holding_parked {
                        release_parked(app, *order).await?;
                    }
                    return Ok(Landing::Done(Outcome::Duplicate));
                }
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
                Verdict::TooEarly { until } => {
                    match self.park(order_id, order.status, until).await? {
                        Parked::Done(outcome) => outcome,
                        Parked::Missed(miss) => return Ok(Landing::Missed(miss)),
                        // It got there meanwhile: apply it now.
                        Parked::OrderMoved => continue,
                    }
                }
                Verdict::NoChange { reason } => {
                    let outcome = self.record_only(order_id, reason).await?;
                    // The order may have been paid another way (the checkout
                    // or the reconciler asked Stripe) with events waiting.
                    if !order.parked.is_empty() {
                        release_parked(app, *order).await?;
                    }
                    outcome
                }
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
            EventWrite::Duplicate(_) => Ok(Outcome::Duplicate),
            EventWrite::OtherStore => Err(other_store()),
            EventWrite::Applied(_) | EventWrite::NoOrder | EventWrite::OrderRefused(_) => {
                Ok(Outcome::NoChange { reason })
            }
        }
    }

    /// Keeps an event that arrived before the one it follows on its order
    /// (recorded, so a redelivery is a duplicate) until the order gets there.
    async fn park(
        &self,
        order_id: &str,
        status: OrderStatus,
        requires: OrderStatus,
    ) -> Result<Parked, AppError> {
        let event = ParkedEvent {
            event_id: self.event_id.to_owned(),
            payment_intent: self.change.payment_intent.to_owned(),
            to: self.change.to,
            requires,
            amount_refunded: self.change.amount_refunded,
            created: self.created,
        };
        Ok(
            match self
                .app
                .store
                .park_event(self.store_id, order_id, &event)
                .await?
            {
                EventWrite::Applied(_) => {
                    tracing::info!(order_id, event_id = self.event_id, %status, %requires, "event arrived early; parked on its order");
                    Parked::Done(Outcome::Parked {
                        order_id: order_id.to_owned(),
                        until: requires.as_str(),
                    })
                }
                EventWrite::Duplicate(_) => Parked::Done(Outcome::Duplicate),
                EventWrite::NoOrder => Parked::Missed(Miss::NoOrder),
                EventWrite::OtherStore => Parked::Missed(Miss::OtherStore),
                EventWrite::OrderRefused(_) => Parked::OrderMoved,
            },
        )
    }
}

enum Parked {
    Done(Outcome),
    Missed(Miss),
    /// The order is no longer short of what the event needs (or its intent
    /// changed): decide again.
    OrderMoved,
}
