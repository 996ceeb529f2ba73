//! Says in words what is wrong with a store's webhooks, from what we have
//! seen of them. "Orders stay pending after payment" starts here.

use crate::clock;
use crate::store::{StripeConnection, WebhookActivity};
use serde::Serialize;

const RECENT_SECS: u64 = 24 * 60 * 60;
/// Failures say the secret is wrong only when no delivery verified within
/// this long before the last of them (or at any time after it). Longer
/// than `last_webhook_at` can lag while deliveries verify (it is rewritten
/// about every one to two `TOUCH_INTERVAL`s), so anyone can send us
/// forgeries, but they cannot tell a merchant whose deliveries verify at
/// least hourly that their working secret is wrong; short enough that a
/// secret that stopped matching is reported within the hour after the
/// last good delivery, as soon as Stripe delivers (or retries) again.
pub const VERIFIED_WINDOW_SECS: u64 = 60 * 60;

/// The rule above: a failure within the last day, and no verified delivery
/// from `VERIFIED_WINDOW_SECS` before it onwards (edges included).
pub fn signatures_failing(activity: &WebhookActivity, now: u64) -> Option<u64> {
    let failed_at = activity
        .last_failure_at
        .filter(|at| now.saturating_sub(*at) < RECENT_SECS)?;
    let verified_near = activity
        .last_webhook_at
        .is_some_and(|verified| verified.saturating_add(VERIFIED_WINDOW_SECS) >= failed_at);
    (!verified_near).then_some(failed_at)
}

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
    if let Some(at) = signatures_failing(activity, now) {
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
    use crate::store::{WebhookConfig, WebhookSource};
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
            publishable_key_proven_at: None,
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
    fn failures_beside_verified_deliveries_are_not_a_wrong_secret() {
        let failed_at = NOW - 60;
        let with_verified = |last_webhook_at| WebhookActivity {
            last_webhook_at,
            failures: 10_000,
            last_failure_at: Some(failed_at),
            last_failure: Some("no v1 signature matches the store's signing secret".into()),
            ..Default::default()
        };
        let status = |activity| webhook_health(&connection(true, activity), URL, NOW).status;
        // Verified after the failures, or within the window before them.
        assert_eq!(status(with_verified(Some(NOW - 10))), "ok", "after");
        assert_eq!(status(with_verified(Some(failed_at))), "ok", "same second");
        assert_eq!(
            status(with_verified(Some(failed_at - VERIFIED_WINDOW_SECS))),
            "ok",
            "at the window's far edge"
        );
        // Nothing verified in the window, or ever: the secret is wrong.
        assert_eq!(
            status(with_verified(Some(failed_at - VERIFIED_WINDOW_SECS - 1))),
            "attention",
            "just outside the window"
        );
        assert_eq!(status(with_verified(None)), "attention", "never verified");
        // The day's limit still applies to the failures themselves.
        let old = WebhookActivity {
            last_failure_at: Some(NOW - RECENT_SECS),
            ..with_verified(None)
        };
        assert_eq!(signatures_failing(&old, NOW), None);
        let recent = WebhookActivity {
            last_failure_at: Some(NOW - RECENT_SECS + 1),
            ..with_verified(None)
        };
        assert_eq!(
            signatures_failing(&recent, NOW),
            Some(NOW - RECENT_SECS + 1)
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
