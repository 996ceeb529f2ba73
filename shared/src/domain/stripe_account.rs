//! The Stripe account a merchant's keys act on (`acct_...`). Recorded at
//! connect, so that keys of another account can be told apart from a rolled
//! key of the same one (see `functions/connect/src/account.rs`).

use std::fmt;

const PREFIX: &str = "acct_";
/// Stripe's ids are `acct_` and 16 characters today; leave room, but bound
/// what we store.
const MAX_LEN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StripeAccountId(String);

impl StripeAccountId {
    /// `acct_` followed by ASCII letters and digits only. It comes from
    /// Stripe or from our own table, never from a merchant, so a bad value
    /// is "not known" (`None`), not a request error.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(PREFIX)?;
        let valid = !body.is_empty()
            && raw.len() <= MAX_LEN
            && body.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| StripeAccountId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StripeAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_stripe_account_ids() {
        let id = StripeAccountId::parse("acct_1PgafTB7WZ01zgkW").expect("valid");
        assert_eq!(id.as_str(), "acct_1PgafTB7WZ01zgkW");
        assert_eq!(id.to_string(), "acct_1PgafTB7WZ01zgkW");
    }

    #[test]
    fn rejects_anything_else() {
        for raw in [
            "",
            "acct_",
            "acct_ABC***",
            "acct_1 2",
            "acct_1'",
            "ACCT_1PgafTB7WZ01zgkW",
            "cus_1PgafTB7WZ01zgkW",
            &format!("acct_{}", "a".repeat(60)),
        ] {
            assert_eq!(StripeAccountId::parse(raw), None, "{raw}");
        }
    }
}
