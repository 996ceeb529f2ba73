//! The key service: KMS hands out data keys bound to an encryption context
//! and unwraps them only under the same context.

use super::{BoxFuture, VaultError};
use crate::domain::{Secret, StoreId};
use base64::Engine as _;
use std::collections::HashMap;
use zeroize::{Zeroize, Zeroizing};

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

/// 32 plaintext key bytes, wiped when dropped.
#[derive(Clone, Debug)]
pub struct DataKey(Secret<[u8; 32]>);

impl DataKey {
    /// Takes the bytes out of `plaintext` and wipes it.
    pub fn from_vec(mut plaintext: Vec<u8>) -> Result<Self, VaultError> {
        let key = <[u8; 32]>::try_from(plaintext.as_slice()).map_err(|_| VaultError::BadDataKey);
        plaintext.zeroize();
        key.map(|k| DataKey(Secret::new(k)))
    }

    /// The Fernet key these bytes are (first half signs, second encrypts).
    pub(super) fn fernet(&self) -> fernet::Fernet {
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::URL_SAFE.encode(self.0.expose()));
        // 32 bytes always make a valid Fernet key.
        fernet::Fernet::new(&encoded).unwrap_or_else(|| unreachable!("32-byte key"))
    }
}

pub struct NewDataKey {
    pub plaintext: DataKey,
    pub wrapped: Vec<u8>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_print_redacted() {
        let key = DataKey::from_vec(vec![7; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "DataKey([redacted])");
        assert!(DataKey::from_vec(vec![7; 16]).is_err());
    }
}
