//! Which Stripe account a key acts on, so a save can tell a rolled key of
//! the store's account from keys of someone else's.
//!
//! A full secret key may call `GET /v1/account` (Stripe's documented
//! "Retrieve account"): the answer's `id` is the account. Stripe offers no
//! permission that lets a restricted key make that call; it answers 403
//! "The provided key 'rk_…' does not have the required permissions for this
//! endpoint on account 'acct_…'. … not available for use by restricted
//! keys" (see stripe/stripe-node#2246, dj-stripe/dj-stripe#1131). No other
//! documented object a restricted key can read names its own account, so
//! for those keys we take the account from that sentence. Why that is
//! acceptable:
//! - it is Stripe's own statement, over TLS, about the key we just sent: no
//!   one but Stripe writes it, and we sent no `Stripe-Account` header, so
//!   the account it names is the key's own;
//! - we take only a complete `'acct_…'` token in quotes after "on account",
//!   and only when the message names exactly one account: a masked
//!   (`'acct_ABC***'`), missing or ambiguous id gives "unknown", never a
//!   guess;
//! - the rest of the message (it quotes part of the key) is dropped here.
//!
//! Limits: the sentence is not a documented contract. Older answers named no
//! account at all ("on account.  This is a restricted API key…"), and Stripe
//! may change the wording again; then the account is unknown, and the
//! connect form decides what an unknown account may do (it fails closed
//! where an account is already on record). Where Stripe lets a restricted
//! key read the account (newer accounts can grant it), the 200 answer is
//! used like a secret key's.

use super::{StripeApi, StripeFailure};
use crate::domain::{SecretKey, StripeAccountId};
use stripe_client_core::{RequestBuilder, StripeMethod};

#[derive(miniserde::Deserialize)]
struct AccountObject {
    id: String,
    object: String,
}

impl StripeApi {
    /// The account `key` acts on: `Ok(None)` when Stripe answered but did
    /// not say (a restricted key, wording we do not recognise). Errors are
    /// what they are for any call (invalid key, Stripe unreachable, ...).
    pub async fn account_of(
        &self,
        key: &SecretKey,
    ) -> Result<Option<StripeAccountId>, StripeFailure> {
        let client = self.client(key)?;
        let answer: Result<AccountObject, _> = RequestBuilder::new(StripeMethod::Get, "/account")
            .customize()
            .send(&client)
            .await;
        match answer {
            Ok(account) if account.object == "account" => StripeAccountId::parse(&account.id)
                .map(Some)
                .ok_or_else(|| StripeFailure::Unreachable("an account id we cannot read".into())),
            Ok(other) => Err(StripeFailure::Unreachable(
                format!("unexpected object `{}`", other.object).into(),
            )),
            Err(stripe::StripeError::Stripe(api, 403)) => {
                Ok(api.message.as_deref().and_then(account_named))
            }
            Err(err) => Err(StripeFailure::from_client(err)),
        }
    }
}

/// The one account Stripe's permission error names, as
/// `on account 'acct_…'`; `None` if it names none, several, or one we
/// cannot read whole.
pub(crate) fn account_named(message: &str) -> Option<StripeAccountId> {
    const MARK: &str = "on account '";
    let mut found: Option<StripeAccountId> = None;
    for (at, _) in message.match_indices(MARK) {
        let rest = &message[at + MARK.len()..];
        let token = &rest[..rest.find('\'')?];
        let id = StripeAccountId::parse(token)?;
        if found.as_ref().is_some_and(|f| *f != id) {
            return None;
        }
        found = Some(id);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::samples;
    use std::time::Duration;
    use url::Url;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// Stripe's answer to a restricted key on `GET /v1/account`, as quoted in
    /// dj-stripe#1131 (with a real-looking id instead of their mask).
    const RESTRICTED: &str = "The provided key 'rk_live_AB****************************123' does not have the required permissions for this endpoint on account 'acct_1Nv0FGQ9RKHgCVdK'. This is a restricted API key, but the required permissions are not available for use by restricted keys.";

    #[test]
    fn finds_the_account_in_stripes_permission_error() {
        assert_eq!(
            account_named(RESTRICTED).map(|a| a.to_string()).as_deref(),
            Some("acct_1Nv0FGQ9RKHgCVdK")
        );
        // The wording of stripe-node#2246 names a permission too.
        let named = "The provided key 'rk_test_****qs8Kgd' does not have the required permissions for this endpoint on account 'acct_1PJBLEBBLEfV'. Having the 'rak_accounts_kyc_id_numbers_read' permission would allow this request to continue.";
        assert_eq!(
            account_named(named).map(|a| a.to_string()).as_deref(),
            Some("acct_1PJBLEBBLEfV")
        );
    }

    #[test]
    fn never_guesses_an_account() {
        for message in [
            // Older wording: no account at all.
            "The provided key  does not have the required permissions for this endpoint on account.  This is a restricted API key, but the required permissions are not available for use by restricted keys.",
            // A masked id is not an id.
            "… for this endpoint on account 'acct_ABC***'. This is a restricted API key …",
            // Two accounts: which one?
            "… on account 'acct_1AAAAAAAAAAAAAAA' … on account 'acct_1BBBBBBBBBBBBBBB'.",
            // An account named elsewhere in the sentence is not the key's.
            "No such account: 'acct_1AAAAAAAAAAAAAAA'",
            // Unterminated.
            "… on account 'acct_1AAAAAAAAAAAAAAA",
            "",
        ] {
            assert_eq!(account_named(message), None, "{message}");
        }
        let twice =
            "on account 'acct_1AAAAAAAAAAAAAAA' and again on account 'acct_1AAAAAAAAAAAAAAA'";
        assert!(account_named(twice).is_some(), "the same account twice");
    }

    async fn lookup(
        answer: ResponseTemplate,
        key: &str,
    ) -> Result<Option<StripeAccountId>, StripeFailure> {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/account"))
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        StripeApi::new(
            Url::parse(&format!("{}/", server.uri())).unwrap(),
            Duration::from_secs(2),
        )
        .account_of(&SecretKey::parse(key).unwrap())
        .await
    }

    #[tokio::test]
    async fn a_secret_key_reads_its_account_and_a_restricted_key_learns_it_from_the_403() {
        let account = ResponseTemplate::new(200).set_body_json(samples::sample("account"));
        let found = lookup(account, "sk_test_51HqLyjWDarjtT1zdp7dcXYZ")
            .await
            .unwrap();
        assert_eq!(found.unwrap().as_str(), "acct_1PgafTB7WZ01zgkW");

        let denied = ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "error": {"type": "invalid_request_error", "message": RESTRICTED}
        }));
        let found = lookup(denied, "rk_test_51HqLyjWDarjtT1zdp7dcXYZ")
            .await
            .unwrap();
        assert_eq!(found.unwrap().as_str(), "acct_1Nv0FGQ9RKHgCVdK");

        let silent = ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "error": {"type": "invalid_request_error", "message": "The provided key does not have the required permissions."}
        }));
        assert!(
            lookup(silent, "rk_test_51HqLyjWDarjtT1zdp7dcXYZ")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn other_answers_are_failures_not_accounts() {
        let key = "sk_test_51HqLyjWDarjtT1zdp7dcXYZ";
        let invalid = ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****XYZ"}
        }));
        assert!(matches!(
            lookup(invalid, key).await,
            Err(StripeFailure::InvalidKey)
        ));
        let down = ResponseTemplate::new(500).set_body_json(serde_json::json!({
            "error": {"type": "api_error", "message": "on account 'acct_1PgafTB7WZ01zgkW'"}
        }));
        assert!(matches!(
            lookup(down, key).await,
            Err(StripeFailure::Unreachable(_))
        ));
        let odd = ResponseTemplate::new(200).set_body_json(samples::object(
            "account",
            serde_json::json!({"id": "acct_ABC***"}),
        ));
        assert!(matches!(
            lookup(odd, key).await,
            Err(StripeFailure::Unreachable(_))
        ));
        let not_an_account = ResponseTemplate::new(200).set_body_json(samples::sample("customer"));
        assert!(matches!(
            lookup(not_an_account, key).await,
            Err(StripeFailure::Unreachable(_))
        ));
    }
}
