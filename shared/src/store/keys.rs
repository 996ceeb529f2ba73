//! Every item's key in the one table, in one place. The partition key names
//! the thing (`STORE#…`, `ORDER#…`, `PI#…`); the sort key names the kind of
//! item kept for it. Changing one of these moves data: existing items keep
//! their old keys.

use crate::domain::{OrderId, StoreId};

/// A store: its Stripe connection (`CONNECTION`) and audit trail (`audit`).
pub fn store(store_id: &StoreId) -> String {
    format!("STORE#{store_id}")
}

pub const CONNECTION: &str = "STRIPE";

/// One audit entry, under its store or order, in time order; the uuid keeps
/// two entries of one millisecond apart.
pub fn audit(at_millis: u128) -> String {
    format!("AUDIT#{at_millis:013}#{}", uuid::Uuid::new_v4())
}

pub fn order(order_id: &OrderId) -> String {
    format!("ORDER#{order_id}")
}

pub const ORDER: &str = "ORDER";

/// A PaymentIntent's link to its order.
pub fn intent(payment_intent_id: &str) -> String {
    format!("PI#{payment_intent_id}")
}

pub const INTENT: &str = "PI";

/// A checkout session, by the hash of its token (never the token).
pub fn session(token_hash: &str) -> String {
    format!("SESSION#{token_hash}")
}

pub const SESSION: &str = "SESSION";

/// BMOS's checkout-session request under an idempotency key.
pub fn checkout_request(store_id: &StoreId, key_hash: &str) -> String {
    format!("IDEMPOTENCY#{store_id}#{key_hash}")
}

pub const CHECKOUT_REQUEST: &str = "CHECKOUT";

/// A one-time link's use, by the hash of its signature.
pub fn link_use(use_key: &str) -> String {
    format!("LINK#{use_key}")
}

pub const LINK_USE: &str = "LINK";

/// A signed BMOS request already used, by the hash of its MAC.
pub fn replay(mac_hash: &str) -> String {
    format!("REPLAY#{mac_hash}")
}

pub const REPLAY: &str = "REPLAY";

/// The pending-orders index is spread over this many partitions, so one
/// hot key does not carry every write.
const PENDING_SHARDS: u32 = 8;

/// The index partition an order waits in.
pub fn pending_partition(order_id: &OrderId) -> String {
    let shard = order_id.to_string().bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    }) % PENDING_SHARDS;
    format!("PENDING#{shard}")
}

pub fn pending_partitions() -> impl Iterator<Item = String> {
    (0..PENDING_SHARDS).map(|shard| format!("PENDING#{shard}"))
}

/// The index's sort key: due time first, so each shard reads oldest-due
/// first; the order id keeps keys unique.
pub fn pending_sort(due: u64, order_id: &OrderId) -> String {
    format!("{due:010}#{order_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keys_spread_over_every_shard() {
        let shards: std::collections::HashSet<String> = (0..200)
            .map(|i| {
                pending_partition(
                    &OrderId::parse(&format!("5d9e7c1a-0000-4000-8000-{i:012}")).unwrap(),
                )
            })
            .collect();
        assert_eq!(shards.len(), PENDING_SHARDS as usize);
        assert!(shards.iter().all(|s| pending_partitions().any(|p| &p == s)));
    }
}
