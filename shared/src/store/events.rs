//! Processed Stripe events (`EVENT#{store_id}#{event_id}` / `EVENT`, expiring
//! after about 30 days) and the transaction that records an event together
//! with its effect, so each event changes an order at most once however
//! often, and in whatever order, Stripe delivers it.

use super::item::{Item, get_s, n, s};
use super::orders::{Order, TransitionExpr, order_pk};
use super::{Store, cancellation, condition_failed, dependency_error};
use crate::domain::{OrderStatus, StoreId};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

/// Long enough to outlast Stripe's retries (three days) with a wide margin.
pub const EVENT_RETENTION_SECS: u64 = 30 * 24 * 60 * 60;

/// What writing an event did.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// The event was recorded and its change applied.
    Applied,
    /// Seen before: nothing was written.
    Duplicate,
    /// The order's condition did not hold: nothing was written. Carries the
    /// order as DynamoDB saw it, so the caller can tell why without a read.
    OrderRefused(Box<Order>),
}

/// Where a PaymentIntent belongs, from its link item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentLink {
    pub order_id: String,
    pub store_id: StoreId,
}

impl Store {
    pub async fn intent_link(
        &self,
        payment_intent_id: &str,
    ) -> Result<Option<IntentLink>, AppError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("PI#{payment_intent_id}")))
            .key("sk", s("PI"))
            // Written moments before the first event about it can arrive.
            .consistent_read(true)
            .send()
            .await
            .map_err(dependency_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let store_id = StoreId::parse(get_s(&item, "store_id")?)
            .map_err(|_| AppError::internal("intent link with an invalid store id"))?;
        Ok(Some(IntentLink {
            order_id: get_s(&item, "order_id")?.to_owned(),
            store_id,
        }))
    }

    /// Whether the event has been recorded (strongly consistent).
    pub async fn event_recorded(
        &self,
        store_id: &StoreId,
        event_id: &str,
    ) -> Result<bool, AppError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(event_pk(store_id, event_id)))
            .key("sk", s("EVENT"))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(dependency_error)?;
        Ok(out.item.is_some())
    }

    /// Records the event and moves the order to `to` in one transaction.
    /// `change` is `None` for an event that changes nothing (recorded only,
    /// so a later duplicate is recognised). The order is not read first:
    /// the status, intent, amount and ordering rules are all in the write's
    /// condition, and a refusal returns the order as it was.
    pub async fn record_event(
        &self,
        store_id: &StoreId,
        event_id: &str,
        change: Option<(&str, OrderStatus, &super::TransitionDetails)>,
        now: u64,
    ) -> Result<EventWrite, AppError> {
        let event = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Item::from([
                ("pk".into(), s(event_pk(store_id, event_id))),
                ("sk".into(), s("EVENT")),
                ("received_at".into(), n(now)),
                ("expires_at".into(), n(now + EVENT_RETENTION_SECS)),
            ])))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(AppError::internal)?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(event).build());
        if let Some((order_id, to, details)) = change {
            let expr = TransitionExpr::new(to, details, now);
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(order_pk(order_id)))
                .key("sk", s("ORDER"))
                .update_expression(expr.update)
                .condition_expression(expr.condition)
                .expression_attribute_names("#status", "status")
                .set_expression_attribute_values(Some(expr.values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(AppError::internal)?;
            request = request.transact_items(TransactWriteItem::builder().update(update).build());
        }
        let err = match request.send().await {
            Ok(_) => return Ok(EventWrite::Applied),
            Err(err) => err,
        };
        match cancellation(&err) {
            Some([event, ..]) if condition_failed(event) => Ok(EventWrite::Duplicate),
            Some([_, order]) if condition_failed(order) => match order.item() {
                Some(item) => Ok(EventWrite::OrderRefused(Box::new(Order::from_item(item)?))),
                None => Err(AppError::internal("event for an order that does not exist")),
            },
            _ => Err(dependency_error(err)),
        }
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
    /// webhook): if webhooks stay silent after this, health says so.
    pub async fn note_api_payment(&self, store_id: &StoreId, now: u64) -> Result<(), AppError> {
        self.note_activity(
            store_id,
            "SET last_api_payment_at = :now",
            "",
            &[(":now", n(now))],
        )
        .await
    }

    /// Counts a delivery that failed verification for this store.
    pub async fn note_webhook_failure(
        &self,
        store_id: &StoreId,
        reason: &str,
        now: u64,
    ) -> Result<(), AppError> {
        self.note_activity(
            store_id,
            "SET last_webhook_failure_at = :now, last_webhook_failure = :reason ADD webhook_failures :one",
            "",
            &[(":now", n(now)), (":reason", s(reason)), (":one", n(1))],
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
            .key("pk", s(format!("STORE#{store_id}")))
            .key("sk", s("STRIPE"))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(dependency_error(err)),
        }
    }
}

fn event_pk(store_id: &StoreId, event_id: &str) -> String {
    format!("EVENT#{store_id}#{event_id}")
}
