//! The Markdown report of the webhook run.

use super::breakdown::Breakdown;
use super::lifecycle::{self, Category};
use super::repro::{self, Reproduced};
use super::send::Measured;
use super::verify::Verification;
use super::workload::{Delivery, DeliveryOrder, MAX_DUPLICATE_DELAY, Shape, Workload};
use crate::passes::EmulatorCounts;
use crate::report::Machine;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// From the issue: webhook CPU per delivery, waits excluded.
pub const CPU_GOAL_US: f64 = 200.0;

pub struct Timings {
    pub setup: Duration,
    pub build: Duration,
    pub measured: Duration,
    pub verify: Duration,
    pub breakdown: Duration,
    pub total: Duration,
}

pub struct Report<'a> {
    pub machine: Machine,
    pub command: String,
    pub shape: &'a Shape,
    pub workload: &'a Workload,
    pub deliveries: &'a [Delivery],
    pub measured: &'a Measured,
    pub verification: &'a Verification,
    pub breakdown: Option<&'a Breakdown>,
    pub reproduced: Option<&'a [Reproduced]>,
    pub timings: Timings,
    pub ticks_per_second: u64,
    pub data_key_cache_ttl: Duration,
    /// Requests the Stripe emulator logged during the measured run (`None`
    /// without its log in `$STACK_DIR`).
    pub stripe: Option<EmulatorCounts>,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pass(ok: bool) -> &'static str {
    if ok { "**PASS**" } else { "**FAIL**" }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

impl Report<'_> {
    fn deliveries(&self) -> usize {
        self.measured.attempts.len()
    }

    pub fn cpu_per_delivery_us(&self) -> f64 {
        us(self.measured.cpu.total()) / self.deliveries().max(1) as f64
    }

    pub fn lost_ok(&self) -> bool {
        // Early events are parked and released, and every 5xx is delivered
        // again, so every order must end where it is at Stripe; one that
        // ends short has lost an effect.
        self.verification.lost_effects() == 0
            && self.verification.undecided == 0
            && self.verification.short_of_stripe_orders() == 0
            && self.verification.tally.given_up == 0
    }

    pub fn double_ok(&self) -> bool {
        self.verification.double_transitions() == 0
    }

    pub fn cpu_ok(&self) -> bool {
        self.cpu_per_delivery_us() <= CPU_GOAL_US
    }

    pub fn goals(&self) -> String {
        let v = &self.verification;
        let mut out = String::from("| goal | result | |\n|---|---|---|\n");
        let _ = writeln!(
            out,
            "| 0 lost effects | {} ({} orders whose stored state no serial order of their deliveries explains, {} events never recorded, {} parked events left that their order would take, {} orders undecided) | {} |",
            v.lost_effects(),
            v.unexplained,
            v.events_not_recorded,
            v.parked_stranded,
            v.undecided,
            pass(self.lost_ok())
        );
        let _ = writeln!(
            out,
            "| 0 double transitions | {} ({} events applied by two deliveries, {} recorded by two) | {} |",
            v.double_transitions(),
            v.applied_twice,
            v.recorded_twice,
            pass(self.double_ok())
        );
        let _ = writeln!(
            out,
            "| webhook CPU ≤ {CPU_GOAL_US:.0} µs per delivery, waits excluded | {:.0} µs | {} |",
            self.cpu_per_delivery_us(),
            pass(self.cpu_ok())
        );
        let _ = writeln!(
            out,
            "| deliveries still not acknowledged after {} tries | {} ({} of them for events already recorded: Stripe would keep delivering those for days) | {} |",
            self.measured.max_tries,
            v.tally.given_up,
            v.given_up_recorded,
            pass(v.tally.given_up == 0)
        );
        let short = v.short_of_stripe_orders();
        let _ = writeln!(
            out,
            "| orders ending where they are at Stripe (one short is a lost effect) | {} of {} ({} short) | {} |",
            v.match_stripe,
            self.workload.orders.len(),
            short,
            pass(short == 0)
        );
        out
    }

    pub fn results(&self) -> String {
        let m = self.measured;
        let n = self.deliveries().max(1) as f64;
        let latencies = m.latencies();
        let requests = m.dynamodb.requests();
        let mut out = String::from(
            "| deliveries | attempts | senders | first pass s | attempts/s in it | all acknowledged s | deliveries/s to then | wall s (last try) | CPU µs / delivery (user + sys) | CPU µs / attempt | KMS calls (decrypt / generate) | DynamoDB requests | DynamoDB / delivery | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let in_first_pass = m
            .attempts
            .iter()
            .flatten()
            .filter(|a| a.end <= m.first_pass)
            .count();
        let acknowledged = m
            .attempts
            .iter()
            .flatten()
            .filter(|a| a.result.succeeded())
            .map(|a| a.end)
            .max()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} ({:.0} + {:.0}) | {:.0} | {} ({} / {}) | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            self.deliveries(),
            m.attempt_count(),
            m.senders,
            m.first_pass.as_secs_f64(),
            in_first_pass as f64 / m.first_pass.as_secs_f64().max(1e-9),
            acknowledged.as_secs_f64(),
            n / acknowledged.as_secs_f64().max(1e-9),
            m.wall.as_secs_f64(),
            self.cpu_per_delivery_us(),
            us(m.cpu.user) / n,
            us(m.cpu.system) / n,
            us(m.cpu.total()) / m.attempt_count().max(1) as f64,
            m.kms.total(),
            m.kms.decrypt,
            m.kms.generate,
            requests,
            requests as f64 / n,
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
        out.push_str(&self.stripe_reads());
        out.push_str("\nDynamoDB requests by operation: ");
        let ops: Vec<String> = m
            .dynamodb
            .requests_by_operation
            .iter()
            .map(|(op, count)| format!("{op} {count} ({:.2}/delivery)", *count as f64 / n))
            .collect();
        let _ = writeln!(
            out,
            "{}; {} operations started, {} requests (the difference is SDK retries).",
            ops.join(", "),
            m.dynamodb.operations,
            requests
        );
        // Event writes and the few health notes are both `UpdateItem`s.
        let writes = m
            .dynamodb
            .requests_by_operation
            .get("UpdateItem")
            .copied()
            .unwrap_or(0);
        let t = &self.verification.tally;
        // One write per verified attempt; a second, recording the event
        // alone, after a refusal that ends in NoChange, or parking it after
        // a refusal that finds it early; for Flagged the flag as well; and
        // one per parked event released (applied or dropped). Health notes:
        // at most one per store per started minute in one process.
        let (parked, left) = (t.parked_total(), self.verification.parked_left_total());
        let released = parked.saturating_sub(left);
        let expected = m.attempt_count() - t.rejected.values().sum::<usize>()
            + t.no_change_total()
            + 2 * t.flagged
            + parked
            + released;
        let health = self.workload.stores.len() * (1 + self.measured.wall.as_secs() as usize / 60);
        let extra = writes.saturating_sub((expected + health) as u64);
        let _ = writeln!(
            out,
            "\nEach verified attempt records its event on the order and applies the order's change in one conditional `UpdateItem`, \
with no read first, except a `payment_intent.succeeded`: it reads its order first (one `GetItem`: a duplicate or an order past \
paying is answered there, before Stripe is asked) and writes Stripe's word; one whose write the order's condition refused and that ends in NoChange records the event alone with a second \
(Flagged: a third, the flag), and one that ends Parked parks it with a second (the event id and a `parked:` attribute, conditional \
on the order still being short of the event's prerequisite). Each of the {released} parked events released since (the {parked} Parked \
answers less the {left} `parked:` attributes left) took one more, applying or dropping it and removing the attribute. \
The other `UpdateItem`s note webhook health on the store (at most one a minute per store). {}",
            if extra == 0 {
                "None needed more (no refused write found an order that allowed the change, moved by a concurrent delivery between the write and its check).".to_owned()
            } else {
                format!(
                    "The {extra} beyond that are writes again after a refusal (`EventWrite::OrderRefused`) whose returned order allowed \
the change (a concurrent delivery moved it between the write and its check, or reached the prerequisite before the parking write), \
second writes that found the event recorded meanwhile, or release writes refused because another delivery had released that event or \
moved the order first."
                )
            }
        );
        let stores = self.workload.stores.len() as u64;
        let _ = writeln!(
            out,
            "\nKMS: {} Decrypt calls for {} stores{}.",
            m.kms.decrypt,
            stores,
            if m.kms.decrypt > stores {
                format!(
                    ": {} more than one per store, from concurrent first deliveries of a store that all found the data-key cache empty \
(the vault does not make concurrent misses for one key wait for a single Decrypt)",
                    m.kms.decrypt - stores
                )
            } else {
                String::new()
            }
        );
        out
    }

    pub fn outcomes(&self) -> String {
        let v = self.verification;
        let t = &v.tally;
        let mut out = String::from("| answer | attempts |\n|---|---|\n");
        let _ = writeln!(out, "| Applied | {} |", t.applied);
        let _ = writeln!(out, "| Duplicate | {} |", t.duplicate);
        for (reason, count) in &t.no_change {
            let _ = writeln!(out, "| NoChange: {reason} | {count} |");
        }
        let _ = writeln!(out, "| Flagged (amount mismatch) | {} |", t.flagged);
        let until: Vec<String> = t
            .parked
            .iter()
            .map(|(until, n)| format!("until {until}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "| Parked (recorded; applied when the order gets there) | {}{} |",
            t.parked_total(),
            if until.is_empty() {
                String::new()
            } else {
                format!(" ({})", until.join(", "))
            }
        );
        for (code, count) in &t.retryable {
            let _ = writeln!(out, "| 5xx {code} (retried) | {count} |");
        }
        for (code, count) in &t.rejected {
            let _ = writeln!(out, "| 4xx {code} | {count} |");
        }
        let _ = writeln!(
            out,
            "\nDeliveries delivered more than once (after a 5xx; at most {} tries each): {}; still not acknowledged after the last try: {} \
({} whose event another delivery had recorded, {} whose event no delivery recorded).{}",
            self.measured.max_tries,
            t.retried_deliveries,
            t.given_up,
            v.given_up_recorded,
            t.given_up - v.given_up_recorded,
            if t.retryable.is_empty() {
                " No attempt got a 5xx: DynamoDB failed no write (a failure answers 5xx and Stripe retries; \
`tests/system/tests/dynamodb_outage.rs` proves that path), so it is not exercised here."
            } else {
                ""
            }
        );
        for (kind, count) in &v.given_up_kinds {
            let _ = writeln!(out, "- given up: {kind}: {count}");
        }
        let first_seen = t.first_seen();
        let _ = writeln!(
            out,
            "\nAccounting: {} distinct events were sent in {} deliveries. Answers that saw an event for the first time (Applied + NoChange + Flagged + Parked): **{}**; \
Duplicate answers: **{}** = 2xx answers {} − events with a 2xx answer {} {}. \
Event ids recorded on this run's orders (`processed_events`): **{}** ({} sent events not recorded on their order, {} ids that match no event sent for that order). \
Events answered only Duplicate (recorded by an attempt that then failed): {}.",
            self.workload.distinct_events,
            t.deliveries,
            first_seen,
            t.duplicate,
            t.successes(),
            v.events_answered,
            if t.duplicate + v.events_answered == t.successes() {
                "(exact)"
            } else {
                "(**does not add up**)"
            },
            v.event_items,
            v.events_not_recorded,
            v.unknown_event_items,
            v.only_duplicates,
        );
        let orders = self.workload.orders.len();
        let _ = writeln!(
            out,
            "\nPer order: {} of {} orders have an end state that does not depend on the delivery order; {} of those ended elsewhere. \
The linearizability search (see Method) explained {} orders; {} unexplained, {} undecided. Orders flagged for review: {}.",
            v.order_independent,
            orders,
            v.order_independent_wrong,
            orders - v.unexplained - v.undecided,
            v.unexplained,
            v.undecided,
            v.flagged_orders,
        );
        for example in &v.unexplained_examples {
            let _ = writeln!(out, "- {example}");
        }
        let _ = writeln!(
            out,
            "\nParked events left on the orders after the run (`parked:` attributes): {} ({} of them ones the order as stored would take \
now, never released: lost effects). Left ones that the order is ready for but refuses (a refund parked on an order that ended \
canceled) or is not ready for are recorded as processed and change nothing; they are listed, not counted as faults.",
            v.parked_left_total(),
            v.parked_stranded,
        );
        for (what, count) in &v.parked_left {
            let _ = writeln!(out, "- {what}: {count}");
        }
        out
    }

    pub fn against_stripe(&self) -> String {
        let v = self.verification;
        let mut out = format!(
            "{} of {} orders end where they are at Stripe (the state the events reach when each arrives once, in the order Stripe generated them). The others:\n\n",
            v.match_stripe,
            self.workload.orders.len()
        );
        if v.short_of_stripe.is_empty() {
            return out;
        }
        out.push_str("| at Stripe | stored | orders | what the witness order shows (orders) |\n|---|---|---|---|\n");
        for ((truth, stored), shortfall) in &v.short_of_stripe {
            let causes: Vec<String> = shortfall
                .causes
                .iter()
                .map(|(cause, n)| format!("{cause} ({n})"))
                .collect();
            let _ = writeln!(
                out,
                "| {truth} | {stored} | {} | {} |",
                shortfall.orders,
                causes.join("; ")
            );
        }
        out
    }

    pub fn workload_tables(&self) -> String {
        let w = self.workload;
        let lifecycles: Vec<_> = w.orders.iter().map(|o| o.lifecycle.clone()).collect();
        let mix = lifecycle::mix(&lifecycles);
        let mut out = String::from(
            "| orders that are… | orders | events | events / order | end state depends on delivery order |\n|---|---|---|---|---|\n",
        );
        for category in Category::ALL {
            let (orders, events, dependent) = mix.get(&category).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {orders} | {events} | {:.1} | {dependent} |",
                category.describe(),
                events as f64 / orders.max(1) as f64
            );
        }
        let mut by_type: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for order in &w.orders {
            for event in &order.events {
                by_type.entry(event.event_type()).or_default().0 += 1;
            }
        }
        for d in self.deliveries {
            by_type
                .entry(w.orders[d.order].events[d.event].event_type())
                .or_default()
                .1 += 1;
        }
        out.push_str("\n| event type | distinct events | deliveries |\n|---|---|---|\n");
        for (kind, (events, deliveries)) in &by_type {
            let _ = writeln!(out, "| `{kind}` | {events} | {deliveries} |");
        }
        let sizes: Vec<usize> = self.deliveries.iter().map(|d| d.body.len()).collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
        let mut copies: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for d in self.deliveries {
            *copies.entry((d.order, d.event)).or_default() += 1;
        }
        let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
        for n in copies.values() {
            *histogram.entry(*n).or_default() += 1;
        }
        let histogram: Vec<String> = histogram
            .iter()
            .map(|(n, events)| format!("{events} events × {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\nDeliveries per event: {}. Body size: mean {:.0} B (min {}, max {}). \
Orders whose events were first delivered in another order than Stripe's: {} of {}. \
Pairs of attempts on the same order that overlapped in time (concurrent deliveries to one order): {}.",
            histogram.join(", "),
            mean,
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
            self.verification.out_of_order_orders,
            w.orders.len(),
            self.verification.same_order_overlaps,
        );
        out
    }

    fn breakdown_text(&self) -> String {
        let Some(b) = self.breakdown else {
            return String::new();
        };
        let per_delivery_requests =
            self.measured.dynamodb.requests() as f64 / self.deliveries().max(1) as f64;
        let measured = self.cpu_per_delivery_us();
        format!(
            "## Where the CPU goes\n\nMeasured after the run, the same way (process utime + stime ÷ count):\n\n\
| part | CPU µs | share of the {measured:.0} µs per delivery |\n|---|---|---|\n\
| parse the body, verify the HMAC, read the effect (no I/O; {rounds} passes over the {n} deliveries, one thread) | {logic:.1} per delivery | {logic_share:.0}% |\n\
| one DynamoDB `GetItem` through the same SDK client ({reads} reads of the store's connection, {senders} at a time) | {get:.0} per request | |\n\
| × {req:.2} DynamoDB requests per delivery | ≈ {est:.0} per delivery | {est_share:.0}% |\n\n\
{req:.2} requests per delivery at ≈ {get:.0} µs each is {verdict} the {goal:.0} µs goal by itself, before any of the handler's own work.\n",
            logic_share = us(b.logic) * 100.0 / measured.max(1e-9),
            est_share = us(b.get_item) * per_delivery_requests * 100.0 / measured.max(1e-9),
            rounds = b.logic_rounds,
            n = self.deliveries(),
            logic = us(b.logic),
            reads = b.get_items,
            senders = self.measured.senders,
            get = us(b.get_item),
            req = per_delivery_requests,
            est = us(b.get_item) * per_delivery_requests,
            verdict = if us(b.get_item) * per_delivery_requests > CPU_GOAL_US {
                "already above"
            } else {
                "within"
            },
            goal = CPU_GOAL_US,
        )
    }

    /// Orders whose story at Stripe includes a payment.
    pub fn paid_orders(&self) -> usize {
        self.workload
            .orders
            .iter()
            .filter(|plan| plan.events.contains(&lifecycle::StripeEvent::Succeeded))
            .count()
    }

    /// The Stripe reads that confirm payments (`shared::webhooks::confirm`):
    /// one per paid order, more only when deliveries of its `succeeded`
    /// overlap (each reads the order before any has written).
    pub fn stripe_reads(&self) -> String {
        let Some(stripe) = &self.stripe else {
            return "\nStripe: not counted (no emulator log in `$STACK_DIR`).\n".to_owned();
        };
        let paid = self.paid_orders();
        format!(
            "\nStripe, as the emulator logged it during the run: {} `GET /v1/payment_intents/{{id}}` (each `payment_intent.succeeded` \
read back before its order is paid) for {paid} orders paid at Stripe: **{:.3} Stripe calls per paid order**; {} other Stripe \
requests.\n",
            stripe.stripe_retrieve,
            stripe.stripe_retrieve as f64 / paid.max(1) as f64,
            stripe.stripe() - stripe.stripe_retrieve,
        )
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let s = self.shape;
        let mut out = format!(
            "# Stripe webhooks: {} deliveries over {} orders, {} duplicates, {}, {} concurrent senders\n\n",
            self.deliveries(),
            self.workload.orders.len(),
            s.duplicates,
            match s.order {
                DeliveryOrder::Shuffled => "shuffled",
                DeliveryOrder::Stripe => "in Stripe's order per order",
            },
            self.measured.senders
        );
        let _ = writeln!(
            out,
            "{} · {} CPUs ({}) · Linux {} · {} · commit {} · load average {} before, {} after\n",
            m.date, m.cpus, m.cpu_model, m.kernel, m.rustc, m.commit, m.load_before, m.load_after
        );
        let _ = writeln!(
            out,
            "Command: `{}` (seed {}, delivery order `{}`)\n",
            self.command,
            s.seed,
            s.order.name()
        );
        out.push_str(&self.goals());
        out.push_str("\n## Throughput, CPU and requests\n\n");
        out.push_str(&self.results());
        out.push_str("\n## Answers and what the table holds\n\n");
        out.push_str(&self.outcomes());
        out.push_str("\n## Against Stripe\n\n");
        out.push_str(&self.against_stripe());
        out.push_str(DROPS);
        out.push_str(match self.shape.order {
            DeliveryOrder::Shuffled => DROPS_SHUFFLED,
            DeliveryOrder::Stripe => DROPS_STRIPE,
        });
        if let Some(reproduced) = self.reproduced {
            out.push_str("\n### Reproductions, one delivery at a time\n\n");
            out.push_str(&repro::markdown(reproduced));
        }
        out.push_str("\n## Workload\n\n");
        out.push_str(&self.workload_tables());
        out.push('\n');
        out.push_str(&self.breakdown_text());
        let t = &self.timings;
        let _ = writeln!(
            out,
            "\nTimings: setup {:.1} s, building and signing the deliveries {:.1} s, measured run {:.1} s, verification {:.1} s, CPU breakdown {:.1} s, total {:.1} s.\n",
            t.setup.as_secs_f64(),
            t.build.as_secs_f64(),
            t.measured.as_secs_f64(),
            t.verify.as_secs_f64(),
            t.breakdown.as_secs_f64(),
            t.total.as_secs_f64()
        );
        out.push_str(&self.method());
        out
    }

    /// How the deliveries were ordered, for the Method section.
    fn ordering(&self) -> String {
        let s = self.shape;
        let total = s.distinct_events + s.duplicates;
        match s.order {
            DeliveryOrder::Shuffled => format!(
                "delivery order `shuffled` (`--order shuffled`, the worst case): all {total} deliveries shuffled together, \
so each order's events arrive in any order."
            ),
            DeliveryOrder::Stripe => format!(
                "delivery order `stripe` (`--order stripe`): each order's events in the order Stripe generated them, the orders \
interleaved by spreading each order's events evenly over the stream from a random phase per order (event i of an order with k events \
at (i + phase) / k of the stream, so consecutive events of one order are about {distinct} / k distinct events apart and the \
{senders} senders do not have two different events of one order in flight), and each duplicate 1–{MAX_DUPLICATE_DELAY} distinct \
events (uniform) after its original, as Stripe's retries would be (one that close may overlap its original); {total} deliveries in all.",
                distinct = s.distinct_events,
                senders = self.measured.senders,
            ),
        }
    }

    fn method(&self) -> String {
        let s = self.shape;
        format!(
            "## Method\n\n\
- Stack: `infra/stack.sh start` (DynamoDB Local, moto for KMS, localstripe holding each order's intent: the webhook reads a payment back from it before it pays the order), nothing else using it.\n\
- Setup (not measured, its own app): {stores} stores written with `Store::save_connection`, each with an `sk_test_` key and a `whsec_` signing secret \
sealed through the real KMS vault (`Purpose::WebhookSecret`, `WebhookSource::Manual`, as the connect form saves a pasted secret); \
{orders} pending orders (round-robin over the stores, amounts 5–200 EUR) written with `Store::create_checkout`, each then given a made-up \
`pi_…` with `Store::attach_intent` (order + `PI#` link in one transaction, as create-intent does); {conc} at a time.\n\
- Lifecycles (seed {seed}): each order gets a story at Stripe from the seven event types our endpoint subscribes to \
(`webhook_endpoints::EVENTS`): declined attempts (card: `payment_failed`; SEPA debit: `processing` then `payment_failed`), then either a \
successful attempt (`succeeded`, after `processing` for SEPA) and what followed (1–4 `charge.refunded` with growing running totals, \
ending at the full amount or not; or `charge.dispute.created` then `.closed` won/lost), or `payment_intent.canceled`. \
Categories in fixed shares, then stories lengthened one event at a time until there are exactly {events} distinct events. \
Then {dups} extra deliveries of events picked uniformly at random (with replacement); {ordering} \
Bodies are Stripe-shaped (full `payment_intent`, `charge`, `dispute` objects; our intents carry `metadata.store_id/order_id`), \
API version `webhook_endpoints::api_version()`, signed `t=<now>,v1=<HMAC-SHA256>` with the store's secret before the clock starts \
(all within the 300 s tolerance of one run).\n\
- Measured: a fresh `App` (new AWS config and pools, empty data-key cache) with a counting `DataKeys` decorator on the real `KmsDataKeys` \
and a counting interceptor on the DynamoDB client, as in the create-intent benchmark. A tokio multi-thread runtime with 2 workers; \
{senders} sender tasks take a redelivery that is due, else the next delivery from one shared atomic counter, and call \
`shared::webhooks::process(app, Some(store_id), Some(signature), body)` (what `POST /webhook/stripe/{{store_id}}` runs; the handler's JSON \
answer is not built). Stripe delivers again after any non-2xx; here a 5xx is delivered again after 50 ms, doubling up to 4 s \
(Stripe: minutes to hours, for three days), at most {tries} tries; a 4xx is not (none is expected: an early event is parked and \
answered 200, so the service's former 409 `event_too_early` would count here as a delivery never acknowledged). \
The first pass ends when every delivery has had its first try; “all acknowledged” when the last 2xx answer came (the waits \
between tries included); the wall time runs until the last try of a delivery never acknowledged. \
Each attempt's start and end (`Instant`) and answer are kept.\n\
- CPU: this process's utime + stime from `/proc/self/stat` ({ticks} ticks/s) over the measured run, ÷ deliveries. DynamoDB Local and moto are \
other processes, so waiting on them is not counted, but the SDK's work (signing, HTTP, JSON) is. No tracing subscriber is installed \
(the service's per-delivery log lines would add to it in production); endpoints are plain HTTP (production adds TLS). Release build \
(workspace profile: opt-level s, fat LTO). The 2 CPUs are shared with the emulators, so wall time and throughput are the emulators' as much as ours.\n\
- KMS: the decorator's count; data-key cache TTL {ttl} s.\n\
- Verification (not measured), read with another client: every order's `status`, `amount_refunded`, `last_payment_error`, `review_reason`, \
`status_as_of`, `processed_events` and `parked:` attributes (consistent `GetItem`). Double transitions: events answered Applied by two \
deliveries, or first-seen (Applied/NoChange/Flagged/Parked) by two. Lost effects: sent events not recorded on their order, parked events \
left that the order as stored is ready for and would take (never released), plus orders that fail the linearizability search: \
the order's attempts (events, answers, real-time intervals; an attempt that ended before another began must come first) must have a serial \
order of their writes in which the specified handling — an event already recorded is a Duplicate (checked first); else, while the order \
has not reached the event's prerequisite (`OrderStatus::has_reached`: paid for refunds and disputes, disputed for a dispute's closure), \
recorded and parked, answered Parked until that status; else recorded, and its move applied unless `OrderStatus::allows` forbids it, \
the order already has an `amount_refunded` at least the event's, or the move is to processing or failed and the order's `status_as_of` \
(the `created` of the last `payment_intent.*` event applied) is not older than the event's `created`, each answered NoChange with the \
service's reason; `amount_refunded`, `last_payment_error` and `status_as_of` set as the update sets them; and after a move to paid or \
disputed, a Duplicate or a NoChange, the parked events the order is ready for released oldest first (by `created`), each judged by the \
same rules and applied or dropped, in writes of their own that other deliveries' writes may come between, the delivery finishing only \
once none is ready — gives exactly the observed answers and ends in exactly the stored fields. A 5xx attempt may or may not have taken \
effect, and may have stopped part way through its releases (each is tried). So the service may park or refuse an event that overtook the \
one it depends on, but not one that started after that one was answered Applied; an answered delivery that readied a parked event must \
have released it; it may not apply an event twice, or end anywhere the answers do not lead.\n\
- “At Stripe”: the state reached by applying each event once, in the order Stripe generated it (events dated a minute apart, in that \
order). Under the specified handling (early events parked and released) every order of this workload ends there in any delivery order; the table above lists every order \
that ends elsewhere, with what one witness serial order shows.\n",
            stores = s.stores,
            orders = s.orders,
            conc = s.setup_concurrency,
            seed = s.seed,
            events = s.distinct_events,
            dups = s.duplicates,
            ordering = self.ordering(),
            senders = self.measured.senders,
            tries = self.measured.max_tries,
            ticks = self.ticks_per_second,
            ttl = self.data_key_cache_ttl.as_secs(),
        )
    }
}

const DROPS: &str = "
How the service handles order (`process.rs`, `apply.rs`, `parked.rs`, `verdict.rs`): each delivery records its event on the order and \
applies the order's change in one conditional write, with no read first. An event already recorded is a Duplicate, whatever the order's \
status. An event whose prerequisite the order has not reached (a refund or a dispute before the payment, a dispute's closure before its \
creation) is parked: recorded (a redelivery is a Duplicate) and its change kept on the order as a `parked:` attribute, in one conditional \
write, and answered 200 Parked; the delivery that moves the order to `paid` or `disputed`, or a Duplicate or NoChange delivery that \
finds the order holding parked events, then applies every parked event the order is ready for, oldest first, judged by the same rules \
(one that can no longer apply is dropped). Any other event is recorded, and acknowledged 200 `no change` instead of applied when \
`OrderStatus::allows` forbids the move (`payment_failed` after the payment), when it carries an older refund total than the order's, \
or when it is a `processing` or `payment_failed` not newer than the payment state the order shows (an earlier attempt's news delivered \
late). So no delivery order changes where an order ends: every order should end where it is at Stripe, and any listed above lost an \
effect (a delivery given up after its last try, or a fault). ";

const DROPS_SHUFFLED: &str = "A global shuffle of every event is far more disorder than Stripe produces (`--order stripe` measures \
a stream in Stripe's order). The one-at-a-time reproductions below show each out-of-order case without concurrency.
";

const DROPS_STRIPE: &str = "This run delivered each order's events in Stripe's order (`--order stripe`; the Workload section \
checks it), so the out-of-order cases should not arise in it; the one-at-a-time reproductions below show each of them without concurrency.
";
