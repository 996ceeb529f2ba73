//! Events that arrived before the one they follow: a refund or a dispute
//! before the payment, a dispute's closure before its creation (Stripe does
//! not deliver in order). Each is recorded as processed and kept on its
//! order, as one attribute `parked:{event id}`, until the order gets that
//! far; then `webhooks::release_parked` applies it with the same guarded
//! transition as any event and removes it, in one write.
//!
//! Answering "not yet" instead (a non-2xx, so Stripe delivers again) left
//! the order wrong until Stripe's next try, minutes to hours later, showed
//! the merchant failed deliveries, and made each early event cost several
//! invocations.

use super::conditional::{Written, conditional};
use super::events::{EventWrite, PROCESSED_EVENTS, refusal};
use super::item::{Item, s};
use super::transitions::{TransitionExpr, status_condition, update_expression};
use super::{Table, TransitionDetails};
use crate::domain::{Order, OrderId, OrderStatus, ParkedEvent, StoreId};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

/// What releasing a parked event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Release {
    /// Its change was applied and it was removed: the order now.
    Applied(Box<Order>),
    /// Removed without a change (it can no longer apply): the order now.
    Dropped(Box<Order>),
    /// Nothing was written: the event was gone already (another delivery
    /// released it) or the order did not allow the change. The order as it
    /// was, to decide again.
    Refused(Box<Order>),
    /// The order no longer exists.
    NoOrder,
}

impl Table {
    /// Records an early event on its order and keeps its change there, if
    /// the order (this store's, with this intent) has not yet got as far as
    /// the event requires. A refusal returns the order as it was: it may
    /// have got there meanwhile, and the event then applies at once.
    pub async fn park_event(
        &self,
        store_id: &StoreId,
        order_id: &OrderId,
        event: &ParkedEvent,
    ) -> Result<EventWrite, AppError> {
        let expr = ParkExpr::new(store_id, event);
        let result = self
            .update_order(order_id)
            .update_expression(expr.update)
            .condition_expression(expr.condition)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#parked", ParkedEvent::attribute(&event.event_id))
            .set_expression_attribute_values(Some(expr.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional(result)? {
            Written::Done(_) => Ok(EventWrite::Applied(None)),
            Written::Refused(old) => refusal(old.as_ref(), store_id, &event.event_id),
        }
    }

    /// Removes a parked event from its order and, with `change`, applies
    /// the event's guarded transition in the same write, so however many
    /// deliveries release it at once it applies once. Without `change` (it
    /// no longer applies) the event is dropped only while the order is still
    /// `judged`, the status that decision was made on.
    pub async fn release_parked(
        &self,
        order_id: &OrderId,
        event_id: &str,
        change: Option<(OrderStatus, &TransitionDetails)>,
        judged: OrderStatus,
        now: u64,
    ) -> Result<Release, AppError> {
        let (set, mut remove, mut condition, values) = match change {
            Some((to, details)) => {
                let t = TransitionExpr::new(to, details, now);
                (t.set, t.remove, t.condition, t.values)
            }
            None => (
                Vec::new(),
                Vec::new(),
                "#status = :judged".to_owned(),
                HashMap::from([(":judged".to_owned(), s(judged.as_str()))]),
            ),
        };
        remove.push("#parked".to_owned());
        condition.push_str(" AND attribute_exists(#parked)");
        let request = self
            .update_order(order_id)
            .update_expression(update_expression(&set, &remove))
            .condition_expression(condition)
            .expression_attribute_names("#parked", ParkedEvent::attribute(event_id))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match conditional(request.send().await)? {
            Written::Done(out) => {
                let order = Box::new(Order::from_item(&out.attributes.unwrap_or_default())?);
                Ok(match change {
                    Some(_) => Release::Applied(order),
                    None => Release::Dropped(order),
                })
            }
            Written::Refused(Some(item)) => {
                Ok(Release::Refused(Box::new(Order::from_item(&item)?)))
            }
            Written::Refused(None) => Ok(Release::NoOrder),
        }
    }
}

/// The parking write: "this store's order, this event new, this intent, and
/// the order not yet where the event needs it".
struct ParkExpr {
    update: String,
    condition: String,
    values: Item,
}

impl ParkExpr {
    fn new(store_id: &StoreId, event: &ParkedEvent) -> Self {
        let mut values = Item::from([
            (":store".to_owned(), s(store_id.to_string())),
            (":event_id".to_owned(), s(&event.event_id)),
            (
                ":event".to_owned(),
                AttributeValue::Ss(vec![event.event_id.clone()]),
            ),
            (":pi".to_owned(), s(&event.payment_intent)),
            (":parked".to_owned(), event.to_attribute().1),
        ]);
        let not_yet: Vec<OrderStatus> = OrderStatus::ALL
            .into_iter()
            .filter(|status| !status.has_reached(event.requires))
            .collect();
        let not_yet = status_condition(&not_yet, &mut values);
        ParkExpr {
            update: format!("SET #parked = :parked ADD {PROCESSED_EVENTS} :event"),
            condition: format!(
                "attribute_exists(pk) AND store_id = :store AND NOT contains({PROCESSED_EVENTS}, :event_id) \
                 AND payment_intent_id = :pi AND {not_yet}"
            ),
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::transitions::statuses_in_condition;

    fn refund(event_id: &str, created: u64) -> ParkedEvent {
        ParkedEvent {
            event_id: event_id.into(),
            payment_intent: "pi_1".into(),
            to: OrderStatus::PartiallyRefunded,
            requires: OrderStatus::Paid,
            amount_refunded: Some(500),
            created,
        }
    }

    fn order(parked: Vec<ParkedEvent>) -> Order {
        Order {
            parked,
            ..Order::sample()
        }
    }

    #[test]
    fn parked_events_survive_the_item_and_come_back_oldest_first() {
        let closure = ParkedEvent {
            event_id: "evt_a".into(),
            to: OrderStatus::Lost,
            requires: OrderStatus::Disputed,
            amount_refunded: None,
            ..refund("evt_a", 20)
        };
        let stored = order(vec![
            closure.clone(),
            refund("evt_c", 10),
            refund("evt_b", 10),
        ]);
        let item = stored.to_item();
        assert!(ParkedEvent::any_in(&item));
        assert!(item.contains_key("parked:evt_a"), "one attribute per event");
        let back = Order::from_item(&item).unwrap();
        let ids: Vec<&str> = back.parked.iter().map(|p| p.event_id.as_str()).collect();
        assert_eq!(ids, ["evt_b", "evt_c", "evt_a"], "by created, then id");
        assert_eq!(back.parked[2], closure);

        let plain = order(Vec::new()).to_item();
        assert!(!ParkedEvent::any_in(&plain));
        assert!(Order::from_item(&plain).unwrap().parked.is_empty());
    }

    #[test]
    fn a_parked_event_that_cannot_be_read_is_an_error_not_forgotten() {
        let mut item = order(Vec::new()).to_item();
        item.insert("parked:evt_1".into(), s("refund"));
        assert!(Order::from_item(&item).is_err());
        let (name, AttributeValue::M(mut fields)) = refund("evt_1", 1).to_attribute() else {
            panic!("a map");
        };
        fields.insert("to".into(), s("shipped"));
        item.insert(name, AttributeValue::M(fields));
        assert!(Order::from_item(&item).is_err());
    }

    #[test]
    fn an_event_is_parked_only_while_the_order_is_short_of_its_requirement() {
        let expr = ParkExpr::new(&order(Vec::new()).store_id, &refund("evt_1", 1));
        assert_eq!(
            expr.update,
            "SET #parked = :parked ADD processed_events :event"
        );
        assert!(
            expr.condition.starts_with(
                "attribute_exists(pk) AND store_id = :store AND NOT contains(processed_events, :event_id) AND payment_intent_id = :pi AND #status IN ("
            ),
            "{}",
            expr.condition
        );
        assert_eq!(
            statuses_in_condition(&expr.values),
            ["failed", "pending", "processing"]
        );

        let closure = ParkedEvent {
            to: OrderStatus::Paid,
            requires: OrderStatus::Disputed,
            amount_refunded: None,
            ..refund("evt_2", 1)
        };
        let expr = ParkExpr::new(&order(Vec::new()).store_id, &closure);
        assert_eq!(
            statuses_in_condition(&expr.values),
            [
                "failed",
                "paid",
                "partially_refunded",
                "pending",
                "processing"
            ],
            "a partly refunded order can still be disputed"
        );
        assert_eq!(expr.values[":parked"], closure.to_attribute().1);
    }
}
