//! Sealing and opening: a fresh data key per sealed value, Fernet under it,
//! and the data key kept only wrapped.

use super::VaultError;
use super::cache::DataKeyCache;
use super::keys::{DataKeys, EncryptionContext, NewDataKey};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

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

pub struct Vault {
    keys: Arc<dyn DataKeys>,
    cache: Mutex<DataKeyCache>,
}

impl Vault {
    pub fn new(keys: Arc<dyn DataKeys>, cache_ttl: Duration) -> Self {
        Vault {
            keys,
            cache: Mutex::new(DataKeyCache::new(cache_ttl)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StoreId;
    use crate::error::AppError;
    use crate::vault::Purpose;
    use crate::vault::fake::FakeKms;
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
}
