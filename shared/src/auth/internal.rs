//! Authentication of BMOS's calls to `/api/internal/...`.
//!
//! Two forms are accepted:
//! - `X-Internal-Secret: <secret>` (the seed's form), compared in constant time;
//! - signed (recommended): `X-Internal-Timestamp: <unix seconds>` and
//!   `X-Internal-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<METHOD>.<path with query>.<raw body>")>`,
//!   at most five minutes old and at most a minute ahead of our clock. Up to
//!   four comma-separated `v1=` values are accepted so BMOS can roll its
//!   secret. A signed request that changes something is accepted once: its
//!   MAC is recorded (`store/replays.rs`) and a second use is 401 `replayed`.
//!
//! Both are checked against the BMOS authentication secret's current and
//! previous values, so BMOS can move to a new value during a rotation
//! without a failed call. The plain header can be switched off
//! (`ALLOW_PLAIN_SECRET_HEADER=false`, template parameter
//! `AllowPlainSecretHeader`) once BMOS signs every request: it is the form a
//! captured request or a log line leaks for good.
//!
//! Either way the path must be in canonical form (`canonical_path.rs`), and
//! what is signed is the path exactly as sent (`http::path_and_query`).

use crate::error::AppError;
use crate::secrets::SecretKeys;
use lambda_http::http::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SECRET_HEADER: &str = "x-internal-secret";
pub const TIMESTAMP_HEADER: &str = "x-internal-timestamp";
pub const SIGNATURE_HEADER: &str = "x-internal-signature";
/// How old a signed request may be.
pub const TOLERANCE_SECS: u64 = 300;
/// How far ahead of our clock a timestamp may be: clocks drift a little,
/// but a request dated well ahead would stay usable for longer than the
/// five minutes BMOS (and whoever captured it) expects.
pub const FUTURE_SKEW_SECS: u64 = 60;
/// Enough for a secret roll (old and new) with room to spare; more would
/// only let a caller make us compare more candidates.
pub const MAX_SIGNATURES: usize = 4;
/// Kept past the last second a timestamp is accepted, for clocks of other
/// containers that run a little behind ours.
const RECORD_MARGIN_SECS: u64 = 60;

/// How the caller proved itself, for the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    SharedSecret,
    SignedRequest,
}

impl Caller {
    pub fn as_str(self) -> &'static str {
        match self {
            Caller::SharedSecret => "bmos:shared-secret",
            Caller::SignedRequest => "bmos:signed-request",
        }
    }
}

/// What the signature covers, taken from the request as received.
pub struct SignedParts<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

/// Credentials that checked out.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    SharedSecret,
    Signed(SignedRequest),
}

/// A valid signed request: what its replay record is keyed by, and until when
/// the record must be kept.
#[derive(Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// Hex SHA-256 of the MAC we computed, so every spelling of the same
    /// signature (upper- or lowercase hex, among other `v1=` values) is one
    /// record, and the table never holds a usable signature.
    pub mac_hash: String,
    /// When the record may go: after its timestamp is refused as stale.
    pub record_expires_at: u64,
}

impl Verified {
    pub fn caller(&self) -> Caller {
        match self {
            Verified::SharedSecret => Caller::SharedSecret,
            Verified::Signed(_) => Caller::SignedRequest,
        }
    }
}

/// Whether BMOS may still send the plain `X-Internal-Secret` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainHeader {
    Allowed,
    Refused,
}

impl PlainHeader {
    pub fn from_flag(allowed: bool) -> Self {
        if allowed {
            PlainHeader::Allowed
        } else {
            PlainHeader::Refused
        }
    }
}

/// Whether a signed request with this method is recorded so it works once.
///
/// GET and HEAD are not: they change nothing, so a replay only re-reads what
/// the captured request's own response already showed, while recording them
/// would refuse honest repeated reads. The wire format has no nonce: two
/// reads of one order in the same second (BMOS polling a status) are
/// byte-identical requests, indistinguishable from a replay. It would also
/// cost a write per read and give the read-only functions write access to
/// the table. Every other method, including ones we do not route today, is
/// recorded.
pub fn is_recorded(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

fn unauthorized(message: &'static str) -> AppError {
    AppError::unauthorized("unauthorized", message)
}

pub fn authenticate(
    keys: &SecretKeys,
    plain: PlainHeader,
    headers: &HeaderMap,
    parts: &SignedParts<'_>,
    now: u64,
) -> Result<Verified, AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signature) = header(SIGNATURE_HEADER) {
        let timestamp = header(TIMESTAMP_HEADER).ok_or_else(|| {
            unauthorized("X-Internal-Timestamp is required with X-Internal-Signature")
        })?;
        return verify_signed(keys, timestamp, signature, parts, now).map(Verified::Signed);
    }
    if let Some(given) = header(SECRET_HEADER) {
        if plain == PlainHeader::Refused {
            return Err(AppError::unauthorized(
                "plain_secret_disabled",
                "X-Internal-Secret is switched off for this API: sign the request instead, with \
                 X-Internal-Timestamp and X-Internal-Signature: v1=<hex HMAC-SHA256 of \
                 \"<timestamp>.<METHOD>.<path with query>.<raw body>\">",
            ));
        }
        // Hash both sides first so the comparison takes the same time
        // whatever the lengths are.
        let given = Sha256::digest(given.as_bytes());
        let matched = keys.all().fold(false, |matched, secret| {
            let expected = Sha256::digest(secret.expose());
            matched | bool::from(given.as_slice().ct_eq(expected.as_slice()))
        });
        if matched {
            return Ok(Verified::SharedSecret);
        }
        return Err(unauthorized("Invalid internal credentials"));
    }
    Err(unauthorized(
        "Missing internal credentials (X-Internal-Signature or X-Internal-Secret)",
    ))
}

fn verify_signed(
    keys: &SecretKeys,
    timestamp: &str,
    signature: &str,
    parts: &SignedParts<'_>,
    now: u64,
) -> Result<SignedRequest, AppError> {
    let ts: u64 = timestamp
        .parse()
        .map_err(|_| unauthorized("X-Internal-Timestamp must be unix seconds"))?;
    if ts > now.saturating_add(FUTURE_SKEW_SECS) {
        return Err(unauthorized(
            "X-Internal-Timestamp is more than a minute ahead of our clock",
        ));
    }
    if now.saturating_sub(ts) > TOLERANCE_SECS {
        return Err(unauthorized(
            "X-Internal-Timestamp is more than five minutes old",
        ));
    }
    let candidates: Vec<&str> = signature
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .collect();
    if candidates.len() > MAX_SIGNATURES {
        return Err(unauthorized(
            "X-Internal-Signature may carry at most four v1= values",
        ));
    }
    let message: [&[u8]; 7] = [
        timestamp.as_bytes(),
        b".",
        parts.method.as_bytes(),
        b".",
        parts.path_and_query.as_bytes(),
        b".",
        parts.body,
    ];
    // One MAC over the (up to 64 KiB) body per value of the secret (two at
    // most, during a rotation), whatever the number of candidates.
    let given: Vec<Vec<u8>> = candidates
        .iter()
        .filter_map(|hex| hex::decode(hex).ok())
        .collect();
    let Some(expected) = keys
        .all()
        .map(|secret| super::mac_bytes(secret, &message))
        .find(|expected| {
            given
                .iter()
                .any(|given| bool::from(given.as_slice().ct_eq(expected)))
        })
    else {
        return Err(unauthorized("Invalid internal request signature"));
    };
    Ok(SignedRequest {
        mac_hash: hex::encode(Sha256::digest(expected)),
        record_expires_at: ts + TOLERANCE_SECS + RECORD_MARGIN_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{test_keys, test_secret};
    use crate::config::InternalSecret;
    use lambda_http::http::HeaderValue;

    const NOW: u64 = 1_800_000_000;
    const PATH: &str =
        "/api/internal/stores/0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11/connect-links?a=b";
    const BODY: &[u8] = br#"{"return_url":"https://bmos.example/"}"#;
    // From Python's hmac module over "1800000000.POST.<PATH>.<BODY>".
    const PYTHON_SIGNATURE: &str =
        "a6f83b6746a1f63601926343eff8a84324efebbbef9cea7d4bfa1b6862e0d7a0";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn verify(h: &HeaderMap, body: &[u8], now: u64) -> Result<Verified, AppError> {
        let parts = SignedParts {
            method: "POST",
            path_and_query: PATH,
            body,
        };
        authenticate(&test_keys(), PlainHeader::Allowed, h, &parts, now)
    }

    fn check(h: &HeaderMap, body: &[u8], now: u64) -> Result<Caller, AppError> {
        verify(h, body, now).map(|v| v.caller())
    }

    fn signed(signature: &str) -> HeaderMap {
        headers(&[
            (TIMESTAMP_HEADER, "1800000000"),
            (SIGNATURE_HEADER, signature),
        ])
    }

    #[test]
    fn shared_secret_works_and_wrong_secret_does_not() {
        let ok = headers(&[(SECRET_HEADER, "test-internal-secret-0123456789abcdef")]);
        assert_eq!(check(&ok, BODY, NOW).unwrap(), Caller::SharedSecret);
        for wrong in [
            "",
            "test-internal-secret-0123456789abcdeF",
            "test-internal-secret",
        ] {
            let err = check(&headers(&[(SECRET_HEADER, wrong)]), BODY, NOW).unwrap_err();
            assert_eq!(err.status(), 401, "{wrong:?}");
        }
    }

    #[test]
    fn no_credentials_is_401() {
        assert_eq!(
            check(&HeaderMap::new(), BODY, NOW).unwrap_err().status(),
            401
        );
    }

    #[test]
    fn a_python_signed_request_verifies() {
        let h = headers(&[
            (TIMESTAMP_HEADER, "1800000000"),
            (SIGNATURE_HEADER, &format!("v1={PYTHON_SIGNATURE}")),
        ]);
        assert_eq!(check(&h, BODY, NOW).unwrap(), Caller::SignedRequest);
        assert_eq!(check(&h, BODY, NOW + 300).unwrap(), Caller::SignedRequest);
        assert_eq!(check(&h, BODY, NOW - 60).unwrap(), Caller::SignedRequest);
    }

    #[test]
    fn a_timestamp_may_be_only_a_minute_ahead_of_our_clock() {
        let h = signed(&format!("v1={PYTHON_SIGNATURE}"));
        assert!(check(&h, BODY, NOW - FUTURE_SKEW_SECS).is_ok());
        for now in [NOW - FUTURE_SKEW_SECS - 1, NOW - 300, 0] {
            let err = check(&h, BODY, now).unwrap_err();
            assert_eq!(err.status(), 401, "{now}");
            assert!(err.to_string().contains("ahead"), "{err}");
        }
    }

    #[test]
    fn at_most_four_v1_values_are_looked_at() {
        let wrong = format!("v1={}", "0".repeat(64));
        let with = |wrong_ones: usize| {
            let mut values = vec![wrong.clone(); wrong_ones];
            values.push(format!("v1={PYTHON_SIGNATURE}"));
            signed(&values.join(","))
        };
        assert!(check(&with(3), BODY, NOW).is_ok());
        let err = check(&with(4), BODY, NOW).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.to_string().contains("at most four"), "{err}");
        // Other schemes do not count (nor verify).
        let h = signed(&format!("v0=a,v2=b,v3=c,v4=d,v5=e,v1={PYTHON_SIGNATURE}"));
        assert!(check(&h, BODY, NOW).is_ok());
    }

    #[test]
    fn every_spelling_of_a_signature_is_one_replay_record() {
        let lower = verify(&signed(&format!("v1={PYTHON_SIGNATURE}")), BODY, NOW).unwrap();
        let upper = verify(
            &signed(&format!(
                "v1={}, v1={}",
                "0".repeat(64),
                PYTHON_SIGNATURE.to_uppercase()
            )),
            BODY,
            NOW,
        )
        .unwrap();
        assert_eq!(lower, upper);
        let Verified::Signed(record) = lower else {
            panic!("signed")
        };
        assert_eq!(record.mac_hash.len(), 64);
        assert!(!record.mac_hash.contains(PYTHON_SIGNATURE));
        assert_eq!(
            record.record_expires_at,
            1_800_000_000 + TOLERANCE_SECS + 60,
            "kept until the timestamp is stale"
        );
        // The shared secret carries nothing to record.
        let h = headers(&[(SECRET_HEADER, "test-internal-secret-0123456789abcdef")]);
        assert_eq!(verify(&h, BODY, NOW).unwrap(), Verified::SharedSecret);
    }

    #[test]
    fn only_requests_that_change_something_are_recorded() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(is_recorded(&method), "{method}");
        }
        assert!(!is_recorded(&Method::GET));
        assert!(!is_recorded(&Method::HEAD));
    }

    #[test]
    fn one_matching_signature_among_several_is_enough() {
        let sig = format!("v1={}, v1={PYTHON_SIGNATURE}", "0".repeat(64));
        let h = headers(&[(TIMESTAMP_HEADER, "1800000000"), (SIGNATURE_HEADER, &sig)]);
        assert!(check(&h, BODY, NOW).is_ok());
    }

    #[test]
    fn stale_future_tampered_or_malformed_signatures_fail() {
        let good = format!("v1={PYTHON_SIGNATURE}");
        let cases: Vec<(HeaderMap, &[u8], u64)> = vec![
            (
                headers(&[(TIMESTAMP_HEADER, "1800000000"), (SIGNATURE_HEADER, &good)]),
                BODY,
                NOW + 301,
            ),
            (
                headers(&[(TIMESTAMP_HEADER, "1800000000"), (SIGNATURE_HEADER, &good)]),
                BODY,
                NOW - 301,
            ),
            (
                headers(&[(TIMESTAMP_HEADER, "1800000000"), (SIGNATURE_HEADER, &good)]),
                b"{}",
                NOW,
            ),
            (
                headers(&[(TIMESTAMP_HEADER, "1800000001"), (SIGNATURE_HEADER, &good)]),
                BODY,
                NOW,
            ),
            (headers(&[(SIGNATURE_HEADER, &good)]), BODY, NOW),
            (
                headers(&[(TIMESTAMP_HEADER, "soon"), (SIGNATURE_HEADER, &good)]),
                BODY,
                NOW,
            ),
            (
                headers(&[
                    (TIMESTAMP_HEADER, "1800000000"),
                    (SIGNATURE_HEADER, PYTHON_SIGNATURE),
                ]),
                BODY,
                NOW,
            ),
            (
                headers(&[
                    (TIMESTAMP_HEADER, "1800000000"),
                    (SIGNATURE_HEADER, "v1=zz"),
                ]),
                BODY,
                NOW,
            ),
        ];
        for (i, (h, body, now)) in cases.into_iter().enumerate() {
            assert_eq!(check(&h, body, now).unwrap_err().status(), 401, "case {i}");
        }
    }

    #[test]
    fn method_and_path_are_covered() {
        let h = headers(&[
            (TIMESTAMP_HEADER, "1800000000"),
            (SIGNATURE_HEADER, &format!("v1={PYTHON_SIGNATURE}")),
        ]);
        let get = SignedParts {
            method: "GET",
            path_and_query: PATH,
            body: BODY,
        };
        assert!(authenticate(&test_keys(), PlainHeader::Allowed, &h, &get, NOW).is_err());
        let other = SignedParts {
            method: "POST",
            path_and_query: "/api/internal/stores/x/connect-links",
            body: BODY,
        };
        assert!(authenticate(&test_keys(), PlainHeader::Allowed, &h, &other, NOW).is_err());
    }

    fn rotating() -> SecretKeys {
        SecretKeys {
            current: InternalSecret::new("the-new-bmos-secret-0123456789abcdef".into()).unwrap(),
            previous: Some(test_secret()),
            current_since: None,
        }
    }

    #[test]
    fn during_a_rotation_both_the_old_and_the_new_secret_are_accepted() {
        let parts = SignedParts {
            method: "POST",
            path_and_query: PATH,
            body: BODY,
        };
        let keys = rotating();
        // PYTHON_SIGNATURE is made with the previous value.
        let by_old = signed(&format!("v1={PYTHON_SIGNATURE}"));
        let new_sig = crate::auth::sign_hex(
            &keys.current,
            &[b"1800000000.POST.", PATH.as_bytes(), b".", BODY],
        );
        let by_new = signed(&format!("v1={new_sig}"));
        for h in [&by_old, &by_new] {
            let verified = authenticate(&keys, PlainHeader::Allowed, h, &parts, NOW).unwrap();
            assert_eq!(verified.caller(), Caller::SignedRequest);
        }
        // The replay record is the MAC that matched, whichever value made it.
        let Verified::Signed(old) =
            authenticate(&keys, PlainHeader::Allowed, &by_old, &parts, NOW).unwrap()
        else {
            panic!("signed")
        };
        let Verified::Signed(plain_old) = verify(&by_old, BODY, NOW).unwrap() else {
            panic!("signed")
        };
        assert_eq!(old, plain_old);
        for value in [
            "test-internal-secret-0123456789abcdef",
            "the-new-bmos-secret-0123456789abcdef",
        ] {
            let h = headers(&[(SECRET_HEADER, value)]);
            assert_eq!(
                authenticate(&keys, PlainHeader::Allowed, &h, &parts, NOW).unwrap(),
                Verified::SharedSecret
            );
        }
        // Once the rotation is finished the old value no longer works.
        let finished = SecretKeys::single(keys.current.clone());
        let err = authenticate(&finished, PlainHeader::Allowed, &by_old, &parts, NOW).unwrap_err();
        assert_eq!(err.status(), 401);
    }

    #[test]
    fn the_plain_header_can_be_switched_off_and_says_what_to_send_instead() {
        let parts = SignedParts {
            method: "POST",
            path_and_query: PATH,
            body: BODY,
        };
        let plain = headers(&[(SECRET_HEADER, "test-internal-secret-0123456789abcdef")]);
        let err =
            authenticate(&test_keys(), PlainHeader::Refused, &plain, &parts, NOW).unwrap_err();
        assert_eq!(err.status(), 401);
        assert_eq!(err.code(), "plain_secret_disabled");
        let message = err.public_message();
        assert!(message.contains("X-Internal-Signature"), "{message}");
        assert!(!message.contains("test-internal-secret"), "{message}");
        // Signed requests still work.
        let h = signed(&format!("v1={PYTHON_SIGNATURE}"));
        let ok = authenticate(&test_keys(), PlainHeader::Refused, &h, &parts, NOW).unwrap();
        assert_eq!(ok.caller(), Caller::SignedRequest);
    }
}
