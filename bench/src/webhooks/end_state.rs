//! After the run (not measured): where every order ended, against what
//! production's own decision code makes of the facts delivered. An order's
//! events, once each in Stripe's order, are read by the webhook's parser
//! (`Envelope`), turned into the change the webhook asks (`event_change`;
//! for a payment, `stripe_view` and `confirmed_change` on the intent as
//! Stripe holds it) and judged on the order as it stands, as first written
//! and then fitted (`Change::judge`, `Change::fitted`), as the webhook's
//! guarded write does; an allowed change is applied with the fields that
//! write sets. Nothing here restates a rule of the state machine.
//!
//! No interleaving is searched: the property tests of the state machine
//! (`shared/src/webhooks/properties.rs`) deliver each story in any order
//! with duplicates. This asks whether the real service, concurrent and
//! against DynamoDB, ends where those decisions say, records every event
//! once, and answers every delivery.

use super::send::{AttemptResult, Measured};
use super::workload::Workload;
use crate::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::checkout::{StripeView, stripe_view};
use shared::domain::{Order, OrderStatus};
use shared::stripe::{IntentStatus, PaymentIntent};
use shared::webhooks::verdict::Verdict;
use shared::webhooks::{Effect, Envelope, confirmed_change, event_change};
use shared::{App, clock};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The answers, by kind.
#[derive(Debug, Default)]
pub struct Answers {
    pub applied: usize,
    pub duplicate: usize,
    pub no_change: BTreeMap<&'static str, usize>,
    pub parked: usize,
    pub flagged: usize,
    /// 5xx (delivered again) and 4xx answers, by status and code.
    pub failed: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
pub struct EndState {
    pub answers: Answers,
    /// Orders whose stored status and refunded total are what production
    /// decides for their events.
    pub as_decided: usize,
    /// The others: order index, stored, decided.
    pub differ: Vec<(usize, String, String)>,
    /// Distinct events not in their order's `processed_events`.
    pub unrecorded: usize,
    /// Events answered as new (applied, no change, parked, flagged) more
    /// than once: recorded twice, or applied twice.
    pub double_transitions: usize,
    /// Deliveries never answered 2xx.
    pub never_acknowledged: usize,
    /// Events still parked on their order after the run (information: one
    /// the order would take shows as a difference).
    pub parked_left: usize,
}

impl EndState {
    pub fn lost_effects(&self) -> usize {
        self.unrecorded + self.differ.len()
    }
}

pub async fn check(
    app: &App,
    dynamodb: &aws_sdk_dynamodb::Client,
    workload: &Workload,
    measured: &Measured,
) -> Result<EndState, BoxError> {
    let mut end = EndState::default();
    // Per (order, event): answers that took the event as new.
    let mut first_seen: HashMap<(usize, usize), usize> = HashMap::new();
    for (delivery, attempts) in workload.deliveries.iter().zip(&measured.attempts) {
        let mut acknowledged = false;
        for attempt in attempts {
            let a = &mut end.answers;
            match &attempt.result {
                AttemptResult::Duplicate => a.duplicate += 1,
                AttemptResult::Failed { status, code } => {
                    *a.failed.entry(format!("{status} {code}")).or_default() += 1;
                }
                new => {
                    match new {
                        AttemptResult::Applied { .. } => a.applied += 1,
                        AttemptResult::NoChange { reason } => {
                            *a.no_change.entry(*reason).or_default() += 1
                        }
                        AttemptResult::Parked { .. } => a.parked += 1,
                        _ => a.flagged += 1,
                    }
                    *first_seen
                        .entry((delivery.order, delivery.event))
                        .or_default() += 1;
                }
            }
            acknowledged |= attempt.result.succeeded();
        }
        end.never_acknowledged += usize::from(!acknowledged);
    }
    end.double_transitions = first_seen.values().filter(|n| **n > 1).count();

    let table = &app.config.table_name;
    for (i, plan) in workload.orders.iter().enumerate() {
        let stored = app
            .table
            .get_order(&plan.order_id)
            .await?
            .ok_or_else(|| format!("order {} is gone", plan.order_id))?;
        let item = dynamodb
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("ORDER#{}", plan.order_id)))
            .key("sk", AttributeValue::S("ORDER".into()))
            .consistent_read(true)
            .send()
            .await?
            .item
            .unwrap_or_default();
        let recorded: HashSet<&String> = match item.get("processed_events") {
            Some(AttributeValue::Ss(ids)) => ids.iter().collect(),
            _ => HashSet::new(),
        };
        end.unrecorded += plan
            .event_ids
            .iter()
            .filter(|id| !recorded.contains(id))
            .count();
        end.parked_left += stored.parked.len();

        let decided = decided_end(&stored, &workload.bodies[i], plan.paid())?;
        let show = |o: &Order| format!("{}, amount_refunded {:?}", o.status, o.amount_refunded);
        if (stored.status, stored.amount_refunded) == (decided.status, decided.amount_refunded) {
            end.as_decided += 1;
        } else {
            end.differ.push((i, show(&stored), show(&decided)));
        }
    }
    Ok(end)
}

/// The order as production's decisions leave it after `bodies` (the
/// order's events in Stripe's order, once each), from the order as it was
/// before the run (`stored` with its webhook-written fields reset). `paid`:
/// Stripe holds the intent succeeded.
fn decided_end(stored: &Order, bodies: &[Vec<u8>], paid: bool) -> Result<Order, BoxError> {
    let mut order = Order {
        status: OrderStatus::Pending,
        amount_refunded: None,
        status_as_of: None,
        parked: Vec::new(),
        ..stored.clone()
    };
    let intent = PaymentIntent {
        id: order
            .payment_intent_id
            .clone()
            .ok_or("order without intent")?,
        status: if paid {
            IntentStatus::Succeeded
        } else {
            IntentStatus::RequiresPaymentMethod
        },
        amount: order.total.minor(),
        currency: order.total.currency().code().to_owned(),
        livemode: Some(false),
        client_secret: None,
        order_id: Some(order.order_id.to_string()),
        store_id: Some(order.store_id.to_string()),
        last_error: None,
    };
    for body in bodies {
        let envelope = Envelope::parse(body)?;
        let effect = envelope.effect()?;
        let mut change = match &effect {
            Effect::Transition(transition) => event_change(&envelope, transition),
            Effect::Succeeded { payment_intent } => match stripe_view(&order, &intent) {
                StripeView::Status(to) => confirmed_change(
                    &envelope,
                    payment_intent,
                    to,
                    &intent,
                    order.mode,
                    clock::now(),
                ),
                other => return Err(format!("{}: Stripe's view {other:?}", envelope.id).into()),
            },
            other => return Err(format!("{}: effect {other:?}", envelope.id).into()),
        };
        // As the guarded write: as first written, then fitted to the order.
        if change.judge(&order) != Verdict::Allowed {
            change = change.fitted(&order);
        }
        match change.judge(&order) {
            Verdict::Allowed => {
                order.status = change.to;
                order.amount_refunded = change.amount_refunded.or(order.amount_refunded);
                order.status_as_of = change.status_as_of.or(order.status_as_of);
            }
            Verdict::NoChange { .. } => {}
            other => return Err(format!("{} in Stripe's order: {other:?}", envelope.id).into()),
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::lifecycle::{Category, Lifecycle, StripeEvent, created_at};
    use crate::webhooks::payload::{Subject, event_body};
    use shared::domain::{Currency, Mode, Money, StoreId};

    #[test]
    fn production_decides_each_story_ends_where_it_is_at_stripe() {
        let store_id = StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").unwrap();
        let eur = Currency::parse("eur").unwrap();
        let order = Order {
            payment_intent_id: Some("pi_3bench".into()),
            ..Order::pending(store_id, Mode::Test, Money::new(1200, eur), Vec::new(), 0)
        };
        use OrderStatus::*;
        for (category, status, refunded) in [
            (Category::Paid, Paid, None),
            (Category::Refunded, Refunded, Some(1200)),
            (Category::PartiallyRefunded, PartiallyRefunded, Some(800)),
            (Category::DisputeWon, Paid, None),
            (Category::DisputeLost, Lost, None),
            (Category::Canceled, Canceled, None),
        ] {
            let story = Lifecycle {
                category,
                amount: 1200,
                declines: vec![true, false],
                sepa_success: true,
                refunds: 2,
            };
            let subject = Subject {
                store_id,
                order_id: &order.order_id,
                amount: 1200,
                payment_intent: "pi_3bench",
            };
            let events = story.events();
            let bodies: Vec<Vec<u8>> = (events.iter().enumerate())
                .map(|(i, e)| {
                    event_body(
                        &format!("evt_{i}"),
                        e,
                        &subject,
                        created_at(1_700_000_000, i),
                    )
                })
                .map(String::into_bytes)
                .collect();
            let paid = events.contains(&StripeEvent::Succeeded);
            let end = decided_end(&order, &bodies, paid).unwrap();
            assert_eq!(
                (end.status, end.amount_refunded),
                (status, refunded),
                "{category:?}"
            );
        }
    }
}
