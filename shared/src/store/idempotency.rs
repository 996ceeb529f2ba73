//! What a checkout session created with an `Idempotency-Key` answered
//! (`IDEMPOTENCY#{store_id}#{sha256(key)}` / `CHECKOUT`), so a retry within
//! 24 hours gets the same order and link. It is written in the same
//! transaction as the order and its session, with a condition that no live
//! record holds the key: of two concurrent requests, one creates, the other
//! finds the record.
//!
//! The link's token is kept sealed (KMS envelope, context `{store_id,
//! purpose: checkout_token}`), never in the clear: the table alone opens no
//! customer's checkout.

use super::item::{Item, b, get_b, get_n, get_order_id, get_s, n, s};
use super::keys;
use super::{Table, item_of};
use crate::domain::{Currency, IdempotencyKey, Money, OrderId, OrderStatus, StoreId};
use crate::error::AppError;
use crate::vault::SealedSecret;
use aws_sdk_dynamodb::types::Put;

/// How long a key keeps answering with its first session (Stripe's window).
pub const IDEMPOTENCY_WINDOW_SECS: u64 = 24 * 60 * 60;

#[derive(Clone, Debug, PartialEq)]
pub struct IdempotentCheckout {
    pub store_id: StoreId,
    /// `IdempotencyKey::hash`.
    pub key_hash: String,
    /// Hex SHA-256 of the request body in canonical JSON: a retry must be
    /// the same request.
    pub request_hash: String,
    pub order_id: OrderId,
    pub total: Money,
    /// The order's status when the session was created (what the first
    /// answer said).
    pub status: OrderStatus,
    pub session_expires_at: u64,
    pub token: SealedSecret,
    pub created_at: u64,
}

fn corrupt(what: &str) -> AppError {
    AppError::internal(format!("stored idempotency record has an invalid {what}"))
}

impl IdempotentCheckout {
    /// When the key may be used for another request.
    pub fn expires_at(&self) -> u64 {
        self.created_at + IDEMPOTENCY_WINDOW_SECS
    }

    fn to_item(&self) -> Item {
        Item::from([
            (
                "pk".into(),
                s(keys::checkout_request(&self.store_id, &self.key_hash)),
            ),
            ("sk".into(), s(keys::CHECKOUT_REQUEST)),
            ("store_id".into(), s(self.store_id.to_string())),
            ("request_hash".into(), s(&self.request_hash)),
            ("order_id".into(), s(self.order_id.to_string())),
            ("amount".into(), n(self.total.minor())),
            ("currency".into(), s(self.total.currency().code())),
            ("status".into(), s(self.status.as_str())),
            ("session_expires_at".into(), n(self.session_expires_at)),
            ("token_wrapped_key".into(), b(&self.token.wrapped_key)),
            ("token_sealed".into(), s(&self.token.token)),
            ("created_at".into(), n(self.created_at)),
            // The table's TTL attribute; reads check it too (deletion is lazy).
            ("expires_at".into(), n(self.expires_at())),
        ])
    }

    fn from_item(store_id: StoreId, key_hash: &str, item: &Item) -> Result<Self, AppError> {
        Ok(IdempotentCheckout {
            store_id,
            key_hash: key_hash.to_owned(),
            request_hash: get_s(item, "request_hash")?.to_owned(),
            order_id: get_order_id(item)?,
            total: Money::new(
                get_n(item, "amount")?,
                Currency::parse(get_s(item, "currency")?).map_err(|_| corrupt("currency"))?,
            ),
            status: OrderStatus::parse(get_s(item, "status")?).ok_or_else(|| corrupt("status"))?,
            session_expires_at: get_n(item, "session_expires_at")?,
            token: SealedSecret {
                wrapped_key: get_b(item, "token_wrapped_key")?.to_vec(),
                token: get_s(item, "token_sealed")?.to_owned(),
            },
            created_at: get_n(item, "created_at")?,
        })
    }

    /// The put for `create_checkout`'s transaction: only when no record
    /// holds the key, or the one that does has outlived its window.
    pub(super) fn put(&self, table: &str, now: u64) -> Result<Put, AppError> {
        Put::builder()
            .table_name(table)
            .set_item(Some(self.to_item()))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(AppError::internal)
    }
}

impl Table {
    /// The live record for this store's key, read consistently (a retry
    /// right after the first request must see it).
    pub async fn get_idempotent_checkout(
        &self,
        store_id: &StoreId,
        key: &IdempotencyKey,
        now: u64,
    ) -> Result<Option<IdempotentCheckout>, AppError> {
        let key_hash = key.hash();
        let read = self.get_one(
            keys::checkout_request(store_id, &key_hash),
            keys::CHECKOUT_REQUEST,
        );
        let Some(item) = item_of(read).await? else {
            return Ok(None);
        };
        let record = IdempotentCheckout::from_item(*store_id, &key_hash, &item)?;
        Ok((record.expires_at() > now).then_some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_items() {
        let store_id = StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").unwrap();
        let record = IdempotentCheckout {
            store_id,
            key_hash: IdempotencyKey::parse("A-17").unwrap().hash(),
            request_hash: "ab".repeat(32),
            order_id: OrderId::parse("5d9e7c1a-0000-4000-8000-000000000001").unwrap(),
            total: Money::new(2999, Currency::parse("eur").unwrap()),
            status: OrderStatus::Pending,
            session_expires_at: 1_800_003_600,
            token: SealedSecret {
                wrapped_key: vec![1, 2, 3],
                token: "gAAAA-sealed".into(),
            },
            created_at: 1_800_000_000,
        };
        let item = record.to_item();
        assert_eq!(
            item["expires_at"],
            n(1_800_000_000 + IDEMPOTENCY_WINDOW_SECS)
        );
        assert!(
            item["pk"]
                .as_s()
                .unwrap()
                .starts_with("IDEMPOTENCY#0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11#")
        );
        let back = IdempotentCheckout::from_item(store_id, &record.key_hash, &item).unwrap();
        assert_eq!(back, record);
    }
}
