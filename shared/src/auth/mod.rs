//! Who may do what: signed connect links, the CSRF token of the connect form,
//! and BMOS's internal API credentials. All of them are HMAC-SHA256 under the
//! secret of their purpose (`secrets`): BMOS's credentials under the BMOS
//! authentication secret, links and CSRF tokens under the link signing
//! secret. Each message has its own prefix so a signature made for one
//! purpose never verifies for another. We sign with a secret's current
//! value and accept its current and previous ones (a rotation).

pub mod canonical_path;
pub mod connect_link;
pub mod csrf;
pub mod internal;
pub mod session_token;

use crate::config::InternalSecret;
use crate::secrets::SecretKeys;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], message: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    for part in message {
        mac.update(part);
    }
    mac
}

/// Lowercase hex HMAC-SHA256 of the concatenated parts.
pub fn sign_hex(secret: &InternalSecret, message: &[&[u8]]) -> String {
    hex::encode(mac(secret.expose(), message).finalize().into_bytes())
}

/// The raw HMAC-SHA256 of the concatenated parts.
fn mac_bytes(secret: &InternalSecret, message: &[&[u8]]) -> [u8; 32] {
    mac(secret.expose(), message).finalize().into_bytes().into()
}

/// Constant-time check of a hex signature against every valid value of the
/// secret (current, then previous); malformed hex is simply wrong.
pub fn verify_hex(keys: &SecretKeys, message: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    keys.all().any(|secret| {
        mac(secret.expose(), message)
            .verify_slice(&signature)
            .is_ok()
    })
}

#[cfg(test)]
pub(crate) fn test_secret() -> InternalSecret {
    InternalSecret::new("test-internal-secret-0123456789abcdef".into()).expect("long enough")
}

/// `test_secret` as the only value of a secret.
#[cfg(test)]
pub(crate) fn test_keys() -> SecretKeys {
    SecretKeys::single(test_secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_message_and_secret() {
        let secret = test_keys();
        let sig = sign_hex(&secret.current, &[b"connect.", b"abc"]);
        assert_eq!(sig.len(), 64);
        assert!(
            verify_hex(&secret, &[b"connect.abc"], &sig),
            "parts are concatenated"
        );
        assert!(!verify_hex(&secret, &[b"connect.abd"], &sig));
        let other = InternalSecret::new("another-internal-secret-0123456789abcdef".into()).unwrap();
        assert!(!verify_hex(
            &SecretKeys::single(other.clone()),
            &[b"connect.abc"],
            &sig
        ));
        assert!(!verify_hex(&secret, &[b"connect.abc"], "not hex"));
        assert!(!verify_hex(&secret, &[b"connect.abc"], &sig[..62]));
        // During a rotation the previous value still verifies.
        let rotating = SecretKeys {
            current: other,
            previous: Some(test_secret()),
            current_since: None,
        };
        assert!(verify_hex(&rotating, &[b"connect.abc"], &sig));
    }

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // RFC 4231 test case 2 (key "Jefe" is too short for InternalSecret, so
        // check the primitive directly).
        let mac = mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
