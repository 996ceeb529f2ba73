//! Verification of Stripe's `Stripe-Signature` header:
//! `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=...]`.
//! Every `v1` is checked in constant time (Stripe sends several while a
//! secret is being rolled), and the timestamp must be within five minutes
//! of our clock either way, so a captured delivery cannot be replayed later.

use crate::domain::WebhookSecret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const TOLERANCE_SECS: u64 = 300;

/// Why a delivery was not verified. Says nothing about the secret or the
/// signature values, so it is safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Stripe-Signature header missing")]
    Missing,
    #[error("Stripe-Signature header malformed")]
    Malformed,
    #[error("Stripe-Signature has no v1 signature")]
    NoV1,
    #[error("Stripe-Signature timestamp outside the 300 s tolerance")]
    OutsideTolerance,
    #[error("no v1 signature matches the store's signing secret")]
    NoMatch,
}

pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secret: &WebhookSecret,
    now: u64,
) -> Result<u64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => timestamp = Some(value),
            "v1" => signatures.push(value),
            _ => {} // v0 and future schemes are ignored, as Stripe advises
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    let t: u64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoV1);
    }
    if now.abs_diff(t) > TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| SignatureError::Malformed)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    let matched = signatures
        .iter()
        .any(|sig| hex::decode(sig).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok()));
    if matched {
        Ok(t)
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_0123456789";
    const PAYLOAD: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const T: u64 = 1_800_000_000;
    // From Python: hmac.new(b"whsec_test_secret_0123456789", b'1800000000.{"id":"evt_1","object":"event"}', hashlib.sha256).hexdigest()
    const PYTHON_V1: &str = "5f614b3e5f632d1285331d78ebf80b225bdc1d22abffb707f998b061bd73c22a";

    fn secret(raw: &str) -> WebhookSecret {
        WebhookSecret::parse(raw).unwrap()
    }

    fn check(header: &str, payload: &[u8], now: u64) -> Result<u64, SignatureError> {
        verify(Some(header), payload, &secret(SECRET), now)
    }

    #[test]
    fn a_python_signed_delivery_verifies() {
        assert_eq!(check(&format!("t={T},v1={PYTHON_V1}"), PAYLOAD, T), Ok(T));
        assert_eq!(
            check(&format!("t={T},v1={PYTHON_V1},v0=abc"), PAYLOAD, T + 300),
            Ok(T)
        );
    }

    #[test]
    fn any_v1_may_match_during_secret_rotation() {
        let header = format!("t={T},v1={},v1={PYTHON_V1}", "ab".repeat(32));
        assert_eq!(check(&header, PAYLOAD, T), Ok(T));
    }

    #[test]
    fn tampered_body_wrong_secret_and_stale_or_future_times_fail() {
        let good = format!("t={T},v1={PYTHON_V1}");
        assert_eq!(
            check(&good, br#"{"id":"evt_2","object":"event"}"#, T),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&good), PAYLOAD, &secret("whsec_another_secret_000"), T),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            check(&good, PAYLOAD, T + 301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            check(&good, PAYLOAD, T - 301),
            Err(SignatureError::OutsideTolerance)
        );
        // A forged timestamp breaks the signature even inside the window.
        assert_eq!(
            check(&format!("t={},v1={PYTHON_V1}", T + 1), PAYLOAD, T),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn missing_or_garbage_headers_fail_cleanly() {
        assert_eq!(
            verify(None, PAYLOAD, &secret(SECRET), T),
            Err(SignatureError::Missing)
        );
        for (header, expected) in [
            ("", SignatureError::Malformed),
            ("garbage", SignatureError::Malformed),
            ("v1=abc", SignatureError::Malformed),
            ("t=soon,v1=abc", SignatureError::Malformed),
            (&format!("t={T}"), SignatureError::NoV1),
            (&format!("t={T},v0={PYTHON_V1}"), SignatureError::NoV1),
            (&format!("t={T},v1=not-hex"), SignatureError::NoMatch),
        ] {
            assert_eq!(check(header, PAYLOAD, T), Err(expected), "{header:?}");
        }
    }
}
