//! One-time links (`LINK#{sha256(signature)}` / `LINK`): the first save made
//! through a connect or webhook-secret link records its use in the same
//! transaction as the save, so a link cannot save twice, even racing itself.
//! The item expires (TTL) a day after the link does, when the link is dead anyway.

use super::item::{Item, n, s};
use super::keys;
use super::{Table, item_of};
use crate::domain::StoreId;
use crate::error::AppError;
use aws_sdk_dynamodb::types::Put;

const KEEP_AFTER_EXPIRY_SECS: u64 = 24 * 60 * 60;

/// What the table keeps of a verified one-time link
/// (`auth::connect_link::ConnectLink::one_time_use`): the store only
/// records uses, it does not know how links are signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkUse {
    /// A hash of the link's signature, never the signature itself.
    pub key: String,
    pub store_id: StoreId,
    pub purpose: &'static str,
    /// When the link dies (unix seconds).
    pub expires: u64,
}

/// What a merchant holding a used link is told.
pub fn link_used() -> AppError {
    AppError::Gone {
        code: "link_used",
        message: "This link was already used. Ask your store for a new one.".into(),
    }
}

impl Table {
    /// Strongly consistent: a use recorded a moment ago counts.
    pub async fn link_used(&self, link: &LinkUse) -> Result<bool, AppError> {
        let read = self
            .get_one(keys::link_use(&link.key), keys::LINK_USE)
            .projection_expression("pk");
        Ok(item_of(read).await?.is_some())
    }

    /// The write that consumes `link`: it fails if the link was used.
    pub(super) fn link_use_put(&self, link: &LinkUse, now: u64) -> Result<Put, AppError> {
        let item: Item = [
            ("pk", s(keys::link_use(&link.key))),
            ("sk", s(keys::LINK_USE)),
            ("store_id", s(link.store_id.to_string())),
            ("purpose", s(link.purpose)),
            ("used_at", n(now)),
            ("expires_at", n(link.expires + KEEP_AFTER_EXPIRY_SECS)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(AppError::internal)
    }
}
