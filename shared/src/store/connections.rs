//! The Stripe connection of a store (`STORE#{id}` / `STRIPE`) and its audit
//! trail (`STORE#{id}` / `AUDIT#{millis}#{uuid}`).

use super::item::{Item, b, get_b, get_n, get_opt_n, get_opt_s, get_s, n, s};
use super::keys;
use super::link_uses::{LinkUse, link_used};
use super::{Table, condition_failed_at, dependency_error, is_condition_failure, item_of};
use crate::domain::{KeyKind, Mode, PublishableKey, StoreId, StripeAccountId};
use crate::error::AppError;
use crate::vault::SealedSecret;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

/// Where the webhook signing secret came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookSource {
    /// Pasted by the merchant.
    Manual,
    /// Created by us in the merchant's account through the Stripe API.
    Auto,
}

impl WebhookSource {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookSource::Manual => "manual",
            WebhookSource::Auto => "auto",
        }
    }
}

#[derive(Clone, Debug)]
pub struct StripeConnection {
    pub store_id: StoreId,
    pub publishable_key: PublishableKey,
    pub key_kind: KeyKind,
    /// The Stripe account the keys act on, learned from Stripe at connect.
    /// `None` for stores connected before we recorded it, or when Stripe
    /// did not say (see `stripe::account`).
    pub account_id: Option<StripeAccountId>,
    pub secret_key: SealedSecret,
    pub webhook_secret: Option<WebhookConfig>,
    pub connected_at: u64,
    pub updated_at: u64,
    /// Bumped by every write; a write names the version it read.
    pub version: u64,
    pub activity: WebhookActivity,
    /// The last save that put new keys in place of others.
    pub last_key_replacement: Option<KeyReplacement>,
    /// When Stripe showed that the publishable key acts on the secret key's
    /// account (`stripe::publishable`): at connect, when the account had a
    /// PaymentIntent to try it on, or else at the first payment a customer
    /// confirmed with it. `None`: not yet.
    pub publishable_key_proven_at: Option<u64>,
}

/// A save that replaced a store's keys: when, and which Stripe account the
/// old and the new keys act on (`None`: not known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReplacement {
    pub at: u64,
    pub from_account: Option<StripeAccountId>,
    pub to_account: Option<StripeAccountId>,
}

impl KeyReplacement {
    /// `same` (a rolled key), `changed` (another account, which BMOS
    /// consented to) or `unknown` (one side was not known).
    pub fn account_change(&self) -> &'static str {
        match (&self.from_account, &self.to_account) {
            (Some(from), Some(to)) if from == to => "same",
            (Some(_), Some(_)) => "changed",
            _ => "unknown",
        }
    }
}

/// The store's webhook signing secret and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub secret: SealedSecret,
    pub source: WebhookSource,
    /// The endpoint we created in the merchant's account (auto set-up), to
    /// delete when the keys change or the store disconnects.
    pub endpoint_id: Option<String>,
}

/// What we have seen of the store's webhooks and of Stripe's answers to its
/// key, for health diagnostics. Written by deliveries, payments and Stripe
/// calls, not by saves (which carry it over; new keys clear `key_rejected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookActivity {
    pub last_webhook_at: Option<u64>,
    pub failures: u64,
    pub last_failure_at: Option<u64>,
    pub last_failure: Option<String>,
    /// Last time an order was found paid by asking Stripe (return page or
    /// reconciler) rather than by a webhook.
    pub last_api_payment_at: Option<u64>,
    /// Stripe answered 401 to a call with the store's key (rolled or
    /// revoked in the Dashboard): no payment can be taken until the merchant
    /// saves keys again.
    pub key_rejected: Option<KeyRejection>,
}

/// When and on which call Stripe rejected a store's key; never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRejection {
    pub at: u64,
    pub reason: String,
}

impl StripeConnection {
    pub fn mode(&self) -> Mode {
        self.publishable_key.mode()
    }
}

/// Who changed a store's Stripe set-up, and what (never a secret).
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub action: &'static str,
    pub actor: String,
    pub at_millis: u128,
    pub source_ip: Option<String>,
    /// Set when the entry records new keys replacing others: both accounts
    /// go into the trail.
    pub replacement: Option<KeyReplacement>,
}

impl StripeConnection {
    fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("pk".into(), s(keys::store(&self.store_id))),
            ("sk".into(), s(keys::CONNECTION)),
            ("store_id".into(), s(self.store_id.to_string())),
            ("publishable_key".into(), s(self.publishable_key.as_str())),
            ("mode".into(), s(self.mode().as_str())),
            ("key_kind".into(), s(self.key_kind.as_str())),
            ("secret_key_wrapped".into(), b(&self.secret_key.wrapped_key)),
            ("secret_key_token".into(), s(&self.secret_key.token)),
            ("connected_at".into(), n(self.connected_at)),
            ("updated_at".into(), n(self.updated_at)),
            ("version".into(), n(self.version)),
        ]);
        if let Some(account) = &self.account_id {
            item.insert("stripe_account_id".into(), s(account.as_str()));
        }
        if let Some(r) = &self.last_key_replacement {
            item.insert("last_key_replacement_at".into(), n(r.at));
            for (name, account) in [
                ("last_key_replacement_from", &r.from_account),
                ("last_key_replacement_to", &r.to_account),
            ] {
                if let Some(account) = account {
                    item.insert(name.into(), s(account.as_str()));
                }
            }
        }
        if let Some(at) = self.publishable_key_proven_at {
            item.insert("publishable_key_proven_at".into(), n(at));
        }
        if let Some(webhook) = &self.webhook_secret {
            item.insert(
                "webhook_secret_wrapped".into(),
                b(&webhook.secret.wrapped_key),
            );
            item.insert("webhook_secret_token".into(), s(&webhook.secret.token));
            item.insert("webhook_source".into(), s(webhook.source.as_str()));
            if let Some(id) = &webhook.endpoint_id {
                item.insert("webhook_endpoint_id".into(), s(id));
            }
        }
        let a = &self.activity;
        for (name, value) in [
            ("last_webhook_at", a.last_webhook_at),
            ("last_webhook_failure_at", a.last_failure_at),
            ("last_api_payment_at", a.last_api_payment_at),
        ] {
            if let Some(at) = value {
                item.insert(name.into(), n(at));
            }
        }
        if a.failures > 0 {
            item.insert("webhook_failures".into(), n(a.failures));
        }
        if let Some(reason) = &a.last_failure {
            item.insert("last_webhook_failure".into(), s(reason));
        }
        if let Some(rejection) = &a.key_rejected {
            item.insert("key_rejected_at".into(), n(rejection.at));
            item.insert("key_rejected_reason".into(), s(&rejection.reason));
        }
        item
    }

    fn from_item(item: &Item) -> Result<Self, AppError> {
        let corrupt =
            |what: &str| AppError::internal(format!("stored connection has an invalid {what}"));
        let store_id = StoreId::parse(get_s(item, "store_id")?).map_err(|_| corrupt("store_id"))?;
        let publishable_key = PublishableKey::parse(get_s(item, "publishable_key")?)
            .map_err(|_| corrupt("publishable_key"))?;
        let key_kind =
            KeyKind::parse(get_s(item, "key_kind")?).ok_or_else(|| corrupt("key_kind"))?;
        let account = |name: &str| {
            get_opt_s(item, name)
                .map(|raw| StripeAccountId::parse(raw).ok_or_else(|| corrupt(name)))
                .transpose()
        };
        let last_key_replacement = match get_opt_n(item, "last_key_replacement_at")? {
            None => None,
            Some(at) => Some(KeyReplacement {
                at,
                from_account: account("last_key_replacement_from")?,
                to_account: account("last_key_replacement_to")?,
            }),
        };
        let webhook_secret = match get_opt_s(item, "webhook_secret_token") {
            None => None,
            Some(token) => {
                let source = match get_opt_s(item, "webhook_source") {
                    Some("auto") => WebhookSource::Auto,
                    _ => WebhookSource::Manual,
                };
                let secret = SealedSecret {
                    wrapped_key: get_b(item, "webhook_secret_wrapped")?.to_vec(),
                    token: token.to_owned(),
                };
                let endpoint_id = get_opt_s(item, "webhook_endpoint_id").map(str::to_owned);
                Some(WebhookConfig {
                    secret,
                    source,
                    endpoint_id,
                })
            }
        };
        Ok(StripeConnection {
            store_id,
            publishable_key,
            key_kind,
            account_id: account("stripe_account_id")?,
            secret_key: SealedSecret {
                wrapped_key: get_b(item, "secret_key_wrapped")?.to_vec(),
                token: get_s(item, "secret_key_token")?.to_owned(),
            },
            webhook_secret,
            connected_at: get_n(item, "connected_at")?,
            updated_at: get_n(item, "updated_at")?,
            version: get_n(item, "version")?,
            activity: WebhookActivity {
                last_webhook_at: get_opt_n(item, "last_webhook_at")?,
                failures: get_opt_n(item, "webhook_failures")?.unwrap_or(0),
                last_failure_at: get_opt_n(item, "last_webhook_failure_at")?,
                last_failure: get_opt_s(item, "last_webhook_failure").map(str::to_owned),
                last_api_payment_at: get_opt_n(item, "last_api_payment_at")?,
                key_rejected: get_opt_n(item, "key_rejected_at")?.map(|at| KeyRejection {
                    at,
                    reason: get_opt_s(item, "key_rejected_reason")
                        .unwrap_or_default()
                        .to_owned(),
                }),
            },
            last_key_replacement,
            publishable_key_proven_at: get_opt_n(item, "publishable_key_proven_at")?,
        })
    }
}

impl AuditEntry {
    fn to_item(&self, connection: &StripeConnection) -> Item {
        let mut item = Item::from([
            ("pk".into(), s(keys::store(&connection.store_id))),
            ("sk".into(), s(keys::audit(self.at_millis))),
            ("action".into(), s(self.action)),
            ("actor".into(), s(&self.actor)),
            ("mode".into(), s(connection.mode().as_str())),
            (
                "publishable_key".into(),
                s(connection.publishable_key.as_str()),
            ),
            ("key_kind".into(), s(connection.key_kind.as_str())),
            (
                "webhook_secret_set".into(),
                aws_sdk_dynamodb::types::AttributeValue::Bool(connection.webhook_secret.is_some()),
            ),
            ("version".into(), n(connection.version)),
        ]);
        if let Some(ip) = &self.source_ip {
            item.insert("source_ip".into(), s(ip));
        }
        if let Some(account) = &connection.account_id {
            item.insert("stripe_account_id".into(), s(account.as_str()));
        }
        if let Some(r) = &self.replacement {
            if let Some(from) = &r.from_account {
                item.insert("previous_stripe_account_id".into(), s(from.as_str()));
            }
            item.insert("stripe_account_change".into(), s(r.account_change()));
        }
        item
    }
}

impl Table {
    /// Strongly consistent: a save right after must see the version it replaces.
    pub async fn get_connection(
        &self,
        store_id: &StoreId,
    ) -> Result<Option<StripeConnection>, AppError> {
        item_of(self.get_one(keys::store(store_id), keys::CONNECTION))
            .await?
            .as_ref()
            .map(StripeConnection::from_item)
            .transpose()
    }

    /// Writes the connection and its audit entry in one transaction. The
    /// connection must still be at `connection.version - 1` (or absent for
    /// version 1); otherwise someone saved in between and this is a conflict.
    /// `through`: the one-time link the merchant saved with, consumed by the
    /// same transaction (a used link saves nothing: 410 `link_used`).
    pub async fn save_connection(
        &self,
        connection: &StripeConnection,
        audit: &AuditEntry,
        through: Option<&LinkUse>,
    ) -> Result<(), AppError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connection.to_item()));
        put = if connection.version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(connection.version - 1))
        };
        let audit_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit.to_item(connection)))
            .condition_expression("attribute_not_exists(pk)");
        let mut writes = vec![
            TransactWriteItem::builder()
                .put(put.build().map_err(AppError::internal)?)
                .build(),
            TransactWriteItem::builder()
                .put(audit_put.build().map_err(AppError::internal)?)
                .build(),
        ];
        if let Some(link) = through {
            writes.push(
                TransactWriteItem::builder()
                    .put(self.link_use_put(link, connection.updated_at)?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The link's write is the third; its condition failing means used.
            Err(err) if through.is_some() && condition_failed_at(&err, 2) => Err(link_used()),
            Err(err) if is_condition_failure(&err) => Err(AppError::conflict(
                "concurrent_update",
                "The Stripe settings of this store were changed at the same time by someone else; nothing was saved. Please try again.",
            )),
            Err(err) => Err(dependency_error(err)),
        }
    }
}

impl Table {
    /// Removes the store's connection (still at the version it was read)
    /// and records who did it, in one transaction.
    pub async fn delete_connection(
        &self,
        connection: &StripeConnection,
        audit: &AuditEntry,
    ) -> Result<(), AppError> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .key("pk", s(keys::store(&connection.store_id)))
            .key("sk", s(keys::CONNECTION))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(connection.version))
            .build()
            .map_err(AppError::internal)?;
        let audit_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(audit.to_item(connection)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(AppError::internal)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().put(audit_put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Err(AppError::conflict(
                "concurrent_update",
                "The Stripe settings of this store changed at the same time; nothing was removed. Please try again.",
            )),
            Err(err) => Err(dependency_error(err)),
        }
    }
}
