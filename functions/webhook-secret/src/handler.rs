//! Saves a `whsec_` signing secret BMOS collected from the merchant, sealed
//! like the connect form does it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use shared::domain::{StoreId, WebhookSecret};
use shared::internal_api;
use shared::webhooks::setup;
use shared::{App, AppError, http};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    webhook_secret: String,
}

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let caller = internal_api::authenticate_bmos(app, &req).await?;
    let store_id = StoreId::parse(&http::path_param(&req, "store_id").unwrap_or_default())?;
    let body: SecretBody = serde_json::from_slice(http::body_bytes(&req)?).map_err(|_| {
        AppError::bad_request(
            "invalid_body",
            "Body must be JSON {\"webhook_secret\": \"whsec_...\"}",
        )
    })?;
    let secret = WebhookSecret::parse(&body.webhook_secret)?;
    let saved = setup::save_manual_secret(
        app,
        &store_id,
        &secret,
        caller.as_str(),
        http::source_ip(&req),
        None,
    )
    .await?;
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({ "store_id": store_id.to_string(), "webhook_configured": true, "version": saved.version }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    fn event(body: &str) -> Request {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/webhook-secret.json"))
                .unwrap();
        *req.body_mut() = Body::Text(body.to_owned());
        req
    }

    #[tokio::test]
    async fn bad_secrets_are_refused_before_any_io() {
        for (body, status, code) in [
            ("{}", 400, "invalid_body"),
            (
                r#"{"webhook_secret": "sk_test_notawebhooksecret"}"#,
                422,
                "invalid_webhook_secret",
            ),
        ] {
            let err = handle(offline_app(), event(body)).await.unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{body}"
            );
            assert!(
                !err.to_string().contains("sk_test"),
                "never echoes what was sent"
            );
        }
    }

    #[tokio::test]
    async fn the_sample_event_reaches_the_table() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/webhook-secret.json"))
                .unwrap();
        assert_eq!(handle(offline_app(), req).await.unwrap_err().status(), 502);
    }
}
