//! Landing one verified change on its order, exactly once: the event id and
//! the change go in one conditional write, and only a refused write looks
//! at the order (returned with the refusal) to tell why. Shared by events
//! applied as they come (`apply.rs`) and payments confirmed with Stripe
//! first (`confirm.rs`).

use super::event::Envelope;
use super::lookup::intent_link;
use super::memory::WebhookMemory;
use super::no_change;
use super::outcome::{FLAGGED_AMOUNT, Outcome, not_ours, other_store};
use super::parked::release_parked;
use super::verdict::{Change, Verdict};
use crate::app::App;
use crate::clock;
use crate::domain::{Mode, OrderId, OrderStatus, ParkedEvent, StoreId};
use crate::error::AppError;
use crate::metrics::{Metric, PaidVia};
use crate::store::{EventWrite, TransitionDetails};

const ATTEMPTS: usize = 3;

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
    order_id: &OrderId,
    reason: &'static str,
) -> Result<Outcome, AppError> {
    match app
        .table
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

/// One verified event and the change it asks of its order.
pub(super) struct Applying<'a> {
    pub app: &'a App,
    pub memory: &'a WebhookMemory,
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
    pub(super) async fn to_intents_order(
        &self,
        hint: Option<OrderId>,
        payment_intent: &str,
    ) -> Result<Outcome, AppError> {
        let mut hinted = None;
        if let Some(order_id) = hint {
            match self.to_order(&order_id).await? {
                Landing::Done(outcome) => return Ok(outcome),
                Landing::Missed(miss) => hinted = Some((order_id, miss)),
            }
        }
        let (order_id, miss) = match (
            intent_link(self.app, self.memory, payment_intent).await?,
            hinted,
        ) {
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

    pub(super) async fn to_order(&self, order_id: &OrderId) -> Result<Landing, AppError> {
        let (app, event_id) = (self.app, self.event_id);
        let mut change = self.change.clone();
        for _ in 0..ATTEMPTS {
            let to = change.to;
            let details = change.details(self.payment_error.clone());
            // Written first, with every rule in the condition: the common
            // case is one request.
            let order = match self.record(order_id, Some((to, &details))).await? {
                EventWrite::Applied(holding_parked) => {
                    tracing::info!(%order_id, to = %to, event_id, source = "webhook", "order status changed");
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
                    tracing::error!(%order_id, %reason, "payment does not match its order; flagged for review");
                    app.table
                        .flag_order(order_id, &reason, clock::now())
                        .await?;
                    self.record_only(order_id, "amount mismatch").await?;
                    Outcome::Flagged {
                        order_id: order_id.to_owned(),
                        why: FLAGGED_AMOUNT,
                    }
                }
                Verdict::OtherMode => {
                    tracing::warn!(%order_id, event_id, mode = %order.mode.as_str(), "event of the other mode than its order; not applied");
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
        order_id: &OrderId,
        change: Option<(OrderStatus, &TransitionDetails)>,
    ) -> Result<EventWrite, AppError> {
        self.app
            .table
            .record_event(self.store_id, order_id, self.event_id, change, clock::now())
            .await
    }

    /// Records the event without changing the order, so a redelivery is
    /// recognised as a duplicate.
    pub(super) async fn record_only(
        &self,
        order_id: &OrderId,
        reason: &'static str,
    ) -> Result<Outcome, AppError> {
        record_only(self.app, self.store_id, self.event_id, order_id, reason).await
    }

    /// Keeps an event that arrived before the one it follows on its order
    /// (recorded, so a redelivery is a duplicate) until the order gets there.
    async fn park(
        &self,
        change: &Change<'_>,
        order_id: &OrderId,
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
                .table
                .park_event(self.store_id, order_id, &event)
                .await?
            {
                EventWrite::Applied(_) => {
                    tracing::info!(%order_id, event_id = self.event_id, %status, %requires, "event arrived early; parked on its order");
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
