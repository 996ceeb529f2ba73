//! Whose Stripe account the new keys may be. Whoever holds a connect link
//! could otherwise bind their own Stripe account to someone else's store and
//! take its customers' money; so keys of another account replace a store's
//! keys only when BMOS asked for that in the link (`account_change=allow`,
//! see `shared::auth::connect_link`).
//!
//! The publishable key is not checked against the account: Stripe documents
//! no call that proves a `pk_` and an `sk_`/`rk_` belong to one account
//! without leaving objects in it (creating a token or PaymentMethod with the
//! pk would). Retrieving a PaymentIntent with the pk and its client secret
//! proves it, but only for accounts that already have a PaymentIntent. A
//! mismatched pk cannot divert money: we create every PaymentIntent with the
//! secret key, so the money lands in the secret key's account, whose id is
//! what we compare; Stripe.js with another account's pk only fails the
//! customer's confirmation. And a save always needs a secret key that Stripe
//! accepts, so no one can pair their pk with the store's secret key.

use shared::AppError;
use shared::auth::connect_link::AccountChange;
use shared::domain::StripeAccountId;
use shared::store::StripeConnection;

/// Whether keys acting on `new` (`None`: Stripe did not say) may replace
/// `previous` through a link that says `consent`.
///
/// - First connect: nothing to protect yet; record what Stripe said.
/// - Stored account unknown (connected before we recorded accounts): there
///   is nothing to compare with, and refusing would lock every such store
///   out of rolling its key. The save goes through, records the account
///   from now on, and the audit entry says the old one was unknown.
/// - Same account: a rolled key, no consent needed.
/// - Another account, or one Stripe would not name while we know the
///   stored one: only with consent. An unknown account fails closed, or any
///   key whose account Stripe does not name would get around the rule.
pub(crate) fn check(
    previous: Option<&StripeConnection>,
    new: Option<&StripeAccountId>,
    consent: AccountChange,
) -> Result<(), AppError> {
    let Some(stored) = previous.and_then(|p| p.account_id.as_ref()) else {
        return Ok(());
    };
    match (new, consent) {
        (Some(new), _) if new == stored => Ok(()),
        (_, AccountChange::Allow) => Ok(()),
        (Some(_), AccountChange::Refuse) => Err(AppError::unprocessable(
            "stripe_account_changed",
            "These keys belong to another Stripe account than the one this store is connected to. To connect a different Stripe account, start again from your store's settings and choose to change the account; nothing was saved.",
        )),
        (None, AccountChange::Refuse) => Err(AppError::unprocessable(
            "stripe_account_unverified",
            "Stripe did not tell us which account these keys belong to, so we cannot confirm it is the account this store is connected to. Use a secret key of the same account, or start again from your store's settings and choose to change the account; nothing was saved.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{KeyKind, PublishableKey, StoreId};
    use shared::vault::SealedSecret;

    fn account(raw: &str) -> StripeAccountId {
        StripeAccountId::parse(raw).unwrap()
    }

    fn stored(account_id: Option<StripeAccountId>) -> StripeConnection {
        StripeConnection {
            store_id: StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").unwrap(),
            publishable_key: PublishableKey::parse("pk_test_51HqLyjWDarjtT1zdp7").unwrap(),
            key_kind: KeyKind::Restricted,
            account_id,
            secret_key: SealedSecret {
                wrapped_key: vec![1],
                token: "t".into(),
            },
            webhook_secret: None,
            connected_at: 1,
            updated_at: 1,
            version: 1,
            activity: Default::default(),
            last_key_replacement: None,
            publishable_key_proven_at: None,
        }
    }

    #[test]
    fn the_stores_account_may_always_replace_its_keys() {
        let a = account("acct_1PgafTB7WZ01zgkW");
        for consent in [AccountChange::Refuse, AccountChange::Allow] {
            assert!(check(Some(&stored(Some(a.clone()))), Some(&a), consent).is_ok());
            assert!(check(None, Some(&a), consent).is_ok(), "first connect");
            assert!(check(None, None, consent).is_ok(), "first connect, unknown");
            assert!(
                check(Some(&stored(None)), Some(&a), consent).is_ok(),
                "connected before accounts were recorded"
            );
        }
    }

    #[test]
    fn another_or_an_unnamed_account_needs_consent() {
        let a = account("acct_1PgafTB7WZ01zgkW");
        let b = account("acct_1Nv0FGQ9RKHgCVdK");
        let previous = stored(Some(a));
        let err = check(Some(&previous), Some(&b), AccountChange::Refuse).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (422, "stripe_account_changed")
        );
        let err = check(Some(&previous), None, AccountChange::Refuse).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (422, "stripe_account_unverified")
        );
        assert!(check(Some(&previous), Some(&b), AccountChange::Allow).is_ok());
        assert!(check(Some(&previous), None, AccountChange::Allow).is_ok());
    }
}
