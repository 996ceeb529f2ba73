//! Integers in request bodies, as JSON counts them. JSON has one number type:
//! `1800` and `1800.0` are the same value, and openapi.yaml's `type: integer`
//! (JSON Schema) admits both, so a client library that writes every number
//! with a fraction must not be refused. Whole values are taken; `12.5`,
//! negatives, strings and values past 2^53 (where a float no longer spells
//! one integer) are not.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Past this, a float stands for more than one integer.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The non-negative integer `value` holds, if it holds one.
pub fn non_negative(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // The range check is exact below 2^53, so the cast cannot round.
    (f.fract() == 0.0 && (0.0..=EXACT_LIMIT).contains(&f)).then_some(f as u64)
}

/// For `#[serde(default, deserialize_with = "...")]` on an `Option<u64>`
/// field: absent or `null` is `None`; anything else must be a whole number.
pub fn deserialize_optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => non_negative(&value).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid value: {value}, expected a non-negative integer"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_floats_are_the_integers_they_spell() {
        assert_eq!(non_negative(&json!(1800)), Some(1800));
        assert_eq!(non_negative(&json!(1800.0)), Some(1800));
        assert_eq!(non_negative(&json!(0.0)), Some(0));
        assert_eq!(non_negative(&json!(-0.0)), Some(0));
        assert_eq!(non_negative(&json!(9_007_199_254_740_992.0)), Some(1 << 53));
    }

    #[test]
    fn fractions_negatives_strings_and_huge_floats_are_not() {
        for value in [
            json!(12.5),
            json!(-1),
            json!(-1.0),
            json!("1800"),
            json!(true),
            json!(null),
            json!(1e300),
        ] {
            assert_eq!(non_negative(&value), None, "{value}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "deserialize_optional")]
        expires_in: Option<u64>,
    }

    #[test]
    fn optional_fields_take_whole_floats_and_refuse_the_rest() {
        let parse = |raw: &str| serde_json::from_str::<Body>(raw).map(|b| b.expires_in);
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert_eq!(parse(r#"{"expires_in": null}"#).unwrap(), None);
        assert_eq!(parse(r#"{"expires_in": 600}"#).unwrap(), Some(600));
        assert_eq!(parse(r#"{"expires_in": 600.0}"#).unwrap(), Some(600));
        let err = parse(r#"{"expires_in": 600.5}"#).unwrap_err().to_string();
        assert!(err.contains("expected a non-negative integer"), "{err}");
        assert!(parse(r#"{"expires_in": "600"}"#).is_err());
    }
}
