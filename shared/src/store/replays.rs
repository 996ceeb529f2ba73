//! Signed internal requests already accepted (`REPLAY#{hash}` / `REPLAY`),
//! so each is accepted once. Keyed by a hash of the request's MAC, never the
//! signature itself; `expires_at` is the table's TTL attribute, set past the
//! last moment the request's timestamp is accepted, so a record only goes
//! once its request would be refused as stale anyway.
//!
//! Each call writes its own attempt id, and the condition lets that same id
//! through: when DynamoDB applied the put but its answer was lost (a timeout,
//! a reset), the SDK's retry finds its own record, not a replay.

use super::Table;
use super::conditional::conditional;
use super::item::{n, s};
use super::keys;
use crate::error::AppError;

impl Table {
    /// Records a signed request; `false` when it was recorded before (a
    /// replay). A DynamoDB failure is an error: a request we could not
    /// record is never accepted.
    pub async fn record_signed_request(
        &self,
        mac_hash: &str,
        expires_at: u64,
    ) -> Result<bool, AppError> {
        let attempt = uuid::Uuid::new_v4().to_string();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::replay(mac_hash)))
            .item("sk", s(keys::REPLAY))
            .item("expires_at", n(expires_at))
            .item("attempt", s(attempt.clone()))
            .condition_expression("attribute_not_exists(pk) OR attempt = :attempt")
            .expression_attribute_values(":attempt", s(attempt))
            .send()
            .await;
        Ok(conditional(result)?.done())
    }
}
