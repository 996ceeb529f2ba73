//! Guarded status changes of an order: the move is written only from a
//! status that allows it (`OrderStatus::can_become`), with the ordering
//! guards that keep late or older news from undoing newer state. The plain
//! transition (checkout, reconciler) is here; the webhook's event writes
//! (`events.rs`, `parked.rs`) build on the same expression.

use super::Table;
use super::conditional::{Written, conditional};
use super::item::{corrupt_order, get_opt_s, get_s, n, s};
use crate::domain::{Mode, Move, OrderId, OrderStatus, ParkedEvent};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

/// What a guarded status change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Applied {
        from: OrderStatus,
        /// The order holds parked events, which this move may have made
        /// ready (`webhooks::release_parked`).
        has_parked: bool,
    },
    /// The order is in a status from which this move is not allowed
    /// (already there, or further along): nothing was written.
    Refused { current: OrderStatus },
}

/// Extra fields a transition records.
#[derive(Clone, Debug, Default)]
pub struct TransitionDetails {
    /// Only move an order whose intent is this one (webhooks, reconciler).
    pub payment_intent_id: Option<String>,
    pub payment_error: Option<String>,
    pub review_reason: Option<String>,
    /// From `charge.refunded`: how much has been refunded so far. Only a
    /// larger total is written, since Stripe may deliver an older one last.
    pub amount_refunded: Option<u64>,
    /// Only apply if Stripe's amount and currency are the order's.
    pub expected_amount: Option<(u64, String)>,
    /// When Stripe's intent was in the state this change reports (the
    /// event's `created`, or now for a state read from the API). A move to
    /// `processing` or `failed` older than the state the order shows is
    /// refused: an earlier attempt's news must not override a later one's.
    pub status_as_of: Option<u64>,
    /// Only move an order that has got this far (`OrderStatus::has_reached`).
    pub requires: Option<OrderStatus>,
    /// What kind of news this is: only a dispute's closure leaves
    /// `disputed`, only a failed refund lowers the refunded total.
    pub why: Move,
    /// Only move an order whose refunded total is still this (0: none), as
    /// read just before: for moves computed from it (a won dispute, a
    /// failed refund). With it, `amount_refunded` is written as given,
    /// smaller or not.
    pub refunded_was: Option<u64>,
    /// Only move an order of this mode (events of the other never settle it).
    pub mode: Option<Mode>,
}

/// The pieces of a guarded status change, shared by the plain transition
/// and the webhook's event writes (which add their own parts).
pub(super) struct TransitionExpr {
    pub set: Vec<String>,
    pub remove: Vec<String>,
    pub condition: String,
    pub values: HashMap<String, AttributeValue>,
}

impl TransitionExpr {
    pub fn new(to: OrderStatus, details: &TransitionDetails, now: u64) -> Self {
        let mut values = HashMap::from([
            (":to".to_string(), s(to.as_str())),
            (":now".to_string(), n(now)),
        ]);
        let sources = OrderStatus::sources_of(to, details.why, details.requires);
        let sources = status_condition(&sources, &mut values);
        let mut condition = format!("attribute_exists(pk) AND {sources}");
        let mut set = vec!["#status = :to", "updated_at = :now"];
        let mut remove = Vec::new();
        if let Some(pi) = &details.payment_intent_id {
            values.insert(":pi".into(), s(pi));
            condition.push_str(" AND payment_intent_id = :pi");
        }
        if to == OrderStatus::Paid {
            set.push("paid_at = if_not_exists(paid_at, :now)");
        }
        if let Some(error) = &details.payment_error {
            values.insert(":error".into(), s(error));
            set.push("last_payment_error = :error");
        }
        if let Some(reason) = &details.review_reason {
            values.insert(":review".into(), s(reason));
            set.push("review_reason = :review");
        }
        if let Some(refunded) = details.amount_refunded {
            values.insert(":refunded".into(), n(refunded));
            set.push("amount_refunded = :refunded");
            if details.refunded_was.is_none() {
                condition.push_str(
                    " AND (attribute_not_exists(amount_refunded) OR amount_refunded < :refunded)",
                );
            }
        }
        match details.refunded_was {
            None => {}
            Some(0) => condition.push_str(
                " AND (attribute_not_exists(amount_refunded) OR amount_refunded = :zero)",
            ),
            Some(was) => {
                values.insert(":refunded_was".into(), n(was));
                condition.push_str(" AND amount_refunded = :refunded_was");
            }
        }
        if details.refunded_was == Some(0) {
            values.insert(":zero".into(), n(0));
        }
        if let Some(mode) = details.mode {
            values.insert(":mode".into(), s(mode.as_str()));
            condition.push_str(" AND #mode = :mode");
        }
        if let Some((amount, currency)) = &details.expected_amount {
            values.insert(":amount".into(), n(*amount));
            values.insert(":currency".into(), s(currency.to_ascii_lowercase()));
            condition.push_str(" AND amount = :amount AND currency = :currency");
        }
        if let Some(as_of) = details.status_as_of {
            values.insert(":as_of".into(), n(as_of));
            set.push("status_as_of = :as_of");
            if matches!(to, OrderStatus::Processing | OrderStatus::Failed) {
                condition
                    .push_str(" AND (attribute_not_exists(status_as_of) OR status_as_of < :as_of)");
            }
        }
        if !to.awaits_payment() {
            remove.extend(["pending_pk", "pending_sk"]);
        }
        TransitionExpr {
            set: set.into_iter().map(str::to_owned).collect(),
            remove: remove.into_iter().map(str::to_owned).collect(),
            condition,
            values,
        }
    }

    /// The update expression (DynamoDB allows each clause once, so callers
    /// add to `set` and `remove` rather than to this string).
    pub fn update(&self) -> String {
        update_expression(&self.set, &self.remove)
    }
}

/// `SET a, b REMOVE c`, leaving out an empty clause.
pub(super) fn update_expression(set: &[String], remove: &[String]) -> String {
    let mut clauses = Vec::new();
    if !set.is_empty() {
        clauses.push(format!("SET {}", set.join(", ")));
    }
    if !remove.is_empty() {
        clauses.push(format!("REMOVE {}", remove.join(", ")));
    }
    clauses.join(" ")
}

pub(super) fn status_condition(
    sources: &[OrderStatus],
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    let names: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let name = format!(":from{i}");
            values.insert(name.clone(), s(status.as_str()));
            name
        })
        .collect();
    format!("#status IN ({})", names.join(", "))
}

/// The statuses a `status_condition` put into `values`, sorted: what a
/// write built on it accepts.
#[cfg(test)]
pub(super) fn statuses_in_condition(values: &HashMap<String, AttributeValue>) -> Vec<&str> {
    let mut statuses: Vec<&str> = values
        .iter()
        .filter(|(name, _)| name.starts_with(":from"))
        .map(|(_, v)| v.as_s().expect("a status").as_str())
        .collect();
    statuses.sort_unstable();
    statuses
}

impl Table {
    /// Moves the order to `to` if, and only if, its current status allows it
    /// (`OrderStatus::can_become`). Written with a condition on the status,
    /// so concurrent or repeated callers apply it at most once.
    pub async fn transition_order(
        &self,
        order_id: &OrderId,
        to: OrderStatus,
        details: &TransitionDetails,
        now: u64,
    ) -> Result<Transition, AppError> {
        let expr = TransitionExpr::new(to, details, now);
        let mut request = self.update_order(order_id);
        if details.mode.is_some() {
            request = request.expression_attribute_names("#mode", "mode");
        }
        let result = request
            .update_expression(expr.update())
            .condition_expression(expr.condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(expr.values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional(result)? {
            Written::Done(out) => {
                let old = out.attributes.unwrap_or_default();
                let from = get_opt_s(&old, "status")
                    .and_then(OrderStatus::parse)
                    .ok_or_else(|| corrupt_order("status"))?;
                Ok(Transition::Applied {
                    from,
                    has_parked: ParkedEvent::any_in(&old),
                })
            }
            Written::Refused(Some(item)) => {
                let current = OrderStatus::parse(get_s(&item, "status")?)
                    .ok_or_else(|| corrupt_order("status"))?;
                Ok(Transition::Refused { current })
            }
            Written::Refused(None) => Err(AppError::not_found("unknown_order", "No such order")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_that_follows_another_is_only_written_from_past_it() {
        let closure = TransitionDetails {
            requires: Some(OrderStatus::Disputed),
            why: Move::DisputeClosed,
            ..TransitionDetails::default()
        };
        let expr = TransitionExpr::new(OrderStatus::Paid, &closure, 1);
        assert_eq!(statuses_in_condition(&expr.values), ["disputed"]);
        // A payment never leaves a dispute (a late `succeeded` must not undo it).
        let payment = TransitionExpr::new(OrderStatus::Paid, &TransitionDetails::default(), 1);
        assert_eq!(
            statuses_in_condition(&payment.values),
            ["failed", "pending", "processing"]
        );
    }

    #[test]
    fn a_move_computed_from_the_refunded_total_is_written_only_on_that_total() {
        let won = TransitionDetails {
            requires: Some(OrderStatus::Disputed),
            why: Move::DisputeClosed,
            refunded_was: Some(1000),
            ..TransitionDetails::default()
        };
        let expr = TransitionExpr::new(OrderStatus::PartiallyRefunded, &won, 1);
        assert_eq!(statuses_in_condition(&expr.values), ["disputed"]);
        assert!(
            expr.condition.contains("amount_refunded = :refunded_was"),
            "{}",
            expr.condition
        );
        let failed_refund = TransitionDetails {
            why: Move::RefundFailed,
            amount_refunded: Some(0),
            refunded_was: Some(400),
            ..TransitionDetails::default()
        };
        let expr = TransitionExpr::new(OrderStatus::Paid, &failed_refund, 1);
        assert_eq!(
            statuses_in_condition(&expr.values),
            ["partially_refunded", "refunded"]
        );
        assert!(expr.update().contains("amount_refunded = :refunded"));
        assert!(
            !expr.condition.contains("amount_refunded < :refunded"),
            "a failed refund lowers the total: {}",
            expr.condition
        );
        let none_yet = TransitionDetails {
            refunded_was: Some(0),
            ..won
        };
        let expr = TransitionExpr::new(OrderStatus::Paid, &none_yet, 1);
        assert!(expr.condition.contains("amount_refunded = :zero"));
    }

    #[test]
    fn only_an_order_of_the_events_mode_is_moved() {
        let test_event = TransitionDetails {
            mode: Some(Mode::Test),
            ..TransitionDetails::default()
        };
        let expr = TransitionExpr::new(OrderStatus::Paid, &test_event, 1);
        assert!(expr.condition.contains("#mode = :mode"));
        assert_eq!(expr.values[":mode"], s("test"));
    }

    #[test]
    fn ordering_guards_are_part_of_the_condition() {
        let refund = TransitionDetails {
            amount_refunded: Some(500),
            ..TransitionDetails::default()
        };
        let expr = TransitionExpr::new(OrderStatus::PartiallyRefunded, &refund, 1);
        assert!(
            expr.condition.contains("amount_refunded < :refunded"),
            "{}",
            expr.condition
        );
        let dated = |to| {
            let details = TransitionDetails {
                status_as_of: Some(7),
                ..TransitionDetails::default()
            };
            TransitionExpr::new(to, &details, 1)
        };
        for to in [OrderStatus::Processing, OrderStatus::Failed] {
            let expr = dated(to);
            assert!(expr.condition.contains("status_as_of < :as_of"), "{to}");
            assert!(expr.update().contains("status_as_of = :as_of"), "{to}");
        }
        let paid = dated(OrderStatus::Paid);
        assert!(
            !paid.condition.contains("status_as_of"),
            "outcomes are never stale"
        );
        assert!(paid.update().contains("status_as_of = :as_of"));
    }
}
