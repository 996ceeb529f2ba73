//! Server-rendered pages (askama: every value is HTML-escaped). Each page
//! gets a fresh CSP nonce for its inline style.

use crate::auth::connect_link::LinkParams;
use crate::error::AppError;
use crate::http;
pub use crate::http::PageScripts;
use askama::Template;
use lambda_http::Body;
use lambda_http::http::{Response, StatusCode};

pub struct CurrentConnection {
    pub mode: &'static str,
    pub live: bool,
    pub publishable_key: String,
}

#[derive(Template)]
#[template(path = "connect_form.html")]
pub struct ConnectForm<'a> {
    pub nonce: String,
    pub link: &'a LinkParams,
    pub csrf_token: String,
    /// Echoed back after an error; the secret key never is.
    pub publishable_key: &'a str,
    pub error: Option<&'a str>,
    pub current: Option<CurrentConnection>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookState {
    Auto,
    Manual,
    Missing,
}

#[derive(Template)]
#[template(path = "connect_success.html")]
pub struct ConnectSuccess<'a> {
    pub nonce: String,
    pub mode: &'static str,
    pub live: bool,
    pub publishable_key: &'a str,
    pub webhook: WebhookState,
    pub webhook_url: &'a str,
    pub events: &'a [&'a str],
    /// A restricted key: the page names the permission that lets us set
    /// the webhook up ourselves.
    pub restricted_key: bool,
    /// `None` once the link that opened the page has expired.
    pub webhook_secret_link: Option<String>,
    pub return_url: &'a str,
}

#[derive(Template)]
#[template(path = "webhook_secret_form.html")]
pub struct WebhookSecretForm<'a> {
    pub nonce: String,
    pub link: &'a LinkParams,
    pub csrf_token: String,
    pub webhook_url: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub nonce: String,
    pub title: &'a str,
    pub message: &'a str,
}

/// One line of an order as pages show it.
pub struct ItemRow {
    pub name: String,
    pub quantity: u64,
    pub total: String,
}

impl ItemRow {
    pub fn for_order(order: &crate::domain::Order) -> Vec<ItemRow> {
        order
            .line_items
            .iter()
            .map(|li| ItemRow {
                name: li.name.clone(),
                quantity: li.quantity,
                total: order.total.currency().format(li.total()),
            })
            .collect()
    }
}

#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage<'a> {
    pub nonce: String,
    pub store_name: Option<&'a str>,
    pub test_mode: bool,
    pub items: Vec<ItemRow>,
    pub total: String,
    pub previous_error: Option<&'a str>,
    pub publishable_key: &'a str,
    pub stripe_js_url: &'a str,
    pub intent_url: String,
    pub return_url: String,
}

pub struct Link {
    pub href: String,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "checkout_result.html")]
pub struct CheckoutResult<'a> {
    pub nonce: String,
    pub title: &'a str,
    pub message: &'a str,
    pub paid: bool,
    pub items: Vec<ItemRow>,
    pub total: String,
    pub order_id: &'a crate::domain::OrderId,
    pub link: Option<Link>,
}

/// Renders `page` with our headers. `nonce` must be the page's own.
pub fn render(
    status: StatusCode,
    page: &impl Template,
    nonce: &str,
    scripts: PageScripts<'_>,
) -> Result<Response<Body>, AppError> {
    let body = page.render().map_err(AppError::internal)?;
    Ok(http::html(status, body, nonce, scripts))
}

/// The page for an error on a page route: the error's status, a title that
/// says what kind of problem it is, and its public message.
pub fn error_page(err: &AppError) -> Response<Body> {
    err.log();
    let title = match err.status().as_u16() {
        400 | 422 => "Something is wrong with this request",
        401 | 403 => "This link cannot be used",
        404 => "Not found",
        410 => "This link has expired",
        409 => "Please try again",
        _ => "Something went wrong",
    };
    let nonce = http::nonce();
    let message = err.public_message();
    let page = Message {
        nonce: nonce.clone(),
        title,
        message: &message,
    };
    render(err.status(), &page, &nonce, PageScripts::None).unwrap_or_else(|_| http::error_json(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let link = LinkParams {
            store_id: "\"><script>alert(1)</script>".into(),
            return_url: "https://bmos.example/?a=<b>".into(),
            expires: "1".into(),
            signature: "s".into(),
            account_change: Some("allow".into()),
        };
        let page = ConnectForm {
            nonce: "n".into(),
            link: &link,
            csrf_token: "t".into(),
            publishable_key: "pk_test_<img src=x onerror=alert(1)>",
            error: Some("<b>bad</b>"),
            current: None,
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>bad</b>"), "{html}");
        assert!(html.contains("&#60;b&#62;bad&#60;/b&#62;"), "{html}");
        assert!(
            html.contains(r#"<input type="hidden" name="account_change" value="allow">"#),
            "a consenting link's parameter goes with the post: {html}"
        );
    }

    #[test]
    fn every_input_has_a_label() {
        let link = LinkParams::default();
        let page = ConnectForm {
            nonce: "n".into(),
            link: &link,
            csrf_token: "t".into(),
            publishable_key: "",
            error: None,
            current: None,
        };
        let html = page.render().unwrap();
        for id in ["publishable_key", "secret_key", "webhook_secret"] {
            assert!(html.contains(&format!("<label for=\"{id}\">")), "{id}");
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(html.contains("name=\"viewport\""));
    }
}
