//! Routes the connect function's three pages. Every failure here is shown as
//! a page, since a merchant's browser is on the other end.

use crate::{key_form, submit, success, webhook_secret};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::pages;
use shared::{App, AppError};

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    // Brings the link signing secret up to date first (a read only when its
    // cache's TTL is due), so the page code below, which renders
    // synchronously, sees the current values.
    if let Err(err) = app.link_keys().await {
        return Ok(pages::error_page(&err));
    }
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/stripe/connect") => key_form::show(app, &req).await,
        (&Method::POST, "/stripe/connect") => submit::handle(app, &req).await,
        (&Method::GET, path) if path.starts_with("/stripe/success/") => {
            success::handle(app, &req).await
        }
        (&Method::GET, "/stripe/webhook-secret") => webhook_secret::form(app, &req).await,
        (&Method::POST, "/stripe/webhook-secret") => webhook_secret::submit(app, &req).await,
        _ => Err(AppError::not_found("not_found", "There is no page here.")),
    };
    Ok(result.unwrap_or_else(|err| pages::error_page(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    fn event(json: &str) -> Request {
        lambda_http::request::from_str(json).expect("valid event")
    }

    async fn page(req: Request) -> (u16, String) {
        let response = handle(offline_app(), req)
            .await
            .expect("pages never fail as errors");
        let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        (response.status().as_u16(), body)
    }

    #[tokio::test]
    async fn an_expired_link_gets_a_403_page_that_says_so() {
        // The sample link expired in 2026; its signature is valid.
        let (status, body) = page(event(include_str!("../../../events/connect-form.json"))).await;
        assert_eq!(status, 403);
        assert!(body.contains("expired"), "{body}");
    }

    #[tokio::test]
    async fn a_tampered_link_gets_a_403_page() {
        let (status, body) = page(event(include_str!(
            "../../../events/connect-form-tampered.json"
        )))
        .await;
        assert_eq!(status, 403);
        assert!(body.contains("invalid"), "{body}");
    }

    #[tokio::test]
    async fn a_malformed_store_id_gets_a_400_page() {
        let (status, body) = page(event(include_str!(
            "../../../events/connect-form-bad-store.json"
        )))
        .await;
        assert_eq!(status, 400);
        assert!(body.contains("UUID"), "{body}");
    }

    #[tokio::test]
    async fn a_post_from_another_origin_is_refused_before_anything_else() {
        let mut req = event(include_str!("../../../events/connect-submit.json"));
        req.headers_mut()
            .insert("origin", "https://evil.example".parse().unwrap());
        let (status, body) = page(req).await;
        assert_eq!(status, 403);
        assert!(body.contains("not sent from our page"), "{body}");

        let mut req = event(include_str!("../../../events/connect-submit.json"));
        req.headers_mut().remove("origin");
        assert_eq!(page(req).await.0, 403, "no Origin and no Referer");
    }

    #[tokio::test]
    async fn without_a_custom_domain_a_post_must_come_from_the_domain_it_was_sent_to() {
        let app = shared::testing::app_without_custom_domain();
        let domain = shared::testing::EXECUTE_API_DOMAIN;
        let post = |origin: &str| {
            let mut req = shared::testing::event_on_domain(
                include_str!("../../../events/connect-submit.json"),
                domain,
            );
            req.headers_mut().insert("origin", origin.parse().unwrap());
            req
        };
        let body = |response: Response<Body>| {
            String::from_utf8_lossy(response.body().as_ref()).into_owned()
        };

        let same = handle(&app, post(&format!("https://{domain}")))
            .await
            .unwrap();
        // Past the origin check; stopped by the sample link's expiry.
        assert_eq!(same.status(), 403);
        assert!(body(same).contains("expired"));

        let other = handle(&app, post("https://pay.checkout.best"))
            .await
            .unwrap();
        assert_eq!(other.status(), 403);
        assert!(body(other).contains("not sent from our page"));
    }

    #[tokio::test]
    async fn a_post_with_an_expired_link_is_refused_and_never_echoes_the_secret() {
        let (status, body) = page(event(include_str!("../../../events/connect-submit.json"))).await;
        assert_eq!(status, 403);
        assert!(!body.contains("sk_test_"), "{body}");
    }

    #[tokio::test]
    async fn the_webhook_secret_page_needs_the_same_live_link_and_origin() {
        let (status, body) = page(event(include_str!(
            "../../../events/webhook-secret-form.json"
        )))
        .await;
        assert_eq!(status, 403);
        assert!(body.contains("expired"), "{body}");
        let mut req = event(include_str!("../../../events/webhook-secret-submit.json"));
        req.headers_mut()
            .insert("origin", "https://evil.example".parse().unwrap());
        let (status, body) = page(req).await;
        assert_eq!(status, 403);
        assert!(!body.contains("whsec_"), "{body}");
    }

    #[tokio::test]
    async fn unknown_routes_are_404_pages() {
        let mut req = event(include_str!("../../../events/connect-form.json"));
        *req.method_mut() = lambda_http::http::Method::DELETE;
        assert_eq!(page(req).await.0, 404);
    }
}
