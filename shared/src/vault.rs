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

use crate::domain::StoreId;
use crate::error::{AppError, BoxError};
use base64::Engine as _;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::{Zeroize, Zeroizing};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a sealed secret is for; part of the KMS encryption context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    StripeSecretKey,
    WebhookSecret,
    /// A checkout link's token, kept so a retry with the same
    /// `Idempotency-Key` can be given the same link.
    CheckoutToken,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::StripeSecretKey => "stripe_secret_key",
            Purpose::WebhookSecret => "stripe_webhook_secret",
            Purpose::CheckoutToken => "checkout_token",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncryptionContext {
    pub store_id: StoreId,
    pub purpose: Purpose,
}

impl EncryptionContext {
    pub fn new(store_id: StoreId, purpose: Purpose) -> Self {
        EncryptionContext { store_id, purpose }
    }

    pub fn to_map(self) -> HashMap<String, String> {
        HashMap::from([
            ("store_id".to_string(), self.store_id.to_string()),
            ("purpose".to_string(), self.purpose.as_str().to_string()),
        ])
    }
}

/// A secret as stored: the Fernet token and the KMS-wrapped key that opens it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub wrapped_key: Vec<u8>,
    pub token: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedSecret({} byte key, {} byte token)",
            self.wrapped_key.len(),
            self.token.len()
        )
    }
}

/// 32 plaintext key bytes, wiped when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Takes the bytes out of `plaintext` and wipes it.
    pub fn from_vec(mut plaintext: Vec<u8>) -> Result<Self, VaultError> {
        let key = <[u8; 32]>::try_from(plaintext.as_slice()).map_err(|_| VaultError::BadDataKey);
        plaintext.zeroize();
        key.map(|k| DataKey(Zeroizing::new(k)))
    }

    fn fernet(&self) -> fernet::Fernet {
        let encoded = Zeroizing::new(base64::engine::general_purpose::URL_SAFE.encode(*self.0));
        // 32 bytes always make a valid Fernet key.
        fernet::Fernet::new(&encoded).unwrap_or_else(|| unreachable!("32-byte key"))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

pub struct NewDataKey {
    pub plaintext: DataKey,
    pub wrapped: Vec<u8>,
}

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

/// The key service: KMS in production. A trait because tests need a fault
/// and a call counter here; nothing else implements it.
pub trait DataKeys: Send + Sync {
    fn generate<'a>(
        &'a self,
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<NewDataKey, VaultError>>;
    fn decrypt<'a>(
        &'a self,
        wrapped: &'a [u8],
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, VaultError>>;
}

pub struct KmsDataKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsDataKeys {
    pub fn new(client: aws_sdk_kms::Client, key_id: String) -> Self {
        KmsDataKeys { client, key_id }
    }
}

impl DataKeys for KmsDataKeys {
    fn generate<'a>(
        &'a self,
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<NewDataKey, VaultError>> {
        Box::pin(async move {
            let out = self
                .client
                .generate_data_key()
                .key_id(&self.key_id)
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .set_encryption_context(Some(ctx.to_map()))
                .send()
                .await
                .map_err(|e| VaultError::Unavailable(e.into()))?;
            let plaintext = out.plaintext.ok_or(VaultError::BadDataKey)?.into_inner();
            let wrapped = out
                .ciphertext_blob
                .ok_or(VaultError::BadDataKey)?
                .into_inner();
            Ok(NewDataKey {
                plaintext: DataKey::from_vec(plaintext)?,
                wrapped,
            })
        })
    }

    fn decrypt<'a>(
        &'a self,
        wrapped: &'a [u8],
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, VaultError>> {
        Box::pin(async move {
            let out = self
                .client
                .decrypt()
                .key_id(&self.key_id)
                .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped))
                .set_encryption_context(Some(ctx.to_map()))
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_invalid_ciphertext_exception())
                    {
                        VaultError::WrongContext
                    } else {
                        VaultError::Unavailable(e.into())
                    }
                })?;
            DataKey::from_vec(out.plaintext.ok_or(VaultError::BadDataKey)?.into_inner())
        })
    }
}

const CACHE_CAPACITY: usize = 512;

/// Unwrapped data keys by (wrapped key, context). Bounded and short-lived so
/// a key revoked in KMS stops working within one TTL.
struct DataKeyCache {
    ttl: Duration,
    entries: HashMap<([u8; 32], EncryptionContext), (DataKey, Instant)>,
}

impl DataKeyCache {
    fn id(wrapped: &[u8]) -> [u8; 32] {
        Sha256::digest(wrapped).into()
    }

    fn get(&mut self, wrapped: &[u8], ctx: &EncryptionContext, now: Instant) -> Option<DataKey> {
        let key = (Self::id(wrapped), *ctx);
        match self.entries.get(&key) {
            Some((data_key, at)) if now.duration_since(*at) < self.ttl => Some(data_key.clone()),
            Some(_) => {
                self.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, wrapped: &[u8], ctx: &EncryptionContext, data_key: DataKey, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (_, at)| now.duration_since(*at) < ttl);
        }
        if self.entries.len() >= CACHE_CAPACITY {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries
            .insert((Self::id(wrapped), *ctx), (data_key, now));
    }
}

pub struct Vault {
    keys: Arc<dyn DataKeys>,
    cache: Mutex<DataKeyCache>,
}

impl Vault {
    pub fn new(keys: Arc<dyn DataKeys>, cache_ttl: Duration) -> Self {
        Vault {
            keys,
            cache: Mutex::new(DataKeyCache {
                ttl: cache_ttl,
                entries: HashMap::new(),
            }),
        }
    }

    pub async fn seal(
        &self,
        ctx: EncryptionContext,
        plaintext: &str,
    ) -> Result<SealedSecret, VaultError> {
        let NewDataKey {
            plaintext: data_key,
            wrapped,
        } = self.keys.generate(&ctx).await?;
        let token = data_key.fernet().encrypt(plaintext.as_bytes());
        self.with_cache(|cache| cache.put(&wrapped, &ctx, data_key, Instant::now()));
        Ok(SealedSecret {
            wrapped_key: wrapped,
            token,
        })
    }

    pub async fn open(
        &self,
        ctx: EncryptionContext,
        sealed: &SealedSecret,
    ) -> Result<SecretString, VaultError> {
        let cached = self.with_cache(|cache| cache.get(&sealed.wrapped_key, &ctx, Instant::now()));
        let data_key = match cached {
            Some(key) => key,
            None => {
                let key = self.keys.decrypt(&sealed.wrapped_key, &ctx).await?;
                self.with_cache(|cache| {
                    cache.put(&sealed.wrapped_key, &ctx, key.clone(), Instant::now())
                });
                key
            }
        };
        let plaintext = Zeroizing::new(
            data_key
                .fernet()
                .decrypt(&sealed.token)
                .map_err(|_| VaultError::Corrupted)?,
        );
        let text = std::str::from_utf8(&plaintext).map_err(|_| VaultError::Corrupted)?;
        Ok(SecretString::from(text))
    }

    fn with_cache<T>(&self, f: impl FnOnce(&mut DataKeyCache) -> T) -> T {
        // A panic while holding the lock leaves the cache consistent (every
        // operation is a single map call), so a poisoned lock is still usable.
        let mut guard = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// An in-memory stand-in for KMS that authenticates the encryption context
/// the way KMS does, counts calls, and can be switched off. For tests and
/// benchmarks; production builds it but never constructs it.
pub mod fake {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    pub struct FakeKms {
        pub generate_calls: AtomicUsize,
        pub decrypt_calls: AtomicUsize,
        pub down: AtomicBool,
    }

    const MASTER: &[u8] = b"fake-kms-master-key";
    const NONCE: usize = 16;
    const TAG: usize = 16;

    fn prf(label: &[u8], parts: &[&[u8]], ctx: &EncryptionContext) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(MASTER).unwrap_or_else(|_| unreachable!());
        mac.update(label);
        for part in parts {
            mac.update(part);
        }
        mac.update(ctx.store_id.to_string().as_bytes());
        mac.update(ctx.purpose.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }

    impl FakeKms {
        fn call(&self, counter: &AtomicUsize) -> Result<(), VaultError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(VaultError::Unavailable("fake KMS is down".into()));
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        pub fn calls(&self) -> usize {
            self.generate_calls.load(Ordering::SeqCst) + self.decrypt_calls.load(Ordering::SeqCst)
        }
    }

    impl DataKeys for FakeKms {
        fn generate<'a>(
            &'a self,
            ctx: &'a EncryptionContext,
        ) -> BoxFuture<'a, Result<NewDataKey, VaultError>> {
            Box::pin(async move {
                self.call(&self.generate_calls)?;
                let mut key = [0u8; 32];
                let mut nonce = [0u8; NONCE];
                getrandom::fill(&mut key)
                    .map_err(|e| VaultError::Unavailable(e.to_string().into()))?;
                getrandom::fill(&mut nonce)
                    .map_err(|e| VaultError::Unavailable(e.to_string().into()))?;
                // wrapped = nonce || key XOR pad(nonce, ctx) || tag(nonce, masked, ctx)
                let pad = prf(b"pad", &[&nonce], ctx);
                let masked: Vec<u8> = key.iter().zip(pad).map(|(k, p)| k ^ p).collect();
                let tag = prf(b"tag", &[&nonce, &masked], ctx);
                let mut wrapped = nonce.to_vec();
                wrapped.extend(&masked);
                wrapped.extend(&tag[..TAG]);
                Ok(NewDataKey {
                    plaintext: DataKey::from_vec(key.to_vec())?,
                    wrapped,
                })
            })
        }

        fn decrypt<'a>(
            &'a self,
            wrapped: &'a [u8],
            ctx: &'a EncryptionContext,
        ) -> BoxFuture<'a, Result<DataKey, VaultError>> {
            Box::pin(async move {
                self.call(&self.decrypt_calls)?;
                if wrapped.len() != NONCE + 32 + TAG {
                    return Err(VaultError::WrongContext);
                }
                let (nonce, rest) = wrapped.split_at(NONCE);
                let (masked, tag) = rest.split_at(32);
                let expected = prf(b"tag", &[nonce, masked], ctx);
                if !bool::from(subtle::ConstantTimeEq::ct_eq(tag, &expected[..TAG])) {
                    return Err(VaultError::WrongContext);
                }
                let pad = prf(b"pad", &[nonce], ctx);
                DataKey::from_vec(masked.iter().zip(pad).map(|(m, p)| m ^ p).collect())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeKms;
    use super::*;
    use secrecy::ExposeSecret;
    use std::sync::atomic::Ordering;

    const A: &str = "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";
    const B: &str = "5a0f8d3c-1111-4c2b-8e7e-0a9b8c7d6e5f";
    const KEY: &str = "sk_test_51HqLyjWDarjtT1zdp7dcXYZ";

    fn ctx(store: &str, purpose: Purpose) -> EncryptionContext {
        EncryptionContext::new(StoreId::parse(store).unwrap(), purpose)
    }

    fn vault(kms: &Arc<FakeKms>) -> Vault {
        Vault::new(kms.clone(), Duration::from_secs(300))
    }

    #[tokio::test]
    async fn seal_then_open_round_trips_and_stores_no_plaintext() {
        let kms = Arc::new(FakeKms::default());
        let sealed = vault(&kms)
            .seal(ctx(A, Purpose::StripeSecretKey), KEY)
            .await
            .unwrap();
        assert!(!sealed.token.contains("sk_test"));
        assert!(!String::from_utf8_lossy(&sealed.wrapped_key).contains("sk_test"));
        // A fresh vault (another container) has to unwrap through KMS.
        let opened = vault(&kms)
            .open(ctx(A, Purpose::StripeSecretKey), &sealed)
            .await
            .unwrap();
        assert_eq!(opened.expose_secret(), KEY);
        assert_eq!(kms.decrypt_calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_sealed_secret_copied_to_another_store_or_purpose_does_not_open() {
        let kms = Arc::new(FakeKms::default());
        let sealed = vault(&kms)
            .seal(ctx(A, Purpose::StripeSecretKey), KEY)
            .await
            .unwrap();
        for other in [
            ctx(B, Purpose::StripeSecretKey),
            ctx(A, Purpose::WebhookSecret),
        ] {
            let err = vault(&kms).open(other, &sealed).await.unwrap_err();
            assert!(matches!(err, VaultError::WrongContext), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_tampered_token_is_corrupted_not_garbage() {
        let kms = Arc::new(FakeKms::default());
        let mut sealed = vault(&kms)
            .seal(ctx(A, Purpose::StripeSecretKey), KEY)
            .await
            .unwrap();
        sealed.token.replace_range(
            20..21,
            if &sealed.token[20..21] == "A" {
                "B"
            } else {
                "A"
            },
        );
        let err = vault(&kms)
            .open(ctx(A, Purpose::StripeSecretKey), &sealed)
            .await
            .unwrap_err();
        assert!(matches!(err, VaultError::Corrupted), "{err:?}");
    }

    #[tokio::test]
    async fn warm_cache_saves_kms_calls_until_the_ttl() {
        let kms = Arc::new(FakeKms::default());
        let sealed = vault(&kms)
            .seal(ctx(A, Purpose::StripeSecretKey), KEY)
            .await
            .unwrap();
        let warm = vault(&kms);
        for _ in 0..100 {
            warm.open(ctx(A, Purpose::StripeSecretKey), &sealed)
                .await
                .unwrap();
        }
        assert_eq!(kms.decrypt_calls.load(Ordering::SeqCst), 1);

        let short = Vault::new(kms.clone(), Duration::from_millis(1));
        short
            .open(ctx(A, Purpose::StripeSecretKey), &sealed)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        short
            .open(ctx(A, Purpose::StripeSecretKey), &sealed)
            .await
            .unwrap();
        assert_eq!(
            kms.decrypt_calls.load(Ordering::SeqCst),
            3,
            "expired entries go back to KMS"
        );
    }

    #[tokio::test]
    async fn the_cache_never_opens_for_another_context() {
        let kms = Arc::new(FakeKms::default());
        let v = vault(&kms);
        let sealed = v.seal(ctx(A, Purpose::StripeSecretKey), KEY).await.unwrap();
        assert!(
            v.open(ctx(B, Purpose::StripeSecretKey), &sealed)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn kms_down_is_a_dependency_error() {
        let kms = Arc::new(FakeKms::default());
        kms.down.store(true, Ordering::SeqCst);
        let err = vault(&kms)
            .seal(ctx(A, Purpose::StripeSecretKey), KEY)
            .await
            .unwrap_err();
        assert_eq!(AppError::from(err).status(), 502);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = DataKeyCache {
            ttl: Duration::from_secs(300),
            entries: HashMap::new(),
        };
        let now = Instant::now();
        for i in 0..(CACHE_CAPACITY + 50) {
            let key = DataKey::from_vec(vec![1; 32]).unwrap();
            cache.put(
                &i.to_be_bytes(),
                &ctx(A, Purpose::StripeSecretKey),
                key,
                now + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(cache.entries.len(), CACHE_CAPACITY);
        assert!(
            cache
                .get(
                    &0usize.to_be_bytes(),
                    &ctx(A, Purpose::StripeSecretKey),
                    now
                )
                .is_none(),
            "oldest evicted"
        );
    }

    #[test]
    fn data_keys_print_redacted() {
        let key = DataKey::from_vec(vec![7; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "DataKey([redacted])");
        assert!(DataKey::from_vec(vec![7; 16]).is_err());
    }
}
