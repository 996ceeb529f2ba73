//! The data keys a warm container has already unwrapped.

use super::keys::{DataKey, EncryptionContext};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CACHE_CAPACITY: usize = 512;

/// Unwrapped data keys by (wrapped key, context). Bounded and short-lived so
/// a key revoked in KMS stops working within one TTL.
pub(super) struct DataKeyCache {
    ttl: Duration,
    entries: HashMap<([u8; 32], EncryptionContext), (DataKey, Instant)>,
}

impl DataKeyCache {
    pub(super) fn new(ttl: Duration) -> Self {
        DataKeyCache {
            ttl,
            entries: HashMap::new(),
        }
    }

    fn id(wrapped: &[u8]) -> [u8; 32] {
        Sha256::digest(wrapped).into()
    }

    pub(super) fn get(
        &mut self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        now: Instant,
    ) -> Option<DataKey> {
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

    pub(super) fn put(
        &mut self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
        data_key: DataKey,
        now: Instant,
    ) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StoreId;
    use crate::vault::Purpose;

    const A: &str = "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";

    fn ctx(store: &str, purpose: Purpose) -> EncryptionContext {
        EncryptionContext::new(StoreId::parse(store).unwrap(), purpose)
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
}
