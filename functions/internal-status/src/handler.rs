//! What BMOS needs to show a merchant about their Stripe set-up. Never a
//! secret: only whether secrets are present.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::domain::StoreId;
use shared::internal_api;
use shared::store::KeyReplacement;
use shared::webhooks::{WebhookHealth, setup, webhook_health};
use shared::{App, AppError, clock, http, key_health};

#[derive(Debug, Serialize)]
pub struct InternalStatus {
    pub store_id: String,
    /// Keys are saved (the seed's meaning), whether or not Stripe accepts them.
    pub has_stripe: bool,
    pub is_live_mode: bool,
    /// Connected and Stripe has not rejected the key: checkout works now.
    pub can_take_payments: bool,
    /// Stripe rejected the key (rolled or revoked): the merchant must save
    /// their current keys through a connect link.
    pub needs_reconnect: bool,
    pub key_rejected_at: Option<String>,
    /// Which Stripe call was rejected; never a key.
    pub key_rejected_reason: Option<String>,
    pub mode: Option<&'static str>,
    pub publishable_key: Option<String>,
    pub key_kind: Option<&'static str>,
    /// The Stripe account the keys act on (`acct_...`); `null` when not
    /// connected, connected before we recorded it, or Stripe did not say.
    pub stripe_account_id: Option<String>,
    /// The last time new keys replaced the store's keys, and the accounts.
    pub last_key_replacement: Option<KeyReplacementStatus>,
    /// When Stripe showed the publishable key to act on the same account as
    /// the secret key (at connect, or at the first payment); `null`: not yet.
    pub publishable_key_proven_at: Option<String>,
    pub webhook_configured: bool,
    pub connected_at: Option<String>,
    pub updated_at: Option<String>,
    pub last_webhook_at: Option<String>,
    pub webhook_url: String,
    pub webhook_health: Option<WebhookHealth>,
}

#[derive(Debug, Serialize)]
pub struct KeyReplacementStatus {
    pub at: String,
    pub from_stripe_account_id: Option<String>,
    pub to_stripe_account_id: Option<String>,
    /// `same` (a rolled key), `changed` (another account, with BMOS's
    /// consent) or `unknown`.
    pub account_change: &'static str,
}

impl From<&KeyReplacement> for KeyReplacementStatus {
    fn from(r: &KeyReplacement) -> Self {
        KeyReplacementStatus {
            at: clock::rfc3339(r.at),
            from_stripe_account_id: r.from_account.as_ref().map(ToString::to_string),
            to_stripe_account_id: r.to_account.as_ref().map(ToString::to_string),
            account_change: r.account_change(),
        }
    }
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    internal_api::authenticate_bmos(app, &req).await?;
    let store_id = StoreId::parse(&http::path_param(&req, "store_id").unwrap_or_default())?;
    let connection = app.table.get_connection(&store_id).await?;
    let webhook_url = setup::webhook_url(&http::public_base_url(&app.config, &req)?, &store_id)?;
    let status = match connection {
        None => InternalStatus {
            store_id: store_id.to_string(),
            has_stripe: false,
            is_live_mode: false,
            can_take_payments: false,
            needs_reconnect: false,
            key_rejected_at: None,
            key_rejected_reason: None,
            mode: None,
            publishable_key: None,
            key_kind: None,
            stripe_account_id: None,
            last_key_replacement: None,
            publishable_key_proven_at: None,
            webhook_configured: false,
            connected_at: None,
            updated_at: None,
            last_webhook_at: None,
            webhook_health: None,
            webhook_url,
        },
        Some(c) => InternalStatus {
            store_id: store_id.to_string(),
            has_stripe: true,
            is_live_mode: c.mode().is_live(),
            can_take_payments: key_health::can_take_payments(Some(&c)),
            needs_reconnect: c.activity.key_rejected.is_some(),
            key_rejected_at: c
                .activity
                .key_rejected
                .as_ref()
                .map(|r| clock::rfc3339(r.at)),
            key_rejected_reason: c.activity.key_rejected.as_ref().map(|r| r.reason.clone()),
            mode: Some(c.mode().as_str()),
            publishable_key: Some(c.publishable_key.to_string()),
            key_kind: Some(c.key_kind.as_str()),
            stripe_account_id: c.account_id.as_ref().map(ToString::to_string),
            last_key_replacement: c.last_key_replacement.as_ref().map(Into::into),
            publishable_key_proven_at: c.publishable_key_proven_at.map(clock::rfc3339),
            webhook_configured: c.webhook_secret.is_some(),
            connected_at: Some(clock::rfc3339(c.connected_at)),
            updated_at: Some(clock::rfc3339(c.updated_at)),
            last_webhook_at: c.activity.last_webhook_at.map(clock::rfc3339),
            webhook_health: Some(webhook_health(&c, &webhook_url, clock::now())),
            webhook_url,
        },
    };
    Ok(http::json(StatusCode::OK, &status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    fn event(json: &str) -> Request {
        lambda_http::request::from_str(json).expect("valid event")
    }

    #[tokio::test]
    async fn no_credentials_is_401() {
        let err = handle(
            offline_app(),
            event(include_str!(
                "../../../events/internal-status-unauthenticated.json"
            )),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_401() {
        let mut req = event(include_str!("../../../events/internal-status.json"));
        req.headers_mut().insert(
            "x-internal-secret",
            "wrong-secret-of-sufficient-length-000000".parse().unwrap(),
        );
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 401);
    }

    #[tokio::test]
    async fn with_the_plain_header_switched_off_the_right_secret_is_401_naming_the_signed_form() {
        // What AllowPlainSecretHeader=false gives the function.
        let app = shared::testing::offline_app_with(&[("ALLOW_PLAIN_SECRET_HEADER", "false")]);
        let err = handle(
            &app,
            event(include_str!("../../../events/internal-status.json")),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 401);
        assert_eq!(err.code(), "plain_secret_disabled");
        assert!(err.public_message().contains("X-Internal-Signature"));
    }

    #[tokio::test]
    async fn a_function_given_no_bmos_secret_refuses_with_500_not_401() {
        // A deployment error (the template gave it no secret) is ours, not
        // the caller's.
        let app = shared::testing::offline_app_with(&[("BMOS_AUTH_SECRET", "")]);
        let err = handle(
            &app,
            event(include_str!("../../../events/internal-status.json")),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 500, "{err:?}");
    }

    #[tokio::test]
    async fn the_right_secret_gets_past_auth_to_the_table() {
        // The sample event carries the test secret; the offline table then
        // fails, which proves authentication passed.
        let err = handle(
            offline_app(),
            event(include_str!("../../../events/internal-status.json")),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 502, "{err:?}");
    }
}
