//! The checks every page and post of the connect flow makes, in one place:
//! the signed link (for its purpose, and unused where it can save), the
//! post's Origin and its CSRF token.

use lambda_http::Request;
use shared::auth::connect_link::{ConnectLink, Expiry, LinkParams, LinkPurpose};
use shared::auth::csrf;
use shared::{App, AppError, clock, http};

/// The link's parameters from the query string, exactly as sent.
pub(crate) fn link_params(req: &Request) -> Result<LinkParams, AppError> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or_default())
        .map_err(|_| AppError::bad_request("invalid_link", "The link's query string is malformed."))
}

pub(crate) fn link(
    app: &App,
    params: LinkParams,
    purpose: LinkPurpose,
    expiry: Expiry,
) -> Result<ConnectLink, AppError> {
    ConnectLink::verify(
        params,
        &*app.cached_link_keys()?,
        &app.config.return_urls,
        clock::now(),
        expiry,
        purpose,
    )
}

/// A live link that has not saved anything yet: the only kind that may show
/// a form. (The save itself consumes it atomically; this read only spares
/// the merchant typing into a form that would be refused.)
pub(crate) async fn unused_link(
    app: &App,
    params: LinkParams,
    purpose: LinkPurpose,
) -> Result<ConnectLink, AppError> {
    let link = link(app, params, purpose, Expiry::Enforce)?;
    ensure_unused(app, &link).await?;
    Ok(link)
}

/// What a form post through a link must carry: a live link and the CSRF
/// token our page rendered for it, both checked before the link's use is
/// read, so a forged post costs no request to the table.
pub(crate) async fn posted_link(
    app: &App,
    params: LinkParams,
    csrf: &str,
    purpose: LinkPurpose,
) -> Result<ConnectLink, AppError> {
    let link = link(app, params, purpose, Expiry::Enforce)?;
    csrf_token(app, &link, csrf)?;
    ensure_unused(app, &link).await?;
    Ok(link)
}

async fn ensure_unused(app: &App, link: &ConnectLink) -> Result<(), AppError> {
    if app.table.link_used(&link.one_time_use()).await? {
        return Err(shared::store::link_used());
    }
    Ok(())
}

/// Browsers send `Origin` on every form post; a post from any other origin
/// (or none) did not come from our form.
pub(crate) fn origin(app: &App, req: &Request) -> Result<(), AppError> {
    let expected = http::origin_of(&http::public_base_url(&app.config, req)?);
    let origin_ok = match http::header(req, "origin") {
        Some(origin) => origin == expected,
        None => {
            http::header(req, "referer").is_some_and(|r| r.starts_with(&format!("{expected}/")))
        }
    };
    if origin_ok {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "foreign_origin",
            "This form was not sent from our page. Please start again from your store's settings.",
        ))
    }
}

/// The post carries the token our page rendered for this very link.
fn csrf_token(app: &App, link: &ConnectLink, token: &str) -> Result<(), AppError> {
    if csrf::verify(&*app.cached_link_keys()?, link, token) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "invalid_csrf_token",
            "This form has expired or was not sent from our page. Please start again from your store's settings.",
        ))
    }
}
