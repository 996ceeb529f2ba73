//! Checkout session tokens: 256 random bits, URL-safe. The token is the
//! customer's only credential for their checkout, so we store only its
//! SHA-256; a leaked table does not open anyone's checkout.

use base64::Engine as _;
use sha2::{Digest, Sha256};

const TOKEN_BYTES: usize = 32;
/// Base64url of 32 bytes without padding.
pub const TOKEN_LEN: usize = 43;

/// A new token and the hash to store for it.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    Ok((token, hash))
}

/// The stored form of a token, or `None` when it cannot be one of ours
/// (so malformed tokens never reach the table).
pub fn parse_and_hash(raw: &str) -> Option<String> {
    let well_formed = raw.len() == TOKEN_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| hash(raw))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, hash_a) = generate().unwrap();
        let (b, _) = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert_eq!(parse_and_hash(&a), Some(hash_a.clone()));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(parse_and_hash("short"), None);
        assert_eq!(parse_and_hash(&"a".repeat(44)), None);
        assert_eq!(parse_and_hash(&format!("{}/", "a".repeat(42))), None);
    }
}
