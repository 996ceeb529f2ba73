//! Envelope encryption of merchant secrets.
//!
//! Sealing asks KMS for a fresh AES-256 data key under our key, bound to the
//! encryption context `{store_id, purpose}`; the 32 plaintext bytes are the
//! Fernet key (first half signs, second half encrypts). We store the Fernet
//! token and the wrapped data key, never the plaintext key. Opening asks KMS
//! to unwrap with the same context, so a sealed value copied to another store
//! (or to another purpose) does not open.
//!
//! A warm container keeps unwrapped data keys for a short TTL in a bounded
//! cache: a busy store costs about one KMS call per container per TTL.
//!
//! Three parts, each using only the ones before it:
//! - `keys`: the key service (KMS), the encryption context and the data keys
//!   it hands out;
//! - `cache`: unwrapped data keys of a warm container;
//! - `seal`: `Vault`, which seals and opens with the two above.
//!
//! `fake` is an in-memory key service for tests. It is compiled only into
//! tests and with the `testing` feature (other crates' tests), never into a
//! function's binary.

mod cache;
mod keys;
mod seal;

#[cfg(any(test, feature = "testing"))]
pub mod fake;

pub use keys::{DataKey, DataKeys, EncryptionContext, KmsDataKeys, NewDataKey, Purpose};
pub use seal::{SealedSecret, Vault};

use crate::error::{AppError, BoxError};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// KMS could not be reached or refused us: nothing can be sealed or opened now.
    #[error("key service unavailable")]
    Unavailable(#[source] BoxError),
    /// KMS would not unwrap this key with this context: the value belongs to
    /// another store or purpose, or was tampered with.
    #[error("sealed secret does not belong to this store and purpose")]
    WrongContext,
    #[error("key service returned a malformed data key")]
    BadDataKey,
    /// The data key unwrapped but the token did not decrypt: corrupted data.
    #[error("sealed secret is corrupted")]
    Corrupted,
}

impl From<VaultError> for AppError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Unavailable(_) => AppError::dependency("KMS", err),
            other => AppError::internal(other),
        }
    }
}
