//! Each out-of-order case the load run exercises, reproduced with one
//! delivery at a time (no concurrency involved): a fresh order per
//! scenario, its events delivered in a fixed order (redeliveries after a
//! non-2xx written out) through `shared::webhooks::process`, then the
//! stored order next to where the order is at Stripe.

use super::lifecycle::{self, StripeEvent};
use super::payload::{self, StripeIds, Subject};
use super::send::{self, AttemptResult};
use super::verify::{self, Stored};
use crate::BoxError;
use crate::fixtures;
use crate::rng::Rng;
use shared::domain::OrderStatus;
use shared::webhooks;
use shared::{App, clock};
use std::fmt::Write as _;

pub struct Scenario {
    pub name: &'static str,
    /// In the order Stripe generates them.
    pub events: Vec<StripeEvent>,
    /// Indices into `events`, in the order they are delivered.
    pub delivered: Vec<usize>,
}

pub struct Reproduced {
    pub scenario: Scenario,
    pub answers: Vec<AttemptResult>,
    pub stored: Stored,
    pub at_stripe: (OrderStatus, Option<u64>),
}

pub const AMOUNT: u64 = 2999;

pub fn scenarios() -> Vec<Scenario> {
    let declined = StripeEvent::PaymentFailed {
        message: "The customer's bank account could not be debited.",
    };
    let refund = |amount_refunded| StripeEvent::Refunded { amount_refunded };
    vec![
        Scenario {
            name: "refund delivered before the payment, then again",
            events: vec![StripeEvent::Succeeded, refund(AMOUNT)],
            delivered: vec![1, 0, 1],
        },
        Scenario {
            name: "two partial refunds out of order",
            events: vec![StripeEvent::Succeeded, refund(1000), refund(2000)],
            delivered: vec![0, 2, 1],
        },
        Scenario {
            name: "dispute closed (lost) before it was created, then again",
            events: vec![
                StripeEvent::Succeeded,
                StripeEvent::DisputeCreated,
                StripeEvent::DisputeClosed { won: false },
            ],
            delivered: vec![0, 2, 1, 2],
        },
        Scenario {
            name: "a won dispute's closure delivered twice",
            events: vec![
                StripeEvent::Succeeded,
                StripeEvent::DisputeCreated,
                StripeEvent::DisputeClosed { won: true },
            ],
            delivered: vec![0, 1, 2, 2],
        },
        Scenario {
            name: "cancellation overtakes the SEPA failure",
            events: vec![
                StripeEvent::Processing,
                declined.clone(),
                StripeEvent::Canceled,
            ],
            delivered: vec![0, 2, 1],
        },
        Scenario {
            name: "stale processing after the failure, then the cancellation",
            events: vec![StripeEvent::Processing, declined, StripeEvent::Canceled],
            delivered: vec![1, 0, 2],
        },
    ]
}

/// Runs every scenario on its own new order of one new store.
pub async fn run(
    app: &App,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<Reproduced>, BoxError> {
    // New ids each run: a `PI#` link is forever.
    let mut rng = Rng::new(uuid::Uuid::new_v4().as_u64_pair().0);
    let (store_id, whsec) = fixtures::connect_store_with_webhook(app).await?;
    let api_version = shared::stripe::webhook_endpoints::api_version();
    let mut out = Vec::new();
    for scenario in scenarios() {
        let ids = StripeIds::new(&mut rng);
        let checkout =
            fixtures::create_checkout_with_intent(app, store_id, AMOUNT, &ids.payment_intent)
                .await?;
        let subject = Subject {
            store_id,
            order_id: &checkout.order_id,
            amount: AMOUNT,
            ids: &ids,
        };
        // Dated as the load run dates them: a minute apart, in Stripe's
        // order (what `lifecycle::step` assumes).
        let first = clock::now() - 3600;
        let mut refunds = 0;
        let bodies: Vec<String> = scenario
            .events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                if matches!(event, StripeEvent::Refunded { .. }) {
                    refunds += 1;
                }
                let id = format!("evt_3{}", rng.alphanumeric(23));
                let created = lifecycle::created_at(first, i);
                payload::event_body(&id, event, &subject, refunds, created, &api_version)
            })
            .collect();
        let mut answers = Vec::new();
        for &i in &scenario.delivered {
            let body = bodies[i].as_bytes();
            let signature = payload::sign(&whsec, clock::now(), body);
            answers.push(send::result_of(
                webhooks::process(app, Some(store_id), Some(&signature), body).await,
            ));
        }
        let stored = verify::read_order(client, table, &checkout.order_id).await?;
        let truth = lifecycle::in_order_final(&scenario.events, AMOUNT);
        out.push(Reproduced {
            scenario,
            answers,
            stored,
            at_stripe: (truth.status, truth.amount_refunded),
        });
    }
    Ok(out)
}

fn name(event: &StripeEvent) -> String {
    match event {
        StripeEvent::Refunded { amount_refunded } => {
            format!("`charge.refunded` (amount_refunded {amount_refunded})")
        }
        StripeEvent::DisputeClosed { won } => format!(
            "`charge.dispute.closed` ({})",
            if *won { "won" } else { "lost" }
        ),
        other => format!("`{}`", other.event_type()),
    }
}

fn state(status: OrderStatus, refunded: Option<u64>) -> String {
    match refunded {
        Some(r) => format!("{status} (amount_refunded {r})"),
        None => status.to_string(),
    }
}

pub fn markdown(reproduced: &[Reproduced]) -> String {
    let mut out = format!(
        "Each on a new order of {AMOUNT} (EUR cents), one delivery at a time through `shared::webhooks::process` \
(a delivery listed twice is Stripe's redelivery), with the same binary (`--no-repro` skips it):\n\n\
| scenario | deliveries, in order → answers | stored | at Stripe |\n|---|---|---|---|\n"
    );
    for r in reproduced {
        let steps: Vec<String> = r
            .scenario
            .delivered
            .iter()
            .zip(&r.answers)
            .map(|(&i, a)| {
                let answer = match a {
                    AttemptResult::Applied { to } => format!("Applied → {to}"),
                    AttemptResult::Duplicate => "Duplicate".into(),
                    AttemptResult::NoChange { reason } => format!("NoChange ({reason})"),
                    AttemptResult::TooEarly => "409 event_too_early".into(),
                    other => format!("{other:?}"),
                };
                format!("{} → {answer}", name(&r.scenario.events[i]))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            r.scenario.name,
            steps.join("; "),
            state(r.stored.status, r.stored.amount_refunded),
            state(r.at_stripe.0, r.at_stripe.1),
        );
    }
    out
}
