//! Stripe's deliveries, on the shared URL or the per-store URL. The body is
//! verified exactly as received (API Gateway's base64 is already undone by
//! lambda_http); the signature header is never logged.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::domain::StoreId;
use shared::metrics::Metric;
use shared::webhooks::{self, Outcome, WebhookMemory};
use shared::{App, AppError, http};

/// `memory`: what this warm container remembers between deliveries.
pub async fn handle(
    app: &App,
    memory: &WebhookMemory,
    req: Request,
) -> Result<Response<Body>, AppError> {
    let path_store = http::path_param(&req, "store_id")
        .map(|raw| StoreId::parse(&raw))
        .transpose()?;
    let payload: &[u8] = req.body().as_ref();
    let outcome = webhooks::process(
        app,
        memory,
        path_store,
        http::header(&req, "stripe-signature"),
        payload,
    )
    .await;
    // Refused: unverifiable, answered 4xx. A 5xx told nothing either way.
    match &outcome {
        Ok(_) => app.metrics.emit(Metric::WebhookDelivery { verified: true }),
        Err(err) if err.status().is_client_error() => app
            .metrics
            .emit(Metric::WebhookDelivery { verified: false }),
        Err(_) => {}
    }
    let outcome = outcome?;
    let summary = summary(&outcome);
    tracing::info!(outcome = %summary, "webhook processed");
    Ok(http::json(
        StatusCode::OK,
        &serde_json::json!({ "received": true, "result": summary }),
    ))
}

/// What the delivery did, in words (the API's `WebhookAck.result`).
fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Applied { to, .. } => format!("applied: order is now {to}"),
        Outcome::Duplicate => "duplicate: already processed".to_owned(),
        Outcome::Parked { until, .. } => format!("parked: applies once the order is {until}"),
        Outcome::NoChange { reason } => format!("no change: {reason}"),
        Outcome::Flagged { why, .. } => format!("flagged: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn an_unsigned_or_unreadable_delivery_is_refused_before_any_io() {
        let mut req =
            lambda_http::request::from_str(include_str!("../../../events/webhook.json")).unwrap();
        *req.body_mut() = Body::Text("not json".into());
        let err = handle(offline_app(), &WebhookMemory::default(), req)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (400, "malformed_event")
        );
    }

    #[tokio::test]
    async fn a_bad_store_id_in_the_path_is_400() {
        let req = lambda_http::request::from_str(include_str!(
            "../../../events/webhook-store-bad-id.json"
        ))
        .unwrap();
        assert_eq!(
            handle(offline_app(), &WebhookMemory::default(), req)
                .await
                .unwrap_err()
                .code(),
            "invalid_store_id"
        );
    }

    #[tokio::test]
    async fn a_readable_delivery_goes_on_to_find_its_store() {
        // API Gateway base64-encodes the body in this sample; the offline
        // table then fails the store lookup, which is a 5xx Stripe retries.
        let req =
            lambda_http::request::from_str(include_str!("../../../events/webhook-store.json"))
                .unwrap();
        assert_eq!(
            handle(offline_app(), &WebhookMemory::default(), req)
                .await
                .unwrap_err()
                .status(),
            502
        );
    }
}

#[cfg(test)]
mod contract {
    use super::*;
    use shared::domain::OrderStatus;
    use shared::webhooks::no_change;

    /// The `WebhookAck.result` pattern from openapi.yaml.
    fn result_pattern() -> regex::Regex {
        let spec = include_str!("../../../openapi.yaml");
        let line = spec
            .lines()
            .find(|line| line.contains("pattern:") && line.contains("duplicate: already processed"))
            .expect("the webhook result pattern in openapi.yaml");
        let quoted = line.split_once("pattern: ").expect("a pattern").1;
        regex::Regex::new(quoted.trim().trim_matches('"')).expect("a valid pattern")
    }

    #[test]
    fn every_answer_the_webhook_can_give_is_in_the_api_contract() {
        let pattern = result_pattern();
        let order_id = shared::domain::OrderId::new();
        let mut outcomes = vec![
            Outcome::Duplicate,
            Outcome::Flagged {
                order_id,
                why: shared::webhooks::outcome::FLAGGED_AMOUNT,
            },
            Outcome::Flagged {
                order_id,
                why: shared::webhooks::outcome::FLAGGED_REPLACED,
            },
        ];
        // Every status an event can move an order to (all but the first).
        outcomes.extend(
            OrderStatus::ALL
                .into_iter()
                .filter(|status| *status != OrderStatus::Pending)
                .map(|to| Outcome::Applied {
                    order_id,
                    to: to.as_str(),
                }),
        );
        // Every requirement an early event can wait for.
        outcomes.extend(OrderStatus::PREREQUISITES.map(|until| Outcome::Parked {
            order_id,
            until: until.as_str(),
        }));
        outcomes.extend(
            no_change::ALL
                .into_iter()
                .map(|reason| Outcome::NoChange { reason }),
        );
        for outcome in &outcomes {
            let text = summary(outcome);
            assert!(pattern.is_match(&text), "{text:?} is not in openapi.yaml");
        }
        // And the pattern is not a catch-all.
        for text in [
            "parked: applies once the order is refunded",
            "applied: order is now pending",
            "no change: because",
        ] {
            assert!(!pattern.is_match(text), "{text:?}");
        }
    }
}
