//! One secret's values, cached in a warm container and re-read when the
//! cache's TTL runs out.
//!
//! - A read happens only when the TTL is due, whatever the requests: a
//!   signature that fails to verify never causes one (an attacker sending
//!   bad signatures costs us no Secrets Manager calls).
//! - A failed re-read keeps serving the last good values (logged as a
//!   warning) and is tried again one TTL later: Secrets Manager being
//!   unreachable must never become an outage of the API.
//! - One re-read at a time: while one is under way, other requests keep
//!   the values they have.

use super::{FixedSecret, SecretKeys, SecretSource};
use crate::config::InternalSecret;
use crate::error::{BoxError, cause_chain};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct RotatingSecret {
    /// What the secret is for, in log lines (never its value).
    purpose: &'static str,
    source: Box<dyn SecretSource>,
    ttl: Duration,
    state: Mutex<State>,
    refreshing: AtomicBool,
}

struct State {
    keys: Arc<SecretKeys>,
    /// `None`: the values never change (given in the environment).
    next_read: Option<Instant>,
}

impl RotatingSecret {
    /// Reads the secret once (the cold start fails if it cannot), then
    /// re-reads it every `ttl`.
    pub async fn load(
        purpose: &'static str,
        source: Box<dyn SecretSource>,
        ttl: Duration,
    ) -> Result<Self, BoxError> {
        let keys = source.fetch().await?;
        Ok(Self::starting_with(
            purpose,
            source,
            ttl,
            keys,
            Instant::now(),
        ))
    }

    /// Values that never change: the local stack and tests.
    pub fn fixed(purpose: &'static str, keys: SecretKeys) -> Self {
        RotatingSecret {
            purpose,
            source: Box::new(FixedSecret(keys.clone())),
            ttl: Duration::ZERO,
            state: Mutex::new(State {
                keys: Arc::new(keys),
                next_read: None,
            }),
            refreshing: AtomicBool::new(false),
        }
    }

    fn starting_with(
        purpose: &'static str,
        source: Box<dyn SecretSource>,
        ttl: Duration,
        keys: SecretKeys,
        now: Instant,
    ) -> Self {
        RotatingSecret {
            purpose,
            source,
            ttl,
            state: Mutex::new(State {
                keys: Arc::new(keys),
                next_read: Some(now + ttl),
            }),
            refreshing: AtomicBool::new(false),
        }
    }

    /// The values valid now, re-read first if the cache's TTL ran out.
    pub async fn keys(&self) -> Arc<SecretKeys> {
        self.keys_at(Instant::now()).await
    }

    /// The values as cached, without re-reading: for code that cannot wait,
    /// in a request that already called `keys` (which re-reads when due).
    pub fn cached(&self) -> Arc<SecretKeys> {
        self.lock().keys.clone()
    }

    /// The value to sign with at `now` (unix seconds), from the cached
    /// values: after a rotation, the previous value until every warm
    /// container has had a TTL to re-read (`SecretKeys::signing_at`).
    pub fn signer(&self, now: u64) -> InternalSecret {
        self.cached().signing_at(now, self.ttl).clone()
    }

    async fn keys_at(&self, now: Instant) -> Arc<SecretKeys> {
        let (keys, due) = {
            let state = self.lock();
            let due = state.next_read.is_some_and(|at| now >= at);
            (state.keys.clone(), due)
        };
        if !due {
            return keys;
        }
        let Some(_refreshing) = RefreshGuard::take(&self.refreshing) else {
            return keys;
        };
        match self.source.fetch().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                let mut state = self.lock();
                state.keys = fresh.clone();
                state.next_read = Some(now + self.ttl);
                fresh
            }
            Err(err) => {
                tracing::warn!(
                    purpose = self.purpose,
                    cause = %cause_chain(err.as_ref()),
                    "could not re-read a secret; keeping its last good values"
                );
                self.lock().next_read = Some(now + self.ttl);
                keys
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields, consistent even after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Holds the one re-read slot; frees it even if the request is dropped
/// while the read is under way.
struct RefreshGuard<'a>(&'a AtomicBool);

impl<'a> RefreshGuard<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| RefreshGuard(flag))
    }
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{sign_hex, verify_hex};
    use crate::vault::BoxFuture;
    use std::sync::atomic::AtomicUsize;

    const TTL: Duration = Duration::from_secs(300);

    fn value(tag: &str) -> InternalSecret {
        InternalSecret::new(format!("{tag}-rotating-secret-0123456789abcdef")).expect("long")
    }

    /// A Secrets Manager stand-in: what it returns can be changed, it can be
    /// made to fail, and it counts reads.
    #[derive(Clone, Default)]
    struct Fake(Arc<FakeState>);

    #[derive(Default)]
    struct FakeState {
        keys: Mutex<Option<SecretKeys>>,
        down: AtomicBool,
        reads: AtomicUsize,
    }

    impl Fake {
        fn set(&self, current: &str, previous: Option<&str>) {
            self.set_since(current, previous, None);
        }
        fn set_since(&self, current: &str, previous: Option<&str>, since: Option<u64>) {
            *self.0.keys.lock().unwrap() = Some(SecretKeys {
                current: value(current),
                previous: previous.map(value),
                current_since: since,
            });
        }
        fn reads(&self) -> usize {
            self.0.reads.load(Ordering::SeqCst)
        }
    }

    impl SecretSource for Fake {
        fn fetch(&self) -> BoxFuture<'_, Result<SecretKeys, BoxError>> {
            Box::pin(async move {
                self.0.reads.fetch_add(1, Ordering::SeqCst);
                if self.0.down.load(Ordering::SeqCst) {
                    return Err("secrets manager is unreachable".into());
                }
                Ok(self.0.keys.lock().unwrap().clone().expect("set"))
            })
        }
    }

    async fn loaded(fake: &Fake, now: Instant) -> RotatingSecret {
        let keys = fake.fetch().await.unwrap();
        RotatingSecret::starting_with("test", Box::new(fake.clone()), TTL, keys, now)
    }

    #[tokio::test]
    async fn during_a_rotation_both_values_verify_and_the_current_one_signs() {
        let fake = Fake::default();
        fake.set("new", Some("old"));
        let start = Instant::now();
        let secret = loaded(&fake, start).await;
        let keys = secret.keys_at(start).await;
        let by_old = sign_hex(&value("old"), &[b"m"]);
        let by_new = sign_hex(&value("new"), &[b"m"]);
        assert!(verify_hex(&keys, &[b"m"], &by_old), "previous verifies");
        assert!(verify_hex(&keys, &[b"m"], &by_new), "current verifies");
        assert_eq!(sign_hex(&keys.current, &[b"m"]), by_new, "current signs");
        let by_other = sign_hex(&value("other"), &[b"m"]);
        assert!(!verify_hex(&keys, &[b"m"], &by_other));
    }

    #[tokio::test]
    async fn a_warm_container_reads_again_only_when_the_ttl_runs_out() {
        let fake = Fake::default();
        fake.set("one", None);
        let start = Instant::now();
        let secret = loaded(&fake, start).await;
        fake.set("two", Some("one"));
        let before = secret.keys_at(start + TTL - Duration::from_secs(1)).await;
        assert!(before.previous.is_none(), "cached until the TTL");
        assert_eq!(fake.reads(), 1);
        let after = secret.keys_at(start + TTL).await;
        assert_eq!(
            sign_hex(&after.current, &[b"m"]),
            sign_hex(&value("two"), &[b"m"])
        );
        assert!(after.previous.is_some());
        assert_eq!(fake.reads(), 2);
        // And the next read is one TTL after that one.
        secret
            .keys_at(start + TTL + TTL - Duration::from_secs(1))
            .await;
        assert_eq!(fake.reads(), 2);
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_last_good_values_and_retries_a_ttl_later() {
        let fake = Fake::default();
        fake.set("good", None);
        let start = Instant::now();
        let secret = loaded(&fake, start).await;
        fake.0.down.store(true, Ordering::SeqCst);
        let by_good = sign_hex(&value("good"), &[b"m"]);
        for step in 0..5u32 {
            let keys = secret
                .keys_at(start + TTL + Duration::from_secs(step.into()))
                .await;
            assert!(verify_hex(&keys, &[b"m"], &by_good), "still serving");
        }
        assert_eq!(fake.reads(), 2, "one failed read, not one per request");
        fake.0.down.store(false, Ordering::SeqCst);
        fake.set("better", Some("good"));
        let keys = secret.keys_at(start + TTL + TTL).await;
        assert_eq!(fake.reads(), 3);
        assert!(keys.previous.is_some(), "picked up once it answers again");
    }

    #[tokio::test]
    async fn bad_signatures_never_cause_a_read() {
        let fake = Fake::default();
        fake.set("real", None);
        let start = Instant::now();
        let secret = loaded(&fake, start).await;
        for i in 0..1000u64 {
            // Within one TTL, however many forged signatures arrive.
            let keys = secret.keys_at(start + Duration::from_millis(i)).await;
            assert!(!verify_hex(&keys, &[b"m"], &format!("{i:064x}")));
        }
        assert_eq!(fake.reads(), 1, "only the cold start's read");
    }

    #[tokio::test]
    async fn a_new_value_signs_only_once_every_container_can_know_it() {
        let fake = Fake::default();
        let rotated_at = 1_700_000_000;
        fake.set_since("new", Some("old"), Some(rotated_at));
        let secret = loaded(&fake, Instant::now()).await;
        let signs_with = |now| sign_hex(&secret.signer(now), &[b"m"]);
        let (by_old, by_new) = (
            sign_hex(&value("old"), &[b"m"]),
            sign_hex(&value("new"), &[b"m"]),
        );
        // A container that read just before the rotation keeps the old
        // value for up to one TTL: until then, links must verify there.
        for now in [
            rotated_at,
            rotated_at + TTL.as_secs() - 1,
            rotated_at + TTL.as_secs() + 1,
        ] {
            assert_eq!(signs_with(now), by_old, "{}s after", now - rotated_at);
        }
        assert_eq!(signs_with(rotated_at + TTL.as_secs() + 2), by_new);

        // No rotation under way, or no creation time known: current signs.
        fake.set_since("only", None, Some(rotated_at));
        let single = loaded(&fake, Instant::now()).await;
        assert_eq!(
            sign_hex(&single.signer(rotated_at), &[b"m"]),
            sign_hex(&value("only"), &[b"m"])
        );
        fake.set_since("new", Some("old"), None);
        let unknown = loaded(&fake, Instant::now()).await;
        assert_eq!(sign_hex(&unknown.signer(rotated_at), &[b"m"]), by_new);
    }

    #[tokio::test]
    async fn fixed_values_are_never_read_again() {
        let secret = RotatingSecret::fixed("test", SecretKeys::single(value("env")));
        let far = Instant::now() + Duration::from_secs(86_400);
        let keys = secret.keys_at(far).await;
        assert!(keys.previous.is_none());
        assert_eq!(format!("{:?}", keys.current), "InternalSecret([redacted])");
    }
}
