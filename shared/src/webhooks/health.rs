//! Says in words what is wrong with a store's webhooks, from what we have
//! seen of them. "Orders stay pending after payment" starts here.

use crate::clock;
use crate::store::StripeConnection;
use serde::Serialize;

const RECENT_SECS: u64 = 24 * 60 * 60;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct WebhookHealth {
    /// `ok`, `attention` or `not_configured`.
    pub status: &'static str,
    pub problems: Vec<String>,
}

pub fn webhook_health(connection: &StripeConnection, webhook_url: &str, now: u64) -> WebhookHealth {
    let activity = &connection.activity;
    let mut problems = Vec::new();
    if connection.webhook_secret.is_none() {
        problems.push(format!(
            "No webhook signing secret is set, so Stripe cannot tell us about payments. Orders are still \
             confirmed when customers return from paying and by the reconciler within minutes, but refunds \
             and disputes are not seen. Add an endpoint in Stripe for {webhook_url} and save its signing secret."
        ));
        return WebhookHealth {
            status: "not_configured",
            problems,
        };
    }
    if let Some(at) = activity
        .last_failure_at
        .filter(|at| now.saturating_sub(*at) < RECENT_SECS)
    {
        problems.push(format!(
            "{} deliveries failed verification, the last at {} ({}). The signing secret saved here probably \
             does not match the endpoint's secret in Stripe: copy it again from the endpoint.",
            activity.failures.max(1),
            clock::rfc3339(at),
            activity.last_failure.as_deref().unwrap_or("unknown reason")
        ));
    }
    let quiet_since = activity.last_webhook_at.unwrap_or(connection.connected_at);
    if let Some(paid) = activity
        .last_api_payment_at
        .filter(|paid| *paid > quiet_since)
    {
        let since = match activity.last_webhook_at {
            Some(at) => format!("since {}", clock::rfc3339(at)),
            None => "ever".to_owned(),
        };
        problems.push(format!(
            "Orders were paid (last at {}) but no webhook has arrived {since}. Check the endpoint in Stripe: \
             URL {webhook_url}, enabled, and subscribed to payment_intent.succeeded.",
            clock::rfc3339(paid)
        ));
    }
    WebhookHealth {
        status: if problems.is_empty() {
            "ok"
        } else {
            "attention"
        },
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KeyKind, PublishableKey, StoreId};
    use crate::store::{WebhookActivity, WebhookConfig, WebhookSource};
    use crate::vault::SealedSecret;

    fn connection(with_secret: bool, activity: WebhookActivity) -> StripeConnection {
        let sealed = SealedSecret {
            wrapped_key: vec![1],
            token: "t".into(),
        };
        StripeConnection {
            store_id: StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").unwrap(),
            publishable_key: PublishableKey::parse("pk_test_51HqLyjWDarjtT1zdp7").unwrap(),
            key_kind: KeyKind::Secret,
            account_id: None,
            secret_key: sealed.clone(),
            webhook_secret: with_secret.then_some(WebhookConfig {
                secret: sealed,
                source: WebhookSource::Manual,
                endpoint_id: None,
            }),
            connected_at: 1_000,
            updated_at: 1_000,
            version: 1,
            activity,
            last_key_replacement: None,
        }
    }

    const NOW: u64 = 100_000;
    const URL: &str = "https://pay.example/webhook/stripe/0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";

    #[test]
    fn healthy_when_webhooks_arrive() {
        let activity = WebhookActivity {
            last_webhook_at: Some(NOW - 10),
            last_api_payment_at: Some(NOW - 20),
            ..Default::default()
        };
        assert_eq!(
            webhook_health(&connection(true, activity), URL, NOW),
            WebhookHealth {
                status: "ok",
                problems: vec![]
            }
        );
    }

    #[test]
    fn says_when_no_secret_is_set() {
        let health = webhook_health(&connection(false, WebhookActivity::default()), URL, NOW);
        assert_eq!(health.status, "not_configured");
        assert!(health.problems[0].contains(URL));
    }

    #[test]
    fn says_when_signatures_fail_recently() {
        let activity = WebhookActivity {
            failures: 3,
            last_failure_at: Some(NOW - 60),
            last_failure: Some("no v1 signature matches".into()),
            ..Default::default()
        };
        let health = webhook_health(&connection(true, activity.clone()), URL, NOW);
        assert_eq!(health.status, "attention");
        assert!(
            health.problems[0].starts_with("3 deliveries failed"),
            "{:?}",
            health.problems
        );
        let old = WebhookActivity {
            last_failure_at: Some(NOW - RECENT_SECS - 1),
            ..activity
        };
        assert_eq!(
            webhook_health(&connection(true, old), URL, NOW).status,
            "ok"
        );
    }

    #[test]
    fn says_when_orders_are_paid_but_no_webhook_came() {
        let never = WebhookActivity {
            last_api_payment_at: Some(NOW - 5),
            ..Default::default()
        };
        let health = webhook_health(&connection(true, never), URL, NOW);
        assert!(
            health.problems[0].contains("no webhook has arrived ever"),
            "{:?}",
            health.problems
        );
        let stale = WebhookActivity {
            last_webhook_at: Some(NOW - 500),
            last_api_payment_at: Some(NOW - 5),
            ..Default::default()
        };
        assert_eq!(
            webhook_health(&connection(true, stale), URL, NOW).status,
            "attention"
        );
    }
}
