//! The measured part: concurrent senders take deliveries off one shared
//! queue and hand each to `shared::webhooks::process`, as the webhook
//! function does with Stripe's POST. An answer Stripe would deliver again
//! (a 5xx) is scheduled again later, with a growing delay, as Stripe does
//! (over days; here over seconds). An event that arrives before the one it
//! follows is parked on its order and answered 200, so it is not.

use super::workload::Delivery;
use crate::BoxError;
use crate::counting::{DynamoCounts, KmsCounts};
use crate::cpu::{self, CpuTime};
use crate::passes::CountedApp;
use shared::webhooks::{self, Outcome};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    Applied {
        to: &'static str,
    },
    Duplicate,
    NoChange {
        reason: &'static str,
    },
    Flagged,
    /// 200, parked: the event arrived before the one it follows; recorded
    /// and kept on its order until the order is `until`.
    Parked {
        until: &'static str,
    },
    /// A 5xx: delivered again later.
    Retryable {
        status: u16,
        code: String,
    },
    /// A 4xx (a 409 `event_too_early` included, which the service no
    /// longer answers): Stripe would deliver again too, but nothing would
    /// change; not retried here, and none is expected, so each is reported
    /// as a delivery never acknowledged.
    Rejected {
        status: u16,
        code: String,
    },
}

impl AttemptResult {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        !matches!(
            self,
            AttemptResult::Retryable { .. } | AttemptResult::Rejected { .. }
        )
    }

    /// Stripe would deliver it again (and so do the senders).
    pub fn redelivered(&self) -> bool {
        matches!(self, AttemptResult::Retryable { .. })
    }
}

/// One call of `process`, timed from the start of the measured phase.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub start: Duration,
    pub end: Duration,
    pub result: AttemptResult,
}

pub struct Measured {
    /// Per delivery (same index as the deliveries), its attempts in order.
    pub attempts: Vec<Vec<Attempt>>,
    pub senders: usize,
    pub max_tries: usize,
    /// When the last first attempt ended (the queue's first pass).
    pub first_pass: Duration,
    pub wall: Duration,
    pub cpu: CpuTime,
    pub kms: KmsCounts,
    pub dynamodb: DynamoCounts,
}

impl Measured {
    pub fn attempt_count(&self) -> usize {
        self.attempts.iter().map(Vec::len).sum()
    }

    /// Wall time of each attempt, sorted.
    pub fn latencies(&self) -> Vec<Duration> {
        let mut out: Vec<Duration> = self
            .attempts
            .iter()
            .flatten()
            .map(|a| a.end - a.start)
            .collect();
        out.sort();
        out
    }
}

pub fn result_of(outcome: Result<Outcome, shared::AppError>) -> AttemptResult {
    match outcome {
        Ok(Outcome::Applied { to, .. }) => AttemptResult::Applied { to },
        Ok(Outcome::Duplicate) => AttemptResult::Duplicate,
        Ok(Outcome::NoChange { reason }) => AttemptResult::NoChange { reason },
        Ok(Outcome::Flagged { .. }) => AttemptResult::Flagged,
        Ok(Outcome::Parked { until, .. }) => AttemptResult::Parked { until },
        Err(err) if err.status().is_server_error() => AttemptResult::Retryable {
            status: err.status().as_u16(),
            code: err.code().to_owned(),
        },
        Err(err) => AttemptResult::Rejected {
            status: err.status().as_u16(),
            code: err.code().to_owned(),
        },
    }
}

/// Delay before try `next_try` (2, 3, …): 50 ms doubling, at most 4 s.
pub fn backoff(next_try: usize) -> Duration {
    let doublings = next_try.saturating_sub(2).min(16) as u32;
    Duration::from_millis(50 * 2u64.pow(doublings)).min(Duration::from_secs(4))
}

/// Work shared by the senders: the first-pass queue (an atomic counter),
/// redeliveries due at a time, and how many deliveries are not done yet.
struct Queue {
    len: usize,
    next: AtomicUsize,
    /// (due, delivery, try number).
    redeliveries: Mutex<BinaryHeap<Reverse<(Duration, usize, usize)>>>,
    open: AtomicUsize,
}

enum Work {
    /// Delivery index, try number (1 = first delivery).
    Deliver(usize, usize),
    Wait(Duration),
    Done,
}

impl Queue {
    fn redeliveries(
        &self,
    ) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<(Duration, usize, usize)>>> {
        self.redeliveries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, now: Duration) -> Work {
        {
            let mut due = self.redeliveries();
            if let Some(Reverse((at, i, try_no))) = due.peek().copied()
                && at <= now
            {
                due.pop();
                return Work::Deliver(i, try_no);
            }
        }
        if self.next.load(Ordering::Relaxed) < self.len {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i < self.len {
                return Work::Deliver(i, 1);
            }
        }
        if self.open.load(Ordering::SeqCst) == 0 {
            return Work::Done;
        }
        // Nothing due yet: wait for it (or for another sender's answer).
        let soonest = self
            .redeliveries()
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_sub(now))
            .unwrap_or(Duration::from_millis(5));
        Work::Wait(soonest.clamp(Duration::from_millis(1), Duration::from_millis(50)))
    }
}

/// Sends every delivery (plus redeliveries): `senders` tasks on the current
/// (multi-thread) runtime take a due redelivery if there is one, else the
/// next delivery in delivery order. A delivery answered 5xx is delivered
/// again after `backoff`, up to `max_tries` tries in all.
pub async fn run(
    counted: Arc<CountedApp>,
    deliveries: Arc<Vec<Delivery>>,
    senders: usize,
    max_tries: usize,
    ticks_per_second: u64,
) -> Result<Measured, BoxError> {
    let queue = Arc::new(Queue {
        len: deliveries.len(),
        next: AtomicUsize::new(0),
        redeliveries: Mutex::new(BinaryHeap::new()),
        open: AtomicUsize::new(deliveries.len()),
    });
    let kms_before = counted.kms.counts();
    let dynamodb_before = counted.dynamodb.counts();
    let cpu_before = cpu::process_cpu(ticks_per_second)?;
    let started = Instant::now();

    let mut tasks = Vec::with_capacity(senders);
    for _ in 0..senders {
        let (counted, deliveries, queue) = (counted.clone(), deliveries.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent: Vec<(usize, Attempt)> = Vec::new();
            loop {
                let (i, try_no) = match queue.take(started.elapsed()) {
                    Work::Deliver(i, try_no) => (i, try_no),
                    Work::Wait(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    Work::Done => break,
                };
                let delivery = &deliveries[i];
                let start = started.elapsed();
                let outcome = webhooks::process(
                    &counted.app,
                    Some(delivery.store_id),
                    Some(&delivery.signature),
                    &delivery.body,
                )
                .await;
                let end = started.elapsed();
                let result = result_of(outcome);
                let again = result.redelivered() && try_no < max_tries;
                sent.push((i, Attempt { start, end, result }));
                if again {
                    queue
                        .redeliveries()
                        .push(Reverse((end + backoff(try_no + 1), i, try_no + 1)));
                } else {
                    queue.open.fetch_sub(1, Ordering::SeqCst);
                }
            }
            sent
        }));
    }
    let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); deliveries.len()];
    for task in tasks {
        for (i, attempt) in task.await? {
            attempts[i].push(attempt);
        }
    }
    for tried in &mut attempts {
        tried.sort_by_key(|a| a.start);
    }

    let wall = started.elapsed();
    let cpu = cpu::process_cpu(ticks_per_second)?.since(&cpu_before);
    let first_pass = attempts
        .iter()
        .filter_map(|tried| tried.first().map(|a| a.end))
        .max()
        .unwrap_or_default();
    Ok(Measured {
        attempts,
        senders,
        max_tries,
        first_pass,
        wall,
        cpu,
        kms: counted.kms.counts().since(&kms_before),
        dynamodb: counted.dynamodb.counts().since(&dynamodb_before),
    })
}
