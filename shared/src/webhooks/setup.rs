//! Setting up the merchant's webhook for them: create our endpoint in their
//! Stripe account when their key may, and delete it when it stops being
//! ours to use (new keys, disconnect). When the key may not, the merchant
//! gets exact manual steps instead (see the success page).

use crate::app::App;
use crate::auth::connect_link::ConnectLink;
use crate::domain::{SecretKey, StoreId};
use crate::error::{AppError, cause_chain};
use crate::store::{StripeConnection, WebhookConfig, WebhookSource};
use crate::stripe::StripeFailure;
use crate::vault::{EncryptionContext, Purpose};
use url::Url;

/// `https://<our host>/webhook/stripe/{store_id}`: the per-store URL, under
/// `base` (`http::public_base_url`).
pub fn webhook_url(base: &Url, store_id: &StoreId) -> Result<String, AppError> {
    Ok(base
        .join(&format!("webhook/stripe/{store_id}"))
        .map_err(AppError::internal)?
        .to_string())
}

/// Our endpoint in the merchant's account, its secret sealed; `None` when
/// Stripe will not let this key create one (manual set-up then).
pub async fn auto_register(
    app: &App,
    base: &Url,
    store_id: &StoreId,
    key: &SecretKey,
) -> Result<Option<WebhookConfig>, AppError> {
    let url = webhook_url(base, store_id)?;
    let created = match app
        .stripe
        .create_webhook_endpoint(key, &url, store_id)
        .await
    {
        Ok(created) => created,
        Err(failure) => {
            let level_warn = matches!(
                failure,
                StripeFailure::Unreachable(_) | StripeFailure::RateLimited
            );
            if level_warn {
                tracing::warn!(store_id = %store_id, reason = %failure, "could not create the webhook endpoint; manual set-up needed");
            } else {
                tracing::info!(store_id = %store_id, reason = %failure, "key may not create webhook endpoints; manual set-up needed");
            }
            return Ok(None);
        }
    };
    let sealed = app
        .vault
        .seal(
            EncryptionContext::new(*store_id, Purpose::WebhookSecret),
            created.secret.expose(),
        )
        .await;
    match sealed {
        Ok(secret) => {
            tracing::info!(store_id = %store_id, endpoint = %created.id, "webhook endpoint created in the merchant's account");
            Ok(Some(WebhookConfig {
                secret,
                source: WebhookSource::Auto,
                endpoint_id: Some(created.id),
            }))
        }
        Err(err) => {
            // Do not leave an endpoint behind whose secret we could not keep.
            delete_endpoint(app, store_id, key, &created.id).await;
            Err(err.into())
        }
    }
}

/// Deletes the endpoint we created for `connection`, with the key that owns
/// it. Best effort: a leftover endpoint only costs the merchant failed
/// deliveries, while failing the merchant's action would cost them more.
pub async fn remove_auto_endpoint(app: &App, connection: &StripeConnection) {
    let Some(WebhookConfig {
        source: WebhookSource::Auto,
        endpoint_id: Some(id),
        ..
    }) = &connection.webhook_secret
    else {
        return;
    };
    match open_secret_key(app, connection).await {
        Ok(key) => delete_endpoint(app, &connection.store_id, &key, id).await,
        Err(err) => {
            tracing::warn!(store_id = %connection.store_id, endpoint = %id, cause = %cause_chain(&err), "could not open the key to delete our webhook endpoint")
        }
    }
}

pub async fn delete_endpoint(app: &App, store_id: &StoreId, key: &SecretKey, id: &str) {
    match app.stripe.delete_webhook_endpoint(key, id).await {
        Ok(()) => tracing::info!(store_id = %store_id, endpoint = %id, "webhook endpoint deleted"),
        Err(failure) => {
            tracing::warn!(store_id = %store_id, endpoint = %id, reason = %failure, "could not delete our webhook endpoint")
        }
    }
}

/// The connection's secret key, opened through the vault.
pub async fn open_secret_key(
    app: &App,
    connection: &StripeConnection,
) -> Result<SecretKey, AppError> {
    let opened = app
        .vault
        .open(
            EncryptionContext::new(connection.store_id, Purpose::StripeSecretKey),
            &connection.secret_key,
        )
        .await?;
    SecretKey::parse(secrecy::ExposeSecret::expose_secret(&opened))
        .map_err(|_| AppError::internal("stored secret key no longer parses"))
}

/// Saves a signing secret the merchant (or BMOS for them) pasted, replacing
/// whatever the store had; our own endpoint, if any, is deleted afterwards
/// since its secret is no longer the one we verify with.
/// The one answer for "this store has no Stripe connection" (404).
pub fn not_connected() -> AppError {
    AppError::not_found(
        "not_connected",
        "This store has no Stripe account connected.",
    )
}

/// `through`: the merchant's one-time webhook-secret link, consumed by the
/// save (BMOS's signed API call has none).
pub async fn save_manual_secret(
    app: &App,
    store_id: &StoreId,
    secret: &crate::domain::WebhookSecret,
    actor: &str,
    source_ip: Option<String>,
    through: Option<&ConnectLink>,
) -> Result<StripeConnection, AppError> {
    let previous = app
        .table
        .get_connection(store_id)
        .await?
        .ok_or_else(not_connected)?;
    let sealed = app
        .vault
        .seal(
            EncryptionContext::new(*store_id, Purpose::WebhookSecret),
            secret.expose(),
        )
        .await?;
    let now = crate::clock::now();
    let connection = StripeConnection {
        webhook_secret: Some(WebhookConfig {
            secret: sealed,
            source: WebhookSource::Manual,
            endpoint_id: None,
        }),
        updated_at: now,
        version: previous.version + 1,
        activity: crate::store::WebhookActivity {
            failures: 0,
            last_failure_at: None,
            last_failure: None,
            ..previous.activity.clone()
        },
        ..previous.clone()
    };
    let audit = crate::store::AuditEntry {
        action: "webhook_secret_set",
        actor: actor.to_owned(),
        at_millis: crate::clock::now_millis(),
        source_ip,
        replacement: None,
    };
    app.table
        .save_connection(
            &connection,
            &audit,
            through.map(ConnectLink::one_time_use).as_ref(),
        )
        .await?;
    remove_auto_endpoint(app, &previous).await;
    tracing::info!(store_id = %store_id, version = connection.version, "webhook signing secret saved");
    Ok(connection)
}

/// Disconnects the store from Stripe: the connection goes (with an audit
/// entry saying who), then our webhook endpoint in their account.
pub async fn disconnect(app: &App, store_id: &StoreId, actor: &str) -> Result<(), AppError> {
    let connection = app
        .table
        .get_connection(store_id)
        .await?
        .ok_or_else(not_connected)?;
    let audit = crate::store::AuditEntry {
        action: "stripe_disconnected",
        actor: actor.to_owned(),
        at_millis: crate::clock::now_millis(),
        source_ip: None,
        replacement: None,
    };
    app.table.delete_connection(&connection, &audit).await?;
    remove_auto_endpoint(app, &connection).await;
    tracing::info!(store_id = %store_id, "stripe disconnected");
    Ok(())
}
