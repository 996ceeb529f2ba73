//! The reconciler: every few minutes, ask Stripe about orders that still
//! wait for a payment outcome, and apply what Stripe says through the same
//! guarded transitions as the webhook and the return page. A missing or
//! misconfigured webhook then delays an order by minutes instead of
//! stranding it; an abandoned checkout ends (`abandoned.rs`).
//!
//! Every order waiting is reached: the index is sorted by when each order is
//! next due, a run takes the oldest-due orders across all shards, and an
//! order a look cannot settle (still unpaid, Stripe or its key failing) is
//! moved back with a growing delay instead of staying in front. So with a
//! budget of B orders a run, W orders due now are all examined within
//! ceil(W / B) runs, whatever else is stuck. The budget is large, and a run
//! works on many stores at once, each paced to a share of its Stripe
//! account's rate limit, until its time budget ends.
//!
//! Safe to run twice at once: every change is a conditional write, so a
//! second run finds nothing left to do.

use crate::abandoned::{self, Ended};
use crate::app::App;
use crate::checkout::{self, PaymentState};
use crate::domain::{Mode, Order, OrderStatus, SecretKey, StoreId};
use crate::error::{AppError, cause_chain};
use crate::key_health;
use crate::metrics::{Metric, PaidVia};
use crate::replaced;
use crate::store::{
    DueOrder, DuePage, FIRST_CHECK_AFTER_SECS, StripeConnection, pending_partitions,
};
use crate::stripe::pace::{AccountPace, Pace};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Orders with nothing to settle, untouched for longer than this, are
    /// dropped from the index.
    pub give_up_after_secs: u64,
    /// At most this many orders per run.
    pub max_orders: usize,
    /// A run starts no order after this long (below the function's timeout).
    pub time_budget: Duration,
    /// Stores worked on at once.
    pub stores_at_once: usize,
    /// Orders of one store worked on at once (Stripe answers in a few
    /// hundred milliseconds; the pace, not this, bounds the rate).
    pub orders_per_store_at_once: usize,
    /// Stripe calls a second on one merchant's account, by the key's mode:
    /// half of Stripe's limit (25 in test mode, 100 live); the merchant's
    /// customers keep the other half.
    pub calls_per_sec_test: u32,
    pub calls_per_sec_live: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            give_up_after_secs: 7 * 24 * 60 * 60,
            // 10,000 orders due at once are all examined within 4 runs
            // (20 minutes at the template's schedule).
            max_orders: 2500,
            time_budget: Duration::from_secs(240),
            stores_at_once: 16,
            orders_per_store_at_once: 8,
            calls_per_sec_test: 12,
            calls_per_sec_live: 50,
        }
    }
}

/// The longest wait between two looks at an order that is still open: a
/// payment whose webhook never came is found within this.
pub const MAX_BACKOFF_SECS: u64 = 60 * 60;

/// When to look again at an order a look could not settle (`checks` looks
/// so far): five minutes, doubling, at most an hour, and never after the
/// moment its checkout counts as abandoned (that look ends it).
pub fn next_look(now: u64, checks: u32, abandoned_at: u64) -> u64 {
    let backoff = FIRST_CHECK_AFTER_SECS
        .saturating_mul(1u64 << checks.min(16))
        .min(MAX_BACKOFF_SECS);
    let next = now + backoff;
    if abandoned_at > now {
        next.min(abandoned_at)
    } else {
        next
    }
}

/// What a run did. Every examined order is counted once as settled (paid,
/// canceled, expired, needs_review), deferred or dropped; the other counts
/// say more about some of them.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Orders read and judged.
    pub examined: usize,
    /// Settled: out of the index with a final status.
    pub paid: usize,
    pub canceled: usize,
    pub expired: usize,
    /// Money on an intent the order no longer uses: a person decides.
    pub needs_review: usize,
    /// Still waiting: looked at again later, with a growing delay.
    pub deferred: usize,
    /// Of `deferred`: moved to `processing` or to `failed` by this run.
    pub processing: usize,
    pub failed: usize,
    /// Of `deferred`: Stripe, the store's key or our storage failed.
    pub errors: usize,
    /// Out of the index without a payment outcome.
    pub dropped: usize,
    /// Of `dropped`: money that does not match the order (a person looks).
    pub flagged: usize,
    /// Of `dropped`: nothing to settle after `give_up_after_secs`.
    pub given_up: usize,
    /// Of `paid`: orders of stores whose webhook is configured, so their
    /// `succeeded` delivery should have come first. Many of them mean the
    /// store's webhook (or ours) is broken.
    pub paid_with_webhook: usize,
    /// Due orders the run read but did not get to (its budget of orders or
    /// of time ended); more may wait behind them.
    pub unexamined: usize,
    /// How long the oldest due order the run did not get to has been due
    /// (0: it got to every due order it saw).
    pub oldest_unexamined_due_secs: u64,
}

impl Report {
    /// Orders this run moved on.
    pub fn healed(&self) -> usize {
        self.paid
            + self.canceled
            + self.expired
            + self.needs_review
            + self.processing
            + self.failed
            + self.flagged
    }

    fn record(&mut self, outcome: Outcome) {
        self.examined += 1;
        match outcome {
            Outcome::Paid { with_webhook } => {
                self.paid += 1;
                self.paid_with_webhook += usize::from(with_webhook);
            }
            Outcome::Canceled => self.canceled += 1,
            Outcome::Expired => self.expired += 1,
            Outcome::NeedsReview => self.needs_review += 1,
            Outcome::Deferred(why) => {
                self.deferred += 1;
                match why {
                    Deferral::Waiting => {}
                    Deferral::Processing => self.processing += 1,
                    Deferral::Failed => self.failed += 1,
                    Deferral::Error => self.errors += 1,
                }
            }
            Outcome::Dropped(why) => {
                self.dropped += 1;
                match why {
                    Dropped::Settled => {}
                    Dropped::Flagged => self.flagged += 1,
                    Dropped::GivenUp => self.given_up += 1,
                }
            }
        }
    }

    fn not_examined(&mut self, orders: impl IntoIterator<Item = DueOrder>, now: u64) {
        for order in orders {
            self.unexamined += 1;
            self.oldest_unexamined_due_secs = self
                .oldest_unexamined_due_secs
                .max(now.saturating_sub(order.due));
        }
    }
}

/// What one look at an order did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Paid { with_webhook: bool },
    Canceled,
    Expired,
    NeedsReview,
    Deferred(Deferral),
    Dropped(Dropped),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deferral {
    Waiting,
    Processing,
    Failed,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dropped {
    /// Settled meanwhile (the index lags the table), or gone.
    Settled,
    Flagged,
    GivenUp,
}

/// One run (boxed: its futures nest deep enough to strain the compiler's
/// limits where it is awaited).
pub fn run(
    app: &App,
    now: u64,
    limits: Limits,
) -> Pin<Box<dyn Future<Output = Result<Report, AppError>> + Send + '_>> {
    Box::pin(run_inner(app, now, limits))
}

async fn run_inner(app: &App, now: u64, limits: Limits) -> Result<Report, AppError> {
    let deadline = Instant::now() + limits.time_budget;
    let max = limits.max_orders.max(1);
    // One more than the budget: whether (and since when) more are due.
    let mut due = due_orders(max + 1, |partition, after, page| async move {
        app.table
            .due_pending_orders(&partition, now, after.as_deref(), page)
            .await
    })
    .await?;
    let beyond = due.split_off(max.min(due.len()));
    let stores = Mutex::new(VecDeque::from(by_store(due)));
    let report = Mutex::new(Report::default());
    join_all((0..limits.stores_at_once.max(1)).map(|_| async {
        loop {
            let next = lock(&stores).pop_front();
            let Some((store_id, orders)) = next else {
                break;
            };
            if Instant::now() >= deadline {
                lock(&report).not_examined(orders, now);
                continue;
            }
            // Boxed: the futures nest deep enough to strain the compiler.
            let store: Pin<Box<dyn Future<Output = ()> + Send + '_>> = Box::pin(reconcile_store(
                app, store_id, orders, now, limits, deadline, &report,
            ));
            store.await;
        }
    }))
    .await;
    let mut report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    report.not_examined(beyond, now);
    tracing::info!(?report, "reconciler run finished");
    app.metrics.emit(Metric::ReconcilerRun {
        examined: report.examined,
        healed: report.healed(),
        deferred: report.deferred,
        dropped: report.dropped,
        errors: report.errors,
        paid_with_webhook: report.paid_with_webhook,
        oldest_unexamined_due_secs: report.oldest_unexamined_due_secs,
    });
    Ok(report)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Up to `limit` due orders across every shard, oldest due first; at equal
/// due times the shards take turns, so no shard's backlog crowds out
/// another's. Reads each shard a page at a time, only as far as needed.
async fn due_orders<F, Fut>(limit: usize, mut fetch: F) -> Result<Vec<DueOrder>, AppError>
where
    F: FnMut(String, Option<String>, i32) -> Fut,
    Fut: Future<Output = Result<DuePage, AppError>>,
{
    struct Shard {
        partition: String,
        buffer: VecDeque<DueOrder>,
        last_key: Option<String>,
        more: bool,
        taken: usize,
    }
    let partitions: Vec<String> = pending_partitions().collect();
    let page = i32::try_from(limit / partitions.len() + 1)
        .unwrap_or(i32::MAX)
        .min(1000);
    let mut shards: Vec<Shard> = partitions
        .into_iter()
        .map(|partition| Shard {
            partition,
            buffer: VecDeque::new(),
            last_key: None,
            more: true,
            taken: 0,
        })
        .collect();
    let mut out = Vec::new();
    while out.len() < limit {
        for shard in shards.iter_mut().filter(|s| s.buffer.is_empty() && s.more) {
            let got = fetch(shard.partition.clone(), shard.last_key.clone(), page).await?;
            shard.more = got.more && !got.orders.is_empty();
            if let Some(last) = got.orders.last() {
                shard.last_key = Some(last.sort_key.clone());
            }
            shard.buffer.extend(got.orders);
        }
        let Some(next) = shards
            .iter_mut()
            .filter_map(|s| s.buffer.front().map(|o| (o.due, s.taken)).zip(Some(s)))
            .min_by_key(|(key, _)| *key)
            .map(|(_, shard)| shard)
        else {
            break;
        };
        next.taken += 1;
        out.extend(next.buffer.pop_front());
    }
    Ok(out)
}

/// The orders grouped by store, stores in the order of their oldest due.
fn by_store(orders: Vec<DueOrder>) -> Vec<(StoreId, Vec<DueOrder>)> {
    let mut groups: Vec<(StoreId, Vec<DueOrder>)> = Vec::new();
    let mut index: HashMap<StoreId, usize> = HashMap::new();
    for order in orders {
        let at = *index.entry(order.store_id).or_insert_with(|| {
            groups.push((order.store_id, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(order);
    }
    groups
}

/// A store's key, opened once per run, and whether its webhook is set up.
struct Merchant {
    connection: StripeConnection,
    key: SecretKey,
    mode: Mode,
    has_webhook: bool,
}

/// One store's due orders, several at once, its Stripe calls paced.
async fn reconcile_store(
    app: &App,
    store_id: StoreId,
    orders: Vec<DueOrder>,
    now: u64,
    limits: Limits,
    deadline: Instant,
    report: &Mutex<Report>,
) {
    let mut needs_reconnect = false;
    let merchant = match checkout::merchant_key(app, &store_id).await {
        Ok((connection, key)) => Some(Merchant {
            key,
            mode: connection.mode(),
            has_webhook: connection.webhook_secret.is_some(),
            connection,
        }),
        // Marked by key health: its orders wait for new keys, no call.
        Err(err) if err.code() == "store_needs_reconnect" => {
            needs_reconnect = true;
            None
        }
        Err(err) => {
            // Its orders back off; the others go on.
            tracing::warn!(%store_id, cause = %cause_chain(&err), "store's key could not be opened; its orders wait");
            None
        }
    };
    let pace = AccountPace::new(match merchant.as_ref().map(|m| m.mode) {
        Some(Mode::Live) => limits.calls_per_sec_live,
        _ => limits.calls_per_sec_test,
    });
    let store = StoreRun {
        merchant,
        needs_reconnect,
        pace,
        key_rejected: AtomicBool::new(false),
    };
    let queue = Mutex::new(VecDeque::from(orders));
    join_all((0..limits.orders_per_store_at_once.max(1)).map(|_| async {
        loop {
            if Instant::now() >= deadline || store.pace.next_turn() >= deadline {
                break;
            }
            let Some(due) = lock(&queue).pop_front() else {
                break;
            };
            let look: Pin<Box<dyn Future<Output = Outcome> + Send + '_>> =
                Box::pin(examine(app, &due, now, limits, &store));
            let outcome = look.await;
            lock(report).record(outcome);
        }
    }))
    .await;
    let left = queue.into_inner().unwrap_or_else(|p| p.into_inner());
    lock(report).not_examined(left, now);
}

struct StoreRun {
    merchant: Option<Merchant>,
    /// Key health marked the store's key as rejected: its orders wait (not
    /// an error of ours) until the merchant reconnects.
    needs_reconnect: bool,
    pace: AccountPace,
    /// Stripe answered 401 to the store's key this run: its other orders
    /// wait without asking again.
    key_rejected: AtomicBool,
}

/// Looks at one order; one that cannot be settled now is moved back.
async fn examine(app: &App, due: &DueOrder, now: u64, limits: Limits, store: &StoreRun) -> Outcome {
    let order = match app.table.get_order(&due.order_id).await {
        Ok(Some(order)) => order,
        Ok(None) => return Outcome::Dropped(Dropped::Settled),
        Err(err) => {
            // Left where it is: the next run tries again first.
            tracing::warn!(order_id = %due.order_id, cause = %cause_chain(&err), "could not read order");
            return Outcome::Deferred(Deferral::Error);
        }
    };
    let outcome = match settle(app, &order, now, store).await {
        Ok(outcome) => outcome,
        Err(err) => {
            // Stripe's 401 (mapped to the answer that asks for new keys).
            if matches!(err.code(), "store_needs_reconnect" | "stripe_key_invalid")
                && !store.key_rejected.swap(true, Ordering::Relaxed)
                && let Some(merchant) = &store.merchant
            {
                // The store's other orders wait; status shows it.
                key_health::note_rejected(app, &merchant.connection, "reconciler").await;
            }
            tracing::warn!(order_id = %order.order_id, cause = %cause_chain(&err), "could not reconcile order");
            Outcome::Deferred(Deferral::Error)
        }
    };
    let Outcome::Deferred(why) = outcome else {
        return outcome;
    };
    let result = if why != Deferral::Error
        && now.saturating_sub(order.updated_at) > limits.give_up_after_secs
    {
        app.table
            .forget_pending(&order.order_id)
            .await
            .map(|()| Outcome::Dropped(Dropped::GivenUp))
    } else {
        let next = next_look(now, order.reconcile_checks, order.abandoned_at());
        app.table
            .defer_pending(&order.order_id, next)
            .await
            .map(|()| outcome)
    };
    result.unwrap_or_else(|err| {
        tracing::warn!(order_id = %order.order_id, cause = %cause_chain(&err), "could not move the order's next look");
        Outcome::Deferred(Deferral::Error)
    })
}

/// What can be settled about `order` now.
async fn settle(app: &App, order: &Order, now: u64, store: &StoreRun) -> Result<Outcome, AppError> {
    if !order.status.awaits_payment() {
        // Settled meanwhile; its write took it out of the index.
        return Ok(Outcome::Dropped(Dropped::Settled));
    }
    if order.review_reason.is_some() {
        // Flagged before flags took orders out of the index.
        app.table.forget_pending(&order.order_id).await?;
        return Ok(Outcome::Dropped(Dropped::Flagged));
    }
    let abandoned = now >= order.abandoned_at();
    let Some(intent_id) = order.payment_intent_id.as_deref() else {
        if !abandoned {
            return Ok(Outcome::Deferred(Deferral::Waiting));
        }
        return Ok(ended(
            order,
            abandoned::end_without_intent(app, order).await?,
            false,
        ));
    };
    let Some(merchant) = store
        .merchant
        .as_ref()
        .filter(|_| !store.key_rejected.load(Ordering::Relaxed))
    else {
        return Ok(Outcome::Deferred(if store.needs_reconnect {
            Deferral::Waiting
        } else {
            Deferral::Error
        }));
    };
    if !order.intents_to_cancel.is_empty()
        && replaced::cancel_replaced(app, order, &merchant.key, &store.pace).await?
    {
        return Ok(Outcome::NeedsReview);
    }
    if abandoned {
        let end = abandoned::end_abandoned(app, order, &merchant.key, &store.pace).await?;
        return Ok(ended(order, end, merchant.has_webhook));
    }
    store.pace.turn().await;
    let intent = app.stripe.retrieve_intent(&merchant.key, intent_id).await?;
    let state = checkout::apply_intent(app, order, &intent, PaidVia::Reconciler).await?;
    Ok(match state {
        PaymentState::Paid => Outcome::Paid {
            with_webhook: merchant.has_webhook,
        },
        PaymentState::Flagged => Outcome::Dropped(Dropped::Flagged),
        PaymentState::Processing if order.status != OrderStatus::Processing => {
            Outcome::Deferred(Deferral::Processing)
        }
        PaymentState::Failed { .. } if order.status != OrderStatus::Failed => {
            Outcome::Deferred(Deferral::Failed)
        }
        PaymentState::Processing | PaymentState::Failed { .. } | PaymentState::Unfinished => {
            Outcome::Deferred(Deferral::Waiting)
        }
    })
}

fn ended(order: &Order, end: Ended, has_webhook: bool) -> Outcome {
    match end {
        Ended::Status(OrderStatus::Paid) => Outcome::Paid {
            with_webhook: has_webhook,
        },
        Ended::Status(OrderStatus::Canceled) => Outcome::Canceled,
        Ended::Status(OrderStatus::Expired) => Outcome::Expired,
        Ended::Status(OrderStatus::NeedsReview) => Outcome::NeedsReview,
        Ended::Status(OrderStatus::Processing) if order.status != OrderStatus::Processing => {
            Outcome::Deferred(Deferral::Processing)
        }
        Ended::Status(status) if status.awaits_payment() => Outcome::Deferred(Deferral::Waiting),
        Ended::Status(_) => Outcome::Dropped(Dropped::Settled),
        Ended::Flagged => Outcome::Dropped(Dropped::Flagged),
        Ended::NotYet => Outcome::Deferred(Deferral::Waiting),
    }
}

/// Runs the futures concurrently on this task and waits for all of them.
async fn join_all<F: Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut running: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        running.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderId;

    fn store(n: u8) -> StoreId {
        StoreId::parse(&format!("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c{n:02}")).unwrap()
    }

    /// The `n`th test order of `shard`, which its id spells out.
    fn test_id(shard: usize, n: usize) -> OrderId {
        OrderId::parse(&format!("{shard:08x}-0000-4000-8000-{n:012}")).unwrap()
    }

    fn shard_of(order_id: &OrderId) -> usize {
        usize::from_str_radix(&order_id.to_string()[..8], 16).unwrap()
    }

    fn due(shard: usize, due: u64, n: usize) -> DueOrder {
        let order_id = test_id(shard, n);
        DueOrder {
            sort_key: format!("{due:010}#{order_id}"),
            order_id,
            store_id: store(u8::try_from(shard).unwrap()),
            due,
        }
    }

    /// Shards in memory (sorted by key), their orders due by `now` served a
    /// page at a time as DynamoDB would.
    async fn merged_at(shards: &[Vec<DueOrder>], limit: usize, now: u64) -> (Vec<DueOrder>, usize) {
        let partitions: Vec<String> = pending_partitions().collect();
        let queries = std::cell::Cell::new(0);
        let got = due_orders(limit, |partition, after, page| {
            queries.set(queries.get() + 1);
            let shard = partitions.iter().position(|p| *p == partition).unwrap();
            let all: Vec<DueOrder> = shards[shard]
                .iter()
                .filter(|o| o.due <= now)
                .cloned()
                .collect();
            let start = after.map_or(0, |key| {
                all.iter().position(|o| o.sort_key == key).unwrap() + 1
            });
            let page = usize::try_from(page).unwrap();
            let orders: Vec<DueOrder> = all.iter().skip(start).take(page).cloned().collect();
            let more = start + page < all.len();
            async move { Ok(DuePage { orders, more }) }
        })
        .await
        .unwrap();
        (got, queries.get())
    }

    async fn merged(shards: &[Vec<DueOrder>], limit: usize) -> (Vec<DueOrder>, usize) {
        merged_at(shards, limit, u64::MAX).await
    }

    #[tokio::test]
    async fn the_oldest_due_come_first_whatever_their_shard() {
        // Shard 0 holds 1,000 orders due long ago; shard 5 one due earlier
        // still, shard 7 one due later. A budget of 10 takes shard 5's
        // first, then the oldest of shard 0.
        let mut shards = vec![Vec::new(); 8];
        shards[0] = (0..1000).map(|n| due(0, 1_000 + n as u64, n)).collect();
        shards[5] = vec![due(5, 500, 0)];
        shards[7] = vec![due(7, 5_000, 0)];
        let (got, queries) = merged(&shards, 10).await;
        assert_eq!(got[0].order_id, test_id(5, 0));
        assert!(got[1..].iter().all(|o| shard_of(&o.order_id) == 0));
        assert!(got.windows(2).all(|w| w[0].due <= w[1].due));
        // Pages of budget/shards + 1: a few queries, not 1,000 items read.
        assert!(queries <= 16, "{queries}");
    }

    #[tokio::test]
    async fn shards_take_turns_at_equal_due_times() {
        let shards: Vec<Vec<DueOrder>> = (0..8)
            .map(|shard| (0..100).map(|n| due(shard, 1_000, n)).collect())
            .collect();
        let (got, _) = merged(&shards, 80).await;
        for shard in 0..8 {
            let from_it = got
                .iter()
                .filter(|o| shard_of(&o.order_id) == shard)
                .count();
            assert_eq!(from_it, 10, "shard {shard}");
        }
    }

    #[tokio::test]
    async fn every_order_is_reached_within_ceil_waiting_over_budget_runs() {
        // Runs as the schedule makes them, five minutes apart: each takes
        // the budget's worth of due orders, none of which it can settle,
        // and moves each back by `next_look`. 1,000 waiting orders spread
        // unevenly, budget 64: all are examined within ceil(1000 / 64) runs.
        let sizes = [600_usize, 0, 10, 200, 0, 90, 100, 0];
        let mut shards: Vec<Vec<DueOrder>> = sizes
            .iter()
            .enumerate()
            .map(|(shard, &size)| {
                (0..size)
                    .map(|n| due(shard, 1_000 + (n % 7) as u64, n))
                    .collect()
            })
            .collect();
        let waiting: usize = sizes.iter().sum();
        let budget = 64;
        let mut seen = std::collections::HashSet::new();
        let mut now = 10_000;
        let mut runs = 0;
        while seen.len() < waiting {
            runs += 1;
            assert!(
                runs <= waiting.div_ceil(budget),
                "{} of {waiting} seen",
                seen.len()
            );
            let (batch, _) = merged_at(&shards, budget, now).await;
            let before = seen.len();
            // Orders looked at before come back five minutes later, but
            // after every order still waiting for its first look.
            let expected_new = budget.min(waiting - before);
            for order in batch {
                seen.insert(order.order_id);
                let list = &mut shards[shard_of(&order.order_id)];
                let next = next_look(now, 0, 0);
                let entry = list
                    .iter_mut()
                    .find(|o| o.order_id == order.order_id)
                    .unwrap();
                entry.due = next;
                entry.sort_key = format!("{next:010}#{}", order.order_id);
                list.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
            }
            assert_eq!(seen.len() - before, expected_new, "run {runs}");
            now += 300;
        }
    }

    #[test]
    fn looks_back_off_up_to_an_hour_but_not_past_the_checkouts_end() {
        let now = 1_000_000;
        let far = now + 100_000;
        let delays: Vec<u64> = (0..8)
            .map(|checks| next_look(now, checks, far) - now)
            .collect();
        assert_eq!(delays, [300, 600, 1200, 2400, 3600, 3600, 3600, 3600]);
        assert_eq!(next_look(now, 40, far) - now, 3600, "no overflow");
        assert_eq!(
            next_look(now, 3, now + 100),
            now + 100,
            "the end is looked at on time"
        );
        assert_eq!(
            next_look(now, 0, now - 5),
            now + 300,
            "already abandoned: plain back-off"
        );
    }

    #[test]
    fn every_examined_order_is_settled_deferred_or_dropped_once() {
        let outcomes = [
            Outcome::Paid { with_webhook: true },
            Outcome::Paid {
                with_webhook: false,
            },
            Outcome::Canceled,
            Outcome::Expired,
            Outcome::NeedsReview,
            Outcome::Deferred(Deferral::Waiting),
            Outcome::Deferred(Deferral::Processing),
            Outcome::Deferred(Deferral::Failed),
            Outcome::Deferred(Deferral::Error),
            Outcome::Dropped(Dropped::Settled),
            Outcome::Dropped(Dropped::Flagged),
            Outcome::Dropped(Dropped::GivenUp),
        ];
        let mut report = Report::default();
        for outcome in outcomes {
            report.record(outcome);
        }
        let r = &report;
        assert_eq!(r.examined, 12);
        assert_eq!(
            r.paid + r.canceled + r.expired + r.needs_review + r.deferred + r.dropped,
            r.examined
        );
        assert_eq!((r.deferred, r.errors, r.processing, r.failed), (4, 1, 1, 1));
        assert_eq!((r.dropped, r.flagged, r.given_up), (3, 1, 1));
        assert_eq!((r.paid, r.paid_with_webhook), (2, 1));
        assert_eq!(r.healed(), 2 + 1 + 1 + 1 + 1 + 1 + 1);
    }

    #[test]
    fn the_oldest_order_not_reached_is_reported() {
        let mut report = Report::default();
        report.not_examined([due(1, 700, 0), due(2, 400, 1), due(3, 900, 2)], 1_000);
        assert_eq!(
            (report.unexamined, report.oldest_unexamined_due_secs),
            (3, 600)
        );
    }

    #[test]
    fn stores_are_grouped_in_the_order_of_their_oldest_due() {
        let orders = vec![due(3, 1, 0), due(1, 2, 1), due(3, 3, 2), due(2, 4, 3)];
        let groups = by_store(orders);
        let stores: Vec<StoreId> = groups.iter().map(|(s, _)| *s).collect();
        assert_eq!(stores, [store(3), store(1), store(2)]);
        assert_eq!(groups[0].1.len(), 2);
    }
}
