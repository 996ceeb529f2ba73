use super::store_id::hyphenated_uuid;
use crate::error::AppError;
use std::fmt;

/// An order id: a random UUID we make, kept in its canonical lowercase
/// hyphenated form, which is also how it is written into item keys, Stripe
/// metadata and BMOS's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(uuid::Uuid);

impl OrderId {
    pub fn new() -> Self {
        OrderId(uuid::Uuid::new_v4())
    }

    /// An order id from a caller (BMOS's paths): only the hyphenated form,
    /// as `StoreId::parse` takes it.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        hyphenated_uuid(raw).map(OrderId).ok_or_else(invalid)
    }

    /// An order id from Stripe's metadata of an object: any spelling of a
    /// UUID names the order we wrote in canonical form; anything else is
    /// another integration's order number, not ours.
    pub fn from_metadata(raw: &str) -> Option<Self> {
        uuid::Uuid::try_parse(raw).ok().map(OrderId)
    }

    /// Whether `raw` is this id as we write it (Stripe echoes our metadata).
    pub fn is(&self, raw: &str) -> bool {
        let mut buf = uuid::Uuid::encode_buffer();
        self.0.hyphenated().encode_lower(&mut buf) == raw
    }
}

impl Default for OrderId {
    fn default() -> Self {
        OrderId::new()
    }
}

fn invalid() -> AppError {
    AppError::bad_request("invalid_order_id", "order_id must be a UUID")
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl serde::Serialize for OrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_give_the_canonical_form_and_stripe_metadata_any_uuid() {
        let canonical = "5d9e7c1a-0000-4000-8000-000000000001";
        let id = OrderId::parse(canonical).expect("valid");
        assert_eq!(id.to_string(), canonical);
        assert_eq!(
            OrderId::parse("5D9E7C1A-0000-4000-8000-000000000001")
                .expect("upper case")
                .to_string(),
            canonical
        );
        assert_eq!(
            OrderId::from_metadata("5d9e7c1a000040008000000000000001"),
            Some(id)
        );
        assert_eq!(OrderId::from_metadata("A-17"), None);
        assert_eq!(
            serde_json::to_string(&id).expect("json"),
            format!("\"{canonical}\"")
        );
    }

    #[test]
    fn a_caller_cannot_spell_one_order_two_ways() {
        for raw in [
            "",
            "order-1",
            "5d9e7c1a000040008000000000000001",
            "{5d9e7c1a-0000-4000-8000-000000000001}",
            "../../etc/passwd",
        ] {
            let err = OrderId::parse(raw).expect_err(raw);
            assert_eq!(err.code(), "invalid_order_id", "{raw}");
        }
    }
}
