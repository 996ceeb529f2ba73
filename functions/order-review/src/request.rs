//! The body BMOS sends: `{"resolution": "accepted" | "settled_outside",
//! "resolved_by": "...", "note": "..."}`, the last two optional. Both texts
//! go into the audit trail, so nothing shaped like a secret is taken.

use serde_json::Value;
use shared::AppError;
use shared::domain::{Resolution, looks_like_secret};

pub const MAX_RESOLVED_BY: usize = 100;
pub const MAX_NOTE: usize = 500;
const FIELDS: [&str; 3] = ["resolution", "resolved_by", "note"];

#[derive(Debug, PartialEq, Eq)]
pub struct ReviewRequest {
    pub resolution: Resolution,
    /// Who decided, as BMOS names them (a staff member's id, say).
    pub resolved_by: Option<String>,
    pub note: Option<String>,
}

fn invalid(message: String) -> AppError {
    AppError::unprocessable("invalid_field", message)
}

pub fn parse(raw: &[u8]) -> Result<ReviewRequest, AppError> {
    let value: Value = serde_json::from_slice(raw).map_err(|_| {
        AppError::bad_request(
            "invalid_body",
            "Body must be a JSON object like {\"resolution\": \"accepted\"}",
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(invalid(
            "Body must be a JSON object like {\"resolution\": \"accepted\"}".into(),
        ));
    };
    if fields.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Only these fields are accepted: {}",
            FIELDS.join(", ")
        )));
    }
    let resolution = match fields.get("resolution") {
        Some(Value::String(raw)) => Resolution::parse(raw)?,
        _ => {
            return Err(invalid(
                "resolution: required, \"accepted\" or \"settled_outside\"".into(),
            ));
        }
    };
    Ok(ReviewRequest {
        resolution,
        resolved_by: text(&fields, "resolved_by", MAX_RESOLVED_BY)?,
        note: text(&fields, "note", MAX_NOTE)?,
    })
}

/// An optional field of printable text, at most `max` characters.
fn text(
    fields: &serde_json::Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, AppError> {
    let raw = match fields.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(raw)) => raw.trim(),
        Some(_) => return Err(invalid(format!("{name}: must be a string"))),
    };
    if raw.is_empty() || raw.chars().count() > max || raw.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{name}: 1 to {max} characters of text, no control characters"
        )));
    }
    if looks_like_secret(raw) {
        return Err(invalid(format!(
            "{name}: looks like a secret key; it would be kept in the audit trail, so it is refused"
        )));
    }
    Ok(Some(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolution_with_its_optional_texts_is_taken() {
        assert_eq!(
            parse(br#"{"resolution": "settled_outside", "resolved_by": "staff-17", "note": " Refunded in the Dashboard "}"#)
                .unwrap(),
            ReviewRequest {
                resolution: Resolution::SettledOutside,
                resolved_by: Some("staff-17".into()),
                note: Some("Refunded in the Dashboard".into()),
            }
        );
        assert_eq!(
            parse(br#"{"resolution": "accepted"}"#).unwrap().resolution,
            Resolution::Accepted
        );
    }

    #[test]
    fn bad_bodies_are_refused_without_echoing_them() {
        let long = format!(
            r#"{{"resolution": "accepted", "note": "{}"}}"#,
            "x".repeat(501)
        );
        for (body, status) in [
            ("", 400),
            ("not json", 400),
            ("[]", 422),
            ("{}", 422),
            (r#"{"resolution": "refunded"}"#, 422),
            (r#"{"resolution": 1}"#, 422),
            (r#"{"resolution": "accepted", "extra": 1}"#, 422),
            (r#"{"resolution": "accepted", "note": 5}"#, 422),
            (r#"{"resolution": "accepted", "note": ""}"#, 422),
            (r#"{"resolution": "accepted", "note": "a\u0000b"}"#, 422),
            (long.as_str(), 422),
            (
                r#"{"resolution": "accepted", "note": "sk_live_51HqLyjWDarjtT1zdp7dcXYZabc"}"#,
                422,
            ),
        ] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{body}");
            assert!(
                !err.public_message().contains("sk_live"),
                "{}",
                err.public_message()
            );
        }
    }
}
