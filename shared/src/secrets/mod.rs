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
}

impl SecretKeys {
    /// A secret that is not being rotated.
    pub fn single(current: InternalSecret) -> Self {
        SecretKeys {
            current,
            previous: None,
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
