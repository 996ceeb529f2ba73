//! The key form page: shown for a connect link, and shown again by `submit`
//! with the merchant's error.

use crate::guard::{self, link_params};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::auth::connect_link::{ConnectLink, LinkPurpose};
use shared::auth::csrf;
use shared::pages::{self, ConnectForm, CurrentConnection};
use shared::{App, AppError, http};

/// `GET /stripe/connect`: the form for a live, unused connect link.
pub(crate) async fn show(app: &App, req: &Request) -> Result<Response<Body>, AppError> {
    let link = guard::unused_link(app, link_params(req)?, LinkPurpose::Connect).await?;
    let current = app.table.get_connection(&link.store_id).await?;
    render_form(
        app,
        &link,
        FormState {
            publishable_key: "",
            error: None,
            current: current.as_ref(),
        },
        StatusCode::OK,
    )
}

pub(crate) struct FormState<'a> {
    pub publishable_key: &'a str,
    pub error: Option<&'a str>,
    pub current: Option<&'a shared::store::StripeConnection>,
}

/// The form for `link`, with a CSRF token bound to it.
pub(crate) fn render_form(
    app: &App,
    link: &ConnectLink,
    state: FormState<'_>,
    status: StatusCode,
) -> Result<Response<Body>, AppError> {
    let nonce = http::nonce();
    let page = ConnectForm {
        nonce: nonce.clone(),
        link: &link.params,
        csrf_token: csrf::token(&app.link_signer()?, link),
        // A secret typed into the wrong field is not shown back.
        publishable_key: if shared::domain::looks_like_secret(state.publishable_key) {
            ""
        } else {
            state.publishable_key
        },
        error: state.error,
        current: state.current.map(|c| CurrentConnection {
            mode: c.mode().as_str(),
            live: c.mode().is_live(),
            publishable_key: c.publishable_key.to_string(),
        }),
    };
    let mut response = pages::render(status, &page, &nonce, pages::PageScripts::None)?;
    // Under `no-referrer` browsers send `Origin: null` with the form post,
    // which would defeat the Origin check; `same-origin` still sends nothing
    // to any other site (the signed link never leaks through a Referer).
    response.headers_mut().insert(
        lambda_http::http::header::REFERRER_POLICY,
        lambda_http::http::HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}
