//! Spacing of background calls to one merchant's Stripe account. Stripe
//! limits requests per account (25 a second in test mode, 100 in live), and
//! the merchant's own customers share that limit: work nobody waits for
//! (the reconciler) takes a share of it, so checkouts never get 429s
//! because of it.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Waits for the turn of the next Stripe call.
pub trait Pace {
    fn turn(&self) -> impl Future<Output = ()> + Send;
}

/// A customer's own request: no spacing (Stripe's limit is what guards it).
pub struct Unpaced;

impl Pace for Unpaced {
    fn turn(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// At most `per_second` calls a second on one account, however many tasks
/// share it: each call takes the next free slot and sleeps until it.
pub struct AccountPace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl AccountPace {
    pub fn new(per_second: u32) -> Self {
        AccountPace {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// When the next call could start (to stop before a deadline).
    pub fn next_turn(&self) -> Instant {
        let next = *self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        next.max(Instant::now())
    }
}

impl Pace for AccountPace {
    fn turn(&self) -> impl Future<Output = ()> + Send {
        let slot = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tokio's paused clock: sleeps end exactly when due, whatever the
    // machine's load, so the spacing is checked exactly, not within a
    // window that a busy machine overruns.
    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_to_the_rate_across_concurrent_callers() {
        let pace = AccountPace::new(100);
        let start = Instant::now();
        // 21 calls from three tasks at once: the 21st waits 20 intervals.
        let one = || async {
            for _ in 0..7 {
                pace.turn().await;
            }
        };
        tokio::join!(one(), one(), one());
        let took = start.elapsed();
        assert_eq!(took, Duration::from_millis(200));
        assert!(pace.next_turn() > Instant::now(), "the next slot is taken");
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_calls_do_not_wait() {
        let start = Instant::now();
        for _ in 0..1000 {
            Unpaced.turn().await;
        }
        // Any sleep at all would move the paused clock.
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
