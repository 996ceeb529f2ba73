//! The measured part: concurrent senders take the next delivery off one
//! shared counter and hand it to `shared::webhooks::process`, as the webhook
//! function does with Stripe's POST. A delivery answered 5xx is delivered
//! again by its sender after a growing delay, as Stripe does (over days;
//! here over seconds) while the other senders go on. An event that arrives
//! before the one it follows is parked on its order and answered 200.

use super::workload::Delivery;
use crate::BoxError;
use crate::cpu::{self, CpuTime};
use shared::testing::counting::{CountedApp, Counts};
use shared::webhooks::{self, Outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// 200: the event arrived before the one it follows; recorded and kept
    /// on its order until the order is `until`.
    Parked {
        until: &'static str,
    },
    /// A 5xx (delivered again later) or a 4xx (none is expected; not
    /// delivered again, so it counts as never acknowledged).
    Failed {
        status: u16,
        code: String,
    },
}

impl AttemptResult {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        !matches!(self, AttemptResult::Failed { .. })
    }

    /// Stripe would deliver it again (and so do the senders).
    pub fn redelivered(&self) -> bool {
        matches!(self, AttemptResult::Failed { status, .. } if *status >= 500)
    }
}

/// One call of `process`, and when it ended (since the measured phase began).
#[derive(Clone, Debug)]
pub struct Attempt {
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
    pub counts: Counts,
}

impl Measured {
    pub fn attempt_count(&self) -> usize {
        self.attempts.iter().map(Vec::len).sum()
    }
}

pub fn result_of(outcome: Result<Outcome, shared::AppError>) -> AttemptResult {
    match outcome {
        Ok(Outcome::Applied { to, .. }) => AttemptResult::Applied { to },
        Ok(Outcome::Duplicate) => AttemptResult::Duplicate,
        Ok(Outcome::NoChange { reason }) => AttemptResult::NoChange { reason },
        Ok(Outcome::Flagged { .. }) => AttemptResult::Flagged,
        Ok(Outcome::Parked { until, .. }) => AttemptResult::Parked { until },
        Err(err) => AttemptResult::Failed {
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

/// Sends every delivery from `senders` tasks on the current (multi-thread)
/// runtime, each taking the next delivery in delivery order; a 5xx is
/// delivered again after `backoff`, up to `max_tries` tries in all.
pub async fn run(
    counted: Arc<CountedApp>,
    deliveries: Arc<Vec<Delivery>>,
    senders: usize,
    max_tries: usize,
    ticks_per_second: u64,
) -> Result<Measured, BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let counts_before = counted.counts();
    let cpu_before = cpu::process_cpu(ticks_per_second)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(senders);
    for _ in 0..senders {
        let (counted, deliveries, next) = (counted.clone(), deliveries.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent: Vec<(usize, Vec<Attempt>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = deliveries.get(i) else {
                    break;
                };
                let mut tries = Vec::new();
                loop {
                    let outcome = webhooks::process(
                        &counted.app,
                        &counted.webhook_memory,
                        Some(d.store_id),
                        Some(&d.signature),
                        &d.body,
                    )
                    .await;
                    let result = result_of(outcome);
                    let again = result.redelivered() && tries.len() + 1 < max_tries;
                    tries.push(Attempt {
                        end: started.elapsed(),
                        result,
                    });
                    if !again {
                        break;
                    }
                    tokio::time::sleep(backoff(tries.len() + 1)).await;
                }
                sent.push((i, tries));
            }
            sent
        }));
    }
    let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); deliveries.len()];
    for task in tasks {
        for (i, tries) in task.await? {
            attempts[i] = tries;
        }
    }
    let wall = started.elapsed();
    let cpu = cpu::process_cpu(ticks_per_second)?.since(&cpu_before);
    let first_pass = (attempts
        .iter()
        .filter_map(|tries| tries.first().map(|a| a.end)))
    .max()
    .unwrap_or_default();
    Ok(Measured {
        attempts,
        senders,
        max_tries,
        first_pass,
        wall,
        cpu,
        counts: counted.counts().since(&counts_before),
    })
}
