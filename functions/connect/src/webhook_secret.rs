//! `GET`/`POST /stripe/webhook-secret`: where a merchant pastes the signing
//! secret of the endpoint they added by hand. It opens with the link of our
//! own that the key save handed out (never BMOS's connect link), works once,
//! and has the same CSRF token and Origin check as the connect form.

use crate::forms::SecretPost;
use crate::guard::{self, link_params};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::auth::connect_link::{ConnectLink, LinkPurpose};
use shared::auth::csrf;
use shared::domain::WebhookSecret;
use shared::pages::{self, WebhookSecretForm};
use shared::webhooks::setup;
use shared::{App, AppError, http};

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
        csrf_token: csrf::token(&app.link_signer()?, link),
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
    let link = guard::unused_link(app, link_params(req)?, LinkPurpose::WebhookSecret).await?;
    // Saving would be refused: say so now, not after the merchant pastes.
    if app.table.get_connection(&link.store_id).await?.is_none() {
        return Err(setup::not_connected());
    }
    render(app, req, &link, None, StatusCode::OK)
}

pub async fn submit(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    guard::origin(app, req)?;
    let post = SecretPost::parse(http::body_bytes(req)?)?;
    let link = guard::posted_link(
        app,
        post.link.clone(),
        &post.csrf_token,
        LinkPurpose::WebhookSecret,
    )
    .await?;
    let saved = match WebhookSecret::parse(&post.webhook_secret) {
        Ok(secret) => {
            setup::save_manual_secret(
                app,
                &link.store_id,
                &secret,
                "merchant:webhook-secret-form",
                http::source_ip(req),
                Some(&link),
            )
            .await
        }
        Err(err) => Err(err),
    };
    match saved {
        Ok(_) => http::see_other(&crate::success::path(&link)?),
        // Another post through this link saved first: never the form again.
        Err(err) if err.code() == "link_used" => Err(err),
        Err(err) => {
            err.log();
            let message = err.public_message();
            render(app, req, &link, Some(&message), err.status())
        }
    }
}
