//! A cart BMOS sends to open a checkout session, validated field by field.
//! Amounts come only from here: the browser never says what to charge.

use super::money::{Currency, MAX_AMOUNT, Money};
use super::store_id::StoreId;
use crate::error::AppError;
use serde::Deserialize;
use std::collections::BTreeMap;
use url::Url;

pub const MAX_LINE_ITEMS: usize = 100;
pub const MAX_QUANTITY: u64 = 1_000;
const MAX_NAME_LEN: usize = 200;
const MAX_METADATA_KEYS: usize = 20;
const MAX_METADATA_KEY_LEN: usize = 40;
const MAX_METADATA_VALUE_LEN: usize = 500;
/// Ours on every PaymentIntent; BMOS may not override them.
const RESERVED_METADATA: [&str; 2] = ["store_id", "order_id"];

/// The request body of `POST /api/internal/checkout-sessions`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartRequest {
    pub store_id: String,
    pub currency: String,
    pub line_items: Vec<LineItemRequest>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub customer_email: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub store_name: Option<String>,
    /// Lifetime of the checkout link in seconds (the session's, not the cart's,
    /// but one body with unknown fields refused is worth the mix).
    #[serde(
        default,
        deserialize_with = "super::whole_number::deserialize_optional"
    )]
    pub expires_in: Option<u64>,
}

/// Numbers arrive as JSON values so a float or a string gets a message
/// naming the field instead of a generic parse error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItemRequest {
    pub name: String,
    pub unit_amount: serde_json::Value,
    pub quantity: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineItem {
    pub name: String,
    pub unit_amount: u64,
    pub quantity: u64,
}

impl LineItem {
    pub fn total(&self) -> u64 {
        self.unit_amount * self.quantity
    }
}

#[derive(Clone, Debug)]
pub struct Cart {
    pub store_id: StoreId,
    pub line_items: Vec<LineItem>,
    /// The sum of the line items.
    pub total: Money,
    pub success_url: Option<Url>,
    pub cancel_url: Option<Url>,
    pub customer_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub store_name: Option<String>,
}

fn field(name: impl Into<String>, message: impl Into<String>) -> AppError {
    AppError::unprocessable(
        "invalid_field",
        format!("{}: {}", name.into(), message.into()),
    )
}

fn positive_integer(value: &serde_json::Value, name: &str, max: u64) -> Result<u64, AppError> {
    let n = super::whole_number::non_negative(value)
        .ok_or_else(|| field(name, "must be a positive integer"))?;
    if n == 0 || n > max {
        return Err(field(name, format!("must be between 1 and {max}")));
    }
    Ok(n)
}

fn text(value: &str, name: &str, max: usize) -> Result<String, AppError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(field(
            name,
            format!("must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Where the customer is sent after paying: https (http on localhost only
/// when running locally). Merchants' shops live on their own domains, so no
/// host list: BMOS, which signs the request, vouches for the URL. Checked on
/// the raw text, since the URL parser silently drops tabs and line breaks
/// and keeps user info, which browsers show as a host-like prefix
/// (`https://shop.example@evil.example/` goes to evil.example).
pub fn redirect_url(raw: &str, name: &str, allow_http_localhost: bool) -> Result<Url, AppError> {
    if raw.len() > 2048 {
        return Err(field(name, "must be at most 2048 characters"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(field(
            name,
            "must not contain control characters or whitespace",
        ));
    }
    let url = Url::parse(raw).map_err(|_| field(name, "must be an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(field(name, "must not contain user info (user:password@)"));
    }
    let localhost = matches!(url.host_str(), Some("localhost" | "127.0.0.1"));
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && localhost && allow_http_localhost);
    if !scheme_ok || url.host_str().is_none() {
        return Err(field(name, "must be an https URL"));
    }
    Ok(url)
}

fn email(raw: &str) -> Result<String, AppError> {
    let raw = raw.trim();
    let valid = raw.len() <= 254
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
        && raw
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid {
        return Err(field("customer_email", "must be an email address"));
    }
    Ok(raw.to_owned())
}

impl CartRequest {
    pub fn validate(self, allow_http_localhost: bool) -> Result<Cart, AppError> {
        let store_id = StoreId::parse(&self.store_id)?;
        let currency = Currency::parse(&self.currency)?;
        if self.line_items.is_empty() || self.line_items.len() > MAX_LINE_ITEMS {
            return Err(field(
                "line_items",
                format!("must hold 1 to {MAX_LINE_ITEMS} items"),
            ));
        }
        let mut line_items = Vec::with_capacity(self.line_items.len());
        let mut total = Money::zero(currency);
        for (i, item) in self.line_items.iter().enumerate() {
            let item = LineItem {
                name: text(&item.name, &format!("line_items[{i}].name"), MAX_NAME_LEN)?,
                unit_amount: positive_integer(
                    &item.unit_amount,
                    &format!("line_items[{i}].unit_amount"),
                    MAX_AMOUNT,
                )?,
                quantity: positive_integer(
                    &item.quantity,
                    &format!("line_items[{i}].quantity"),
                    MAX_QUANTITY,
                )?,
            };
            total = Money::new(item.unit_amount, currency)
                .checked_mul(item.quantity)
                .and_then(|line| line.checked_add(total))
                .filter(|sum| sum.minor() <= MAX_AMOUNT)
                .ok_or_else(|| {
                    field(
                        "line_items",
                        format!("the total must not exceed {MAX_AMOUNT}"),
                    )
                })?;
            line_items.push(item);
        }
        if total.minor() < currency.minimum() {
            return Err(field(
                "line_items",
                format!(
                    "the total is below Stripe's minimum charge of {}",
                    currency.format(currency.minimum())
                ),
            ));
        }
        if self.metadata.len() > MAX_METADATA_KEYS {
            return Err(field(
                "metadata",
                format!("at most {MAX_METADATA_KEYS} keys"),
            ));
        }
        for (key, value) in &self.metadata {
            if RESERVED_METADATA.contains(&key.as_str()) {
                return Err(field(format!("metadata.{key}"), "is reserved"));
            }
            // Characters, as the message (and openapi.yaml, and Stripe) count
            // them: `len()` counted bytes and refused 40 non-ASCII characters.
            if key.is_empty()
                || key.chars().count() > MAX_METADATA_KEY_LEN
                || key.contains(['[', ']'])
            {
                return Err(field(
                    "metadata",
                    format!("keys must be 1 to {MAX_METADATA_KEY_LEN} characters without brackets"),
                ));
            }
            if value.chars().count() > MAX_METADATA_VALUE_LEN {
                return Err(field(
                    format!("metadata.{key}"),
                    format!("must be at most {MAX_METADATA_VALUE_LEN} characters"),
                ));
            }
        }
        Ok(Cart {
            store_id,
            line_items,
            total,
            success_url: self
                .success_url
                .as_deref()
                .map(|u| redirect_url(u, "success_url", allow_http_localhost))
                .transpose()?,
            cancel_url: self
                .cancel_url
                .as_deref()
                .map(|u| redirect_url(u, "cancel_url", allow_http_localhost))
                .transpose()?,
            customer_email: self.customer_email.as_deref().map(email).transpose()?,
            metadata: self.metadata,
            store_name: self
                .store_name
                .as_deref()
                .map(|n| text(n, "store_name", 100))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(overrides: serde_json::Value) -> Result<Cart, AppError> {
        let mut body = json!({
            "store_id": "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11",
            "currency": "eur",
            "line_items": [{"name": "Mug", "unit_amount": 1250, "quantity": 2}, {"name": "Tea", "unit_amount": 499, "quantity": 1}],
            "success_url": "https://shop.example/thanks",
            "customer_email": "ann@example.com",
            "metadata": {"bmos_order": "A-17"}
        });
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value::<CartRequest>(body)
            .map_err(|e| AppError::bad_request("invalid_body", e.to_string()))?
            .validate(false)
    }

    #[test]
    fn totals_come_from_the_items() {
        let cart = request(json!({})).unwrap();
        assert_eq!(cart.total.minor(), 2 * 1250 + 499);
        assert_eq!(cart.total.currency().code(), "eur");
        assert_eq!(cart.line_items.len(), 2);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"currency": "xyz"}), "currency"),
            (json!({"line_items": []}), "line_items"),
            (
                json!({"line_items": [{"name": "A", "unit_amount": 0, "quantity": 1}]}),
                "unit_amount",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": 12.5, "quantity": 1}]}),
                "unit_amount",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": "100", "quantity": 1}]}),
                "unit_amount",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": -100, "quantity": 1}]}),
                "unit_amount",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": 100, "quantity": 0}]}),
                "quantity",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": 100, "quantity": 1001}]}),
                "quantity",
            ),
            (
                json!({"line_items": [{"name": "", "unit_amount": 100, "quantity": 1}]}),
                "name",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": 99_999_999, "quantity": 2}]}),
                "total must not exceed",
            ),
            (
                json!({"line_items": [{"name": "A", "unit_amount": 10, "quantity": 1}]}),
                "minimum charge",
            ),
            (
                json!({"success_url": "http://shop.example/"}),
                "success_url",
            ),
            (json!({"cancel_url": "javascript:alert(1)"}), "cancel_url"),
            (
                json!({"success_url": "https://user:pw@shop.example/"}),
                "success_url: must not contain user info",
            ),
            (
                json!({"cancel_url": "https://:pw@shop.example/"}),
                "cancel_url: must not contain user info",
            ),
            (
                json!({"success_url": "https://shop.example@evil.example/"}),
                "success_url: must not contain user info",
            ),
            (
                json!({"success_url": "https://shop.example/th\nanks"}),
                "success_url: must not contain control characters",
            ),
            (
                json!({"cancel_url": "https://shop.example/\tcart"}),
                "cancel_url: must not contain control characters",
            ),
            (
                json!({"cancel_url": "https://shop.example/\u{0}"}),
                "cancel_url: must not contain control characters",
            ),
            (
                json!({"success_url": "https://shop.example/\u{7f}"}),
                "success_url: must not contain control characters",
            ),
            (json!({"customer_email": "not an email"}), "customer_email"),
            (json!({"metadata": {"order_id": "x"}}), "reserved"),
        ];
        for (overrides, expected) in cases {
            let err = request(overrides.clone()).unwrap_err();
            assert_eq!(err.status(), 422, "{overrides}");
            assert!(err.to_string().contains(expected), "{overrides}: {err}");
        }
    }

    /// Found by schemathesis: JSON Schema's `integer` (openapi.yaml) admits
    /// `1250.0`, and such a cart was refused (400 for `expires_in`, 422 for
    /// the line items) though it is the same as `1250`.
    #[test]
    fn whole_floats_are_integers() {
        let cart = request(json!({
            "line_items": [{"name": "Mug", "unit_amount": 1250.0, "quantity": 2.0}],
            "expires_in": 600.0
        }))
        .unwrap();
        assert_eq!(cart.total.minor(), 2500);
        assert_eq!(cart.line_items[0].quantity, 2);
        let body = json!({"store_id": "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11", "currency": "eur",
            "line_items": [{"name": "Mug", "unit_amount": 1250, "quantity": 1}], "expires_in": 600.0});
        let parsed: CartRequest = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.expires_in, Some(600));
    }

    #[test]
    fn metadata_limits_count_characters_not_bytes() {
        let key = "é".repeat(40);
        let value = "€".repeat(500);
        let cart = request(json!({"metadata": {key.clone(): value.clone()}})).unwrap();
        assert_eq!(cart.metadata[&key], value);
        let err = request(json!({"metadata": {"é".repeat(41): "x"}})).unwrap_err();
        assert!(err.to_string().contains("keys must be 1 to 40"), "{err}");
        let err = request(json!({"metadata": {"k": "€".repeat(501)}})).unwrap_err();
        assert!(err.to_string().contains("at most 500"), "{err}");
    }

    #[test]
    fn a_malformed_store_id_is_400() {
        assert_eq!(
            request(json!({"store_id": "store-1"}))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn too_many_items_are_refused() {
        let items: Vec<_> = (0..101)
            .map(|i| json!({"name": format!("Item {i}"), "unit_amount": 100, "quantity": 1}))
            .collect();
        assert!(
            request(json!({"line_items": items}))
                .unwrap_err()
                .to_string()
                .contains("1 to 100")
        );
    }
}
