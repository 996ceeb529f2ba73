//! Applying a verified event to its order, exactly once: the event id and
//! the change go in one conditional write, and only a refused write looks
//! at the order (returned with the refusal) to tell why.

use super::event::{Effect, Envelope};
use super::no_change;
use super::parked::release_parked;
use super::process::{FLAGGED_AMOUNT, Outcome, intent_link};
use super::verdict::{Change, Verdict};
use crate::app::App;
use crate::clock;
use crate::domain::{Mode, Move, OrderStatus, StoreId};
use crate::error::AppError;
use crate::metrics::{Metric, PaidVia};
use crate::store::{EventWrite, ParkedEvent, StripeConnection, TransitionDetails};

const ATTEMPTS: usize = 3;

pub(super) async fn apply(
    app: &App,
    store_id: &StoreId,
    connection: &StripeConnection,
    envelope: &Envelope,
    effect: Effect,
) -> Result<Outcome, AppError> {
    let (payment_intent, to, payment_error, amount_refunded, why, refund_failed) = match effect {
        Effect::Transition {
            payment_intent,
            status,
            payment_error,
            amount_refunded,
            why,
            refund_failed,
        } => (
            payment_intent,
            status,
            payment_error,
            amount_refunded,
            why,
            refund_failed,
        ),
        Effect::Succeeded { payment_intent } => {
            return super::confirm::confirm(app, store_id, connection, envelope, &payment_intent)
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
    let change = event_change(
        envelope,
        &payment_intent,
        to,
        amount_refunded,
        why,
        refund_failed,
    );
    let event = Applying {
        app,
        store_id,
        event_id: &envelope.id,
        created: envelope.created.unwrap_or_default(),
        change,
        payment_error,
    };
    event
        .to_intents_order(envelope.metadata_order_id(), &payment_intent)
        .await
}

/// The change an event's `Effect::Transition` asks of its order, as first
/// written (before any refusal fits it to the order). Public so the bench
/// checks its end states with the webhook's own decisions.
pub fn event_change<'a>(
    envelope: &Envelope,
    payment_intent: &'a str,
    to: OrderStatus,
    amount_refunded: Option<u64>,
    why: Move,
    refund_failed: Option<u64>,
) -> Change<'a> {
    // Moves computed from the order's refunded total start from a guess
    // (no refunds before the dispute; the failed refund was the whole
    // total), written on that condition and fitted to the order if refused.
    let refunded_was = match why {
        Move::DisputeClosed if to != OrderStatus::Lost => Some(0),
        Move::RefundFailed => refund_failed,
        _ => None,
    };
    Change {
        payment_intent,
        to,
        amount: None,
        amount_refunded,
        status_as_of: envelope.status_as_of(),
        prerequisite: envelope.prerequisite(),
        why,
        refund_failed,
        refunded_was,
        mode: Some(event_mode(envelope)),
    }
}

pub(super) fn event_mode(envelope: &Envelope) -> Mode {
    if envelope.livemode {
        Mode::Live
    } else {
        Mode::Test
    }
}

/// Records the event on its order without changing the order, so a
/// redelivery is recognised as a duplicate; answered "no change: `reason`".
pub(super) async fn record_only(
    app: &App,
    store_id: &StoreId,
    event_id: &str,
    order_id: &str,
    reason: &'static str,
) -> Result<Outcome, AppError> {
    match app
        .store
        .record_event(store_id, order_id, event_id, None, clock::now())
        .await?
    {
        EventWrite::Duplicate(_) => Ok(Outcome::Duplicate),
        EventWrite::OtherStore => Ok(other_store()),
        EventWrite::Applied(_) | EventWrite::NoOrder | EventWrite::OrderRefused(_) => {
            Ok(Outcome::NoChange { reason })
        }
    }
}

/// Where an attempt on one order ended.
pub(super) enum Landing {
    Done(Outcome),
    /// Not this intent's order (nothing written): another may be.
    Missed(Miss),
}

pub(super) enum Miss {
    NoOrder,
    /// Another store's order: not this store's to change.
    OtherStore,
    IntentReplaced,
}

pub(super) fn not_ours() -> Outcome {
    Outcome::NoChange {
        reason: no_change::NOT_OURS,
    }
}

/// Verified with this store's secret, about another store's payment: two
/// stores on one Stripe account both receive every event of the account,
/// so this is not a forgery to refuse (a 400 would have Stripe retry for
/// days and disable the endpoint), only not this store's to apply.
pub(super) fn other_store() -> Outcome {
    Outcome::NoChange {
        reason: no_change::OTHER_STORE,
    }
}

/// One verified event and the change it asks of its order.
pub(super) struct Applying<'a> {
    pub app: &'a App,
    pub store_id: &'a StoreId,
    pub event_id: &'a str,
    /// Stripe's `created`, to release parked events in Stripe's order.
    pub created: u64,
    pub change: Change<'a>,
    pub payment_error: Option<String>,
}

impl Applying<'_> {
    /// The order named in the event's metadata (intents and their charges
    /// carry it) saves reading the intent's link. Metadata can be edited in
    /// the merchant's dashboard, though: when it does not lead to an order
    /// with this intent, the link, which we wrote, decides.
    async fn to_intents_order(
        &self,
        hint: Option<String>,
        payment_intent: &str,
    ) -> Result<Outcome, AppError> {
        let mut hinted = None;
        if let Some(order_id) = hint {
            match self.to_order(&order_id).await? {
                Landing::Done(outcome) => return Ok(outcome),
                Landing::Missed(miss) => hinted = Some((order_id, miss)),
            }
        }
        let (order_id, miss) = match (intent_link(self.app, payment_intent).await?, hinted) {
            // Every intent we create is linked in the write that attaches it.
            (None, _) => return Ok(not_ours()),
            (Some(link), Some(hinted)) if link.order_id == hinted.0 => hinted,
            (Some(link), _) => match self.to_order(&link.order_id).await? {
                Landing::Done(outcome) => return Ok(outcome),
                Landing::Missed(miss) => (link.order_id, miss),
            },
        };
        match miss {
            Miss::NoOrder => Ok(not_ours()),
            Miss::OtherStore => Ok(other_store()),
            Miss::IntentReplaced => {
                self.record_only(&order_id, no_change::INTENT_REPLACED)
                    .await
            }
        }
    }

    pub(super) async fn to_order(&self, order_id: &str) -> Result<Landing, AppError> {
        let (app, event_id) = (self.app, self.event_id);
        let mut change = self.change.clone();
        for _ in 0..ATTEMPTS {
            let to = change.to;
            let details = change.details(self.payment_error.clone());
            // Written first, with every rule in the condition: the common
            // case is one request.
            let order = match self.record(order_id, Some((to, &details))).await? {
                EventWrite::Applied(holding_parked) => {
                    tracing::info!(order_id, to = %to, event_id, source = "webhook", "order status changed");
                    // A payment (it carries the money), not a won dispute's return to paid.
                    if to == OrderStatus::Paid && change.amount.is_some() {
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
            // Moves computed from the order are computed from it as it is.
            change = change.fitted(&order);
            let outcome = match change.judge(&order) {
                // It moved between the write and its check (or the change
                // was fitted to it): write again.
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
                        why: FLAGGED_AMOUNT,
                    }
                }
                Verdict::OtherMode => {
                    tracing::warn!(order_id, event_id, mode = %order.mode.as_str(), "event of the other mode than its order; not applied");
                    self.record_only(order_id, no_change::OTHER_MODE).await?
                }
                Verdict::TooEarly { until } => {
                    match self.park(&change, order_id, order.status, until).await? {
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
        change: Option<(OrderStatus, &TransitionDetails)>,
    ) -> Result<EventWrite, AppError> {
        self.app
            .store
            .record_event(self.store_id, order_id, self.event_id, change, clock::now())
            .await
    }

    /// Records the event without changing the order, so a redelivery is
    /// recognised as a duplicate.
    pub(super) async fn record_only(
        &self,
        order_id: &str,
        reason: &'static str,
    ) -> Result<Outcome, AppError> {
        record_only(self.app, self.store_id, self.event_id, order_id, reason).await
    }

    /// Keeps an event that arrived before the one it follows on its order
    /// (recorded, so a redelivery is a duplicate) until the order gets there.
    async fn park(
        &self,
        change: &Change<'_>,
        order_id: &str,
        status: OrderStatus,
        requires: OrderStatus,
    ) -> Result<Parked, AppError> {
        let event = ParkedEvent {
            event_id: self.event_id.to_owned(),
            payment_intent: change.payment_intent.to_owned(),
            to: change.to,
            requires,
            amount_refunded: change.amount_refunded,
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
