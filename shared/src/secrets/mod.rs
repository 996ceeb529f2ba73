//! Secrets by purpose, rotatable without downtime (DESIGN.md §5).
//!
//! Each purpose (BMOS authentication, link and CSRF signing) has its own
//! secret with a current and, during a rotation, a previous value. Both
//! verify; only the current one signs. A warm container re-reads its secret
//! when the cache's TTL runs out, never because a signature failed to
//! verify: anyone can send bad signatures, and each one must not cost a
//! Secrets Manager read (money, throttling, latency for honest callers).

mod rotating;
mod secrets_manager;

pub use rotating::RotatingSecret;
pub use secrets_manager::SecretsManagerSource;

use crate::config::InternalSecret;
use crate::error::BoxError;
use crate::vault::BoxFuture;

/// The values of one secret that are valid now.
#[derive(Clone, Debug)]
pub struct SecretKeys {
    /// Signs, and verifies.
    pub current: InternalSecret,
    /// Verifies only: what BMOS (or a link we issued) may still use while a
    /// rotation is under way.
    pub previous: Option<InternalSecret>,
    /// When `current` became current (unix seconds), where the source
    /// knows: Secrets Manager's `CreatedDate` of the `AWSCURRENT` version.
    pub current_since: Option<u64>,
}

/// Allowed difference between Secrets Manager's clock and ours.
const CLOCK_SKEW_SECS: u64 = 2;

impl SecretKeys {
    /// A secret that is not being rotated.
    pub fn single(current: InternalSecret) -> Self {
        SecretKeys {
            current,
            previous: None,
            current_since: None,
        }
    }

    /// The value to sign with at `now`. A warm container re-reads its
    /// secret only once per `settle` (the cache's TTL), so for that long
    /// after a rotation some containers still know only the old value:
    /// what we sign then must be what they can verify. So the new value
    /// signs once it has been current for longer than `settle`; until then
    /// the previous one does, which every container knows.
    pub fn signing_at(&self, now: u64, settle: std::time::Duration) -> &InternalSecret {
        match (&self.previous, self.current_since) {
            (Some(previous), Some(since))
                if now < since.saturating_add(settle.as_secs() + CLOCK_SKEW_SECS) =>
            {
                previous
            }
            _ => &self.current,
        }
    }

    /// Every value a signature may be made with, current first.
    pub fn all(&self) -> impl Iterator<Item = &InternalSecret> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

/// Where a secret's values come from. Implemented by Secrets Manager, by a
/// fixed value from the environment (the local stack), and by fakes in tests.
pub trait SecretSource: Send + Sync {
    /// The values valid now. Errors name the secret, never hold a value.
    fn fetch(&self) -> BoxFuture<'_, Result<SecretKeys, BoxError>>;
}

/// A value given in the environment: it never changes during the process.
pub struct FixedSecret(pub SecretKeys);

impl SecretSource for FixedSecret {
    fn fetch(&self) -> BoxFuture<'_, Result<SecretKeys, BoxError>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }
}
