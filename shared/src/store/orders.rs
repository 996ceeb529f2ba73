//! Orders (`ORDER#{id}` / `ORDER`), checkout sessions (`SESSION#{sha256(token)}`
//! / `SESSION`) and PaymentIntent links (`PI#{pi_id}` / `PI`).
//!
//! An order that waits for a payment outcome carries `pending_pk`/`pending_sk`,
//! the keys of the sparse `pending-orders` index the reconciler reads; leaving
//! those states removes them. The sort key is `{due:010}#{order_id}`: when the
//! reconciler should next look at the order (the session's end for a new
//! order, a few minutes after an intent is attached, later each time a look
//! finds nothing to settle). Orders written before it meant the time the
//! intent was attached, which is in the same format and never later than
//! the due time it stands for, so they are found (early, if anything).

use super::conditional::conditional;
use super::idempotency::IdempotentCheckout;
use super::item::{Item, corrupt_order, get_n, get_opt_n, get_opt_s, get_order_id, get_s, n, s};
use super::keys;
use super::transitions::status_condition;
use super::{Table, cancellation_reason, dependency_error, is_condition_failure, item_of};
use crate::domain::{
    Currency, LineItem, Mode, Money, Order, OrderId, OrderStatus, ParkedEvent, Resolution,
    ReviewResolution, StoreId,
};
use crate::error::AppError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::{BTreeMap, HashMap};

/// What `create_checkout` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutWrite {
    Created,
    /// Another request holds the idempotency key; nothing was written.
    KeyTaken,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckoutSession {
    pub token_hash: String,
    pub order_id: OrderId,
    pub store_id: StoreId,
    pub expires_at: u64,
    pub created_at: u64,
}

/// A new intent is left to the webhook (and the customer's return) this
/// long before the reconciler first asks Stripe about it.
pub const FIRST_CHECK_AFTER_SECS: u64 = 5 * 60;

/// The due time of a sort key (also of the old `{attached_at}#{id}` ones).
fn due_of(sk: &str) -> Option<u64> {
    sk.split_once('#')?.0.parse().ok()
}

/// The order's item (`ORDER#{id}` / `ORDER`).
impl Order {
    pub(super) fn to_item(&self) -> Item {
        let line_items = self
            .line_items
            .iter()
            .map(|li| {
                AttributeValue::M(HashMap::from([
                    ("name".to_string(), s(&li.name)),
                    ("unit_amount".to_string(), n(li.unit_amount)),
                    ("quantity".to_string(), n(li.quantity)),
                ]))
            })
            .collect();
        let mut item = Item::from([
            ("pk".into(), s(keys::order(&self.order_id))),
            ("sk".into(), s(keys::ORDER)),
            ("order_id".into(), s(self.order_id.to_string())),
            ("store_id".into(), s(self.store_id.to_string())),
            ("status".into(), s(self.status.as_str())),
            ("currency".into(), s(self.total.currency().code())),
            ("amount".into(), n(self.total.minor())),
            ("line_items".into(), AttributeValue::L(line_items)),
            ("mode".into(), s(self.mode.as_str())),
            ("intent_attempt".into(), n(u64::from(self.intent_attempt))),
            ("created_at".into(), n(self.created_at)),
            ("updated_at".into(), n(self.updated_at)),
        ]);
        if !self.metadata.is_empty() {
            let metadata = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), s(v)))
                .collect();
            item.insert("metadata".into(), AttributeValue::M(metadata));
        }
        let optional = [
            ("payment_intent_id", &self.payment_intent_id),
            ("customer_email", &self.customer_email),
            ("success_url", &self.success_url),
            ("cancel_url", &self.cancel_url),
            ("store_name", &self.store_name),
            ("last_payment_error", &self.last_payment_error),
            ("review_reason", &self.review_reason),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                item.insert(name.into(), s(value));
            }
        }
        let numbers = [
            ("paid_at", self.paid_at),
            ("amount_refunded", self.amount_refunded),
            ("status_as_of", self.status_as_of),
            ("session_expires_at", self.session_expires_at),
            (
                "reconcile_checks",
                Some(u64::from(self.reconcile_checks)).filter(|&c| c > 0),
            ),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                item.insert(name.into(), n(value));
            }
        }
        if !self.intents_to_cancel.is_empty() {
            item.insert(
                "intents_to_cancel".into(),
                AttributeValue::Ss(self.intents_to_cancel.clone()),
            );
        }
        if let Some(resolved) = &self.review_resolution {
            item.insert("review_resolution".into(), s(resolved.resolution.as_str()));
            item.insert("review_resolved_at".into(), n(resolved.at));
            item.insert("review_resolved_by".into(), s(&resolved.by));
        }
        item.extend(self.parked.iter().map(ParkedEvent::to_attribute));
        item
    }

    pub(super) fn from_item(item: &Item) -> Result<Self, AppError> {
        let line_items = item
            .get("line_items")
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| corrupt_order("line_items"))?
            .iter()
            .map(|v| {
                let m = v.as_m().map_err(|_| corrupt_order("line item"))?;
                Ok(LineItem {
                    name: get_s(m, "name")?.to_owned(),
                    unit_amount: get_n(m, "unit_amount")?,
                    quantity: get_n(m, "quantity")?,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let metadata = match item.get("metadata").and_then(|v| v.as_m().ok()) {
            None => BTreeMap::new(),
            Some(m) => m
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        v.as_s().map_err(|_| corrupt_order("metadata"))?.clone(),
                    ))
                })
                .collect::<Result<_, AppError>>()?,
        };
        let opt = |name: &str| get_opt_s(item, name).map(str::to_owned);
        Ok(Order {
            order_id: get_order_id(item)?,
            store_id: StoreId::parse(get_s(item, "store_id")?)
                .map_err(|_| corrupt_order("store_id"))?,
            status: OrderStatus::parse(get_s(item, "status")?)
                .ok_or_else(|| corrupt_order("status"))?,
            total: Money::new(
                get_n(item, "amount")?,
                Currency::parse(get_s(item, "currency")?).map_err(|_| corrupt_order("currency"))?,
            ),
            line_items,
            mode: Mode::parse(get_s(item, "mode")?).ok_or_else(|| corrupt_order("mode"))?,
            payment_intent_id: opt("payment_intent_id"),
            intent_attempt: u32::try_from(get_n(item, "intent_attempt")?)
                .map_err(|_| corrupt_order("intent_attempt"))?,
            customer_email: opt("customer_email"),
            success_url: opt("success_url"),
            cancel_url: opt("cancel_url"),
            metadata,
            store_name: opt("store_name"),
            created_at: get_n(item, "created_at")?,
            updated_at: get_n(item, "updated_at")?,
            paid_at: get_opt_n(item, "paid_at")?,
            last_payment_error: opt("last_payment_error"),
            review_reason: opt("review_reason"),
            review_resolution: match get_opt_s(item, "review_resolution") {
                None => None,
                Some(raw) => Some(ReviewResolution {
                    resolution: Resolution::parse(raw)
                        .map_err(|_| corrupt_order("review_resolution"))?,
                    at: get_n(item, "review_resolved_at")?,
                    by: get_s(item, "review_resolved_by")?.to_owned(),
                }),
            },
            amount_refunded: get_opt_n(item, "amount_refunded")?,
            status_as_of: get_opt_n(item, "status_as_of")?,
            parked: ParkedEvent::all_in(item)?,
            session_expires_at: get_opt_n(item, "session_expires_at")?,
            intents_to_cancel: match item.get("intents_to_cancel") {
                None => Vec::new(),
                Some(set) => {
                    let mut ids = set
                        .as_ss()
                        .map_err(|_| corrupt_order("intents_to_cancel"))?
                        .clone();
                    ids.sort();
                    ids
                }
            },
            reconcile_checks: get_opt_n(item, "reconcile_checks")?
                .map_or(Ok(0), u32::try_from)
                .map_err(|_| corrupt_order("reconcile_checks"))?,
        })
    }
}

impl CheckoutSession {
    pub(super) fn to_item(&self) -> Item {
        Item::from([
            ("pk".into(), s(keys::session(&self.token_hash))),
            ("sk".into(), s(keys::SESSION)),
            ("order_id".into(), s(self.order_id.to_string())),
            ("store_id".into(), s(self.store_id.to_string())),
            // The table's TTL attribute: DynamoDB deletes the item some time
            // after this; reads still check it, since deletion is lazy.
            ("expires_at".into(), n(self.expires_at)),
            ("created_at".into(), n(self.created_at)),
        ])
    }

    fn from_item(token_hash: &str, item: &Item) -> Result<Self, AppError> {
        Ok(CheckoutSession {
            token_hash: token_hash.to_owned(),
            order_id: get_order_id(item)?,
            store_id: StoreId::parse(get_s(item, "store_id")?)
                .map_err(|_| corrupt_order("session store_id"))?,
            expires_at: get_n(item, "expires_at")?,
            created_at: get_n(item, "created_at")?,
        })
    }
}

impl Table {
    /// Creates the order and its session together, or neither; with an
    /// idempotency record, the record too, unless a live one already holds
    /// its key (then nothing is written and the caller reads that one).
    pub async fn create_checkout(
        &self,
        order: &Order,
        session: &CheckoutSession,
        idempotency: Option<&IdempotentCheckout>,
        now: u64,
    ) -> Result<CheckoutWrite, AppError> {
        let put = |item: Item| -> Result<TransactWriteItem, AppError> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(AppError::internal)?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        // Indexed from the start, due when the checkout is abandoned: an
        // order nobody started paying for then ends `expired` too.
        let mut order_item = order.to_item();
        order_item.insert(
            "pending_pk".into(),
            s(keys::pending_partition(&order.order_id)),
        );
        order_item.insert(
            "pending_sk".into(),
            s(keys::pending_sort(order.abandoned_at(), &order.order_id)),
        );
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(put(order_item)?)
            .transact_items(put(session.to_item())?);
        if let Some(record) = idempotency {
            transaction = transaction.transact_items(
                TransactWriteItem::builder()
                    .put(record.put(&self.table, now)?)
                    .build(),
            );
        }
        match transaction.send().await {
            Ok(_) => Ok(CheckoutWrite::Created),
            // The order and the session have fresh random keys, so the
            // record's condition (third item) is the one that can fail; a
            // conflict there means a concurrent request with the key is
            // writing it.
            Err(err)
                if idempotency.is_some()
                    && matches!(
                        cancellation_reason(&err, 2),
                        Some("ConditionalCheckFailed" | "TransactionConflict")
                    ) =>
            {
                Ok(CheckoutWrite::KeyTaken)
            }
            Err(err) => Err(dependency_error(err)),
        }
    }

    pub async fn get_session(&self, token_hash: &str) -> Result<Option<CheckoutSession>, AppError> {
        // Eventually consistent: a session is written long before its
        // customer opens it, and this read is the checkout page's first.
        let read = self
            .get_one(keys::session(token_hash), keys::SESSION)
            .consistent_read(false);
        item_of(read)
            .await?
            .as_ref()
            .map(|item| CheckoutSession::from_item(token_hash, item))
            .transpose()
    }

    /// Strongly consistent: callers decide on the status they read.
    pub async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>, AppError> {
        item_of(self.get_one(keys::order(order_id), keys::ORDER))
            .await?
            .as_ref()
            .map(Order::from_item)
            .transpose()
    }

    /// Records `payment_intent_id` as the order's intent and links the intent
    /// to the order, in one transaction. Only succeeds while the order still
    /// has the intent it was read with (`order.payment_intent_id`), waits
    /// for payment and is of `mode` (the key's); returns false otherwise
    /// (usually: someone else attached one first).
    /// `cancel_replaced`: the intent it replaces may still be paid in Stripe,
    /// so it is recorded in `intents_to_cancel` in the same write (the
    /// caller cancels it and then calls `intent_cancelled`).
    pub async fn attach_intent(
        &self,
        order: &Order,
        payment_intent_id: &str,
        attempt: u32,
        mode: crate::domain::Mode,
        cancel_replaced: bool,
        now: u64,
    ) -> Result<bool, AppError> {
        let mut values = HashMap::from([
            (":pi".to_string(), s(payment_intent_id)),
            (":attempt".to_string(), n(u64::from(attempt))),
            (":mode".to_string(), s(mode.as_str())),
            (":now".to_string(), n(now)),
            (
                ":ppk".to_string(),
                s(keys::pending_partition(&order.order_id)),
            ),
            (
                ":psk".to_string(),
                s(keys::pending_sort(
                    now + FIRST_CHECK_AFTER_SECS,
                    &order.order_id,
                )),
            ),
        ]);
        let mut expression = "SET payment_intent_id = :pi, intent_attempt = :attempt, \
             updated_at = :now, pending_pk = :ppk, pending_sk = :psk REMOVE reconcile_checks"
            .to_string();
        if let (true, Some(previous)) = (cancel_replaced, &order.payment_intent_id) {
            values.insert(
                ":replaced".into(),
                AttributeValue::Ss(vec![previous.clone()]),
            );
            expression.push_str(" ADD intents_to_cancel :replaced");
        }
        let mut condition =
            status_condition(&[OrderStatus::Pending, OrderStatus::Failed], &mut values);
        match &order.payment_intent_id {
            None => condition.push_str(" AND attribute_not_exists(payment_intent_id)"),
            Some(previous) => {
                values.insert(":previous".into(), s(previous));
                condition.push_str(" AND payment_intent_id = :previous");
            }
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::order(&order.order_id)))
            .key("sk", s(keys::ORDER))
            .update_expression(expression)
            // The order's mode is fixed by its session: only a key of that
            // mode may attach an intent (checkout answers 409 before this).
            .condition_expression(format!("{condition} AND #mode = :mode"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#mode", "mode")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(AppError::internal)?;
        let link = Put::builder()
            .table_name(&self.table)
            .item("pk", s(keys::intent(payment_intent_id)))
            .item("sk", s(keys::INTENT))
            .item("order_id", s(order.order_id.to_string()))
            .item("store_id", s(order.store_id.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(AppError::internal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(link).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(dependency_error(err)),
        }
    }

    /// An `UpdateItem` of the order's item, to be given its expressions.
    pub(super) fn update_order(
        &self,
        order_id: &OrderId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::order(order_id)))
            .key("sk", s(keys::ORDER))
    }

    /// Marks an order for a person to look at (money that does not match it),
    /// without changing its status. It leaves the reconciler's index: asking
    /// Stripe again would only flag it again.
    pub async fn flag_order(
        &self,
        order_id: &OrderId,
        reason: &str,
        now: u64,
    ) -> Result<(), AppError> {
        self.update_order(order_id)
            .update_expression(
                "SET review_reason = :reason, updated_at = :now REMOVE pending_pk, pending_sk",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(dependency_error)?;
        Ok(())
    }
}

impl Table {
    /// Counts one Stripe read of the order's PaymentIntent against the
    /// order's budget of `max` (one conditional write: concurrent callers
    /// cannot overspend it). False, changing nothing, once it is spent.
    ///
    /// The reads are a set of attempt ids, not a counter: when DynamoDB
    /// applied the write but its answer was lost (a timeout, a reset), the
    /// SDK's retry adds the same id again, which changes nothing, so one read
    /// is never counted twice. `make repeat` saw a plain counter spend two.
    /// The set has its own attribute: orders written before it keep their
    /// old number in `intent_reads`, which a set cannot be added to.
    pub async fn spend_intent_read(&self, order_id: &OrderId, max: u32) -> Result<bool, AppError> {
        // 62 random bits (a v4 uuid's second half): the ids only need to
        // differ among one order's 50, and each one stays on the order.
        let attempt = format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().1);
        let result = self
            .update_order(order_id)
            .update_expression("ADD intent_read_ids :attempt")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(intent_read_ids) \
                 OR size(intent_read_ids) < :max OR contains(intent_read_ids, :id))",
            )
            .expression_attribute_values(":attempt", AttributeValue::Ss(vec![attempt.clone()]))
            .expression_attribute_values(":id", s(attempt))
            .expression_attribute_values(":max", n(u64::from(max)))
            .send()
            .await;
        Ok(conditional(result)?.done())
    }

    /// One page of the orders due by `now` in one shard of the sparse index,
    /// oldest due first, from after `after` (the `pending_sk` a previous
    /// page ended with). The index is eventually consistent: callers re-read
    /// each order before acting.
    pub async fn due_pending_orders(
        &self,
        partition: &str,
        now: u64,
        after: Option<&str>,
        limit: i32,
    ) -> Result<DuePage, AppError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("pending_pk = :p AND pending_sk < :until")
            .expression_attribute_values(":p", s(partition))
            // Every key due at `now` sorts below the next second's digits.
            .expression_attribute_values(":until", s(format!("{:010}", now + 1)))
            .projection_expression("order_id, store_id, pending_sk")
            .limit(limit);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pending_pk", s(partition))
                .exclusive_start_key("pending_sk", s(after));
            // The index's start key also names the table's key of that item;
            // the sort key holds the order id.
            let order_id = after
                .split_once('#')
                .and_then(|(_, id)| OrderId::parse(id).ok())
                .ok_or_else(|| corrupt_order("pending_sk"))?;
            query = query
                .exclusive_start_key("pk", s(keys::order(&order_id)))
                .exclusive_start_key("sk", s(keys::ORDER));
        }
        let out = query.send().await.map_err(dependency_error)?;
        let orders = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let key = get_s(item, "pending_sk")?;
                Ok(DueOrder {
                    order_id: get_order_id(item)?,
                    store_id: StoreId::parse(get_s(item, "store_id")?)
                        .map_err(|_| corrupt_order("store_id"))?,
                    due: due_of(key).ok_or_else(|| corrupt_order("pending_sk"))?,
                    sort_key: key.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(DuePage {
            more: out.last_evaluated_key.is_some(),
            orders,
        })
    }

    /// Moves an order's next look by the reconciler to `due` and counts the
    /// look. Only while it is still in the index: an order a concurrent
    /// write settled (and took out) is not put back.
    pub async fn defer_pending(&self, order_id: &OrderId, due: u64) -> Result<(), AppError> {
        let result = self
            .update_order(order_id)
            .update_expression("SET pending_sk = :psk ADD reconcile_checks :one")
            .condition_expression("attribute_exists(pending_pk)")
            .expression_attribute_values(":psk", s(keys::pending_sort(due, order_id)))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        // Refused: the order left the index meanwhile, nothing to defer.
        conditional(result)?;
        Ok(())
    }

    /// Takes `payment_intent_id` off the order's intents left to cancel
    /// (Stripe has cancelled it, or it cannot be cancelled any more).
    pub async fn intent_cancelled(
        &self,
        order_id: &OrderId,
        payment_intent_id: &str,
    ) -> Result<(), AppError> {
        self.update_order(order_id)
            .update_expression("DELETE intents_to_cancel :pi")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":pi", AttributeValue::Ss(vec![payment_intent_id.into()]))
            .send()
            .await
            .map_err(dependency_error)?;
        Ok(())
    }

    /// Takes an order out of the reconciler's index without changing it
    /// (an intent abandoned for so long that asking Stripe again is waste).
    pub async fn forget_pending(&self, order_id: &OrderId) -> Result<(), AppError> {
        self.update_order(order_id)
            .update_expression("REMOVE pending_pk, pending_sk")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(dependency_error)?;
        Ok(())
    }
}

/// The sparse index over orders awaiting a payment outcome (template.yaml).
pub const PENDING_INDEX: &str = "pending-orders";

/// An order in the reconciler's index and when it is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueOrder {
    pub order_id: OrderId,
    pub store_id: StoreId,
    pub due: u64,
    /// Its `pending_sk`, where the next page starts.
    pub sort_key: String,
}

/// One page of `due_pending_orders`.
#[derive(Clone, Debug, Default)]
pub struct DuePage {
    pub orders: Vec<DueOrder>,
    /// DynamoDB stopped at the page's limit: more may be due.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            order_id: OrderId::parse("5d9e7c1a-0000-4000-8000-000000000001").unwrap(),
            store_id: StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").unwrap(),
            status: OrderStatus::Pending,
            total: Money::new(2999, Currency::parse("eur").unwrap()),
            line_items: vec![LineItem {
                name: "Mug".into(),
                unit_amount: 2999,
                quantity: 1,
            }],
            mode: Mode::Test,
            payment_intent_id: Some("pi_123".into()),
            intent_attempt: 1,
            customer_email: Some("ann@example.com".into()),
            success_url: None,
            cancel_url: Some("https://shop.example/cart".into()),
            metadata: BTreeMap::from([("bmos_order".into(), "A-17".into())]),
            store_name: Some("Ann's Mugs".into()),
            created_at: 1,
            updated_at: 2,
            paid_at: None,
            last_payment_error: None,
            review_reason: Some("Stripe reports 100 eur".into()),
            review_resolution: Some(ReviewResolution {
                resolution: Resolution::SettledOutside,
                at: 3,
                by: "bmos:signed-request".into(),
            }),
            amount_refunded: Some(500),
            status_as_of: Some(1_700_000_000),
            parked: Vec::new(),
            session_expires_at: Some(1_700_003_600),
            intents_to_cancel: vec!["pi_100".into(), "pi_101".into()],
            reconcile_checks: 3,
        }
    }

    #[test]
    fn orders_round_trip_through_items() {
        let order = order();
        assert_eq!(Order::from_item(&order.to_item()).unwrap(), order);
    }

    #[test]
    fn due_times_read_from_new_and_old_sort_keys() {
        let id = &OrderId::parse("5d9e7c1a-0000-4000-8000-000000000001").unwrap();
        assert_eq!(
            due_of(&keys::pending_sort(1_795_845_000, id)),
            Some(1_795_845_000)
        );
        // Before due times, the key held the intent's attach time in the
        // same shape: read as due then, which is never later than meant.
        assert_eq!(
            due_of(&format!("{:010}#{id}", 1_700_000_000)),
            Some(1_700_000_000)
        );
        assert!(
            keys::pending_sort(999, id) < keys::pending_sort(1_000, id),
            "zero-padded: sorts by time"
        );
        assert_eq!(due_of("garbage"), None);
    }
}
