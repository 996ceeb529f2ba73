//! The measured part: concurrent senders take deliveries off one shared
//! queue and hand each to `shared::webhooks::process`, as the webhook
//! function does with Stripe's POST; a 5xx is retried as Stripe would.

use super::workload::Delivery;
use crate::BoxError;
use crate::counting::{DynamoCounts, KmsCounts};
use crate::cpu::{self, CpuTime};
use crate::passes::CountedApp;
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
    /// A 5xx (Stripe delivers again): retried here.
    Retryable {
        status: u16,
        code: String,
    },
    /// A 4xx: Stripe would deliver again too, but nothing would change; not
    /// retried here, and none is expected.
    Rejected {
        status: u16,
        code: String,
    },
}

impl AttemptResult {
    pub fn succeeded(&self) -> bool {
        !matches!(
            self,
            AttemptResult::Retryable { .. } | AttemptResult::Rejected { .. }
        )
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

fn result_of(outcome: Result<Outcome, shared::AppError>) -> AttemptResult {
    match outcome {
        Ok(Outcome::Applied { to, .. }) => AttemptResult::Applied { to },
        Ok(Outcome::Duplicate) => AttemptResult::Duplicate,
        Ok(Outcome::NoChange { reason }) => AttemptResult::NoChange { reason },
        Ok(Outcome::Flagged { .. }) => AttemptResult::Flagged,
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

/// Sends every delivery once (plus retries): `senders` tasks on the current
/// (multi-thread) runtime pull the next delivery from a shared counter.
/// Between tries of one delivery the sender waits 10 ms × try.
pub async fn run(
    counted: Arc<CountedApp>,
    deliveries: Arc<Vec<Delivery>>,
    senders: usize,
    max_tries: usize,
    ticks_per_second: u64,
) -> Result<Measured, BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let kms_before = counted.kms.counts();
    let dynamodb_before = counted.dynamodb.counts();
    let cpu_before = cpu::process_cpu(ticks_per_second)?;
    let started = Instant::now();

    let mut tasks = Vec::with_capacity(senders);
    for _ in 0..senders {
        let (counted, deliveries, next) = (counted.clone(), deliveries.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent: Vec<(usize, Vec<Attempt>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(delivery) = deliveries.get(i) else {
                    break;
                };
                let mut attempts = Vec::with_capacity(1);
                for try_number in 1..=max_tries {
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
                    let retry = matches!(result, AttemptResult::Retryable { .. });
                    attempts.push(Attempt { start, end, result });
                    if !retry || try_number == max_tries {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10 * try_number as u64)).await;
                }
                sent.push((i, attempts));
            }
            sent
        }));
    }
    let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); deliveries.len()];
    for task in tasks {
        for (i, tried) in task.await? {
            attempts[i] = tried;
        }
    }

    let wall = started.elapsed();
    let cpu = cpu::process_cpu(ticks_per_second)?.since(&cpu_before);
    Ok(Measured {
        attempts,
        senders,
        max_tries,
        wall,
        cpu,
        kms: counted.kms.counts().since(&kms_before),
        dynamodb: counted.dynamodb.counts().since(&dynamodb_before),
    })
}
