//! Hands BMOS a signed, short-lived connect link for one store and one
//! return URL. BMOS may also sign links itself (see the README); both give
//! the same URL.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::auth::connect_link::{self, AccountChange};
use shared::domain::{ReturnUrl, StoreId, whole_number};
use shared::internal_api;
use shared::{App, AppError, clock, http};

pub const DEFAULT_EXPIRES_IN: u64 = 30 * 60;
const MIN_EXPIRES_IN: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    return_url: String,
    #[serde(default, deserialize_with = "whole_number::deserialize_optional")]
    expires_in: Option<u64>,
    /// BMOS's consent that keys of another Stripe account may replace the
    /// store's (the merchant chose to change account in its settings).
    #[serde(default)]
    allow_account_change: bool,
}

#[derive(Debug, Serialize)]
pub struct LinkResponse {
    pub store_id: String,
    pub url: String,
    pub expires_at: u64,
    pub allow_account_change: bool,
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    internal_api::authenticate_bmos(app, &req).await?;
    let store_id = StoreId::parse(&http::path_param(&req, "store_id").unwrap_or_default())?;
    let body: LinkRequest = serde_json::from_slice(http::body_bytes(&req)?).map_err(|e| {
        AppError::bad_request(
            "invalid_body",
            format!("Body must be JSON {{\"return_url\": \"https://...\", \"expires_in\": seconds, \"allow_account_change\": false}}: {e}"),
        )
    })?;
    let return_url = ReturnUrl::parse(&body.return_url, &app.config.return_urls)?;
    let expires_in = body.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
    if !(MIN_EXPIRES_IN..=connect_link::MAX_LIFETIME_SECS).contains(&expires_in) {
        return Err(AppError::bad_request(
            "invalid_expires_in",
            format!(
                "expires_in must be between {MIN_EXPIRES_IN} and {} seconds",
                connect_link::MAX_LIFETIME_SECS
            ),
        ));
    }
    let expires_at = clock::now() + expires_in;
    // Re-read when due, so the signer below is as fresh as the TTL allows.
    app.link_keys().await?;
    let url = connect_link::url(
        &http::public_base_url(&app.config, &req)?,
        &app.link_signer()?,
        &store_id,
        &return_url,
        expires_at,
        if body.allow_account_change {
            AccountChange::Allow
        } else {
            AccountChange::Refuse
        },
    );
    Ok(http::json(
        StatusCode::OK,
        &LinkResponse {
            store_id: store_id.to_string(),
            url,
            expires_at,
            allow_account_change: body.allow_account_change,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::auth::connect_link::{ConnectLink, Expiry, LinkParams, LinkPurpose};
    use shared::testing::offline_app;

    fn event_with_body(body: &str) -> Request {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/connect-links.json"))
                .unwrap();
        *req.body_mut() = Body::Text(body.to_owned());
        req
    }

    #[tokio::test]
    async fn returns_a_link_that_verifies() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/connect-links.json"))
                .unwrap();
        let response = handle(offline_app(), req).await.expect("link");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
        assert_eq!(
            url.origin().ascii_serialization(),
            "https://pay.checkout.best"
        );
        assert_eq!(url.path(), "/stripe/connect");
        let params: LinkParams = serde_urlencoded::from_str(url.query().unwrap()).unwrap();
        let app = offline_app();
        let link = ConnectLink::verify(
            params,
            &app.link_keys().await.unwrap(),
            &app.config.return_urls,
            clock::now(),
            Expiry::Enforce,
            LinkPurpose::Connect,
        )
        .expect("the issued link verifies");
        assert_eq!(link.expires, body["expires_at"].as_u64().unwrap());
        assert!(link.expires <= clock::now() + DEFAULT_EXPIRES_IN);
        assert_eq!(link.account_change, AccountChange::Refuse, "by default");
        assert_eq!(body["allow_account_change"], false);
    }

    #[tokio::test]
    async fn bmos_can_ask_for_a_link_that_allows_another_stripe_account() {
        for (field, expected) in [
            ("true", AccountChange::Allow),
            ("false", AccountChange::Refuse),
        ] {
            let req = event_with_body(&format!(
                r#"{{"return_url": "https://bmos.example/", "allow_account_change": {field}}}"#
            ));
            let response = handle(offline_app(), req).await.expect("link");
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
            assert_eq!(body["allow_account_change"], field == "true");
            let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
            let params: LinkParams = serde_urlencoded::from_str(url.query().unwrap()).unwrap();
            let app = offline_app();
            let link = ConnectLink::verify(
                params,
                &app.link_keys().await.unwrap(),
                &app.config.return_urls,
                clock::now(),
                Expiry::Enforce,
                LinkPurpose::Connect,
            )
            .expect("the issued link verifies");
            assert_eq!(link.account_change, expected, "{field}");
        }
    }

    #[tokio::test]
    async fn without_a_custom_domain_links_point_at_the_domain_bmos_called() {
        let app = shared::testing::app_without_custom_domain();
        let domain = shared::testing::EXECUTE_API_DOMAIN;
        let req = shared::testing::event_on_domain(
            include_str!("../../../events/connect-links.json"),
            domain,
        );
        let response = handle(&app, req).await.expect("link");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
        assert_eq!(
            url.origin().ascii_serialization(),
            format!("https://{domain}")
        );
        assert_eq!(url.path(), "/stripe/connect");
    }

    /// Found by schemathesis: `600.0` is the integer 600 in JSON (and to
    /// openapi.yaml's `type: integer`), and was refused as `invalid_body`.
    #[tokio::test]
    async fn a_whole_float_expires_in_is_the_integer() {
        let req =
            event_with_body(r#"{"return_url": "https://bmos.example/", "expires_in": 600.0}"#);
        let response = handle(offline_app(), req).await.expect("link");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        let expires_at = body["expires_at"].as_u64().unwrap();
        assert!(expires_at <= clock::now() + 600 && expires_at + 60 > clock::now() + 600);
        let req =
            event_with_body(r#"{"return_url": "https://bmos.example/", "expires_in": 600.5}"#);
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!((err.status().as_u16(), err.code()), (400, "invalid_body"));
    }

    /// A body that is not UTF-8 reaches the function base64-encoded in AWS
    /// (the local router answers 500 itself instead; RELIABILITY.md): it is
    /// 400 `invalid_body`, never a 5xx.
    #[tokio::test]
    async fn a_body_that_is_not_utf8_is_400() {
        let mut req = event_with_body("");
        *req.body_mut() = Body::Binary(vec![0xff, 0xfe, b'{', 0x80]);
        let err = handle(offline_app(), req).await.unwrap_err();
        assert_eq!((err.status().as_u16(), err.code()), (400, "invalid_body"));
    }

    #[tokio::test]
    async fn bad_bodies_are_400_naming_the_problem() {
        for (body, code) in [
            ("not json", "invalid_body"),
            (
                r#"{"return_url": "https://evil.example/"}"#,
                "invalid_return_url",
            ),
            (
                r#"{"return_url": "http://bmos.example/"}"#,
                "invalid_return_url",
            ),
            (
                r#"{"return_url": "https://bmos.example/", "expires_in": 86400}"#,
                "invalid_expires_in",
            ),
            (
                r#"{"return_url": "https://bmos.example/", "extra": 1}"#,
                "invalid_body",
            ),
            (
                r#"{"return_url": "https://bmos.example/", "allow_account_change": "yes"}"#,
                "invalid_body",
            ),
        ] {
            // The event's shared-secret header still authenticates: the
            // secret form does not cover the body.
            let err = handle(offline_app(), event_with_body(body))
                .await
                .unwrap_err();
            assert_eq!((err.status().as_u16(), err.code()), (400, code), "{body}");
        }
    }
}
