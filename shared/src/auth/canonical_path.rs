//! The one spelling of an internal API path we accept.
//!
//! Signatures cover the path as sent, so `/a/./b`, `/a//b` or `/a/%62` would
//! be other strings for what a router or a proxy may treat as the same
//! resource. Refusing every spelling but the canonical one (RFC 3986:
//! nothing a normaliser would change) means a signature, a replay record
//! and a log line always name the resource the same way.

use crate::error::AppError;

/// RFC 3986 `unreserved`: these must appear as themselves, never encoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` minus `pct-encoded`: what a segment may hold as is.
fn is_plain_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Why `path` is not canonical, or `None` when it is.
pub fn problem(path: &str) -> Option<&'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("it must start with '/'");
    };
    for segment in rest.split('/') {
        match segment {
            "" => return Some("it must not hold empty segments ('//' or a trailing '/')"),
            "." | ".." => return Some("it must not hold '.' or '..' segments"),
            _ => {}
        }
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let decoded = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(upper_hex)
                    .zip(bytes.get(i + 2).copied().and_then(upper_hex))
                    .map(|(hi, lo)| hi * 16 + lo);
                match decoded {
                    None => {
                        return Some("percent-encoding must be '%' and two uppercase hex digits");
                    }
                    Some(b'/') => return Some("it must not encode '/' (%2F)"),
                    Some(d) if is_unreserved(d) => {
                        return Some("it must not percent-encode letters, digits or '-._~'");
                    }
                    Some(_) => i += 3,
                }
            } else if is_plain_pchar(b) {
                i += 1;
            } else {
                return Some("it holds a character that must be percent-encoded");
            }
        }
    }
    None
}

/// 400 unless `path` is canonical.
pub fn require(path: &str) -> Result<(), AppError> {
    match problem(path) {
        None => Ok(()),
        Some(reason) => Err(AppError::bad_request(
            "non_canonical_path",
            format!("The request path is not in canonical form: {reason}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_bmos_sends_are_canonical() {
        for path in [
            "/api/internal/checkout-sessions",
            "/api/internal/stores/0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11/connect-links",
            "/api/internal/orders/5d9e7c1a-0000-4000-8000-000000000001",
            "/a/%C3%A9t%C3%A9/~x_y.z",
            "/a/b:c@d+e",
        ] {
            assert_eq!(problem(path), None, "{path}");
        }
    }

    #[test]
    fn other_spellings_are_refused() {
        for (path, reason) in [
            ("", "start with '/'"),
            ("api/internal/orders/x", "start with '/'"),
            ("/api//internal/orders/x", "empty segments"),
            ("//api/internal/orders/x", "empty segments"),
            ("/api/internal/orders/x/", "empty segments"),
            ("/api/./internal/orders/x", "'.' or '..'"),
            ("/api/internal/../internal/orders/x", "'.' or '..'"),
            ("/api/internal/orders/..", "'.' or '..'"),
            ("/api/internal/%2E%2E/orders/x", "letters, digits"),
            ("/api/internal/%6Frders/x", "letters, digits"),
            ("/api/internal/orders/%2D", "letters, digits"),
            ("/api/internal/orders/%7E", "letters, digits"),
            ("/api/internal/stores%2Fx/orders", "'/' (%2F)"),
            ("/api/internal/orders/%c3%a9", "uppercase hex"),
            ("/api/internal/orders/%2", "uppercase hex"),
            ("/api/internal/orders/%", "uppercase hex"),
            ("/api/internal/orders/%GG", "uppercase hex"),
            ("/api/internal/orders/a b", "must be percent-encoded"),
            ("/api/internal/orders\\x", "must be percent-encoded"),
            ("/api/internal/orders/é", "must be percent-encoded"),
            ("/api/internal/orders/x?y", "must be percent-encoded"),
        ] {
            let found = problem(path).unwrap_or_else(|| panic!("{path:?} passed"));
            assert!(found.contains(reason), "{path:?}: {found}");
            let err = require(path).unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (400, "non_canonical_path")
            );
        }
    }
}
