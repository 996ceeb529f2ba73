//! `POST /stripe/connect`: check the keys with Stripe, learn which Stripe
//! account they act on (keys of another account than the store's need the
//! link's consent: `account.rs`), seal them, and save them with an audit
//! entry naming both accounts, in one transaction. Any failure leaves the store
//! exactly as it was; the form comes back with a message and the publishable
//! key, never the secret.

use crate::forms::ConnectFormPost;
use crate::guard;
use crate::key_form::{FormState, render_form};
use lambda_http::{Body, Request, Response};
use shared::auth::connect_link::{ConnectLink, LinkPurpose};
use shared::domain::{KeyPair, PublishableKey, SecretKey, WebhookSecret};
use shared::store::{
    AuditEntry, KeyReplacement, StripeConnection, WebhookActivity, WebhookConfig, WebhookSource,
};
use shared::stripe::{PublishableKeyCheck, StripeFailure};
use shared::vault::{EncryptionContext, Purpose};
use shared::webhooks::setup;
use shared::{App, AppError, clock, http};

pub async fn handle(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    guard::origin(app, req)?;
    let post = ConnectFormPost::parse(http::body_bytes(req)?)?;
    let link = guard::posted_link(
        app,
        post.link.clone(),
        &post.csrf_token,
        LinkPurpose::Connect,
    )
    .await?;
    let form_error = |err: AppError, post: &ConnectFormPost| -> Result<Response<Body>, AppError> {
        err.log();
        let message = err.public_message();
        let state = FormState {
            publishable_key: post.publishable_key.trim(),
            error: Some(&message),
            current: None,
        };
        render_form(app, &link, state, err.status())
    };
    match save(app, req, &link, &post).await {
        Ok(()) => {
            // The connect link is spent; the success page and the
            // webhook-secret form open with a link of ours, for them only.
            let next = ConnectLink::issue(
                &app.link_signer()?,
                LinkPurpose::WebhookSecret,
                link.store_id,
                link.return_url.clone(),
                clock::now(),
            );
            http::see_other(&crate::success::path(&next)?)
        }
        // Another post through this link saved first: never the form again.
        Err(err) if err.code() == "link_used" => Err(err),
        Err(err) => form_error(err, &post),
    }
}

async fn save(
    app: &App,
    req: &Request,
    link: &ConnectLink,
    post: &ConnectFormPost,
) -> Result<(), AppError> {
    let keys = KeyPair::new(
        PublishableKey::parse(&post.publishable_key)?,
        SecretKey::parse(&post.secret_key)?,
    )?;
    let webhook_secret = match post.webhook_secret.trim() {
        "" => None,
        raw => Some(WebhookSecret::parse(raw)?),
    };
    let previous = app.table.get_connection(&link.store_id).await?;
    let newest_intent = app
        .stripe
        .check_key(&keys.secret)
        .await
        .map_err(key_check_error)?;
    let publishable_key_proven = match app
        .stripe
        .check_publishable_key(&keys.publishable, newest_intent.as_ref())
        .await
        .map_err(publishable_key_error)?
    {
        PublishableKeyCheck::SameAccount => true,
        PublishableKeyCheck::NoIntentYet => false,
        PublishableKeyCheck::OtherAccount => {
            return Err(AppError::unprocessable(
                "publishable_key_other_account",
                "The publishable key belongs to another Stripe account than the secret key. Copy both keys from the same account in the Stripe Dashboard; nothing was saved.",
            ));
        }
    };
    // Before anything is created in the new keys' account (our webhook
    // endpoint) or sealed: keys of another account may stop here.
    let account_id = app
        .stripe
        .account_of(&keys.secret)
        .await
        .map_err(key_check_error)?;
    crate::account::check(previous.as_ref(), account_id.as_ref(), link.account_change)?;

    let store_id = link.store_id;
    let secret_key = app
        .vault
        .seal(
            EncryptionContext::new(store_id, Purpose::StripeSecretKey),
            keys.secret.expose(),
        )
        .await?;
    // The old signing secret (and our endpoint) belong to the old account
    // and mode; they stay only when the merchant kept the same publishable key.
    let kept = previous
        .as_ref()
        .filter(|p| p.publishable_key == keys.publishable)
        .and_then(|p| p.webhook_secret.clone());
    let webhook_secret = match (webhook_secret, kept) {
        (Some(secret), _) => Some(WebhookConfig {
            secret: app
                .vault
                .seal(
                    EncryptionContext::new(store_id, Purpose::WebhookSecret),
                    secret.expose(),
                )
                .await?,
            source: WebhookSource::Manual,
            endpoint_id: None,
        }),
        (None, Some(kept)) => Some(kept),
        (None, None) => {
            let base = http::public_base_url(&app.config, req)?;
            setup::auto_register(app, &base, &store_id, &keys.secret).await?
        }
    };
    let created_endpoint = webhook_secret
        .as_ref()
        .and_then(|w| w.endpoint_id.clone())
        .filter(|id| {
            previous
                .as_ref()
                .and_then(|p| p.webhook_secret.as_ref()?.endpoint_id.as_ref())
                != Some(id)
        });
    let now = clock::now();
    let replacement = previous.as_ref().map(|p| KeyReplacement {
        at: now,
        from_account: p.account_id.clone(),
        to_account: account_id.clone(),
    });
    let connection = StripeConnection {
        store_id,
        publishable_key: keys.publishable.clone(),
        key_kind: keys.secret.kind(),
        account_id,
        secret_key,
        webhook_secret,
        connected_at: previous.as_ref().map_or(now, |p| p.connected_at),
        updated_at: now,
        version: previous.as_ref().map_or(1, |p| p.version + 1),
        // New keys start with a clean failure count and are not known to be
        // rejected; when and how webhooks and payments arrived stays, as it
        // describes the store.
        activity: previous
            .as_ref()
            .map(|p| WebhookActivity {
                failures: 0,
                last_failure_at: None,
                last_failure: None,
                key_rejected: None,
                ..p.activity.clone()
            })
            .unwrap_or_default(),
        // A save over a connection always replaces keys; a first connect
        // (also after a disconnect) replaced none.
        last_key_replacement: replacement.clone(),
        publishable_key_proven_at: publishable_key_proven.then_some(now),
    };
    let audit = AuditEntry {
        action: if previous.is_some() {
            "stripe_keys_replaced"
        } else {
            "stripe_connected"
        },
        actor: "merchant:connect-link".into(),
        at_millis: clock::now_millis(),
        source_ip: http::source_ip(req),
        replacement: replacement.clone(),
    };
    if let Err(err) = app
        .table
        .save_connection(&connection, &audit, Some(&link.one_time_use()))
        .await
    {
        if let Some(id) = &created_endpoint {
            setup::delete_endpoint(app, &store_id, &keys.secret, id).await;
        }
        return Err(err);
    }
    // The previous keys' endpoint is no longer ours to use.
    if let Some(previous) = &previous
        && previous
            .webhook_secret
            .as_ref()
            .and_then(|w| w.endpoint_id.as_ref())
            != connection
                .webhook_secret
                .as_ref()
                .and_then(|w| w.endpoint_id.as_ref())
    {
        setup::remove_auto_endpoint(app, previous).await;
    }
    // Account ids are not secrets; they say whose account now takes the money.
    tracing::info!(
        store_id = %store_id,
        mode = connection.mode().as_str(),
        key_kind = connection.key_kind.as_str(),
        version = connection.version,
        stripe_account = connection.account_id.as_ref().map(|a| a.as_str()),
        previous_stripe_account = replacement.as_ref().and_then(|r| r.from_account.as_ref()).map(|a| a.as_str()),
        account_change = replacement.as_ref().map(KeyReplacement::account_change),
        "stripe keys saved"
    );
    Ok(())
}

/// What the merchant is told when Stripe did not accept the publishable key.
fn publishable_key_error(failure: StripeFailure) -> AppError {
    match failure {
        StripeFailure::InvalidKey => AppError::unprocessable(
            "publishable_key_invalid",
            "Stripe says: Invalid API key for the publishable key. Copy the whole publishable key again from the Stripe Dashboard; nothing was saved.",
        ),
        other => key_check_error(other),
    }
}

/// What the merchant is told when Stripe did not accept the key.
fn key_check_error(failure: StripeFailure) -> AppError {
    match failure {
        StripeFailure::InvalidKey => AppError::unprocessable(
            "stripe_key_invalid",
            "Stripe says: Invalid API key. Copy the whole secret key again from the Stripe Dashboard; nothing was saved.",
        ),
        StripeFailure::MissingPermission { permission } => AppError::unprocessable(
            "stripe_permission_missing",
            match permission {
                Some(p) => format!(
                    "Stripe says this restricted key lacks the {p} permission. Edit the key in the Stripe Dashboard to allow it (PaymentIntents: Write), or use a secret key; nothing was saved."
                ),
                None => "Stripe says this restricted key lacks a permission checkout needs (PaymentIntents: Write); nothing was saved.".into(),
            },
        ),
        StripeFailure::Unreachable(_) => AppError::Dependency {
            dependency: "Stripe",
            throttled: false,
            source: failure.into(),
        },
        other => other.into(),
    }
}
