//! Processed Stripe events, recorded in the order they are about (a string
//! set `processed_events` on the order item) by the same conditional write
//! that applies their change, so each event changes an order at most once
//! however often, and in whatever order, Stripe delivers it.
//!
//! DESIGN.md suggests a separate `EVENT#` item per event. That makes every
//! delivery a two-item transaction: 4 write units instead of 1, and about a
//! fifth more CPU in the SDK than one `UpdateItem`. On the order, the write
//! that checks the order's rules also checks that the event is new, and a
//! refusal returns both answers in one item.

use super::conditional::{Written, conditional};
use super::item::{Item, get_opt_s, get_order_id, get_s, n, s};
use super::keys;
use super::transitions::TransitionExpr;
use super::{Table, item_of};
use crate::domain::{Order, OrderId, OrderStatus, ParkedEvent, StoreId};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

/// The order attribute holding the ids of the events applied to it.
pub(super) const PROCESSED_EVENTS: &str = "processed_events";

/// What writing an event did.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// The event was recorded and its change applied. Carries the order as
    /// it is now when the move may have readied parked events.
    Applied(Option<Box<Order>>),
    /// Seen before: nothing was written. Carries the order when it holds
    /// parked events (a delivery that applied the event and then failed to
    /// release them is finished by Stripe's redelivery).
    Duplicate(Option<Box<Order>>),
    /// No such order: nothing was written.
    NoOrder,
    /// The order belongs to another store: nothing was written.
    OtherStore,
    /// The order's condition did not hold: nothing was written. Carries the
    /// order as DynamoDB saw it, so the caller can tell why without a read.
    OrderRefused(Box<Order>),
}

/// Where a PaymentIntent belongs, from its link item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentLink {
    pub order_id: OrderId,
    pub store_id: StoreId,
}

impl Table {
    pub async fn intent_link(
        &self,
        payment_intent_id: &str,
    ) -> Result<Option<IntentLink>, AppError> {
        // Consistent: written moments before the first event about it can arrive.
        let read = self.get_one(keys::intent(payment_intent_id), keys::INTENT);
        let Some(item) = item_of(read).await? else {
            return Ok(None);
        };
        let store_id = StoreId::parse(get_s(&item, "store_id")?)
            .map_err(|_| AppError::internal("intent link with an invalid store id"))?;
        Ok(Some(IntentLink {
            order_id: get_order_id(&item)?,
            store_id,
        }))
    }

    /// Records the event on its order and, with `change`, moves the order
    /// to its status, in one conditional write. Without `change` the event
    /// is only recorded, so a later duplicate is recognised. The order is
    /// not read first: the store, the event's novelty and the status,
    /// intent, amount and ordering rules are all in the write's condition,
    /// and a refusal returns the order as it was.
    pub async fn record_event(
        &self,
        store_id: &StoreId,
        order_id: &OrderId,
        event_id: &str,
        change: Option<(OrderStatus, &super::TransitionDetails)>,
        now: u64,
    ) -> Result<EventWrite, AppError> {
        let expr = EventExpr::new(store_id, event_id, change, now);
        // Only a move to a status parked events wait for can ready them.
        let readies = change.is_some_and(|(to, _)| OrderStatus::PREREQUISITES.contains(&to));
        let mut request = self
            .update_order(order_id)
            .update_expression(expr.update)
            .condition_expression(expr.condition)
            .set_expression_attribute_values(Some(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if change.is_some() {
            request = request.expression_attribute_names("#status", "status");
        }
        if change.is_some_and(|(_, details)| details.mode.is_some()) {
            request = request.expression_attribute_names("#mode", "mode");
        }
        if readies {
            request = request.return_values(ReturnValue::AllNew);
        }
        match conditional(request.send().await)? {
            Written::Done(out) => Ok(EventWrite::Applied(holding_parked(
                out.attributes.as_ref(),
            )?)),
            Written::Refused(old) => refusal(old.as_ref(), store_id, event_id),
        }
    }

    /// The order, and whether `event_id` is already recorded on it: for an
    /// event that must not be acted on before the order is read (a payment
    /// is confirmed with Stripe first, and only once per order).
    pub async fn order_for_event(
        &self,
        order_id: &OrderId,
        event_id: &str,
    ) -> Result<Option<(Order, bool)>, AppError> {
        item_of(self.get_one(keys::order(order_id), keys::ORDER))
            .await?
            .as_ref()
            .map(|item| Ok((Order::from_item(item)?, processed(item, event_id))))
            .transpose()
    }

    /// Notes a verified delivery on the store's connection (webhook health).
    pub async fn touch_last_webhook(&self, store_id: &StoreId, now: u64) -> Result<(), AppError> {
        // Skip the write when a recent delivery already noted it: busy stores
        // would otherwise write this item on every event.
        self.note_activity(
            store_id,
            "SET last_webhook_at = :now",
            "attribute_not_exists(last_webhook_at) OR last_webhook_at < :stale",
            &[(":now", n(now)), (":stale", n(now.saturating_sub(60)))],
        )
        .await
    }

    /// Notes that an order was found paid by asking Stripe (not by a
    /// webhook): if webhooks stay silent after this, health says so. The
    /// customer's browser confirmed that payment with the store's
    /// publishable key, which Stripe accepts only for its own account's
    /// intents: the first one proves the key, if the connect could not.
    pub async fn note_api_payment(&self, store_id: &StoreId, now: u64) -> Result<(), AppError> {
        self.note_activity(
            store_id,
            "SET last_api_payment_at = :now, publishable_key_proven_at = if_not_exists(publishable_key_proven_at, :now)",
            "",
            &[(":now", n(now))],
        )
        .await
    }

    /// Marks the store's connection as needing new keys because Stripe
    /// rejected its key, but only while the connection is still at
    /// `version` (the one whose key failed): a save since then brought other
    /// keys and must not inherit the mark. The first rejection's time stays.
    pub async fn note_key_rejected(
        &self,
        store_id: &StoreId,
        version: u64,
        reason: &str,
        now: u64,
    ) -> Result<(), AppError> {
        self.note_activity(
            store_id,
            "SET key_rejected_at = if_not_exists(key_rejected_at, :now), key_rejected_reason = :reason",
            "version = :version",
            &[
                (":now", n(now)),
                (":reason", s(reason)),
                (":version", n(version)),
            ],
        )
        .await
    }

    /// Adds `count` deliveries that failed verification for this store, the
    /// last of them at `last_at` for `reason`. Deliveries count them in
    /// memory and call this at most once a minute per store and container
    /// (`webhooks::failures`), so forgeries cost no write each.
    pub async fn note_webhook_failures(
        &self,
        store_id: &StoreId,
        count: u64,
        reason: &str,
        last_at: u64,
    ) -> Result<(), AppError> {
        self.note_activity(
            store_id,
            "SET last_webhook_failure_at = :at, last_webhook_failure = :reason ADD webhook_failures :count",
            "",
            &[(":at", n(last_at)), (":reason", s(reason)), (":count", n(count))],
        )
        .await
    }

    /// Updates webhook bookkeeping on the store's connection item. Nothing
    /// to do (no connection, or `condition` false) is not an error.
    async fn note_activity(
        &self,
        store_id: &StoreId,
        update: &str,
        condition: &str,
        values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
    ) -> Result<(), AppError> {
        let condition = match condition {
            "" => "attribute_exists(pk)".to_owned(),
            extra => format!("attribute_exists(pk) AND ({extra})"),
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::store(store_id)))
            .key("sk", s(keys::CONNECTION))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        conditional(request.send().await)?;
        Ok(())
    }
}

/// Why the event's write was refused, from the order as it was.
pub(super) fn refusal(
    item: Option<&Item>,
    store_id: &StoreId,
    event_id: &str,
) -> Result<EventWrite, AppError> {
    let Some(item) = item else {
        return Ok(EventWrite::NoOrder);
    };
    if get_opt_s(item, "store_id") != Some(store_id.to_string().as_str()) {
        return Ok(EventWrite::OtherStore);
    }
    if processed(item, event_id) {
        return Ok(EventWrite::Duplicate(holding_parked(Some(item))?));
    }
    Ok(EventWrite::OrderRefused(Box::new(Order::from_item(item)?)))
}

/// The order, only when it holds parked events (most do not, and a whole
/// order is not parsed for nothing).
fn holding_parked(item: Option<&Item>) -> Result<Option<Box<Order>>, AppError> {
    match item {
        Some(item) if ParkedEvent::any_in(item) => Ok(Some(Box::new(Order::from_item(item)?))),
        _ => Ok(None),
    }
}

fn processed(item: &Item, event_id: &str) -> bool {
    item.get(PROCESSED_EVENTS)
        .and_then(|v| v.as_ss().ok())
        .is_some_and(|ids| ids.iter().any(|id| id == event_id))
}

/// The event's write: the order's guarded transition (if any) plus "this
/// store's order, and this event not yet applied to it".
struct EventExpr {
    update: String,
    condition: String,
    values: Item,
}

impl EventExpr {
    fn new(
        store_id: &StoreId,
        event_id: &str,
        change: Option<(OrderStatus, &super::TransitionDetails)>,
        now: u64,
    ) -> Self {
        let (update, condition, mut values) = match change {
            Some((to, details)) => {
                let t = TransitionExpr::new(to, details, now);
                (format!("{} ", t.update()), t.condition, t.values)
            }
            None => (
                String::new(),
                "attribute_exists(pk)".to_owned(),
                Item::new(),
            ),
        };
        values.insert(":store".into(), s(store_id.to_string()));
        values.insert(":event_id".into(), s(event_id));
        values.insert(
            ":event".into(),
            AttributeValue::Ss(vec![event_id.to_owned()]),
        );
        EventExpr {
            update: format!("{update}ADD {PROCESSED_EVENTS} :event"),
            condition: format!(
                "{condition} AND store_id = :store AND NOT contains({PROCESSED_EVENTS}, :event_id)"
            ),
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TransitionDetails;

    fn store() -> StoreId {
        Order::sample().store_id
    }

    fn order_item(events: &[&str]) -> Item {
        let order = Order::sample();
        let mut item = order.to_item();
        if !events.is_empty() {
            item.insert(
                PROCESSED_EVENTS.into(),
                AttributeValue::Ss(events.iter().map(|e| e.to_string()).collect()),
            );
        }
        item
    }

    #[test]
    fn a_change_is_written_with_its_event_under_one_condition() {
        let details = TransitionDetails {
            payment_intent_id: Some("pi_1".into()),
            ..TransitionDetails::default()
        };
        let expr = EventExpr::new(&store(), "evt_1", Some((OrderStatus::Paid, &details)), 7);
        let transition = TransitionExpr::new(OrderStatus::Paid, &details, 7);
        assert_eq!(
            expr.update,
            format!("{} ADD processed_events :event", transition.update())
        );
        assert_eq!(
            expr.condition,
            format!(
                "{} AND store_id = :store AND NOT contains(processed_events, :event_id)",
                transition.condition
            )
        );
        assert_eq!(expr.values[":store"], s(store().to_string()));
        assert_eq!(expr.values[":event_id"], s("evt_1"));
        assert_eq!(
            expr.values[":event"],
            AttributeValue::Ss(vec!["evt_1".into()])
        );
        assert_eq!(expr.values[":to"], s("paid"));
        assert_eq!(expr.values[":pi"], s("pi_1"));
    }

    #[test]
    fn recording_alone_changes_nothing_but_the_record() {
        let expr = EventExpr::new(&store(), "evt_1", None, 7);
        assert_eq!(expr.update, "ADD processed_events :event");
        assert_eq!(
            expr.condition,
            "attribute_exists(pk) AND store_id = :store AND NOT contains(processed_events, :event_id)"
        );
        assert_eq!(expr.values.len(), 3, "only the store and the event");
    }

    #[test]
    fn a_refusal_says_why_from_the_order_as_it_was() {
        assert_eq!(
            refusal(None, &store(), "evt_1").unwrap(),
            EventWrite::NoOrder
        );

        let other = StoreId::parse("9f1c2b3a-0000-4000-8000-00000000000b").unwrap();
        assert_eq!(
            refusal(Some(&order_item(&["evt_1"])), &other, "evt_1").unwrap(),
            EventWrite::OtherStore,
            "another store's order is never told apart further"
        );

        assert_eq!(
            refusal(Some(&order_item(&["evt_0", "evt_1"])), &store(), "evt_1").unwrap(),
            EventWrite::Duplicate(None)
        );

        let item = order_item(&["evt_0"]);
        match refusal(Some(&item), &store(), "evt_1").unwrap() {
            EventWrite::OrderRefused(order) => {
                assert_eq!(*order, Order::from_item(&item).unwrap());
            }
            other => panic!("expected the order back, got {other:?}"),
        }
        match refusal(Some(&order_item(&[])), &store(), "evt_1").unwrap() {
            EventWrite::OrderRefused(order) => assert_eq!(order.status, OrderStatus::Pending),
            other => panic!("expected the order back, got {other:?}"),
        }
    }
}
