use crate::error::AppError;
use std::fmt;

/// A BMOS store id: a UUID, kept in its canonical lowercase hyphenated form so
/// one store never has two keys in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreId(uuid::Uuid);

impl StoreId {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        hyphenated_uuid(raw).map(StoreId).ok_or_else(invalid)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

/// A UUID a caller sent, only in the hyphenated form: BMOS sends it, and
/// accepting braces, URNs or the simple form would let one id be spelled
/// several ways (inside signed links, in item keys).
pub(super) fn hyphenated_uuid(raw: &str) -> Option<uuid::Uuid> {
    (raw.len() == 36)
        .then(|| uuid::Uuid::try_parse(raw).ok())
        .flatten()
}

fn invalid() -> AppError {
    AppError::bad_request("invalid_store_id", "store_id must be a UUID")
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_in_canonical_form() {
        let id = StoreId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").expect("valid");
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
    }

    #[test]
    fn rejects_everything_else() {
        for raw in [
            "",
            "store-1",
            "6f9619ff8b86d011b42d00c04fc964ff",
            "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
            "6f9619ff-8b86-d011-b42d-00c04fc964fg",
            "../../etc/passwd",
        ] {
            let err = StoreId::parse(raw).expect_err(raw);
            assert_eq!(err.code(), "invalid_store_id", "{raw}");
        }
    }
}
