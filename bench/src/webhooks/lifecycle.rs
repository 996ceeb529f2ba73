//! What happens to each order at Stripe, as the events our endpoint
//! subscribes to (`shared::stripe::webhook_endpoints::EVENTS`), and a
//! reference model of what the service must do with one delivery
//! (`shared::webhooks::process`, `apply.rs`, `parked.rs`, `verdict.rs`): an
//! event already recorded is a duplicate and changes nothing, whatever the
//! order's status; else an event whose prerequisite the order has not
//! reached (a refund or dispute before the payment, a dispute's closure
//! before its creation) is recorded and parked on the order; else it is
//! recorded, and applied or not as the service's own rules say
//! (`verdict::Change::fitted` and `judge`, called here, not restated). A
//! delivery that moves the order to `paid` or `disputed`, and a Duplicate
//! or NoChange one, then releases the parked events the order is ready
//! for, oldest first, each judged by the same rules (applied, or dropped).
//! Every order then ends where it is at Stripe, whatever the delivery
//! order.

use crate::rng::Rng;
use shared::domain::{Currency, Mode, Move, OrderStatus, StoreId};
use shared::store::Order;
use shared::webhooks::verdict::{Change, Verdict};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// One Stripe event about an order's PaymentIntent (or its charge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeEvent {
    Processing,
    Succeeded,
    PaymentFailed {
        message: &'static str,
    },
    Canceled,
    /// `amount_refunded` is the charge's running total, as Stripe sends it.
    Refunded {
        amount_refunded: u64,
    },
    DisputeCreated,
    DisputeClosed {
        won: bool,
    },
}

impl StripeEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            StripeEvent::Processing => "payment_intent.processing",
            StripeEvent::Succeeded => "payment_intent.succeeded",
            StripeEvent::PaymentFailed { .. } => "payment_intent.payment_failed",
            StripeEvent::Canceled => "payment_intent.canceled",
            StripeEvent::Refunded { .. } => "charge.refunded",
            StripeEvent::DisputeCreated => "charge.dispute.created",
            StripeEvent::DisputeClosed { .. } => "charge.dispute.closed",
        }
    }

    /// The status the event asks for (`shared::webhooks::Effect`).
    pub fn target(&self, order_amount: u64) -> OrderStatus {
        match self {
            StripeEvent::Processing => OrderStatus::Processing,
            StripeEvent::Succeeded => OrderStatus::Paid,
            StripeEvent::PaymentFailed { .. } => OrderStatus::Failed,
            StripeEvent::Canceled => OrderStatus::Canceled,
            StripeEvent::Refunded { amount_refunded } if *amount_refunded >= order_amount => {
                OrderStatus::Refunded
            }
            StripeEvent::Refunded { .. } => OrderStatus::PartiallyRefunded,
            StripeEvent::DisputeCreated => OrderStatus::Disputed,
            StripeEvent::DisputeClosed { won: true } => OrderStatus::Paid,
            StripeEvent::DisputeClosed { won: false } => OrderStatus::Lost,
        }
    }

    /// What kind of news (the service's `Effect::Transition::why`): only a
    /// dispute's closure ends a dispute.
    pub fn why(&self) -> Move {
        match self {
            StripeEvent::DisputeClosed { .. } => Move::DisputeClosed,
            _ => Move::Course,
        }
    }

    pub fn amount_refunded(&self) -> Option<u64> {
        match self {
            StripeEvent::Refunded { amount_refunded } => Some(*amount_refunded),
            _ => None,
        }
    }

    /// The status the event's change presupposes (the service's
    /// `Envelope::prerequisite`; checked against it in the payload tests).
    pub fn prerequisite(&self) -> Option<OrderStatus> {
        match self {
            StripeEvent::Refunded { .. } | StripeEvent::DisputeCreated => Some(OrderStatus::Paid),
            StripeEvent::DisputeClosed { .. } => Some(OrderStatus::Disputed),
            _ => None,
        }
    }

    pub fn payment_error(&self) -> Option<&'static str> {
        match self {
            StripeEvent::PaymentFailed { message } => Some(message),
            _ => None,
        }
    }
}

/// The orders' stories, by where they end at Stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Paid,
    Refunded,
    PartiallyRefunded,
    DisputeWon,
    DisputeLost,
    Canceled,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Paid,
        Category::Refunded,
        Category::PartiallyRefunded,
        Category::DisputeWon,
        Category::DisputeLost,
        Category::Canceled,
    ];

    /// Share of the orders, in percent.
    fn weight(self) -> usize {
        match self {
            Category::Paid => 25,
            Category::Refunded => 20,
            Category::PartiallyRefunded => 15,
            Category::DisputeWon => 10,
            Category::DisputeLost => 10,
            Category::Canceled => 20,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Category::Paid => "paid",
            Category::Refunded => "paid, then refunded in full (1–4 refunds)",
            Category::PartiallyRefunded => "paid, then partly refunded (1–4 refunds)",
            Category::DisputeWon => "paid, disputed, dispute won",
            Category::DisputeLost => "paid, disputed, dispute lost",
            Category::Canceled => "never paid: intent canceled",
        }
    }
}

const MAX_DECLINES: usize = 3;
const MAX_REFUNDS: usize = 4;

/// Stripe's customer-facing messages for declined attempts.
const CARD_DECLINES: [&str; 3] = [
    "Your card was declined.",
    "Your card has insufficient funds.",
    "Your card's security code is incorrect.",
];
const SEPA_FAILURE: &str = "The customer's bank account could not be debited.";

/// One order's payment at Stripe: failed attempts (each by card, or by SEPA
/// debit which first goes through `processing`), then either a successful
/// attempt and what followed it, or a cancellation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub category: Category,
    pub amount: u64,
    /// One per failed attempt: was it a SEPA debit (processing, then failed)?
    pub declines: Vec<bool>,
    /// The successful attempt was a SEPA debit (ignored when canceled).
    pub sepa_success: bool,
    /// Refunds, for the refund categories.
    pub refunds: usize,
}

impl Lifecycle {
    fn base(category: Category, amount: u64) -> Self {
        let refunds = match category {
            Category::Refunded | Category::PartiallyRefunded => 1,
            _ => 0,
        };
        Lifecycle {
            category,
            amount,
            declines: Vec::new(),
            sepa_success: false,
            refunds,
        }
    }

    /// The events, in the order Stripe generates them.
    pub fn events(&self) -> Vec<StripeEvent> {
        let mut events = Vec::new();
        for (i, sepa) in self.declines.iter().enumerate() {
            if *sepa {
                events.push(StripeEvent::Processing);
                events.push(StripeEvent::PaymentFailed {
                    message: SEPA_FAILURE,
                });
            } else {
                events.push(StripeEvent::PaymentFailed {
                    message: CARD_DECLINES[i % CARD_DECLINES.len()],
                });
            }
        }
        if self.category == Category::Canceled {
            events.push(StripeEvent::Canceled);
            return events;
        }
        if self.sepa_success {
            events.push(StripeEvent::Processing);
        }
        events.push(StripeEvent::Succeeded);
        match self.category {
            Category::Refunded | Category::PartiallyRefunded => {
                let full = self.category == Category::Refunded;
                // Running totals, strictly increasing; the last is the whole
                // amount for a full refund.
                let parts = self.refunds as u64 + u64::from(!full);
                for i in 1..=self.refunds as u64 {
                    events.push(StripeEvent::Refunded {
                        amount_refunded: self.amount * i / parts,
                    });
                }
            }
            Category::DisputeWon | Category::DisputeLost => {
                events.push(StripeEvent::DisputeCreated);
                events.push(StripeEvent::DisputeClosed {
                    won: self.category == Category::DisputeWon,
                });
            }
            Category::Paid | Category::Canceled => {}
        }
        events
    }

    pub fn event_count(&self) -> usize {
        self.declines
            .iter()
            .map(|sepa| 1 + usize::from(*sepa))
            .sum::<usize>()
            + match self.category {
                Category::Canceled => 1,
                Category::Paid => 1 + usize::from(self.sepa_success),
                Category::Refunded | Category::PartiallyRefunded => {
                    1 + usize::from(self.sepa_success) + self.refunds
                }
                Category::DisputeWon | Category::DisputeLost => 3 + usize::from(self.sepa_success),
            }
    }

    /// Ways to make the story one event longer, still realistic.
    fn grow(&mut self, rng: &mut Rng) -> bool {
        let mut options: Vec<u8> = Vec::new();
        if self.declines.len() < MAX_DECLINES {
            options.push(0); // one more declined card
        }
        if self.declines.iter().any(|sepa| !sepa) {
            options.push(1); // a declined card was a failed SEPA debit
        }
        if self.category != Category::Canceled && !self.sepa_success {
            options.push(2); // paid by SEPA debit (processing first)
        }
        if matches!(
            self.category,
            Category::Refunded | Category::PartiallyRefunded
        ) && self.refunds < MAX_REFUNDS
        {
            options.push(3); // one more refund
        }
        if options.is_empty() {
            return false;
        }
        match options[rng.below(options.len())] {
            0 => self.declines.push(false),
            1 => {
                let cards: Vec<usize> = (0..self.declines.len())
                    .filter(|&i| !self.declines[i])
                    .collect();
                self.declines[cards[rng.below(cards.len())]] = true;
            }
            2 => self.sepa_success = true,
            _ => self.refunds += 1,
        }
        true
    }
}

/// `orders` lifecycles with `events` events in all: categories in fixed
/// shares, then stories lengthened one event at a time (orders picked at
/// random) until the total is reached.
pub fn plan(orders: usize, events: usize, rng: &mut Rng) -> Result<Vec<Lifecycle>, String> {
    let mut categories = Vec::with_capacity(orders);
    for category in Category::ALL {
        let n = orders * category.weight() / 100;
        categories.extend(std::iter::repeat_n(category, n));
    }
    while categories.len() < orders {
        categories.push(Category::Paid);
    }
    rng.shuffle(&mut categories);
    let mut lifecycles: Vec<Lifecycle> = categories
        .into_iter()
        .map(|category| Lifecycle::base(category, rng.between(500, 20_000)))
        .collect();
    let mut total: usize = lifecycles.iter().map(Lifecycle::event_count).sum();
    if total > events {
        return Err(format!(
            "{orders} orders need at least {total} events; asked for {events}"
        ));
    }
    let mut growable: Vec<usize> = (0..orders).collect();
    while total < events {
        if growable.is_empty() {
            return Err(format!(
                "{orders} orders cannot carry {events} events (at most {total})"
            ));
        }
        let pick = rng.below(growable.len());
        if lifecycles[growable[pick]].grow(rng) {
            total += 1;
        } else {
            growable.swap_remove(pick);
        }
    }
    Ok(lifecycles)
}

/// Stripe's `created` of event `index` of a lifecycle whose first event
/// was created at `first`: a minute apart, in Stripe's order. The model
/// dates events by their index instead, which orders them the same way
/// (strictly increasing, so no two are the same second).
pub fn created_at(first: u64, index: usize) -> u64 {
    first + index as u64 * 60
}

/// The service's answers for a recorded event that changes nothing.
pub use shared::webhooks::no_change::{NOT_ALLOWED, OLDER_REFUND, OLDER_STATE};

/// What the model (and the table) knows of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelState {
    pub status: OrderStatus,
    pub amount_refunded: Option<u64>,
    /// The event whose payment error the order shows.
    pub last_error: Option<u8>,
    /// When the payment state the order shows was Stripe's: the `created`
    /// of the last `payment_intent.*` event applied, as its index (see
    /// `created_at`). Charge and dispute events leave it.
    pub status_as_of: Option<u64>,
    /// The events parked on the order (`parked:{event id}` attributes), as
    /// bits by index: recorded, their change kept until the order is ready.
    pub parked: u64,
}

impl ModelState {
    pub const NEW: ModelState = ModelState {
        status: OrderStatus::Pending,
        amount_refunded: None,
        last_error: None,
        status_as_of: None,
        parked: 0,
    };

    /// The parked events' indices, oldest first.
    pub fn parked_events(&self) -> impl Iterator<Item = usize> {
        let mut left = self.parked;
        std::iter::from_fn(move || {
            let i = (left != 0).then(|| left.trailing_zeros() as usize)?;
            left &= left - 1;
            Some(i)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelOutcome {
    Applied(OrderStatus),
    /// Recorded, order unchanged, with the service's reason (`NOT_ALLOWED`,
    /// `OLDER_REFUND` or `OLDER_STATE`).
    Refused(&'static str),
    Duplicate,
    /// Recorded and kept on the order: the order has not reached the
    /// event's prerequisite (the `until` of the answer).
    Parked(OrderStatus),
}

impl ModelOutcome {
    /// Whether the delivery then releases the parked events the order is
    /// ready for (`shared::webhooks::apply`): after a move to `paid` or
    /// `disputed` (what parked events wait for), and after a Duplicate or a
    /// NoChange, which find the order holding them (a delivery that failed
    /// while releasing is finished by the next one).
    pub fn releases(self) -> bool {
        match self {
            ModelOutcome::Applied(to) => OrderStatus::PREREQUISITES.contains(&to),
            ModelOutcome::Duplicate | ModelOutcome::Refused(_) => true,
            ModelOutcome::Parked(_) => false,
        }
    }
}

/// The write of one delivery of event `index` of `events` as the service
/// specifies it (one conditional write, no read first), without the
/// release that may follow: a seen event is a duplicate (checked first: a
/// won dispute's closure delivered again once the order is back at `paid`
/// is a duplicate, not early); else, if the order has not reached the
/// event's prerequisite, it is recorded and parked; else it is recorded
/// and judged (`judge`).
pub fn record(
    state: &mut ModelState,
    seen: &mut u64,
    events: &[StripeEvent],
    index: usize,
    order_amount: u64,
) -> ModelOutcome {
    let bit = 1u64 << index;
    if *seen & bit != 0 {
        return ModelOutcome::Duplicate;
    }
    *seen |= bit;
    if let Some(requirement) = events[index].prerequisite()
        && !state.status.has_reached(requirement)
    {
        state.parked |= bit;
        return ModelOutcome::Parked(requirement);
    }
    judge(state, events, index, order_amount)
}

/// A recorded event's change, judged by the service's own rules
/// (`verdict::Change::fitted` and `judge`, what its guarded write carries)
/// on the order the model's state stands for, and applied with the fields
/// the store's update sets. The same for a delivery and for a released
/// parked event.
fn judge(
    state: &mut ModelState,
    events: &[StripeEvent],
    index: usize,
    order_amount: u64,
) -> ModelOutcome {
    let event = &events[index];
    let order = as_order(state, order_amount);
    // The event's `created`, as its place in Stripe's order.
    let created = index as u64;
    let change = Change {
        payment_intent: INTENT,
        to: event.target(order_amount),
        amount: None,
        amount_refunded: event.amount_refunded(),
        status_as_of: event
            .event_type()
            .starts_with("payment_intent.")
            .then_some(created),
        prerequisite: event.prerequisite(),
        why: event.why(),
        refund_failed: None,
        refunded_was: None,
        mode: None,
    }
    // A won dispute goes back to where the refunds left the order: the
    // service's first write guesses and is fitted when refused, which ends
    // the same as fitting first.
    .fitted(&order);
    match change.judge(&order) {
        Verdict::Allowed => {}
        Verdict::NoChange { reason } => return ModelOutcome::Refused(reason),
        other => unreachable!(
            "the model's order has the event's intent, mode and money, and got as far as it needs: {other:?}"
        ),
    }
    state.status = change.to;
    if let Some(refunded) = change.amount_refunded {
        state.amount_refunded = Some(refunded);
    }
    if event.payment_error().is_some() {
        state.last_error = Some(index as u8);
    }
    if let Some(as_of) = change.status_as_of {
        state.status_as_of = Some(as_of);
    }
    ModelOutcome::Applied(change.to)
}

/// The one PaymentIntent of a modelled order.
const INTENT: &str = "pi_model";

/// The order as the service would read it in `state` (what `judge` looks at).
fn as_order(state: &ModelState, amount: u64) -> Order {
    static TEMPLATE: LazyLock<Order> = LazyLock::new(|| Order {
        payment_intent_id: Some(INTENT.to_owned()),
        ..Order::pending(
            StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").expect("a store id"),
            Mode::Test,
            Currency::parse("eur").expect("a currency"),
            1,
            Vec::new(),
            0,
        )
    });
    Order {
        status: state.status,
        amount,
        amount_refunded: state.amount_refunded,
        status_as_of: state.status_as_of,
        ..TEMPLATE.clone()
    }
}

/// The oldest parked event (by `created`, which the index orders) that the
/// order has got far enough for.
pub fn next_ready(state: &ModelState, events: &[StripeEvent]) -> Option<usize> {
    state.parked_events().find(|&i| {
        events[i]
            .prerequisite()
            .is_none_or(|requirement| state.status.has_reached(requirement))
    })
}

/// Releases the oldest parked event the order is ready for: judged as a
/// delivery would be, applied (`Applied`) or dropped (`Refused`, with the
/// reason), and no longer parked. `None` when none is ready.
pub fn release_next(
    state: &mut ModelState,
    events: &[StripeEvent],
    order_amount: u64,
) -> Option<(usize, ModelOutcome)> {
    let index = next_ready(state, events)?;
    state.parked &= !(1u64 << index);
    Some((index, judge(state, events, index, order_amount)))
}

/// One whole delivery, alone on its order: its write, then, if it
/// releases, every parked event the order is (or becomes) ready for,
/// oldest first.
pub fn step(
    state: &mut ModelState,
    seen: &mut u64,
    events: &[StripeEvent],
    index: usize,
    order_amount: u64,
) -> ModelOutcome {
    let outcome = record(state, seen, events, index, order_amount);
    if outcome.releases() {
        while release_next(state, events, order_amount).is_some() {}
    }
    outcome
}

/// The end state when every event arrives once, in Stripe's order: what
/// the order is at Stripe.
pub fn in_order_final(events: &[StripeEvent], amount: u64) -> ModelState {
    let (mut state, mut seen) = (ModelState::NEW, 0u64);
    for i in 0..events.len() {
        step(&mut state, &mut seen, events, i, amount);
    }
    state
}

/// Every (status, amount_refunded) a correct implementation can end with
/// when each event is delivered once, in some order, one at a time (early
/// ones parked and released; duplicates change nothing). One element: the
/// end state does not depend on the delivery order.
pub fn reachable_finals(
    events: &[StripeEvent],
    amount: u64,
) -> HashSet<(OrderStatus, Option<u64>)> {
    let n = events.len();
    assert!(n < 20, "too many events for the subset search");
    let full = (1u64 << n) - 1;
    // Which event's payment error shows does not change what applies.
    let start = (0u64, ModelState::NEW);
    let mut visited: HashSet<(u64, ModelState)> = HashSet::from([start]);
    let mut work = vec![start];
    let mut finals = HashSet::new();
    while let Some((mask, state)) = work.pop() {
        if mask == full {
            finals.insert((state.status, state.amount_refunded));
            continue;
        }
        for i in 0..n {
            if mask & (1 << i) != 0 {
                continue;
            }
            let mut next = state;
            let mut seen = mask;
            step(&mut next, &mut seen, events, i, amount);
            next.last_error = None;
            if visited.insert((seen, next)) {
                work.push((seen, next));
            }
        }
    }
    finals
}

/// Counts of lifecycles by category: (orders, events, orders whose end
/// state depends on the delivery order).
pub fn mix(lifecycles: &[Lifecycle]) -> HashMap<Category, (usize, usize, usize)> {
    let mut out: HashMap<Category, (usize, usize, usize)> = HashMap::new();
    for lifecycle in lifecycles {
        let events = lifecycle.events();
        let entry = out.entry(lifecycle.category).or_default();
        entry.0 += 1;
        entry.1 += events.len();
        if reachable_finals(&events, lifecycle.amount).len() > 1 {
            entry.2 += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    fn lifecycle(category: Category, declines: Vec<bool>, sepa: bool, refunds: usize) -> Lifecycle {
        Lifecycle {
            category,
            amount: 1000,
            declines,
            sepa_success: sepa,
            refunds,
        }
    }

    #[test]
    fn in_order_each_story_ends_where_its_category_says() {
        for (category, expected, refunded) in [
            (Category::Paid, Paid, None),
            (Category::Refunded, Refunded, Some(1000)),
            (Category::PartiallyRefunded, PartiallyRefunded, Some(750)),
            (Category::DisputeWon, Paid, None),
            (Category::DisputeLost, Lost, None),
            (Category::Canceled, Canceled, None),
        ] {
            let l = lifecycle(category, vec![true, false], true, 3);
            let events = l.events();
            assert_eq!(events.len(), l.event_count(), "{category:?}");
            let end = in_order_final(&events, l.amount);
            assert_eq!(
                (end.status, end.amount_refunded),
                (expected, refunded),
                "{category:?}"
            );
        }
    }

    #[test]
    fn the_plan_has_exactly_the_events_asked_for() {
        let mut rng = Rng::new(1);
        let plan = plan(1000, 7000, &mut rng).unwrap();
        assert_eq!(plan.len(), 1000);
        assert_eq!(plan.iter().map(|l| l.events().len()).sum::<usize>(), 7000);
        assert!(plan.iter().all(|l| l.events().len() == l.event_count()));
        assert!(super::plan(10, 5, &mut rng).is_err());
    }

    #[test]
    fn with_early_events_parked_no_end_state_depends_on_the_order() {
        let paid = lifecycle(Category::Paid, vec![true, false, true], true, 0);
        assert_eq!(
            reachable_finals(&paid.events(), 1000),
            HashSet::from([(Paid, None)])
        );
        let canceled = lifecycle(Category::Canceled, vec![false, false], false, 0);
        assert_eq!(
            reachable_finals(&canceled.events(), 1000),
            HashSet::from([(Canceled, None)])
        );
        // A cancellation that overtakes the SEPA failure cancels what was
        // processing; the failure then is refused.
        let sepa_canceled = lifecycle(Category::Canceled, vec![true], false, 0);
        assert_eq!(
            reachable_finals(&sepa_canceled.events(), 1000),
            HashSet::from([(Canceled, None)])
        );
        // A refund before the payment is parked; the payment releases it.
        let refunded = lifecycle(Category::Refunded, vec![], false, 1);
        assert_eq!(
            reachable_finals(&refunded.events(), 1000),
            HashSet::from([(Refunded, Some(1000))])
        );
        // Two partial refunds, in either order: the larger total stays.
        let partial = lifecycle(Category::PartiallyRefunded, vec![], false, 2);
        assert_eq!(
            reachable_finals(&partial.events(), 1000),
            HashSet::from([(PartiallyRefunded, Some(666))])
        );
        let lost = lifecycle(Category::DisputeLost, vec![], false, 0);
        assert_eq!(
            reachable_finals(&lost.events(), 1000),
            HashSet::from([(Lost, None)])
        );
        let won = lifecycle(Category::DisputeWon, vec![true], true, 0);
        assert_eq!(
            reachable_finals(&won.events(), 1000),
            HashSet::from([(Paid, None)])
        );
    }

    #[test]
    fn every_planned_order_ends_where_it_is_at_stripe_in_any_delivery_order() {
        for seed in [20_261_128, 1, 2] {
            let plan = plan(1000, 7000, &mut Rng::new(seed)).unwrap();
            for l in &plan {
                let events = l.events();
                let at_stripe = in_order_final(&events, l.amount);
                assert_eq!(
                    reachable_finals(&events, l.amount),
                    HashSet::from([(at_stripe.status, at_stripe.amount_refunded)]),
                    "seed {seed}: {l:?}"
                );
            }
        }
    }

    #[test]
    fn created_times_follow_stripes_order() {
        assert!((1..20).all(|i| created_at(1_700_000_000, i) > created_at(1_700_000_000, i - 1)));
    }

    #[test]
    fn duplicates_change_nothing() {
        let events = [StripeEvent::Succeeded, StripeEvent::Processing];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Applied(Paid)
        );
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Duplicate
        );
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Refused(NOT_ALLOWED)
        );
        assert_eq!(state.status, Paid);
    }

    #[test]
    fn a_refund_before_the_payment_is_parked_and_the_payment_releases_it() {
        for (total, ends) in [(1000, Refunded), (400, PartiallyRefunded)] {
            let events = [
                StripeEvent::Succeeded,
                StripeEvent::Refunded {
                    amount_refunded: total,
                },
            ];
            let (mut state, mut seen) = (ModelState::NEW, 0);
            assert_eq!(
                step(&mut state, &mut seen, &events, 1, 1000),
                ModelOutcome::Parked(Paid)
            );
            // Recorded (a redelivery is a duplicate), kept, order unchanged.
            assert_eq!((seen, state.parked), (0b10, 0b10));
            assert_eq!((state.status, state.amount_refunded), (Pending, None));
            assert_eq!(
                step(&mut state, &mut seen, &events, 1, 1000),
                ModelOutcome::Duplicate
            );
            assert_eq!(state.status, Pending, "nothing to release yet");
            // The payment's answer is its own move; the refund follows it.
            assert_eq!(
                step(&mut state, &mut seen, &events, 0, 1000),
                ModelOutcome::Applied(Paid)
            );
            assert_eq!(
                (state.status, state.amount_refunded, state.parked),
                (ends, Some(total), 0)
            );
            assert_eq!(state.status_as_of, Some(0), "the refund leaves the date");
            assert_eq!(
                step(&mut state, &mut seen, &events, 1, 1000),
                ModelOutcome::Duplicate
            );
            assert_eq!(state, in_order_final(&events, 1000));
        }
    }

    #[test]
    fn parked_refunds_are_released_oldest_first() {
        let refund = |amount_refunded| StripeEvent::Refunded { amount_refunded };
        let events = [
            StripeEvent::Succeeded,
            refund(300),
            refund(600),
            refund(1000),
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        for i in [3, 1, 2] {
            assert_eq!(
                record(&mut state, &mut seen, &events, i, 1000),
                ModelOutcome::Parked(Paid)
            );
        }
        assert_eq!(next_ready(&state, &events), None);
        assert_eq!(
            record(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Applied(Paid)
        );
        let released: Vec<_> =
            std::iter::from_fn(|| release_next(&mut state, &events, 1000)).collect();
        assert_eq!(
            released,
            [
                (1, ModelOutcome::Applied(PartiallyRefunded)),
                (2, ModelOutcome::Applied(PartiallyRefunded)),
                (3, ModelOutcome::Applied(Refunded)),
            ]
        );
        assert_eq!(
            (state.status, state.amount_refunded),
            (Refunded, Some(1000))
        );
    }

    #[test]
    fn a_dispute_closure_parked_before_its_creation_follows_it() {
        let events = [
            StripeEvent::Succeeded,
            StripeEvent::DisputeCreated,
            StripeEvent::DisputeClosed { won: false },
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Applied(Paid)
        );
        assert_eq!(
            step(&mut state, &mut seen, &events, 2, 1000),
            ModelOutcome::Parked(Disputed)
        );
        assert_eq!(state.status, Paid, "paid has not reached disputed");
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Applied(Disputed)
        );
        assert_eq!((state.status, state.parked), (Lost, 0));

        // Both early: the payment releases the creation, which readies the
        // closure.
        let (mut state, mut seen) = (ModelState::NEW, 0);
        for (i, until) in [(2, Disputed), (1, Paid)] {
            assert_eq!(
                step(&mut state, &mut seen, &events, i, 1000),
                ModelOutcome::Parked(until)
            );
        }
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Applied(Paid)
        );
        assert_eq!((state.status, state.parked), (Lost, 0));
    }

    #[test]
    fn a_parked_refund_on_an_order_that_ends_canceled_is_dropped() {
        // Not a story Stripe tells; the rule it checks is the one for any
        // parked event that can no longer apply.
        let events = [
            StripeEvent::Refunded {
                amount_refunded: 1000,
            },
            StripeEvent::Canceled,
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Parked(Paid)
        );
        // A cancellation does not release: the refund stays parked, ready
        // (canceled is past paid) but never to apply.
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Applied(Canceled)
        );
        assert_eq!((state.status, state.parked), (Canceled, 0b01));
        assert_eq!(next_ready(&state, &events), Some(0));
        // A redelivery releases it: judged, dropped.
        let mut released = state;
        assert_eq!(
            release_next(&mut released, &events, 1000),
            Some((0, ModelOutcome::Refused(NOT_ALLOWED)))
        );
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Duplicate
        );
        assert_eq!(state, released);
        assert_eq!(
            (state.status, state.amount_refunded, state.parked),
            (Canceled, None, 0)
        );
    }

    #[test]
    fn only_paid_disputed_duplicate_and_no_change_release() {
        use ModelOutcome::*;
        for releasing in [
            Applied(Paid),
            Applied(Disputed),
            Duplicate,
            Refused(NOT_ALLOWED),
        ] {
            assert!(releasing.releases(), "{releasing:?}");
        }
        for not in [
            Applied(Canceled),
            Applied(PartiallyRefunded),
            Applied(Lost),
            Applied(Processing),
            Parked(Paid),
        ] {
            assert!(!not.releases(), "{not:?}");
        }
    }

    #[test]
    fn a_seen_event_is_a_duplicate_even_when_the_order_is_back_before_its_prerequisite() {
        let events = [
            StripeEvent::Succeeded,
            StripeEvent::DisputeCreated,
            StripeEvent::DisputeClosed { won: true },
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        assert_eq!(
            step(&mut state, &mut seen, &events, 2, 1000),
            ModelOutcome::Parked(Disputed)
        );
        assert_eq!(seen, 0b100, "a parked event is recorded");
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Applied(Paid)
        );
        assert_eq!(state.parked, 0b100, "paid has not reached disputed");
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Applied(Disputed)
        );
        // The creation released the closure: won, back at paid.
        assert_eq!((state.status, state.parked), (Paid, 0));
        // Back at paid (short of disputed), a redelivery of the closure is a
        // duplicate: the event's record is checked before the order.
        assert_eq!(
            step(&mut state, &mut seen, &events, 2, 1000),
            ModelOutcome::Duplicate
        );
        assert_eq!((state.status, state.parked), (Paid, 0));
    }

    #[test]
    fn a_stale_processing_after_a_later_failure_is_refused() {
        let failed = StripeEvent::PaymentFailed {
            message: SEPA_FAILURE,
        };
        let events = [
            StripeEvent::Processing,
            failed.clone(),
            StripeEvent::Processing,
            failed,
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Applied(Failed)
        );
        assert_eq!(state.status_as_of, Some(1));
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Refused(OLDER_STATE)
        );
        assert_eq!((state.status, state.last_error), (Failed, Some(1)));
        // The next attempt's `processing`, newer, applies.
        assert_eq!(
            step(&mut state, &mut seen, &events, 2, 1000),
            ModelOutcome::Applied(Processing)
        );
        // The same second is not newer.
        let mut same = ModelState {
            status_as_of: Some(3),
            ..state
        };
        assert_eq!(
            step(&mut same, &mut seen, &events, 3, 1000),
            ModelOutcome::Refused(OLDER_STATE)
        );
        // Outcomes are not dated against it: a success after a later
        // failure still pays, and charge events leave the date.
        let events = [
            StripeEvent::Succeeded,
            StripeEvent::PaymentFailed {
                message: SEPA_FAILURE,
            },
            StripeEvent::DisputeCreated,
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        step(&mut state, &mut seen, &events, 1, 1000);
        assert_eq!(
            step(&mut state, &mut seen, &events, 0, 1000),
            ModelOutcome::Applied(Paid)
        );
        assert_eq!(state.status_as_of, Some(0));
        step(&mut state, &mut seen, &events, 2, 1000);
        assert_eq!((state.status, state.status_as_of), (Disputed, Some(0)));
    }

    #[test]
    fn an_older_refund_total_delivered_late_is_refused() {
        let refund = |amount_refunded| StripeEvent::Refunded { amount_refunded };
        let events = [
            StripeEvent::Succeeded,
            refund(333),
            refund(666),
            refund(1000),
            refund(900),
        ];
        let (mut state, mut seen) = (ModelState::NEW, 0);
        step(&mut state, &mut seen, &events, 0, 1000);
        assert_eq!(
            step(&mut state, &mut seen, &events, 2, 1000),
            ModelOutcome::Applied(PartiallyRefunded)
        );
        assert_eq!(
            step(&mut state, &mut seen, &events, 1, 1000),
            ModelOutcome::Refused(OLDER_REFUND)
        );
        assert_eq!(state.amount_refunded, Some(666));
        // A full refund first: the partial one's move is not allowed.
        assert_eq!(
            step(&mut state, &mut seen, &events, 3, 1000),
            ModelOutcome::Applied(Refunded)
        );
        assert_eq!(
            step(&mut state, &mut seen, &events, 4, 1000),
            ModelOutcome::Refused(NOT_ALLOWED)
        );
    }
}
