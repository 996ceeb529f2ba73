//! Business metrics as CloudWatch Embedded Metric Format: one JSON line on
//! stdout per event, which CloudWatch turns into metrics from the log
//! stream. No API call on the request path, nothing to batch or lose in a
//! frozen container. The namespace is per stack (`METRICS_NAMESPACE`), so
//! two stacks in one account never set off each other's alarms.

use serde_json::{Value, json};
use std::io::Write;

/// Which path recorded a payment. Orders paid by the reconciler while the
/// store's webhook is configured are the sign that webhooks broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaidVia {
    /// Stripe's `payment_intent.succeeded` delivery.
    Webhook,
    /// The customer's own pages asked Stripe: the return from the payment
    /// form, or a payment page that found its intent already paid.
    Return,
    /// The scheduled reconciler asked Stripe.
    Reconciler,
}

impl PaidVia {
    pub fn as_str(self) -> &'static str {
        match self {
            PaidVia::Webhook => "webhook",
            PaidVia::Return => "return",
            PaidVia::Reconciler => "reconciler",
        }
    }
}

/// One thing worth counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// An order moved to `paid` (once per order: the move is a conditional write).
    OrderPaid(PaidVia),
    /// A webhook delivery we could verify, or one we refused (400).
    WebhookDelivery { verified: bool },
    /// What one reconciler run did (`reconcile::Report`).
    ReconcilerRun {
        examined: usize,
        healed: usize,
        deferred: usize,
        dropped: usize,
        errors: usize,
        /// Orders it found paid although the store's webhook is configured.
        paid_with_webhook: usize,
        /// How long the oldest due order it did not get to has been due: 0
        /// while it keeps up, growing when it falls behind.
        oldest_unexamined_due_secs: u64,
    },
}

/// Dimension names and values, and metric names, values and units, of one line.
type Dimensions = Vec<(&'static str, &'static str)>;
type Values = Vec<(&'static str, u64, &'static str)>;

fn counts(values: &[(&'static str, usize)]) -> Values {
    values
        .iter()
        .map(|&(name, count)| (name, u64::try_from(count).unwrap_or(u64::MAX), "Count"))
        .collect()
}

/// Writes metrics under one namespace.
#[derive(Clone, Debug)]
pub struct Metrics {
    namespace: String,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>) -> Self {
        Metrics {
            namespace: namespace.into(),
        }
    }

    pub fn emit(&self, metric: Metric) {
        let now = u64::try_from(crate::clock::now_millis()).unwrap_or(u64::MAX);
        let mut line = self.line(metric, now).to_string();
        line.push('\n');
        // A lost metric line must never fail a request; stdout is the log.
        if let Err(err) = std::io::stdout().lock().write_all(line.as_bytes()) {
            tracing::warn!(error = %err, "could not write a metric line");
        }
    }

    /// The EMF document for `metric` at `timestamp_ms`.
    pub fn line(&self, metric: Metric, timestamp_ms: u64) -> Value {
        let (dimensions, values): (Dimensions, Values) = match metric {
            Metric::OrderPaid(via) => (vec![("Via", via.as_str())], counts(&[("OrdersPaid", 1)])),
            Metric::WebhookDelivery { verified } => (
                vec![("Outcome", if verified { "verified" } else { "refused" })],
                counts(&[("WebhookDeliveries", 1)]),
            ),
            Metric::ReconcilerRun {
                examined,
                healed,
                deferred,
                dropped,
                errors,
                paid_with_webhook,
                oldest_unexamined_due_secs,
            } => {
                let mut values = counts(&[
                    ("ReconcilerExamined", examined),
                    ("ReconcilerHealed", healed),
                    ("ReconcilerDeferred", deferred),
                    ("ReconcilerDropped", dropped),
                    ("ReconcilerErrors", errors),
                    ("ReconcilerPaidWithWebhook", paid_with_webhook),
                ]);
                values.push((
                    "ReconcilerOldestUnexaminedDue",
                    oldest_unexamined_due_secs,
                    "Seconds",
                ));
                (vec![], values)
            }
        };
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    // `[[]]` publishes without dimensions.
                    "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                    "Metrics": values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
                }],
            },
        });
        for (key, value) in dimensions {
            doc[key] = json!(value);
        }
        for (name, value, _) in values {
            doc[name] = json!(value);
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_is_one_count_under_its_path() {
        let line = Metrics::new("CheckoutBest/prod")
            .line(Metric::OrderPaid(PaidVia::Reconciler), 1_700_000_000_123);
        assert_eq!(
            line,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123_u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "CheckoutBest/prod",
                        "Dimensions": [["Via"]],
                        "Metrics": [{"Name": "OrdersPaid", "Unit": "Count"}],
                    }],
                },
                "Via": "reconciler",
                "OrdersPaid": 1,
            })
        );
    }

    #[test]
    fn webhook_deliveries_are_split_by_outcome() {
        let metrics = Metrics::new("n");
        for (verified, outcome) in [(true, "verified"), (false, "refused")] {
            let line = metrics.line(Metric::WebhookDelivery { verified }, 0);
            assert_eq!(line["Outcome"], outcome);
            assert_eq!(line["WebhookDeliveries"], 1);
            assert_eq!(
                line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                json!([["Outcome"]])
            );
        }
    }

    #[test]
    fn a_reconciler_run_reports_every_count_without_dimensions() {
        // The template's alarms look for exactly these names and `[[]]`:
        // a metric published with other dimensions would never reach them.
        let line = Metrics::new("n").line(
            Metric::ReconcilerRun {
                examined: 7,
                healed: 3,
                deferred: 4,
                dropped: 5,
                errors: 1,
                paid_with_webhook: 2,
                oldest_unexamined_due_secs: 1900,
            },
            0,
        );
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([[]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "ReconcilerExamined",
                "ReconcilerHealed",
                "ReconcilerDeferred",
                "ReconcilerDropped",
                "ReconcilerErrors",
                "ReconcilerPaidWithWebhook",
                "ReconcilerOldestUnexaminedDue"
            ]
        );
        for (name, value) in [
            ("ReconcilerExamined", 7),
            ("ReconcilerHealed", 3),
            ("ReconcilerDeferred", 4),
            ("ReconcilerDropped", 5),
            ("ReconcilerErrors", 1),
            ("ReconcilerPaidWithWebhook", 2),
            ("ReconcilerOldestUnexaminedDue", 1900),
        ] {
            assert_eq!(line[name], value, "{name}");
        }
        // The age is in seconds (the alarm's threshold is), the rest counts.
        let units: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Unit"].as_str().unwrap())
            .collect();
        assert_eq!(units[..6], ["Count"; 6]);
        assert_eq!(units[6], "Seconds");
    }
}
