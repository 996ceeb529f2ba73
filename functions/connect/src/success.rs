//! `GET /stripe/success/{store_id}`: what was connected, and the way back to
//! BMOS. The only place we send the merchant is the signed `return_url`.

use crate::handler::link_params;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::auth::connect_link::{ConnectLink, Expiry};
use shared::domain::StoreId;
use shared::pages::{self, ConnectSuccess, WebhookState};
use shared::store::WebhookSource;
use shared::stripe::webhook_endpoints;
use shared::webhooks::setup;
use shared::{App, AppError, clock, http};

pub async fn handle(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let path_store = StoreId::parse(&http::path_param(req, "store_id").unwrap_or_default())?;
    // Expiry is not enforced: the save already happened, and the return URL
    // was signed by BMOS either way.
    let link = ConnectLink::verify(
        link_params(req)?,
        &app.config.internal_secret,
        &app.config.return_urls,
        clock::now(),
        Expiry::Ignore,
    )?;
    if link.store_id != path_store {
        return Err(AppError::forbidden(
            "invalid_link",
            "This link is not for this store.",
        ));
    }
    let connection = app
        .store
        .get_connection(&path_store)
        .await?
        .ok_or_else(shared::webhooks::setup::not_connected)?;
    let webhook = match &connection.webhook_secret {
        Some(w) if w.source == WebhookSource::Auto => WebhookState::Auto,
        Some(_) => WebhookState::Manual,
        None => WebhookState::Missing,
    };
    let webhook_url = setup::webhook_url(&http::public_base_url(&app.config, req)?, &path_store)?;
    // The same signed link opens the page where the merchant pastes the secret.
    let query = serde_urlencoded::to_string(&link.params).map_err(AppError::internal)?;
    let nonce = http::nonce();
    let page = ConnectSuccess {
        nonce: nonce.clone(),
        mode: connection.mode().as_str(),
        live: connection.mode().is_live(),
        publishable_key: connection.publishable_key.as_str(),
        webhook,
        webhook_url: &webhook_url,
        events: &webhook_endpoints::EVENTS,
        webhook_secret_link: format!("/stripe/webhook-secret?{query}"),
        return_url: link.return_url.as_str(),
    };
    pages::render(StatusCode::OK, &page, &nonce, pages::PageScripts::None)
}
