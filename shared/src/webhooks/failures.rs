//! Deliveries that failed verification, counted per store in this
//! container's memory and written to the store's record at most once per
//! `WRITE_INTERVAL`: a flood of forgeries costs no DynamoDB write each.
//!
//! The first failure of a store is written at once (a merchant whose secret
//! is wrong is told at the first delivery, not a minute later); the ones
//! after it wait for the store's next turn, which the next delivery for
//! that store takes once the interval has passed, failed or verified.
//! Lambda freezes an idle container, so nothing can run on a timer: what
//! is pending when the container is recycled before another delivery for
//! the store is lost, at most one interval's count, and never the fact that
//! deliveries failed (that was written at the start of the interval).

use super::bounded::Bounded;
use crate::domain::StoreId;
use std::time::{Duration, Instant};

/// A store's failures are written at most this often per container.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// What to add to the store's record: `count` failures, the last of them
/// at `last_at` (unix seconds) for `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureReport {
    pub count: u64,
    pub reason: String,
    pub last_at: u64,
}

#[derive(Clone, Default)]
struct Pending {
    count: u64,
    reason: String,
    last_at: u64,
    /// When this container last took the store's turn to write.
    written_at: Option<Instant>,
}

impl Pending {
    fn take_if_due(&mut self, now: Instant) -> Option<FailureReport> {
        let due = self
            .written_at
            .is_none_or(|at| now.saturating_duration_since(at) >= WRITE_INTERVAL);
        if !due || self.count == 0 {
            return None;
        }
        self.written_at = Some(now);
        Some(FailureReport {
            count: std::mem::take(&mut self.count),
            reason: std::mem::take(&mut self.reason),
            last_at: self.last_at,
        })
    }
}

/// Bounded like the rest of the container's memory; when it is emptied,
/// what was pending is lost (as for a recycled container). Only stores
/// with a connection are counted, so made-up store ids never get here.
#[derive(Default)]
pub struct FailureTally(Bounded<StoreId, Pending>);

impl FailureTally {
    /// Counts one failed delivery (`at`: unix seconds); returns what to
    /// write now when it is the store's turn.
    pub fn count(
        &self,
        store_id: &StoreId,
        reason: &str,
        at: u64,
        now: Instant,
    ) -> Option<FailureReport> {
        self.0.update(*store_id, |pending| {
            pending.count += 1;
            reason.clone_into(&mut pending.reason);
            pending.last_at = pending.last_at.max(at);
            pending.take_if_due(now)
        })
    }

    /// For a verified delivery: the failures still pending, when it is the
    /// store's turn. Costs a map lookup when there are none.
    pub fn due(&self, store_id: &StoreId, now: Instant) -> Option<FailureReport> {
        self.0.with(|map| map.get_mut(store_id)?.take_if_due(now))
    }

    /// A write that did not happen: its failures wait for the next turn
    /// (not the next delivery, or a DynamoDB outage would cost a write
    /// attempt per forgery).
    pub fn restore(&self, store_id: &StoreId, report: FailureReport) {
        self.0.update(*store_id, |pending| {
            pending.count += report.count;
            if pending.reason.is_empty() {
                pending.reason = report.reason;
            }
            pending.last_at = pending.last_at.max(report.last_at);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::bounded::CAPACITY;

    fn store(n: u128) -> StoreId {
        StoreId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
    }

    const T: u64 = 1_800_000_000;

    fn report(count: u64, reason: &str, last_at: u64) -> Option<FailureReport> {
        Some(FailureReport {
            count,
            reason: reason.into(),
            last_at,
        })
    }

    #[test]
    fn the_first_failure_is_written_at_once_then_once_per_interval() {
        let tally = FailureTally::default();
        let start = Instant::now();
        let a = store(1);
        assert_eq!(
            tally.count(&a, "no match", T, start),
            report(1, "no match", T)
        );
        let second = |s| start + Duration::from_secs(s);
        for s in 1..60 {
            assert_eq!(tally.count(&a, "no match", T + s, second(s)), None, "{s}");
        }
        assert_eq!(
            tally.count(
                &a,
                "tolerance",
                T + 59,
                second(59) + Duration::from_millis(999)
            ),
            None,
            "just inside the interval"
        );
        // The turn comes with the first failure at or after the interval:
        // all 59 + 1 waiting, the newest reason and time.
        assert_eq!(
            tally.count(&a, "missing", T + 60, start + WRITE_INTERVAL),
            report(61, "missing", T + 60)
        );
        assert_eq!(
            tally.count(&a, "missing", T + 61, second(61)),
            None,
            "a new interval began with that write"
        );
        assert_eq!(
            tally.count(&store(2), "no match", T, second(61)),
            report(1, "no match", T),
            "stores are independent"
        );
    }

    #[test]
    fn a_verified_delivery_takes_the_turn_so_counts_are_not_left_behind() {
        let tally = FailureTally::default();
        let start = Instant::now();
        let a = store(1);
        assert_eq!(tally.due(&a, start), None, "nothing counted");
        assert!(tally.count(&a, "no match", T, start).is_some());
        assert!(
            tally
                .count(&a, "no match", T + 5, start + Duration::from_secs(5))
                .is_none()
        );
        assert_eq!(
            tally.due(&a, start + Duration::from_secs(59)),
            None,
            "not yet"
        );
        assert_eq!(
            tally.due(&a, start + WRITE_INTERVAL),
            report(1, "no match", T + 5)
        );
        assert_eq!(
            tally.due(&a, start + WRITE_INTERVAL * 3),
            None,
            "nothing pending, nothing to write"
        );
    }

    #[test]
    fn a_write_that_failed_is_retried_at_the_next_turn_not_the_next_delivery() {
        let tally = FailureTally::default();
        let start = Instant::now();
        let a = store(1);
        let lost = tally.count(&a, "no match", T, start).unwrap();
        tally.restore(&a, lost);
        assert_eq!(
            tally.count(&a, "missing", T + 1, start + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            tally.count(&a, "missing", T + 60, start + WRITE_INTERVAL),
            report(3, "missing", T + 60)
        );
    }

    #[test]
    fn the_tally_stays_bounded() {
        let tally = FailureTally::default();
        let now = Instant::now();
        for n in 0..(CAPACITY as u128 + 10) {
            tally.count(&store(n), "no match", T, now);
        }
        assert!(tally.0.len() <= CAPACITY, "{} entries", tally.0.len());
    }
}
