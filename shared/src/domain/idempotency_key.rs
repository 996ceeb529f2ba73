//! BMOS's `Idempotency-Key` for creating a checkout session: its cart or
//! order id, so a retry of the same request gets the same order back.

use crate::error::AppError;
use sha2::{Digest, Sha256};

pub const MAX_LEN: usize = 255;

/// 1 to 255 visible ASCII characters (`!` to `~`): what cart and order ids
/// and UUIDs are made of, and nothing a header or a log line could be bent
/// with. Stripe's limit is the same length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let valid =
            !raw.is_empty() && raw.len() <= MAX_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(AppError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)",
            ));
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }

    /// Hex SHA-256, the form stored in an item key: fixed length, and no
    /// `#` from the caller's text can blur where the key's parts end.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cart_ids_and_uuids_are_keys() {
        for raw in [
            "A-17",
            "cart_0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11",
            "~!#$%&'()*+,-./:;<=>?@[]^_`{|}",
            &"k".repeat(MAX_LEN),
        ] {
            assert!(IdempotencyKey::parse(raw).is_ok(), "{raw}");
        }
        let a = IdempotencyKey::parse("A-17").unwrap();
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), IdempotencyKey::parse("A-18").unwrap().hash());
    }

    #[test]
    fn other_values_are_refused() {
        for raw in [
            "",
            " ",
            "A 17",
            "A-17\n",
            "A\t17",
            "é",
            "A\u{7f}",
            &"k".repeat(MAX_LEN + 1),
        ] {
            let err = IdempotencyKey::parse(raw).unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (400, "invalid_idempotency_key"),
                "{raw:?}"
            );
        }
    }
}
