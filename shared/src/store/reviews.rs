//! Resolving an order flagged for review: the order's new status and the
//! decision, with an audit entry in the order's own partition
//! (`ORDER#{id}` / `AUDIT#{millis}#{uuid}`: who, when, which decision,
//! never a secret), in one transaction. Kept beside the order rather than
//! in the store's trail so the function that writes it may write order
//! items only.

use super::item::{Item, n, s};
use super::keys;
use super::{Table, dependency_error, is_condition_failure};
use crate::domain::{Order, OrderStatus, ReviewResolution};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

/// What BMOS told us about the decision, for the audit entry only.
#[derive(Clone, Debug, Default)]
pub struct ReviewNote {
    /// How BMOS authenticated (`auth::internal::Caller`).
    pub caller: &'static str,
    pub note: Option<String>,
    pub source_ip: Option<String>,
}

impl Table {
    /// Records `resolved` on `order` (as read) and moves it to `to`, taking
    /// it out of the reconciler's index. Only while the order is still as
    /// read: flagged, unresolved, in the same status. False, writing
    /// nothing, when it changed meanwhile (the caller reads it again).
    pub async fn resolve_review(
        &self,
        order: &Order,
        resolved: &ReviewResolution,
        to: OrderStatus,
        note: &ReviewNote,
    ) -> Result<bool, AppError> {
        let mut set = vec![
            "#status = :to",
            "review_resolution = :resolution",
            "review_resolved_at = :now",
            "review_resolved_by = :by",
            "updated_at = :now",
        ];
        if to == OrderStatus::Paid {
            set.push("paid_at = if_not_exists(paid_at, :now)");
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::order(&order.order_id)))
            .key("sk", s(keys::ORDER))
            .update_expression(format!(
                "SET {} REMOVE pending_pk, pending_sk",
                set.join(", ")
            ))
            .condition_expression(
                "attribute_exists(pk) AND #status = :read AND attribute_exists(review_reason) \
                 AND attribute_not_exists(review_resolution)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":read", s(order.status.as_str()))
            .expression_attribute_values(":resolution", s(resolved.resolution.as_str()))
            .expression_attribute_values(":now", n(resolved.at))
            .expression_attribute_values(":by", s(&resolved.by))
            .build()
            .map_err(AppError::internal)?;
        let audit = Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit_item(order, resolved, to, note)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(AppError::internal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(audit).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(dependency_error(err)),
        }
    }
}

fn audit_item(
    order: &Order,
    resolved: &ReviewResolution,
    to: OrderStatus,
    note: &ReviewNote,
) -> Item {
    let mut item = Item::from([
        ("pk".into(), s(keys::order(&order.order_id))),
        ("sk".into(), s(keys::audit(crate::clock::now_millis()))),
        ("action".into(), s("order_review_resolved")),
        ("actor".into(), s(note.caller)),
        ("resolved_by".into(), s(&resolved.by)),
        ("at".into(), n(resolved.at)),
        ("order_id".into(), s(order.order_id.to_string())),
        ("store_id".into(), s(order.store_id.to_string())),
        ("resolution".into(), s(resolved.resolution.as_str())),
        ("from_status".into(), s(order.status.as_str())),
        ("to_status".into(), s(to.as_str())),
    ]);
    if let Some(reason) = &order.review_reason {
        item.insert("review_reason".into(), s(reason));
    }
    if let Some(text) = &note.note {
        item.insert("note".into(), s(text));
    }
    if let Some(ip) = &note.source_ip {
        item.insert("source_ip".into(), s(ip));
    }
    item
}
