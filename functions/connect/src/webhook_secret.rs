//! `GET`/`POST /stripe/webhook-secret`: where a merchant pastes the signing
//! secret of the endpoint they added by hand. Same signed link, CSRF token
//! and Origin check as the connect form.

use crate::handler::link_params;
use crate::submit::check_origin;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::auth::connect_link::{ConnectLink, Expiry, LinkParams};
use shared::auth::csrf;
use shared::domain::WebhookSecret;
use shared::pages::{self, WebhookSecretForm};
use shared::webhooks::setup;
use shared::{App, AppError, clock, http};

#[derive(Deserialize)]
struct SecretPost {
    #[serde(flatten)]
    link: LinkParams,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    webhook_secret: String,
}

fn verify(app: &App, params: LinkParams) -> Result<ConnectLink, AppError> {
    ConnectLink::verify(
        params,
        &app.config.internal_secret,
        &app.config.return_urls,
        clock::now(),
        Expiry::Enforce,
    )
}

fn render(
    app: &App,
    req: &Request,
    link: &ConnectLink,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response<Body>, AppError> {
    let nonce = http::nonce();
    let webhook_url =
        setup::webhook_url(&http::public_base_url(&app.config, req)?, &link.store_id)?;
    let page = WebhookSecretForm {
        nonce: nonce.clone(),
        link: &link.params,
        csrf_token: csrf::token(&app.config.internal_secret, link),
        webhook_url: &webhook_url,
        error,
    };
    let mut response = pages::render(status, &page, &nonce, pages::PageScripts::None)?;
    // As on the connect form: keep the post's Origin (see handler.rs).
    response.headers_mut().insert(
        lambda_http::http::header::REFERRER_POLICY,
        lambda_http::http::HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}

pub async fn form(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let link = verify(app, link_params(req)?)?;
    // Saving would be refused: say so now, not after the merchant pastes.
    if app.store.get_connection(&link.store_id).await?.is_none() {
        return Err(setup::not_connected());
    }
    render(app, req, &link, None, StatusCode::OK)
}

pub async fn submit(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    check_origin(app, req)?;
    let post: SecretPost = serde_urlencoded::from_bytes(http::body_bytes(req)?).map_err(|_| {
        AppError::bad_request(
            "malformed_form",
            "The form could not be read; please start again.",
        )
    })?;
    let link = verify(app, post.link.clone())?;
    if !csrf::verify(&app.config.internal_secret, &link, &post.csrf_token) {
        return Err(AppError::forbidden(
            "invalid_csrf_token",
            "This form has expired or was not sent from our page. Please start again from your store's settings.",
        ));
    }
    let saved = match WebhookSecret::parse(&post.webhook_secret) {
        Ok(secret) => {
            setup::save_manual_secret(
                app,
                &link.store_id,
                &secret,
                "merchant:webhook-secret-form",
                http::source_ip(req),
            )
            .await
        }
        Err(err) => Err(err),
    };
    match saved {
        Ok(_) => {
            let query = serde_urlencoded::to_string(&link.params).map_err(AppError::internal)?;
            http::see_other(&format!("/stripe/success/{}?{query}", link.store_id))
        }
        Err(err) => {
            err.log();
            let message = err.public_message();
            render(app, req, &link, Some(&message), err.status())
        }
    }
}
