//! After the run (not measured): what the table holds, checked against what
//! the deliveries reported and against a correct implementation.
//!
//! The check per order is a linearizability search. Its operations are the
//! order's delivery attempts, each with its observed outcome and its
//! interval of real time; an attempt that ended before another started must
//! come first. It looks for one serial order of the attempts' writes in
//! which the reference model (`lifecycle::record`: a seen event a
//! duplicate; else parked before its prerequisite; else recorded, and
//! applied unless the move is not allowed, an older refund total or older
//! payment news, each with the service's reason) produces exactly the
//! observed outcomes and ends in exactly the stored status,
//! `amount_refunded`, `last_payment_error` and `status_as_of`. A delivery
//! that releases parked events (`ModelOutcome::releases`) does so with
//! writes of their own, oldest ready event first (`lifecycle::release_next`),
//! which other deliveries' writes may come between; it finishes only when
//! no parked event is ready. If there is no such order, the service did
//! something no correct implementation could have done with those
//! deliveries at those times: an effect lost, or applied twice. Attempts
//! that failed with a 5xx may or may not have taken effect, and may have
//! stopped part way through releasing; the search tries each.

use super::lifecycle::{self, ModelOutcome, ModelState, StripeEvent};
use super::send::{AttemptResult, Measured};
use super::workload::{Delivery, OrderPlan, Workload};
use crate::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::domain::OrderStatus;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// An order as stored after the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub status: OrderStatus,
    pub amount_refunded: Option<u64>,
    pub last_payment_error: Option<String>,
    pub review_reason: Option<String>,
    pub status_as_of: Option<u64>,
    /// Ids of the events still parked on the order (`parked:{event id}`).
    pub parked: Vec<String>,
}

/// What the deliveries reported.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub deliveries: usize,
    pub attempts: usize,
    pub applied: usize,
    pub duplicate: usize,
    pub no_change: BTreeMap<&'static str, usize>,
    pub flagged: usize,
    /// Parked answers, by what the order must reach first (`until`).
    pub parked: BTreeMap<&'static str, usize>,
    /// 5xx answers, by error code.
    pub retryable: BTreeMap<String, usize>,
    /// Deliveries that needed more than one try.
    pub retried_deliveries: usize,
    /// Deliveries still not answered 2xx after the last try.
    pub given_up: usize,
    /// 4xx answers, by status and code.
    pub rejected: BTreeMap<String, usize>,
}

impl Tally {
    pub fn no_change_total(&self) -> usize {
        self.no_change.values().sum()
    }

    pub fn parked_total(&self) -> usize {
        self.parked.values().sum()
    }

    /// Answers that saw their event for the first time (and recorded it).
    pub fn first_seen(&self) -> usize {
        self.applied + self.no_change_total() + self.flagged + self.parked_total()
    }

    pub fn successes(&self) -> usize {
        self.first_seen() + self.duplicate
    }
}

/// Orders whose stored state differs from where they are at Stripe, grouped
/// by (Stripe's state, stored state), with what the witness shows happened.
#[derive(Clone, Debug, Default)]
pub struct Shortfall {
    pub orders: usize,
    pub causes: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
pub struct Verification {
    pub tally: Tally,
    /// Event ids recorded on this run's orders (`processed_events`).
    pub event_items: usize,
    /// Distinct events not recorded on their order.
    pub events_not_recorded: usize,
    /// Event ids recorded on an order that sent it none of them.
    pub unknown_event_items: usize,
    /// Events that more than one delivery reported as applied.
    pub applied_twice: usize,
    /// Events that more than one delivery reported as first seen (applied,
    /// no change, flagged or parked): recorded twice.
    pub recorded_twice: usize,
    /// Events whose every successful answer was `Duplicate`: their record
    /// was written by an attempt that then reported a failure.
    pub only_duplicates: usize,
    /// Distinct events with at least one 2xx answer.
    pub events_answered: usize,
    /// Orders whose outcomes and stored state no serial order explains,
    /// with why (first few kept).
    pub unexplained: usize,
    pub unexplained_examples: Vec<String>,
    /// Orders the search gave up on (too many interleavings).
    pub undecided: usize,
    /// Deliveries given up whose event was recorded anyway (by another
    /// delivery): Stripe would keep delivering them for days, in vain.
    pub given_up_recorded: usize,
    /// The same, by event type and the order's final status.
    pub given_up_kinds: BTreeMap<String, usize>,
    pub flagged_orders: usize,
    /// Orders whose end state is the same in every delivery order, and how
    /// many of them did not end there.
    pub order_independent: usize,
    pub order_independent_wrong: usize,
    /// Orders whose stored status and amount refunded equal Stripe's.
    pub match_stripe: usize,
    pub short_of_stripe: BTreeMap<(String, String), Shortfall>,
    /// Orders whose events were first delivered in another order than
    /// Stripe generated them.
    pub out_of_order_orders: usize,
    /// Pairs of attempts on the same order that overlapped in time.
    pub same_order_overlaps: usize,
    /// `parked:` attributes left on the orders after the run, by event type,
    /// the order's stored status and what the stored order makes of the
    /// event (see `parked_stranded`).
    pub parked_left: BTreeMap<String, usize>,
    /// Parked events left that the stored order is ready for and would
    /// take (judged as a release would judge them): a release that never
    /// happened, so an effect lost.
    pub parked_stranded: usize,
}

impl Verification {
    /// Effects lost by the implementation: orders no correct handling of the
    /// same deliveries explains, plus events never recorded, plus parked
    /// events left that their order would take.
    pub fn lost_effects(&self) -> usize {
        self.unexplained + self.events_not_recorded + self.parked_stranded
    }

    pub fn parked_left_total(&self) -> usize {
        self.parked_left.values().sum()
    }

    pub fn double_transitions(&self) -> usize {
        self.applied_twice + self.recorded_twice
    }

    pub fn short_of_stripe_orders(&self) -> usize {
        self.short_of_stripe.values().map(|s| s.orders).sum()
    }
}

fn tally(measured: &Measured) -> Tally {
    let mut t = Tally {
        deliveries: measured.attempts.len(),
        attempts: measured.attempt_count(),
        ..Tally::default()
    };
    for attempts in &measured.attempts {
        if attempts.len() > 1 {
            t.retried_deliveries += 1;
        }
        if !attempts.last().is_some_and(|a| a.result.succeeded()) {
            t.given_up += 1;
        }
        for attempt in attempts {
            match &attempt.result {
                AttemptResult::Applied { .. } => t.applied += 1,
                AttemptResult::Duplicate => t.duplicate += 1,
                AttemptResult::NoChange { reason } => *t.no_change.entry(reason).or_default() += 1,
                AttemptResult::Flagged => t.flagged += 1,
                AttemptResult::Parked { until } => *t.parked.entry(until).or_default() += 1,
                AttemptResult::Retryable { status, code } => {
                    *t.retryable.entry(format!("{status} {code}")).or_default() += 1;
                }
                AttemptResult::Rejected { status, code } => {
                    *t.rejected.entry(format!("{status} {code}")).or_default() += 1;
                }
            }
        }
    }
    t
}

/// Each order as stored, and the events recorded on it.
async fn read_orders(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    orders: &[OrderPlan],
) -> Result<Vec<(Stored, HashSet<String>)>, BoxError> {
    let mut out = Vec::with_capacity(orders.len());
    for plan in orders {
        let item = read_order_item(client, table, &plan.order_id).await?;
        out.push((stored_of(&plan.order_id, &item)?, processed_events(&item)));
    }
    Ok(out)
}

/// The fields of one stored order the check needs (consistent read).
pub async fn read_order(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    order_id: &str,
) -> Result<Stored, BoxError> {
    stored_of(order_id, &read_order_item(client, table, order_id).await?)
}

async fn read_order_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    order_id: &str,
) -> Result<HashMap<String, AttributeValue>, BoxError> {
    let mut tries = 0;
    loop {
        let read = client
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("ORDER#{order_id}")))
            .key("sk", AttributeValue::S("ORDER".into()))
            .consistent_read(true)
            .send()
            .await;
        match read {
            Ok(out) => break out.item,
            // DynamoDB Local (64 MiB heap) sometimes fails under load.
            Err(_) if tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    .ok_or_else(|| format!("order {order_id} is gone").into())
}

fn stored_of(order_id: &str, item: &HashMap<String, AttributeValue>) -> Result<Stored, BoxError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let status = text("status")
        .as_deref()
        .and_then(OrderStatus::parse)
        .ok_or_else(|| format!("order {order_id} has no readable status"))?;
    let number = |name: &str| match item.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("order {order_id}: bad {name}")),
    };
    let mut parked: Vec<String> = item
        .keys()
        .filter_map(|name| name.strip_prefix(PARKED_PREFIX))
        .map(str::to_owned)
        .collect();
    parked.sort();
    Ok(Stored {
        status,
        amount_refunded: number("amount_refunded")?,
        last_payment_error: text("last_payment_error"),
        review_reason: text("review_reason"),
        status_as_of: number("status_as_of")?,
        parked,
    })
}

/// How the service names an event parked on an order
/// (`shared::store::parked`): one attribute per event.
const PARKED_PREFIX: &str = "parked:";

/// The ids of the events the service recorded on the order.
fn processed_events(item: &HashMap<String, AttributeValue>) -> HashSet<String> {
    item.get("processed_events")
        .and_then(|v| v.as_ss().ok())
        .map(|ids| ids.iter().cloned().collect())
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Observed {
    Applied(OrderStatus),
    /// Recorded without a change, for this reason.
    Refused(&'static str),
    Duplicate,
    /// Recorded and parked until the order is this status.
    Parked(OrderStatus),
    /// A 5xx: it may have taken effect or not, or part of it.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct Op {
    event: usize,
    start: Duration,
    end: Duration,
    observed: Observed,
}

/// One step of a witness serial order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    /// An op's write (the one its answer reports), and whether it took
    /// effect: only a 5xx may not have.
    Write { op: usize, effect: bool },
    /// The order's oldest ready parked event released (applied or dropped)
    /// by a delivery still releasing: its own write, between the writes of
    /// other deliveries.
    Release,
    /// A releasing op's last write: a 2xx one stops only when it sees no
    /// parked event ready; a 5xx one may stop anywhere.
    Done(usize),
}

type Witness = Vec<Move>;

enum Search {
    Explained(Witness),
    Unexplained,
    Undecided,
}

struct Searcher<'a> {
    ops: &'a [Op],
    events: &'a [StripeEvent],
    amount: u64,
    /// Stripe's `created` of the first event (see `lifecycle::created_at`).
    first_created: u64,
    stored: &'a Stored,
    /// `preds[i]`: the ops that ended before op `i` started.
    preds: Vec<u128>,
    dead: HashSet<(u128, u128, ModelState, u64)>,
    budget: usize,
}

impl Searcher<'_> {
    fn ends_as_stored(&self, state: &ModelState) -> bool {
        let error = state
            .last_error
            .and_then(|i| self.events[usize::from(i)].payment_error());
        let as_of = state
            .status_as_of
            .map(|i| lifecycle::created_at(self.first_created, i as usize));
        state.status == self.stored.status
            && state.amount_refunded == self.stored.amount_refunded
            && error == self.stored.last_payment_error.as_deref()
            && as_of == self.stored.status_as_of
    }

    /// Depth-first over the moves that may come next; `None` when out of
    /// budget. `written`: ops whose write is placed; `finished`: ops that
    /// have done everything (a write that releases nothing finishes at
    /// once); the others written are still releasing.
    fn search(
        &mut self,
        written: u128,
        finished: u128,
        state: ModelState,
        seen: u64,
        path: &mut Witness,
    ) -> Option<bool> {
        let all = (1u128 << self.ops.len()) - 1;
        if finished == all {
            return Some(self.ends_as_stored(&state));
        }
        if self.dead.contains(&(written, finished, state, seen)) {
            return Some(false);
        }
        if self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        let releasing = written & !finished;
        let ready = lifecycle::next_ready(&state, self.events).is_some();
        let mut moves: Vec<(Move, u128, u128, ModelState, u64)> = Vec::new();
        if releasing != 0 && ready {
            let mut next = state;
            lifecycle::release_next(&mut next, self.events, self.amount);
            moves.push((Move::Release, written, finished, next, seen));
        }
        for i in 0..self.ops.len() {
            let bit = 1u128 << i;
            if releasing & bit != 0 && (!ready || self.ops[i].observed == Observed::Unknown) {
                moves.push((Move::Done(i), written, finished | bit, state, seen));
            }
        }
        for i in 0..self.ops.len() {
            let bit = 1u128 << i;
            if written & bit != 0 || self.preds[i] & !finished != 0 {
                continue;
            }
            let op = self.ops[i];
            let mut next = state;
            let mut next_seen = seen;
            let outcome = lifecycle::record(
                &mut next,
                &mut next_seen,
                self.events,
                op.event,
                self.amount,
            );
            // Finished at once unless it goes on to release parked events.
            let done = if outcome.releases() { 0 } else { bit };
            let took_effect = Move::Write {
                op: i,
                effect: true,
            };
            match (op.observed, outcome) {
                (Observed::Unknown, _) => {
                    moves.push((took_effect, written | bit, finished | done, next, next_seen));
                    moves.push((
                        Move::Write {
                            op: i,
                            effect: false,
                        },
                        written | bit,
                        finished | bit,
                        state,
                        seen,
                    ));
                }
                (Observed::Applied(to), ModelOutcome::Applied(model)) if to == model => {}
                (Observed::Refused(why), ModelOutcome::Refused(model)) if why == model => {}
                (Observed::Parked(until), ModelOutcome::Parked(model)) if until == model => {}
                (Observed::Duplicate, ModelOutcome::Duplicate) => {}
                _ => continue,
            }
            if op.observed != Observed::Unknown {
                moves.push((took_effect, written | bit, finished | done, next, next_seen));
            }
        }
        for (step, w, f, s, n) in moves {
            path.push(step);
            match self.search(w, f, s, n, path) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => return None,
            }
            path.pop();
        }
        self.dead.insert((written, finished, state, seen));
        Some(false)
    }
}

fn explain(
    ops: &[Op],
    events: &[StripeEvent],
    amount: u64,
    first_created: u64,
    stored: &Stored,
) -> Search {
    if ops.len() >= 128 || events.len() >= 64 {
        return Search::Undecided;
    }
    let preds = ops
        .iter()
        .map(|op| {
            ops.iter()
                .enumerate()
                .filter(|(_, other)| other.end < op.start)
                .fold(0u128, |acc, (j, _)| acc | (1 << j))
        })
        .collect();
    let mut searcher = Searcher {
        ops,
        events,
        amount,
        first_created,
        stored,
        preds,
        dead: HashSet::new(),
        budget: 5_000_000,
    };
    let mut path = Vec::new();
    match searcher.search(0, 0, ModelState::NEW, 0, &mut path) {
        Some(true) => Search::Explained(path),
        Some(false) => Search::Unexplained,
        None => Search::Undecided,
    }
}

/// What, in the witness, kept the order from Stripe's end state: events
/// the witness never records, events recorded without a change, parked
/// events dropped when released, and parked events still waiting.
fn causes(witness: &Witness, ops: &[Op], events: &[StripeEvent], amount: u64) -> Vec<String> {
    let (mut state, mut seen) = (ModelState::NEW, 0u64);
    let mut out = Vec::new();
    for &step in witness {
        let before = state.status;
        match step {
            Move::Write { op, effect: true } => {
                let index = ops[op].event;
                if let ModelOutcome::Refused(reason) =
                    lifecycle::record(&mut state, &mut seen, events, index, amount)
                {
                    out.push(format!(
                        "{} recorded without a change while {before}: {reason}",
                        describe_event(&events[index])
                    ));
                }
            }
            Move::Release => {
                if let Some((index, ModelOutcome::Refused(reason))) =
                    lifecycle::release_next(&mut state, events, amount)
                {
                    out.push(format!(
                        "{} parked, then dropped when released while {before}: {reason}",
                        describe_event(&events[index])
                    ));
                }
            }
            Move::Write { effect: false, .. } | Move::Done(_) => {}
        }
    }
    for index in state.parked_events() {
        let ready = events[index]
            .prerequisite()
            .is_none_or(|requirement| state.status.has_reached(requirement));
        out.push(format!(
            "{} parked, {} (order {})",
            describe_event(&events[index]),
            if ready {
                "never released"
            } else {
                "still waiting"
            },
            state.status
        ));
    }
    for (index, event) in events.iter().enumerate() {
        if seen & (1 << index) == 0 {
            out.push(format!(
                "{} never recorded (every delivery answered 5xx)",
                describe_event(event)
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the order as stored makes of an event still parked on it.
enum ParkedNow {
    /// It has not reached the event's prerequisite.
    Waiting,
    /// Ready, and a release would drop it, for this reason.
    Refused(&'static str),
    /// Ready, and a release would apply it.
    WouldApply,
}

fn parked_now(stored: &Stored, events: &[StripeEvent], index: usize, amount: u64) -> ParkedNow {
    let mut state = ModelState {
        status: stored.status,
        amount_refunded: stored.amount_refunded,
        // Parked events are charge and dispute events: they neither show
        // a payment error nor are dated against `status_as_of`.
        last_error: None,
        status_as_of: None,
        parked: 1u64 << index,
    };
    if lifecycle::next_ready(&state, events) != Some(index) {
        return ParkedNow::Waiting;
    }
    match lifecycle::release_next(&mut state, events, amount) {
        Some((_, ModelOutcome::Refused(reason))) => ParkedNow::Refused(reason),
        _ => ParkedNow::WouldApply,
    }
}

fn describe_event(event: &StripeEvent) -> String {
    match event {
        StripeEvent::DisputeClosed { won } => format!(
            "charge.dispute.closed ({})",
            if *won { "won" } else { "lost" }
        ),
        other => other.event_type().to_owned(),
    }
}

/// (Stripe's status, the stored one), naming a smaller or larger
/// `amount_refunded` when the statuses agree.
fn labels(truth: &ModelState, stored: &Stored) -> (String, String) {
    let stored_label = if stored.status != truth.status {
        stored.status.to_string()
    } else if stored.amount_refunded < truth.amount_refunded {
        format!("{}, smaller amount_refunded", stored.status)
    } else {
        format!("{}, other amount_refunded", stored.status)
    };
    (truth.status.to_string(), stored_label)
}

pub async fn verify(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    workload: &Workload,
    deliveries: &[Delivery],
    measured: &Measured,
) -> Result<Verification, BoxError> {
    let mut v = Verification {
        tally: tally(measured),
        ..Verification::default()
    };
    let stored = read_orders(client, table, &workload.orders).await?;

    // Recorded events against sent ones, order by order.
    for (plan, (_, recorded)) in workload.orders.iter().zip(&stored) {
        v.event_items += recorded.len();
        v.events_not_recorded += plan
            .event_ids
            .iter()
            .filter(|id| !recorded.contains(id.as_str()))
            .count();
        v.unknown_event_items += recorded
            .iter()
            .filter(|id| !plan.event_ids.iter().any(|sent| sent == *id))
            .count();
    }
    let (stored, recorded): (Vec<Stored>, Vec<HashSet<String>>) = stored.into_iter().unzip();

    // Per event: how its deliveries were answered.
    let mut per_event: HashMap<(usize, usize), Vec<&AttemptResult>> = HashMap::new();
    let mut per_order: Vec<Vec<(usize, &super::send::Attempt)>> =
        vec![Vec::new(); workload.orders.len()];
    let mut first_delivery: Vec<Vec<Option<usize>>> = workload
        .orders
        .iter()
        .map(|p| vec![None; p.events.len()])
        .collect();
    for (d, (delivery, attempts)) in deliveries.iter().zip(&measured.attempts).enumerate() {
        let first = &mut first_delivery[delivery.order][delivery.event];
        first.get_or_insert(d);
        if !attempts.last().is_some_and(|a| a.result.succeeded()) {
            let plan = &workload.orders[delivery.order];
            if recorded[delivery.order].contains(&plan.event_ids[delivery.event]) {
                v.given_up_recorded += 1;
                let last = attempts
                    .last()
                    .map(|a| format!("{:?}", a.result))
                    .unwrap_or_default();
                *v.given_up_kinds
                    .entry(format!(
                        "{} answered {last} {} times",
                        describe_event(&plan.events[delivery.event]),
                        attempts.len()
                    ))
                    .or_default() += 1;
            }
        }
        for attempt in attempts {
            per_event
                .entry((delivery.order, delivery.event))
                .or_default()
                .push(&attempt.result);
            per_order[delivery.order].push((delivery.event, attempt));
        }
    }
    for results in per_event.values() {
        let applied = results
            .iter()
            .filter(|r| matches!(r, AttemptResult::Applied { .. }))
            .count();
        let first_seen = results
            .iter()
            .filter(|r| r.succeeded() && !matches!(r, AttemptResult::Duplicate))
            .count();
        v.applied_twice += usize::from(applied > 1);
        v.recorded_twice += usize::from(first_seen > 1);
        if results.iter().any(|r| r.succeeded()) {
            v.events_answered += 1;
            if first_seen == 0 {
                v.only_duplicates += 1;
            }
        }
    }
    v.out_of_order_orders = first_delivery
        .iter()
        .filter(|firsts| firsts.windows(2).any(|w| w[0] > w[1]))
        .count();

    for (o, plan) in workload.orders.iter().enumerate() {
        let stored = &stored[o];
        let amount = plan.lifecycle.amount;
        if stored.review_reason.is_some() {
            v.flagged_orders += 1;
        }
        for event_id in &stored.parked {
            let what = match plan.event_ids.iter().position(|id| id == event_id) {
                None => "an event not sent for this order".to_owned(),
                Some(index) => {
                    let event = &plan.events[index];
                    let class = match parked_now(stored, &plan.events, index, amount) {
                        ParkedNow::Waiting => "still waiting".to_owned(),
                        ParkedNow::Refused(reason) => format!("refused by it now: {reason}"),
                        ParkedNow::WouldApply => {
                            v.parked_stranded += 1;
                            "**it would take it now: never released**".to_owned()
                        }
                    };
                    format!(
                        "{} on a {} order, {class}",
                        describe_event(event),
                        stored.status
                    )
                }
            };
            *v.parked_left.entry(what).or_default() += 1;
        }
        let mut attempts = per_order[o].clone();
        attempts.sort_by_key(|(_, a)| a.start);
        for (i, (_, a)) in attempts.iter().enumerate() {
            v.same_order_overlaps += attempts[i + 1..]
                .iter()
                .filter(|(_, b)| b.start < a.end)
                .count();
        }

        // The observed outcomes, as the model names them.
        let mut ops = Vec::new();
        let mut anomaly = None;
        for (event, attempt) in &attempts {
            let observed = match &attempt.result {
                AttemptResult::Applied { to } => match OrderStatus::parse(to) {
                    Some(status) => Observed::Applied(status),
                    None => {
                        anomaly = Some(format!("applied to unknown status {to}"));
                        continue;
                    }
                },
                AttemptResult::Duplicate => Observed::Duplicate,
                AttemptResult::NoChange { reason }
                    if [
                        lifecycle::NOT_ALLOWED,
                        lifecycle::OLDER_REFUND,
                        lifecycle::OLDER_STATE,
                    ]
                    .contains(reason) =>
                {
                    Observed::Refused(reason)
                }
                AttemptResult::NoChange { reason } => {
                    anomaly = Some(format!(
                        "{} answered no change: {reason}",
                        plan.events[*event].event_type()
                    ));
                    continue;
                }
                AttemptResult::Flagged => {
                    anomaly = Some(format!("{} flagged", plan.events[*event].event_type()));
                    continue;
                }
                AttemptResult::Parked { until } => match OrderStatus::parse(until) {
                    Some(status) => Observed::Parked(status),
                    None => {
                        anomaly = Some(format!("parked until unknown status {until}"));
                        continue;
                    }
                },
                AttemptResult::Retryable { .. } => Observed::Unknown,
                // Refused before any write.
                AttemptResult::Rejected { .. } => continue,
            };
            ops.push(Op {
                event: *event,
                start: attempt.start,
                end: attempt.end,
                observed,
            });
        }

        let finals = lifecycle::reachable_finals(&plan.events, amount);
        let end = (stored.status, stored.amount_refunded);
        if finals.len() == 1 {
            v.order_independent += 1;
            if !finals.contains(&end) {
                v.order_independent_wrong += 1;
            }
        }
        let witness = match anomaly {
            Some(why) => {
                v.unexplained += 1;
                if v.unexplained_examples.len() < 10 {
                    v.unexplained_examples
                        .push(format!("order {}: {why}", plan.order_id));
                }
                None
            }
            None => match explain(&ops, &plan.events, amount, workload.first_created, stored) {
                Search::Explained(witness) => Some(witness),
                Search::Unexplained => {
                    v.unexplained += 1;
                    if v.unexplained_examples.len() < 10 {
                        v.unexplained_examples.push(format!(
                            "order {} ({:?}, {} events, {} attempts): stored {:?} not reachable by any serial order of its deliveries",
                            plan.order_id,
                            plan.lifecycle.category,
                            plan.events.len(),
                            ops.len(),
                            stored
                        ));
                    }
                    None
                }
                Search::Undecided => {
                    v.undecided += 1;
                    if v.unexplained_examples.len() < 10 {
                        v.unexplained_examples.push(format!(
                            "order {} ({:?}, {} events, {} attempts): undecided (search budget)",
                            plan.order_id,
                            plan.lifecycle.category,
                            plan.events.len(),
                            ops.len()
                        ));
                    }
                    None
                }
            },
        };

        let truth = lifecycle::in_order_final(&plan.events, amount);
        if (truth.status, truth.amount_refunded) == end {
            v.match_stripe += 1;
        } else {
            let key = labels(&truth, stored);
            let entry = v.short_of_stripe.entry(key).or_default();
            entry.orders += 1;
            let found = match &witness {
                Some(w) => causes(w, &ops, &plan.events, amount),
                None => {
                    vec!["(no witness: the order is unexplained or undecided, see above)".into()]
                }
            };
            for cause in found {
                *entry.causes.entry(cause).or_default() += 1;
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(event: usize, start: u64, end: u64, observed: Observed) -> Op {
        Op {
            event,
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
            observed,
        }
    }

    /// The first event's `created` in these tests.
    const FIRST: u64 = 1_700_000_000;

    /// `as_of`: the index of the last `payment_intent.*` event applied.
    fn stored(status: OrderStatus, refunded: Option<u64>, as_of: Option<usize>) -> Stored {
        Stored {
            status,
            amount_refunded: refunded,
            last_payment_error: None,
            review_reason: None,
            status_as_of: as_of.map(|i| lifecycle::created_at(FIRST, i)),
            parked: Vec::new(),
        }
    }

    const EVENTS: [StripeEvent; 2] = [
        StripeEvent::Succeeded,
        StripeEvent::Refunded {
            amount_refunded: 1000,
        },
    ];

    fn explained(ops: &[Op], events: &[StripeEvent], stored: &Stored) -> bool {
        matches!(
            explain(ops, events, 1000, FIRST, stored),
            Search::Explained(_)
        )
    }

    #[test]
    fn a_refund_parked_before_the_payment_and_released_by_it_is_explained() {
        let ops = [
            op(1, 0, 10, Observed::Parked(OrderStatus::Paid)),
            op(0, 20, 30, Observed::Applied(OrderStatus::Paid)),
            op(1, 40, 50, Observed::Duplicate),
        ];
        let refunded = stored(OrderStatus::Refunded, Some(1000), Some(0));
        let Search::Explained(witness) = explain(&ops, &EVENTS, 1000, FIRST, &refunded) else {
            panic!("explainable");
        };
        assert!(causes(&witness, &ops, &EVENTS, 1000).is_empty());
        assert_eq!(
            witness,
            [
                Move::Write {
                    op: 0,
                    effect: true
                },
                Move::Write {
                    op: 1,
                    effect: true
                },
                Move::Release,
                Move::Done(1),
                Move::Write {
                    op: 2,
                    effect: true
                },
                Move::Done(2),
            ]
        );
        // The payment answered, the refund was not released: lost.
        assert!(!explained(
            &ops,
            &EVENTS,
            &stored(OrderStatus::Paid, None, Some(0))
        ));
        // Parked until the wrong status, or acknowledged without parking:
        // not what the model answers.
        for wrong in [
            Observed::Parked(OrderStatus::Disputed),
            Observed::Refused(lifecycle::NOT_ALLOWED),
        ] {
            let mut ops = ops;
            ops[0].observed = wrong;
            assert!(!explained(&ops, &EVENTS, &refunded), "{wrong:?}");
        }
    }

    #[test]
    fn parked_after_the_payment_was_applied_is_not_explained() {
        // The refund started after the payment's delivery had returned: it
        // must have seen `paid`.
        let ops = [
            op(0, 0, 10, Observed::Applied(OrderStatus::Paid)),
            op(1, 20, 30, Observed::Parked(OrderStatus::Paid)),
        ];
        for end in [
            stored(OrderStatus::Refunded, Some(1000), Some(0)),
            stored(OrderStatus::Paid, None, Some(0)),
        ] {
            assert!(!explained(&ops, &EVENTS, &end), "{end:?}");
        }
        // Overlapping, the refund may have been parked first, and then
        // released by the payment.
        let ops = [
            op(0, 0, 25, Observed::Applied(OrderStatus::Paid)),
            op(1, 20, 30, Observed::Parked(OrderStatus::Paid)),
        ];
        assert!(explained(
            &ops,
            &EVENTS,
            &stored(OrderStatus::Refunded, Some(1000), Some(0))
        ));
        assert!(!explained(
            &ops,
            &EVENTS,
            &stored(OrderStatus::Paid, None, Some(0))
        ));
    }

    #[test]
    fn a_release_may_come_after_a_concurrent_delivery_but_not_after_it_answered() {
        let refund = |amount_refunded| StripeEvent::Refunded { amount_refunded };
        let events = [
            StripeEvent::Succeeded,
            refund(300),
            refund(600),
            refund(1000),
        ];
        let refunded = stored(OrderStatus::Refunded, Some(1000), Some(0));
        // The later refunds wait; while the payment is releasing them, the
        // first refund arrives and applies to the just-paid order. No
        // delivery alone explains that (before the payment it is parked,
        // after its release it is refused), a release after it does.
        let ops = |first_refund: (u64, u64)| {
            [
                op(2, 0, 10, Observed::Parked(OrderStatus::Paid)),
                op(3, 20, 30, Observed::Parked(OrderStatus::Paid)),
                op(0, 40, 100, Observed::Applied(OrderStatus::Paid)),
                op(
                    1,
                    first_refund.0,
                    first_refund.1,
                    Observed::Applied(OrderStatus::PartiallyRefunded),
                ),
            ]
        };
        assert!(explained(&ops((50, 60)), &events, &refunded));
        // Begun after the payment's delivery answered, the first refund
        // finds the order refunded in full: no release is still to come.
        assert!(!explained(&ops((110, 120)), &events, &refunded));
    }

    #[test]
    fn a_failed_delivery_may_stop_releasing_part_way_and_a_duplicate_finishes() {
        let events = [
            StripeEvent::Succeeded,
            StripeEvent::Refunded {
                amount_refunded: 500,
            },
            StripeEvent::Refunded {
                amount_refunded: 1000,
            },
        ];
        let parked = [
            op(1, 0, 10, Observed::Parked(OrderStatus::Paid)),
            op(2, 20, 30, Observed::Parked(OrderStatus::Paid)),
        ];
        let mut failed = parked.to_vec();
        failed.push(op(0, 40, 50, Observed::Unknown));
        for end in [
            stored(OrderStatus::Pending, None, None),
            stored(OrderStatus::Paid, None, Some(0)),
            stored(OrderStatus::PartiallyRefunded, Some(500), Some(0)),
            stored(OrderStatus::Refunded, Some(1000), Some(0)),
        ] {
            assert!(explained(&failed, &events, &end), "{end:?}");
        }
        // Answered 200, the payment's delivery released both.
        let mut answered = parked.to_vec();
        answered.push(op(0, 40, 50, Observed::Applied(OrderStatus::Paid)));
        assert!(!explained(
            &answered,
            &events,
            &stored(OrderStatus::PartiallyRefunded, Some(500), Some(0))
        ));
        // Stripe's redelivery of the payment is a duplicate, and releases
        // what is left.
        failed.push(op(0, 60, 70, Observed::Duplicate));
        assert!(explained(
            &failed,
            &events,
            &stored(OrderStatus::Refunded, Some(1000), Some(0))
        ));
        for short in [
            stored(OrderStatus::PartiallyRefunded, Some(500), Some(0)),
            stored(OrderStatus::Paid, None, Some(0)),
        ] {
            assert!(!explained(&failed, &events, &short), "{short:?}");
        }
    }

    #[test]
    fn a_dispute_closed_before_it_was_created_is_parked_until_then() {
        let events = [
            StripeEvent::Succeeded,
            StripeEvent::DisputeCreated,
            StripeEvent::DisputeClosed { won: false },
        ];
        let ops = |closure| {
            [
                op(0, 0, 10, Observed::Applied(OrderStatus::Paid)),
                op(2, 20, 30, closure),
                op(1, 40, 50, Observed::Applied(OrderStatus::Disputed)),
            ]
        };
        let lost = stored(OrderStatus::Lost, None, Some(0));
        let parked = ops(Observed::Parked(OrderStatus::Disputed));
        let Search::Explained(witness) = explain(&parked, &events, 1000, FIRST, &lost) else {
            panic!("explainable");
        };
        assert!(causes(&witness, &parked, &events, 1000).is_empty());
        assert!(!explained(
            &parked,
            &events,
            &stored(OrderStatus::Disputed, None, Some(0))
        ));
        assert!(!explained(
            &ops(Observed::Parked(OrderStatus::Paid)),
            &events,
            &lost
        ));
    }

    #[test]
    fn a_parked_event_dropped_or_left_is_named_in_the_causes() {
        // Not a story Stripe tells: a refund parked on an order that is then
        // canceled, and the cancellation delivered again.
        let events = [
            StripeEvent::Refunded {
                amount_refunded: 1000,
            },
            StripeEvent::Canceled,
        ];
        let canceled = stored(OrderStatus::Canceled, None, Some(1));
        let mut ops = vec![
            op(0, 0, 10, Observed::Parked(OrderStatus::Paid)),
            op(1, 20, 30, Observed::Applied(OrderStatus::Canceled)),
        ];
        let Search::Explained(witness) = explain(&ops, &events, 1000, FIRST, &canceled) else {
            panic!("explainable");
        };
        assert_eq!(
            causes(&witness, &ops, &events, 1000),
            ["charge.refunded parked, never released (order canceled)"]
        );
        ops.push(op(1, 40, 50, Observed::Duplicate));
        let Search::Explained(witness) = explain(&ops, &events, 1000, FIRST, &canceled) else {
            panic!("explainable");
        };
        assert_eq!(
            causes(&witness, &ops, &events, 1000),
            [
                "charge.refunded parked, then dropped when released while canceled: order does not allow this change"
            ]
        );
    }

    #[test]
    fn an_event_applied_twice_or_a_stored_state_nobody_wrote_is_not_explained() {
        let twice = [
            op(0, 0, 10, Observed::Applied(OrderStatus::Paid)),
            op(0, 20, 30, Observed::Applied(OrderStatus::Paid)),
        ];
        assert!(matches!(
            explain(
                &twice,
                &EVENTS,
                1000,
                FIRST,
                &stored(OrderStatus::Paid, None, Some(0))
            ),
            Search::Unexplained
        ));
        let paid = [op(0, 0, 10, Observed::Applied(OrderStatus::Paid))];
        assert!(matches!(
            explain(
                &paid,
                &EVENTS,
                1000,
                FIRST,
                &stored(OrderStatus::Refunded, Some(1000), Some(0))
            ),
            Search::Unexplained
        ));
    }

    #[test]
    fn a_failed_attempt_may_or_may_not_have_taken_effect() {
        let ops = [
            op(0, 0, 10, Observed::Unknown),
            op(0, 20, 30, Observed::Duplicate),
        ];
        assert!(matches!(
            explain(
                &ops,
                &EVENTS,
                1000,
                FIRST,
                &stored(OrderStatus::Paid, None, Some(0))
            ),
            Search::Explained(_)
        ));
        let ops = [
            op(0, 0, 10, Observed::Unknown),
            op(0, 20, 30, Observed::Applied(OrderStatus::Paid)),
        ];
        assert!(matches!(
            explain(
                &ops,
                &EVENTS,
                1000,
                FIRST,
                &stored(OrderStatus::Paid, None, Some(0))
            ),
            Search::Explained(_)
        ));
    }

    #[test]
    fn a_won_closure_delivered_again_after_it_applied_is_a_duplicate() {
        let events = [
            StripeEvent::Succeeded,
            StripeEvent::DisputeCreated,
            StripeEvent::DisputeClosed { won: true },
        ];
        let applied = [
            op(0, 0, 10, Observed::Applied(OrderStatus::Paid)),
            op(1, 20, 30, Observed::Applied(OrderStatus::Disputed)),
            op(2, 40, 50, Observed::Applied(OrderStatus::Paid)),
        ];
        let paid = stored(OrderStatus::Paid, None, Some(0));
        let again = |observed| {
            let mut ops = applied.to_vec();
            ops.push(op(2, 60, 70, observed));
            explain(&ops, &events, 1000, FIRST, &paid)
        };
        assert!(matches!(again(Observed::Duplicate), Search::Explained(_)));
        assert!(matches!(
            again(Observed::Parked(OrderStatus::Disputed)),
            Search::Unexplained
        ));
    }

    #[test]
    fn a_stale_processing_after_the_failure_is_recorded_without_a_change() {
        let events = [
            StripeEvent::Processing,
            StripeEvent::PaymentFailed {
                message: "The customer's bank account could not be debited.",
            },
            StripeEvent::Canceled,
        ];
        let ops = |processing| {
            [
                op(1, 0, 10, Observed::Applied(OrderStatus::Failed)),
                op(0, 20, 30, processing),
                op(2, 40, 50, Observed::Applied(OrderStatus::Canceled)),
            ]
        };
        let canceled = Stored {
            last_payment_error: Some("The customer's bank account could not be debited.".into()),
            ..stored(OrderStatus::Canceled, None, Some(2))
        };
        let refused = ops(Observed::Refused(lifecycle::OLDER_STATE));
        let Search::Explained(witness) = explain(&refused, &events, 1000, FIRST, &canceled) else {
            panic!("explainable");
        };
        assert_eq!(
            causes(&witness, &refused, &events, 1000),
            [
                "payment_intent.processing recorded without a change while failed: older than the payment state the order shows"
            ]
        );
        for wrong in [
            Observed::Applied(OrderStatus::Processing),
            Observed::Refused(lifecycle::NOT_ALLOWED),
        ] {
            assert!(matches!(
                explain(&ops(wrong), &events, 1000, FIRST, &canceled),
                Search::Unexplained
            ));
        }
    }

    #[test]
    fn the_stored_date_is_the_last_applied_intent_events() {
        let ops = [
            op(0, 0, 10, Observed::Applied(OrderStatus::Paid)),
            op(1, 20, 30, Observed::Applied(OrderStatus::Refunded)),
        ];
        let explained = |as_of| {
            matches!(
                explain(
                    &ops,
                    &EVENTS,
                    1000,
                    FIRST,
                    &stored(OrderStatus::Refunded, Some(1000), as_of)
                ),
                Search::Explained(_)
            )
        };
        assert!(explained(Some(0)));
        // The refund is a charge event: it leaves the date.
        assert!(!explained(Some(1)));
        assert!(!explained(None));
    }
}
