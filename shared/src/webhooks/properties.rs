//! Property tests of the order state machine as webhooks drive it: a set of
//! Stripe facts about one order (attempts, the payment, refunds, a refund
//! that fails, a dispute and its closure), built as real Stripe events,
//! delivered in any order with any duplicates. The simulator below keeps
//! the order in memory and asks production for every decision: the event's
//! parsing and effect (`Envelope`), the change it asks (`event_change`,
//! `confirmed_change`, `stripe_view`), whether the guarded write takes it
//! (`Change::judge`, cross-checked against the write's status condition
//! `OrderStatus::sources_of`), how a refusal is fitted and explained
//! (`Change::fitted`), parking and release (`release_decision`, `ready`).
//! It restates no rule of the state machine.
//!
//! CI runs `CASES` cases; for a longer local run set `PROPTEST_CASES`
//! (e.g. `PROPTEST_CASES=1000000 cargo test -p checkout-shared properties`).

use super::apply::event_change;
use super::confirm::confirmed_change;
use super::event::{Effect, Envelope};
use super::parked::{ready, release_decision};
use super::verdict::{Change, Verdict};
use crate::checkout::{StripeView, stripe_view};
use crate::domain::{Money, Order, OrderStatus, ParkedEvent};
use crate::store::TransitionDetails;
use crate::stripe::{IntentStatus, PaymentIntent};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

/// Cases per property in CI (each a few dozen deliveries: well under a second
/// per thousand).
const CASES: u32 = 10_000;
const AMOUNT: u64 = 2999;
const INTENT: &str = "pi_3MtwBwLkdIwHu7ix28a3tqPa";
/// Stripe's clock: every event is created before the webhook reads the intent.
const T0: u64 = 1_700_000_000;
const NOW: u64 = 1_800_000_000;

/// Stripe's sample objects, read once.
fn fixture(name: &str) -> Value {
    static FIXTURES: LazyLock<HashMap<&str, Value>> = LazyLock::new(|| {
        [
            (
                "payment_intent",
                include_str!("../../../tests/system/fixtures/stripe/payment_intent.json"),
            ),
            (
                "charge",
                include_str!("../../../tests/system/fixtures/stripe/charge.json"),
            ),
            (
                "refund",
                include_str!("../../../tests/system/fixtures/stripe/refund.json"),
            ),
            (
                "dispute",
                include_str!("../../../tests/system/fixtures/stripe/dispute.json"),
            ),
        ]
        .into_iter()
        .map(|(name, raw)| (name, serde_json::from_str(raw).expect("fixture")))
        .collect()
    });
    FIXTURES[name].clone()
}

/// Stripe's sample event as JSON text without the fields each event sets
/// (`id`, `type`, `created`, `data`), in test mode: written once, since
/// every case makes dozens of events.
static EVENT_REST: LazyLock<String> = LazyLock::new(|| {
    let mut event = crate::stripe::samples::sample("event");
    let fields = event.as_object_mut().expect("an object");
    for set_per_event in ["id", "type", "created", "data"] {
        fields.remove(set_per_event);
    }
    fields.insert("livemode".into(), json!(false));
    event.to_string()
});

/// Stripe's sample `name` with `fields` set, as JSON text: written once,
/// since the objects a case uses repeat across cases.
fn object(name: &str, fields: &[(&str, Value)]) -> Arc<str> {
    thread_local! {
        static WRITTEN: std::cell::RefCell<HashMap<String, Arc<str>>> = Default::default();
    }
    WRITTEN.with_borrow_mut(|written| {
        written
            .entry(format!("{name} {fields:?}"))
            .or_insert_with(|| {
                let mut object = fixture(name);
                for (field, value) in fields {
                    object[*field] = value.clone();
                }
                object.to_string().into()
            })
            .clone()
    })
}

/// The event as production reads it; read once per distinct event.
fn parsed(event: String) -> Arc<Envelope> {
    thread_local! {
        static READ: std::cell::RefCell<HashMap<String, Arc<Envelope>>> = Default::default();
    }
    READ.with_borrow_mut(|read| {
        read.entry(event)
            .or_insert_with_key(|event| {
                Arc::new(Envelope::parse(event.as_bytes()).expect("a Stripe event"))
            })
            .clone()
    })
}

/// How a dispute ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closure {
    Won,
    WarningClosed,
    Lost,
}

impl Closure {
    fn as_str(self) -> &'static str {
        match self {
            Closure::Won => "won",
            Closure::WarningClosed => "warning_closed",
            Closure::Lost => "lost",
        }
    }
}

/// What happened to one PaymentIntent at Stripe, in Stripe's order.
#[derive(Clone, Debug)]
struct Facts {
    /// Failed attempts, each `true` when it was `processing` first.
    failed_attempts: Vec<bool>,
    /// The payment: `Some(processing first)`.
    success: Option<bool>,
    /// Refund amounts, in order (only after the payment).
    refunds: Vec<u64>,
    /// The last refund failed (Stripe gave its amount back).
    last_refund_failed: bool,
    /// A dispute, and its closure once closed (not on a fully refunded charge).
    dispute: Option<Option<Closure>>,
}

/// One Stripe event, as Stripe would send it, read by production's parser
/// (once: every delivery of it reads the same bytes).
#[derive(Clone)]
struct Fact {
    id: String,
    kind: &'static str,
    envelope: Arc<Envelope>,
}

impl std::fmt::Debug for Fact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.kind)
    }
}

/// Whether a delivery keeps to what the webhook can order by itself. Two
/// kinds of early news it cannot (production limitations, see the report
/// of issue 15): news of a refund (`charge.refunded`, or its failure) that
/// reaches an order already disputed is dropped, since nothing but the
/// closure leaves `disputed` and the total is not recorded on its own; and
/// a refund's failure that arrives before its refund was recorded is
/// dropped (`REFUND_NOT_RECORDED`; it is not parked, as it has no status
/// to wait for); and news of the dispute that reaches an order fully
/// refunded only until the refund's failure arrives is dropped too
/// (`has_reached` counts `refunded` as past every dispute, though a failed
/// refund can bring it back). So: every refund fact is first delivered
/// before any news of the dispute, and the failure after the payment and
/// every refund.
fn orderable(deliveries: &[Fact]) -> bool {
    let first = |kind: &str| deliveries.iter().position(|f| f.kind == kind);
    let last_first = |kind: &str| {
        let mut seen = HashSet::new();
        deliveries
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == kind && seen.insert(&f.id))
            .map(|(i, _)| i)
            .last()
    };
    let refund_news = [
        last_first("charge.refunded"),
        first("charge.refund.updated"),
    ];
    let dispute = deliveries
        .iter()
        .position(|f| f.kind.starts_with("charge.dispute."));
    let before_dispute = match dispute {
        Some(dispute) => refund_news.iter().flatten().all(|&i| i < dispute),
        None => true,
    };
    let failure_last = match first("charge.refund.updated") {
        Some(failure) => {
            last_first("charge.refunded").is_none_or(|i| i < failure)
                && first("payment_intent.succeeded").is_some_and(|i| i < failure)
        }
        None => true,
    };
    before_dispute && failure_last
}

/// `deliveries` with the fewest moves that make it `orderable`: every
/// delivery of the failure before the payment's or a refund's first put just
/// after the last of these, then every delivery of the dispute's news
/// before the last first delivery of refund news put just after it (each
/// group in its order).
fn orderable_from(deliveries: Vec<Fact>) -> Vec<Fact> {
    let firsts = |deliveries: &[Fact], kind: &str| -> Vec<usize> {
        let mut seen = HashSet::new();
        deliveries
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == kind && seen.insert(f.id.clone()))
            .map(|(i, _)| i)
            .collect()
    };
    let after_payment_and_refunds = firsts(&deliveries, "charge.refunded")
        .into_iter()
        .chain(firsts(&deliveries, "payment_intent.succeeded"))
        .max();
    let deliveries = move_after(deliveries, after_payment_and_refunds, |kind| {
        kind == "charge.refund.updated"
    });
    let last_refund_news = firsts(&deliveries, "charge.refunded")
        .into_iter()
        .chain(firsts(&deliveries, "charge.refund.updated"))
        .max();
    move_after(deliveries, last_refund_news, |kind| {
        kind.starts_with("charge.dispute.")
    })
}

/// Every delivery of a `kind` before `last` moved to just after it.
fn move_after(
    deliveries: Vec<Fact>,
    last: Option<usize>,
    kind: impl Fn(&str) -> bool,
) -> Vec<Fact> {
    let Some(last) = last else {
        return deliveries;
    };
    let (early, rest): (Vec<_>, Vec<_>) = deliveries
        .into_iter()
        .enumerate()
        .partition(|(i, f)| *i < last && kind(f.kind));
    let at = rest.iter().position(|(i, _)| *i == last).expect("kept") + 1;
    let mut rest: Vec<Fact> = rest.into_iter().map(|(_, f)| f).collect();
    rest.splice(at..at, early.into_iter().map(|(_, f)| f));
    rest
}

impl Facts {
    fn refunded_totals(&self) -> Vec<u64> {
        let mut total = 0;
        self.refunds
            .iter()
            .map(|amount| {
                total += amount;
                total
            })
            .collect()
    }

    /// The refunded total Stripe ends with.
    fn refunded(&self) -> u64 {
        let last = self.refunded_totals().last().copied().unwrap_or(0);
        match (self.last_refund_failed, self.refunds.last()) {
            (true, Some(failed)) => last - failed,
            _ => last,
        }
    }

    /// Every event these facts make, in Stripe's order.
    fn events(&self) -> Vec<Fact> {
        let mut events = Vec::new();
        let mut push = |kind: &'static str, object: Arc<str>| {
            let n = events.len() as u64;
            let id = format!("evt_{n}");
            let envelope = format!(
                r#"{{"id":"{id}","type":"{kind}","created":{},"data":{{"object":{object}}},{}"#,
                T0 + n,
                &EVENT_REST[1..]
            );
            events.push(Fact {
                id,
                kind,
                envelope: parsed(envelope),
            });
        };
        let intent = |status: &str, failed: bool| {
            let error = json!({"code": "card_declined", "message": "Your card was declined."});
            object(
                "payment_intent",
                &[
                    ("id", json!(INTENT)),
                    ("amount", json!(AMOUNT)),
                    ("currency", json!("eur")),
                    ("status", json!(status)),
                    (
                        "last_payment_error",
                        if failed { error } else { Value::Null },
                    ),
                ],
            )
        };
        for processing in &self.failed_attempts {
            if *processing {
                push("payment_intent.processing", intent("processing", false));
            }
            push(
                "payment_intent.payment_failed",
                intent("requires_payment_method", true),
            );
        }
        let Some(processing) = self.success else {
            return events;
        };
        if processing {
            push("payment_intent.processing", intent("processing", false));
        }
        push("payment_intent.succeeded", intent("succeeded", false));
        for total in self.refunded_totals() {
            let charge = object(
                "charge",
                &[
                    ("payment_intent", json!(INTENT)),
                    ("amount", json!(AMOUNT)),
                    ("amount_refunded", json!(total)),
                    ("refunded", json!(total == AMOUNT)),
                ],
            );
            push("charge.refunded", charge);
        }
        if let (true, Some(amount)) = (self.last_refund_failed, self.refunds.last()) {
            let refund = object(
                "refund",
                &[
                    ("payment_intent", json!(INTENT)),
                    ("amount", json!(amount)),
                    ("status", json!("failed")),
                ],
            );
            push("charge.refund.updated", refund);
        }
        if let Some(closure) = self.dispute {
            let dispute = |status: &str| {
                object(
                    "dispute",
                    &[
                        ("payment_intent", json!(INTENT)),
                        ("amount", json!(AMOUNT)),
                        ("status", json!(status)),
                    ],
                )
            };
            push("charge.dispute.created", dispute("needs_response"));
            if let Some(closure) = closure {
                push("charge.dispute.closed", dispute(closure.as_str()));
            }
        }
        events
    }
}

fn facts() -> impl Strategy<Value = Facts> {
    let closure = prop_oneof![
        Just(Closure::Won),
        Just(Closure::WarningClosed),
        Just(Closure::Lost)
    ];
    (
        prop::collection::vec(any::<bool>(), 0..3),
        prop::option::weighted(0.8, any::<bool>()),
        prop::collection::vec(1..=AMOUNT, 0..4),
        any::<bool>(),
        prop::option::weighted(0.5, prop::option::weighted(0.8, closure)),
    )
        .prop_map(
            |(failed_attempts, success, amounts, last_refund_failed, dispute)| {
                // Growing totals, never more than the charge.
                let mut refunds = Vec::new();
                let mut total = 0;
                for amount in amounts {
                    let amount = amount.min(AMOUNT - total);
                    if success.is_some() && amount > 0 {
                        total += amount;
                        refunds.push(amount);
                    }
                }
                let mut facts = Facts {
                    failed_attempts,
                    success,
                    last_refund_failed: last_refund_failed && !refunds.is_empty(),
                    refunds,
                    dispute: None,
                };
                // A fully refunded charge cannot be disputed.
                if success.is_some() && facts.refunded() < AMOUNT {
                    facts.dispute = dispute;
                }
                facts
            },
        )
}

/// The order in memory, changed exactly where production's decisions say
/// the guarded writes would change it.
struct Sim {
    order: Order,
    /// The order's `processed_events`.
    seen: HashSet<String>,
    /// Stripe's PaymentIntent as the webhook reads it back.
    intent: PaymentIntent,
    /// Kinds of parked events, to name what moved the order.
    kinds: HashMap<String, &'static str>,
    /// Every move: from, to, the kind of event that made it.
    moves: Vec<(OrderStatus, OrderStatus, &'static str)>,
}

impl Sim {
    fn new(facts: &Facts) -> Self {
        let order = Order {
            payment_intent_id: Some(INTENT.into()),
            total: Money::new(AMOUNT, Order::sample().total.currency()),
            ..Order::sample()
        };
        Sim {
            seen: HashSet::new(),
            intent: PaymentIntent {
                id: INTENT.into(),
                status: if facts.success.is_some() {
                    IntentStatus::Succeeded
                } else {
                    IntentStatus::RequiresPaymentMethod
                },
                amount: AMOUNT,
                currency: "eur".into(),
                livemode: Some(false),
                client_secret: None,
                order_id: Some(order.order_id.to_string()),
                store_id: Some(order.store_id.to_string()),
                last_error: None,
            },
            order,
            kinds: HashMap::new(),
            moves: Vec::new(),
        }
    }

    fn deliver(&mut self, fact: &Fact) {
        let envelope = &*fact.envelope;
        assert_eq!(envelope.id, fact.id);
        self.kinds.insert(fact.id.clone(), fact.kind);
        match envelope.effect().expect("an event we read") {
            Effect::Transition(transition) => {
                let change = event_change(envelope, &transition);
                self.apply(envelope, change);
            }
            Effect::Succeeded { payment_intent } => {
                if self.seen.contains(&envelope.id) {
                    return self.duplicate();
                }
                // `confirm` answers an order already past paying without
                // asking Stripe or writing; the guarded write below refuses
                // it the same way (and releases parked events the same way).
                let intent = self.intent.clone();
                match stripe_view(&self.order, &intent) {
                    StripeView::Status(to) => {
                        let change = confirmed_change(
                            envelope,
                            &payment_intent,
                            to,
                            &intent,
                            self.order.mode,
                            NOW,
                        );
                        self.apply(envelope, change);
                    }
                    other => panic!("Stripe confirms what it sent: {other:?}"),
                }
            }
            other => panic!("{}: {other:?}", fact.kind),
        }
    }

    fn duplicate(&mut self) {
        if !self.order.parked.is_empty() {
            self.release();
        }
    }

    /// `Applying::to_order`, with the guarded write taken exactly when
    /// `judge` allows the change (the rules the write carries).
    fn apply(&mut self, envelope: &Envelope, mut change: Change<'_>) {
        let kind = self.kinds[&envelope.id];
        for _ in 0..3 {
            if self.seen.contains(&envelope.id) {
                return self.duplicate();
            }
            if change.judge(&self.order) == Verdict::Allowed {
                self.seen.insert(envelope.id.clone());
                let to = change.to;
                self.write(to, &change.details(None), kind);
                if OrderStatus::PREREQUISITES.contains(&to) && !self.order.parked.is_empty() {
                    self.release();
                }
                return;
            }
            change = change.fitted(&self.order);
            match change.judge(&self.order) {
                Verdict::Allowed => continue,
                Verdict::TooEarly { until } => {
                    self.seen.insert(envelope.id.clone());
                    self.order.parked.push(ParkedEvent {
                        event_id: envelope.id.clone(),
                        payment_intent: change.payment_intent.to_owned(),
                        to: change.to,
                        requires: until,
                        amount_refunded: change.amount_refunded,
                        created: envelope.created.unwrap_or_default(),
                    });
                    // As the store reads them back: oldest first.
                    self.order
                        .parked
                        .sort_by(|a, b| (a.created, &a.event_id).cmp(&(b.created, &b.event_id)));
                    return;
                }
                Verdict::NoChange { .. } => {
                    self.seen.insert(envelope.id.clone());
                    if !self.order.parked.is_empty() {
                        self.release();
                    }
                    return;
                }
                other => panic!("{kind}: one intent, one mode, the right money: {other:?}"),
            }
        }
        panic!("{kind}: the order kept changing with no one else writing");
    }

    /// `release_parked`.
    fn release(&mut self) {
        let mut writes_left = 2 * self.order.parked.len() + 2;
        while let Some(next) = ready(&self.order) {
            assert!(writes_left > 0, "release never ends");
            writes_left -= 1;
            if let Ok((to, details)) = release_decision(&self.order, &next) {
                let kind = self.kinds[&next.event_id];
                self.write(to, &details, kind);
            }
            self.order.parked.retain(|p| p.event_id != next.event_id);
        }
    }

    /// The guarded write (`TransitionExpr`): its status condition must hold
    /// whenever `judge` allowed the change.
    fn write(&mut self, to: OrderStatus, details: &TransitionDetails, kind: &'static str) {
        let from = self.order.status;
        assert!(
            OrderStatus::sources_of(to, details.why, details.requires).contains(&from),
            "{kind}: judged allowed, but the write's condition refuses {from} -> {to}"
        );
        self.order.status = to;
        if let Some(refunded) = details.amount_refunded {
            self.order.amount_refunded = Some(refunded);
        }
        if let Some(as_of) = details.status_as_of {
            self.order.status_as_of = Some(as_of);
        }
        self.moves.push((from, to, kind));
    }

    fn state(&self) -> (OrderStatus, u64, bool) {
        (
            self.order.status,
            self.order.amount_refunded.unwrap_or(0),
            self.order.status.is_paid(),
        )
    }
}

fn run(facts: &Facts, deliveries: &[Fact]) -> Sim {
    let mut sim = Sim::new(facts);
    for fact in deliveries {
        sim.deliver(fact);
    }
    sim
}

/// Facts, their events in Stripe's order, and a delivery of them: each at least once, some twice,
/// in any order.
fn delivered() -> impl Strategy<Value = (Facts, Vec<Fact>, Vec<Fact>)> {
    facts().prop_flat_map(|facts| {
        let events = facts.events();
        let n = events.len();
        (
            Just(facts),
            Just(events),
            prop::collection::vec(0..n.max(1), 0..=n),
        )
            .prop_flat_map(|(facts, events, extra)| {
                let mut deliveries = events.clone();
                deliveries.extend(extra.iter().filter_map(|&i| events.get(i).cloned()));
                (Just(facts), Just(events), Just(deliveries).prop_shuffle())
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES),
        max_shrink_iters: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Each case checks the three properties on one delivery.
    #[test]
    fn the_order_state_machine_holds_whatever_the_delivery((facts, events, deliveries) in delivered()) {
        let sim = run(&facts, &deliveries);
        let (status, _, paid) = sim.state();

        // (3) Once paid, only news of a refund or a dispute moves the order,
        // and never back to waiting for a payment.
        for (from, to, kind) in &sim.moves {
            if from.is_paid() {
                prop_assert!(to.is_paid(), "{} -> {} by {}", from, to, kind);
                prop_assert!(kind.starts_with("charge."), "{} -> {} by {}", from, to, kind);
            }
        }
        // A payment Stripe confirms always ends paid or later.
        if facts.success.is_some() {
            prop_assert!(paid, "a confirmed payment ends {}: {:?}", status, deliveries);
        }

        // The rest holds of deliveries the webhook can order (`orderable`):
        // this one, moved as little as that takes.
        let deliveries = orderable_from(deliveries);
        prop_assert!(orderable(&deliveries), "{:?}", deliveries);
        let sim = run(&facts, &deliveries);
        let (status, refunded, _) = sim.state();

        // (1) The order ends the same whatever the order of delivery and
        // however often each event comes: as if Stripe's events came once
        // each, in Stripe's order.
        let in_order = run(&facts, &events);
        prop_assert_eq!(sim.state(), in_order.state(), "delivered {:?}", deliveries);

        // (2) No money-moving fact is lost: the refunded total is Stripe's
        // (the last total, less a refund that failed), a lost dispute ends
        // lost.
        if !facts.refunds.is_empty() {
            prop_assert_eq!(refunded, facts.refunded(), "refunded total; delivered {:?}", deliveries);
        }
        if facts.dispute == Some(Some(Closure::Lost)) {
            prop_assert_eq!(status, OrderStatus::Lost, "delivered {:?}", deliveries);
        }

    }
}
