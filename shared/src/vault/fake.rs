//! An in-memory stand-in for KMS that authenticates the encryption context
//! the way KMS does, counts calls, and can be switched off. For tests only:
//! `vault` compiles this module under `cfg(test)` or the `testing` feature,
//! which no function enables outside its dev-dependencies.

use super::{BoxFuture, DataKey, DataKeys, EncryptionContext, NewDataKey, VaultError};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
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
            getrandom::fill(&mut key).map_err(|e| VaultError::Unavailable(e.to_string().into()))?;
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
