//! `GET /stripe/success/{store_id}`: what was connected, and the way back to
//! BMOS. The only place we send the merchant is the signed `return_url`.

use crate::guard::{self, link_params};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::auth::connect_link::{ConnectLink, Expiry, LinkPurpose};
use shared::domain::StoreId;
use shared::pages::{self, ConnectSuccess, WebhookState};
use shared::store::WebhookSource;
use shared::stripe::webhook_endpoints;
use shared::webhooks::setup;
use shared::{App, AppError, clock, http};

pub async fn handle(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let path_store = StoreId::parse(&http::path_param(req, "store_id").unwrap_or_default())?;
    // Our own link from the save, never BMOS's connect link (spent by the
    // save). Expiry is not enforced: the page only shows what was saved, and
    // the webhook-secret form it leads to checks the link again.
    let link = guard::link(
        app,
        link_params(req)?,
        LinkPurpose::WebhookSecret,
        Expiry::Ignore,
    )?;
    if link.store_id != path_store {
        return Err(AppError::forbidden(
            "invalid_link",
            "This link is not for this store.",
        ));
    }
    let connection = app
        .table
        .get_connection(&path_store)
        .await?
        .ok_or_else(shared::webhooks::setup::not_connected)?;
    let webhook = match &connection.webhook_secret {
        Some(w) if w.source == WebhookSource::Auto => WebhookState::Auto,
        Some(_) => WebhookState::Manual,
        None => WebhookState::Missing,
    };
    let webhook_url = setup::webhook_url(&http::public_base_url(&app.config, req)?, &path_store)?;
    // The same link opens the page where the merchant pastes the secret.
    let query = serde_urlencoded::to_string(&link.params).map_err(AppError::internal)?;
    let webhook_secret_link = link
        .is_live(clock::now())
        .then(|| format!("/stripe/webhook-secret?{query}"));
    let nonce = http::nonce();
    let page = ConnectSuccess {
        nonce: nonce.clone(),
        mode: connection.mode().as_str(),
        live: connection.mode().is_live(),
        publishable_key: connection.publishable_key.as_str(),
        webhook,
        webhook_url: &webhook_url,
        events: &webhook_endpoints::EVENTS,
        restricted_key: connection.key_kind == shared::domain::KeyKind::Restricted,
        webhook_secret_link,
        return_url: link.return_url.as_str(),
    };
    pages::render(StatusCode::OK, &page, &nonce, pages::PageScripts::None)
}

/// Where the merchant lands after a save made with `link`'s predecessor.
pub(crate) fn path(link: &ConnectLink) -> Result<String, AppError> {
    let query = serde_urlencoded::to_string(&link.params).map_err(AppError::internal)?;
    Ok(format!("/stripe/success/{}?{query}", link.store_id))
}
