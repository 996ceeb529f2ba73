//! Each out-of-order case the load run exercises, reproduced with one
//! delivery at a time (no concurrency involved): a fresh order per
//! scenario, its events delivered in a fixed order (Stripe's redeliveries
//! written out) through `shared::webhooks::process`, the order read back
//! after each, then the stored order next to where the order is at Stripe.

use super::lifecycle::{self, ModelOutcome, ModelState, StripeEvent};
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
    /// The order as stored after each delivery.
    pub after: Vec<Stored>,
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
            name: "two refunds before the payment, the full one first",
            events: vec![StripeEvent::Succeeded, refund(1000), refund(AMOUNT)],
            delivered: vec![2, 1, 0],
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
            name: "dispute closed (won) and created before the payment",
            events: vec![
                StripeEvent::Succeeded,
                StripeEvent::DisputeCreated,
                StripeEvent::DisputeClosed { won: true },
            ],
            delivered: vec![2, 1, 0],
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
        let mut ids = StripeIds::new(&mut rng);
        // Made (and paid) in the Stripe emulator: the webhook confirms a
        // `succeeded` there before it pays the order.
        let paid = scenario.events.contains(&StripeEvent::Succeeded);
        let (checkout, payment_intent) =
            fixtures::create_checkout_with_stripe_intent(app, store_id, AMOUNT, paid).await?;
        ids.payment_intent = payment_intent;
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
        let (mut answers, mut after) = (Vec::new(), Vec::new());
        for &i in &scenario.delivered {
            let body = bodies[i].as_bytes();
            let signature = payload::sign(&whsec, clock::now(), body);
            answers.push(send::result_of(
                webhooks::process(app, Some(store_id), Some(&signature), body).await,
            ));
            after.push(verify::read_order(client, table, &checkout.order_id).await?);
        }
        let stored = verify::read_order(client, table, &checkout.order_id).await?;
        let truth = lifecycle::in_order_final(&scenario.events, AMOUNT);
        out.push(Reproduced {
            scenario,
            answers,
            after,
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

fn stored_state(stored: &Stored) -> String {
    let mut out = state(stored.status, stored.amount_refunded);
    match stored.parked.len() {
        0 => {}
        1 => out.push_str(", 1 event parked"),
        n => {
            let _ = write!(out, ", {n} events parked");
        }
    }
    out
}

/// Whether each answer, and the order after it (status, refund total,
/// how many events parked), is what the model gives for the same
/// deliveries one at a time.
pub fn agrees_with_model(r: &Reproduced) -> bool {
    let events = &r.scenario.events;
    let (mut state, mut seen) = (ModelState::NEW, 0u64);
    r.answers.len() == r.scenario.delivered.len()
        && r.scenario
            .delivered
            .iter()
            .zip(&r.answers)
            .zip(&r.after)
            .all(|((&i, answer), after)| {
                let outcome = lifecycle::step(&mut state, &mut seen, events, i, AMOUNT);
                let same_answer = match (answer, outcome) {
                    (AttemptResult::Applied { to }, ModelOutcome::Applied(model)) => {
                        *to == model.as_str()
                    }
                    (AttemptResult::NoChange { reason }, ModelOutcome::Refused(model)) => {
                        *reason == model
                    }
                    (AttemptResult::Parked { until }, ModelOutcome::Parked(model)) => {
                        *until == model.as_str()
                    }
                    (AttemptResult::Duplicate, ModelOutcome::Duplicate) => true,
                    _ => false,
                };
                same_answer
                    && after.status == state.status
                    && after.amount_refunded == state.amount_refunded
                    && after.parked.len() == state.parked.count_ones() as usize
            })
}

pub fn markdown(reproduced: &[Reproduced]) -> String {
    let mut out = format!(
        "Each on a new order of {AMOUNT} (EUR cents), one delivery at a time through `shared::webhooks::process` \
(a delivery listed twice is Stripe's redelivery), with the same binary (`--no-repro` skips it). After each answer, \
the order as read back: an answer names only its own event's move, the events it released show in the order.\n\n\
| scenario | deliveries, in order → answer [order after it] | stored | at Stripe | answers and orders as the model's (`lifecycle::step`) |\n|---|---|---|---|---|\n"
    );
    for r in reproduced {
        let steps: Vec<String> = r
            .scenario
            .delivered
            .iter()
            .zip(&r.answers)
            .zip(&r.after)
            .map(|((&i, a), after)| {
                let answer = match a {
                    AttemptResult::Applied { to } => format!("Applied → {to}"),
                    AttemptResult::Duplicate => "Duplicate".into(),
                    AttemptResult::NoChange { reason } => format!("NoChange ({reason})"),
                    AttemptResult::Parked { until } => format!("Parked until {until}"),
                    other => format!("{other:?}"),
                };
                format!(
                    "{} → {answer} [{}]",
                    name(&r.scenario.events[i]),
                    stored_state(after)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.scenario.name,
            steps.join("; "),
            stored_state(&r.stored),
            state(r.at_stripe.0, r.at_stripe.1),
            if agrees_with_model(r) {
                "yes"
            } else {
                "**no**"
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, refunded: Option<u64>, parked: &[&str]) -> Stored {
        Stored {
            status,
            amount_refunded: refunded,
            last_payment_error: None,
            review_reason: None,
            status_as_of: None,
            parked: parked.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    fn refund_first(answers: Vec<AttemptResult>, after: Vec<Stored>) -> Reproduced {
        let scenario = scenarios().remove(0);
        assert_eq!(scenario.delivered, [1, 0, 1]);
        Reproduced {
            scenario,
            answers,
            stored: after[after.len() - 1].clone(),
            after,
            at_stripe: (OrderStatus::Refunded, Some(AMOUNT)),
        }
    }

    #[test]
    fn a_reproduction_agrees_only_with_the_models_answers_and_orders() {
        let answers = || {
            vec![
                AttemptResult::Parked { until: "paid" },
                AttemptResult::Applied { to: "paid" },
                AttemptResult::Duplicate,
            ]
        };
        let refunded = order(OrderStatus::Refunded, Some(AMOUNT), &[]);
        let after = || {
            vec![
                order(OrderStatus::Pending, None, &["evt_refund"]),
                refunded.clone(),
                refunded.clone(),
            ]
        };
        assert!(agrees_with_model(&refund_first(answers(), after())));

        // The payment applied but the refund not released.
        let mut unreleased = after();
        unreleased[1] = order(OrderStatus::Paid, None, &["evt_refund"]);
        unreleased[2] = unreleased[1].clone();
        assert!(!agrees_with_model(&refund_first(answers(), unreleased)));
        // Acknowledged without parking (the refund would be lost).
        let mut dropped = answers();
        dropped[0] = AttemptResult::NoChange {
            reason: lifecycle::NOT_ALLOWED,
        };
        assert!(!agrees_with_model(&refund_first(dropped, after())));
        // Parked until the wrong status.
        let mut wrong = answers();
        wrong[0] = AttemptResult::Parked { until: "disputed" };
        assert!(!agrees_with_model(&refund_first(wrong, after())));
    }
}
