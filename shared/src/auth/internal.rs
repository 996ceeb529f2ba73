//! Authentication of BMOS's calls to `/api/internal/...`.
//!
//! Two forms are accepted:
//! - `X-Internal-Secret: <secret>` (the seed's form), compared in constant time;
//! - signed (recommended): `X-Internal-Timestamp: <unix seconds>` and
//!   `X-Internal-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<METHOD>.<path with query>.<raw body>")>`,
//!   within five minutes of our clock either way. Several comma-separated
//!   `v1=` values are accepted so BMOS can roll its secret.

use super::verify_hex;
use crate::config::InternalSecret;
use crate::error::AppError;
use lambda_http::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SECRET_HEADER: &str = "x-internal-secret";
pub const TIMESTAMP_HEADER: &str = "x-internal-timestamp";
pub const SIGNATURE_HEADER: &str = "x-internal-signature";
pub const TOLERANCE_SECS: u64 = 300;

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

/// Authenticates an internal API request as received (method, raw path and
/// query, raw body), logging which form the caller used.
pub fn authenticate_request(
    secret: &InternalSecret,
    req: &lambda_http::Request,
) -> Result<Caller, AppError> {
    let path_and_query = crate::http::path_and_query(req);
    let parts = SignedParts {
        method: req.method().as_str(),
        path_and_query: &path_and_query,
        body: crate::http::body_bytes(req)?,
    };
    let caller = authenticate(secret, req.headers(), &parts, crate::clock::now())?;
    tracing::debug!(caller = caller.as_str(), "internal caller authenticated");
    Ok(caller)
}

fn unauthorized(message: &'static str) -> AppError {
    AppError::unauthorized("unauthorized", message)
}

pub fn authenticate(
    secret: &InternalSecret,
    headers: &HeaderMap,
    parts: &SignedParts<'_>,
    now: u64,
) -> Result<Caller, AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signature) = header(SIGNATURE_HEADER) {
        let timestamp = header(TIMESTAMP_HEADER).ok_or_else(|| {
            unauthorized("X-Internal-Timestamp is required with X-Internal-Signature")
        })?;
        verify_signed(secret, timestamp, signature, parts, now)?;
        return Ok(Caller::SignedRequest);
    }
    if let Some(given) = header(SECRET_HEADER) {
        // Hash both sides first so the comparison takes the same time
        // whatever the lengths are.
        let given = Sha256::digest(given.as_bytes());
        let expected = Sha256::digest(secret.expose());
        if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            return Ok(Caller::SharedSecret);
        }
        return Err(unauthorized("Invalid internal credentials"));
    }
    Err(unauthorized(
        "Missing internal credentials (X-Internal-Signature or X-Internal-Secret)",
    ))
}

fn verify_signed(
    secret: &InternalSecret,
    timestamp: &str,
    signature: &str,
    parts: &SignedParts<'_>,
    now: u64,
) -> Result<(), AppError> {
    let ts: u64 = timestamp
        .parse()
        .map_err(|_| unauthorized("X-Internal-Timestamp must be unix seconds"))?;
    if now.abs_diff(ts) > TOLERANCE_SECS {
        return Err(unauthorized(
            "X-Internal-Timestamp is outside the five-minute window",
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
    let valid = signature
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .any(|hex| verify_hex(secret, &message, hex));
    if valid {
        Ok(())
    } else {
        Err(unauthorized("Invalid internal request signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_secret;
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

    fn check(h: &HeaderMap, body: &[u8], now: u64) -> Result<Caller, AppError> {
        let parts = SignedParts {
            method: "POST",
            path_and_query: PATH,
            body,
        };
        authenticate(&test_secret(), h, &parts, now)
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
        assert_eq!(check(&h, BODY, NOW - 300).unwrap(), Caller::SignedRequest);
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
        assert!(authenticate(&test_secret(), &h, &get, NOW).is_err());
        let other = SignedParts {
            method: "POST",
            path_and_query: "/api/internal/stores/x/connect-links",
            body: BODY,
        };
        assert!(authenticate(&test_secret(), &h, &other, NOW).is_err());
    }
}
