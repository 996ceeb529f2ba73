//! Signed connect links. Whoever opens the connect form can replace a store's
//! Stripe keys and divert its money, so the form only opens from a link BMOS
//! signed, for one store and one return URL, for a short time, and a link
//! works once: the first save consumes it (`Table::save_connection`).
//!
//! Wire format (a contract with BMOS): query `store_id`, `return_url`,
//! `expires` (unix seconds) and `signature` = hex HMAC-SHA256(secret,
//! `"connect.<store_id>.<return_url>.<expires>"`), over the strings as sent.
//!
//! Keys of another Stripe account replace a store's keys only when BMOS
//! asked for that in the link: such a link carries one more query
//! parameter, `account_change=allow`, and its message ends with it:
//! `"connect.<store_id>.<return_url>.<expires>.account_change=allow"`. Links
//! without it keep the message above byte for byte, so every link BMOS
//! signs today still verifies and still means "same account only". The two
//! cannot be confused: an old message ends with the digits of `expires`
//! (which must parse as a number after the signature checks), a consenting
//! one with `=allow`, so neither signature verifies as the other, however
//! the fields are re-split. Any other value of `account_change` is refused.
//!
//! After a save we hand the merchant a link of our own for the success page
//! and the webhook-secret form, signed with another purpose
//! (`"webhook-secret.<store_id>.<return_url>.<expires>"`), so the connect link
//! opens neither of them: a connect link leaked after use opens nothing.

use super::{sign_hex, verify_hex};
use crate::config::InternalSecret;
use crate::domain::{ReturnUrl, ReturnUrlPolicy, StoreId};
use crate::error::AppError;
use crate::secrets::SecretKeys;
use crate::store::LinkUse;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

/// Links further in the future than this are refused even when signed: a
/// leaked link must not stay useful for long.
pub const MAX_LIFETIME_SECS: u64 = 60 * 60;

/// What a link lets the save do when the new keys belong to another Stripe
/// account than the stored ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountChange {
    /// The default: only keys of the store's own account.
    Refuse,
    /// BMOS asked for a change of account (the store's settings said so).
    Allow,
}

/// The query parameter and its only value, as they appear in the link and
/// at the end of its signed message.
pub const ACCOUNT_CHANGE_PARAM: &str = "account_change";
const ALLOW: &str = "allow";

/// What a link may open; each signs its own message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    /// BMOS's link to the key form (`/stripe/connect`).
    Connect,
    /// Ours, after a save: the success page and the webhook-secret form.
    WebhookSecret,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Connect => "connect",
            LinkPurpose::WebhookSecret => "webhook-secret",
        }
    }
}

/// The link's parameters exactly as they arrived (query or form fields).
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct LinkParams {
    #[serde(default)]
    pub store_id: String,
    #[serde(default)]
    pub return_url: String,
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub signature: String,
    /// Absent on links that keep the store's Stripe account; `allow` when
    /// BMOS consented to another account. Covered by the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_change: Option<String>,
}

/// The signature is the link's whole power: never in a log line.
impl std::fmt::Debug for LinkParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkParams")
            .field("store_id", &self.store_id)
            .field("return_url", &self.return_url)
            .field("expires", &self.expires)
            .field("signature", &"[redacted]")
            .field("account_change", &self.account_change)
            .finish()
    }
}

/// A link whose signature checked out.
#[derive(Clone, Debug)]
pub struct ConnectLink {
    pub store_id: StoreId,
    pub return_url: ReturnUrl,
    pub expires: u64,
    pub purpose: LinkPurpose,
    pub account_change: AccountChange,
    /// The parameters as signed, to carry them into the form and the success page.
    pub params: LinkParams,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The forms and their POSTs: the link must still be valid.
    Enforce,
    /// The success page after a save: it only shows what was saved, and
    /// offers the webhook-secret form only while that link is still valid.
    Ignore,
}

fn message(
    purpose: LinkPurpose,
    store_id: &str,
    return_url: &str,
    expires: &str,
    account_change: AccountChange,
) -> String {
    let base = format!("{}.{store_id}.{return_url}.{expires}", purpose.as_str());
    match account_change {
        AccountChange::Refuse => base,
        AccountChange::Allow => format!("{base}.{ACCOUNT_CHANGE_PARAM}={ALLOW}"),
    }
}

/// The connect link's signature, as BMOS computes it (same account only).
pub fn sign(secret: &InternalSecret, store_id: &StoreId, return_url: &str, expires: u64) -> String {
    sign_connect(secret, store_id, return_url, expires, AccountChange::Refuse)
}

/// The connect link's signature, saying whether another account may replace
/// the store's.
pub fn sign_connect(
    secret: &InternalSecret,
    store_id: &StoreId,
    return_url: &str,
    expires: u64,
    account_change: AccountChange,
) -> String {
    sign_for(
        secret,
        LinkPurpose::Connect,
        store_id,
        return_url,
        expires,
        account_change,
    )
}

fn sign_for(
    secret: &InternalSecret,
    purpose: LinkPurpose,
    store_id: &StoreId,
    return_url: &str,
    expires: u64,
    account_change: AccountChange,
) -> String {
    sign_hex(
        secret,
        &[message(
            purpose,
            &store_id.to_string(),
            return_url,
            &expires.to_string(),
            account_change,
        )
        .as_bytes()],
    )
}

/// The link's `account_change` parameter as sent. Only connect links may
/// carry it, and only with its one value.
fn account_change_of(params: &LinkParams, purpose: LinkPurpose) -> Result<AccountChange, AppError> {
    match (params.account_change.as_deref(), purpose) {
        (None, _) => Ok(AccountChange::Refuse),
        (Some(ALLOW), LinkPurpose::Connect) => Ok(AccountChange::Allow),
        _ => Err(invalid()),
    }
}

/// A full connect URL under `base` (our public base URL).
pub fn url(
    base: &Url,
    secret: &InternalSecret,
    store_id: &StoreId,
    return_url: &ReturnUrl,
    expires: u64,
    account_change: AccountChange,
) -> String {
    let mut url = base.join("stripe/connect").unwrap_or_else(|_| base.clone());
    let mut query = url.query_pairs_mut();
    query
        .append_pair("store_id", &store_id.to_string())
        .append_pair("return_url", return_url.as_str())
        .append_pair("expires", &expires.to_string())
        .append_pair(
            "signature",
            &sign_connect(
                secret,
                store_id,
                return_url.as_str(),
                expires,
                account_change,
            ),
        );
    if account_change == AccountChange::Allow {
        query.append_pair(ACCOUNT_CHANGE_PARAM, ALLOW);
    }
    drop(query);
    url.into()
}

fn invalid() -> AppError {
    AppError::forbidden(
        "invalid_link",
        "This link is invalid. Please start again from your store's settings.",
    )
}

impl ConnectLink {
    /// A link of ours for `purpose`, valid for the longest a link may be.
    pub fn issue(
        secret: &InternalSecret,
        purpose: LinkPurpose,
        store_id: StoreId,
        return_url: ReturnUrl,
        now: u64,
    ) -> Self {
        let expires = now + MAX_LIFETIME_SECS;
        let params = LinkParams {
            store_id: store_id.to_string(),
            return_url: return_url.as_str().to_owned(),
            expires: expires.to_string(),
            signature: sign_for(
                secret,
                purpose,
                &store_id,
                return_url.as_str(),
                expires,
                AccountChange::Refuse,
            ),
            account_change: None,
        };
        ConnectLink {
            store_id,
            return_url,
            expires,
            purpose,
            account_change: AccountChange::Refuse,
            params,
        }
    }

    /// Checks the signature against the link signing secret's current and
    /// previous values: a link signed just before a rotation still opens.
    pub fn verify(
        params: LinkParams,
        keys: &SecretKeys,
        policy: &ReturnUrlPolicy,
        now: u64,
        expiry: Expiry,
        purpose: LinkPurpose,
    ) -> Result<Self, AppError> {
        let store_id = StoreId::parse(&params.store_id)?;
        let account_change = account_change_of(&params, purpose)?;
        let signed = verify_hex(
            keys,
            &[message(
                purpose,
                &params.store_id,
                &params.return_url,
                &params.expires,
                account_change,
            )
            .as_bytes()],
            &params.signature,
        );
        if !signed {
            return Err(invalid());
        }
        let expires: u64 = params.expires.parse().map_err(|_| invalid())?;
        if expiry == Expiry::Enforce {
            if now >= expires {
                return Err(AppError::forbidden(
                    "link_expired",
                    "This link has expired. Please start again from your store's settings.",
                ));
            }
            if expires - now > MAX_LIFETIME_SECS {
                return Err(AppError::forbidden(
                    "invalid_link",
                    "This link is valid for too long; links may last at most one hour.",
                ));
            }
        }
        let return_url = ReturnUrl::parse(&params.return_url, policy)?;
        Ok(ConnectLink {
            store_id,
            return_url,
            expires,
            purpose,
            account_change,
            params,
        })
    }

    /// Whether this link can still be used at `now` (it may have been used).
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires
    }

    /// What records the link's use: a hash of its signature, which no one
    /// can sign again without the secret. The signature itself is not kept.
    pub fn use_key(&self) -> String {
        hex::encode(Sha256::digest(self.params.signature.as_bytes()))
    }

    /// The record its first save writes, so a second save is refused.
    pub fn one_time_use(&self) -> LinkUse {
        LinkUse {
            key: self.use_key(),
            store_id: self.store_id,
            purpose: self.purpose.as_str(),
            expires: self.expires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{test_keys, test_secret};

    const STORE: &str = "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";
    const RETURN: &str = "https://shop.bmos.example/admin/payments?x=1&y=2";
    const NOW: u64 = 1_800_000_000;

    fn policy() -> ReturnUrlPolicy {
        ReturnUrlPolicy {
            allowed_hosts: vec!["bmos.example".into()],
            allow_http_localhost: false,
        }
    }

    fn params(expires: u64) -> LinkParams {
        let store = StoreId::parse(STORE).unwrap();
        LinkParams {
            store_id: STORE.into(),
            return_url: RETURN.into(),
            expires: expires.to_string(),
            signature: sign(&test_secret(), &store, RETURN, expires),
            account_change: None,
        }
    }

    fn verify(p: LinkParams) -> Result<ConnectLink, AppError> {
        ConnectLink::verify(
            p,
            &test_keys(),
            &policy(),
            NOW,
            Expiry::Enforce,
            LinkPurpose::Connect,
        )
    }

    #[test]
    fn a_fresh_signed_link_verifies() {
        let link = verify(params(NOW + 600)).expect("valid");
        assert_eq!(link.store_id.to_string(), STORE);
        assert_eq!(link.expires, NOW + 600);
    }

    #[test]
    fn signature_matches_the_documented_wire_format() {
        // From Python's hmac module, the way BMOS signs links itself.
        assert_eq!(
            params(NOW + 600).signature,
            "62bb39ee9b77b1cfb407e8ae34d7ea34c4bacec49f6568f5049d03f6c50d8068"
        );
    }

    /// A link of BMOS's that lets another Stripe account replace the store's.
    fn consenting(expires: u64) -> LinkParams {
        let store = StoreId::parse(STORE).unwrap();
        LinkParams {
            signature: sign_connect(
                &test_secret(),
                &store,
                RETURN,
                expires,
                AccountChange::Allow,
            ),
            account_change: Some("allow".into()),
            ..params(expires)
        }
    }

    #[test]
    fn links_without_consent_keep_todays_signature_and_refuse_account_changes() {
        let link = verify(params(NOW + 600)).expect("valid");
        assert_eq!(link.account_change, AccountChange::Refuse);
        let store = StoreId::parse(STORE).unwrap();
        assert_eq!(
            sign_connect(
                &test_secret(),
                &store,
                RETURN,
                NOW + 600,
                AccountChange::Refuse
            ),
            "62bb39ee9b77b1cfb407e8ae34d7ea34c4bacec49f6568f5049d03f6c50d8068",
            "the old wire format, byte for byte"
        );
    }

    #[test]
    fn a_consenting_link_signs_the_documented_message() {
        // Python: hmac.new(secret, b"connect.<store>.<return_url>.<expires>"
        //   b".account_change=allow", hashlib.sha256).hexdigest()
        let p = consenting(NOW + 600);
        assert_eq!(
            p.signature,
            "369edf55427f98dd45770898c392cf47b862240c16237269cfbddfa0dc556565"
        );
        assert_eq!(
            verify(p).expect("valid").account_change,
            AccountChange::Allow
        );
    }

    #[test]
    fn consent_can_be_neither_added_to_nor_removed_from_a_signed_link() {
        let added = LinkParams {
            account_change: Some("allow".into()),
            ..params(NOW + 600)
        };
        let removed = LinkParams {
            account_change: None,
            ..consenting(NOW + 600)
        };
        let other_value = LinkParams {
            account_change: Some("yes".into()),
            ..consenting(NOW + 600)
        };
        let empty = LinkParams {
            account_change: Some(String::new()),
            ..params(NOW + 600)
        };
        // The consenting message re-split as an old one: its last field is
        // no number, so it is not a link.
        let resplit = LinkParams {
            expires: format!("{}.account_change=allow", NOW + 600),
            account_change: None,
            ..consenting(NOW + 600)
        };
        for p in [added, removed, other_value, empty, resplit] {
            assert_eq!(verify(p).unwrap_err().code(), "invalid_link");
        }
        // Our own webhook-secret links never carry it.
        let store = StoreId::parse(STORE).unwrap();
        let ret = ReturnUrl::parse(RETURN, &policy()).unwrap();
        let ours = ConnectLink::issue(&test_secret(), LinkPurpose::WebhookSecret, store, ret, NOW);
        assert_eq!(ours.params.account_change, None);
        let with_consent = LinkParams {
            account_change: Some("allow".into()),
            ..ours.params
        };
        let refused = ConnectLink::verify(
            with_consent,
            &test_keys(),
            &policy(),
            NOW,
            Expiry::Enforce,
            LinkPurpose::WebhookSecret,
        );
        assert_eq!(refused.unwrap_err().code(), "invalid_link");
    }

    #[test]
    fn tampering_with_any_field_breaks_the_signature() {
        let tampered = [
            LinkParams {
                store_id: "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c12".into(),
                ..params(NOW + 600)
            },
            LinkParams {
                return_url: "https://evil.bmos.example/".into(),
                ..params(NOW + 600)
            },
            LinkParams {
                expires: (NOW + 601).to_string(),
                ..params(NOW + 600)
            },
            LinkParams {
                signature: "00".repeat(32),
                ..params(NOW + 600)
            },
            LinkParams {
                signature: String::new(),
                ..params(NOW + 600)
            },
        ];
        for p in tampered {
            assert_eq!(verify(p).unwrap_err().code(), "invalid_link");
        }
    }

    #[test]
    fn expired_and_overlong_links_are_refused() {
        assert_eq!(verify(params(NOW)).unwrap_err().code(), "link_expired");
        assert_eq!(verify(params(NOW - 1)).unwrap_err().code(), "link_expired");
        assert_eq!(
            verify(params(NOW + MAX_LIFETIME_SECS + 1))
                .unwrap_err()
                .code(),
            "invalid_link"
        );
        let late = ConnectLink::verify(
            params(NOW - 10),
            &test_keys(),
            &policy(),
            NOW,
            Expiry::Ignore,
            LinkPurpose::Connect,
        );
        assert!(late.is_ok(), "the success page ignores expiry");
    }

    #[test]
    fn a_malformed_store_id_is_a_bad_request() {
        let p = LinkParams {
            store_id: "store-1".into(),
            ..params(NOW + 600)
        };
        assert_eq!(verify(p).unwrap_err().status(), 400);
    }

    #[test]
    fn a_signed_but_disallowed_return_url_is_refused() {
        let store = StoreId::parse(STORE).unwrap();
        let evil = "https://evil.example/";
        let p = LinkParams {
            store_id: STORE.into(),
            return_url: evil.into(),
            expires: (NOW + 600).to_string(),
            signature: sign(&test_secret(), &store, evil, NOW + 600),
            account_change: None,
        };
        assert_eq!(verify(p).unwrap_err().code(), "invalid_return_url");
    }

    #[test]
    fn built_urls_round_trip_through_verification() {
        let store = StoreId::parse(STORE).unwrap();
        let ret = ReturnUrl::parse(RETURN, &policy()).unwrap();
        let base = Url::parse("https://pay.example/").unwrap();
        for (change, query_has_it) in [(AccountChange::Refuse, false), (AccountChange::Allow, true)]
        {
            let link = url(&base, &test_secret(), &store, &ret, NOW + 300, change);
            let parsed = Url::parse(&link).unwrap();
            assert_eq!(parsed.path(), "/stripe/connect");
            let query = parsed.query().unwrap();
            assert_eq!(
                query.contains("account_change=allow"),
                query_has_it,
                "{query}"
            );
            let p: LinkParams = serde_urlencoded::from_str(query).unwrap();
            assert_eq!(verify(p).unwrap().account_change, change);
        }
    }

    #[test]
    fn a_link_opens_only_what_it_was_signed_for() {
        let p = params(NOW + 600);
        let as_ours = ConnectLink::verify(
            p.clone(),
            &test_keys(),
            &policy(),
            NOW,
            Expiry::Enforce,
            LinkPurpose::WebhookSecret,
        );
        assert_eq!(as_ours.unwrap_err().code(), "invalid_link");

        let store = StoreId::parse(STORE).unwrap();
        let ret = ReturnUrl::parse(RETURN, &policy()).unwrap();
        let issued =
            ConnectLink::issue(&test_secret(), LinkPurpose::WebhookSecret, store, ret, NOW);
        assert_eq!(issued.expires, NOW + MAX_LIFETIME_SECS);
        let again = ConnectLink::verify(
            issued.params.clone(),
            &test_keys(),
            &policy(),
            NOW,
            Expiry::Enforce,
            LinkPurpose::WebhookSecret,
        )
        .expect("our own link verifies for its purpose");
        assert_eq!(again.use_key(), issued.use_key());
        let as_connect = ConnectLink::verify(
            issued.params,
            &test_keys(),
            &policy(),
            NOW,
            Expiry::Enforce,
            LinkPurpose::Connect,
        );
        assert_eq!(as_connect.unwrap_err().code(), "invalid_link");
    }

    #[test]
    fn the_use_key_is_not_the_signature_and_differs_per_link() {
        let a = verify(params(NOW + 600)).unwrap();
        let b = verify(params(NOW + 601)).unwrap();
        assert_ne!(a.use_key(), b.use_key());
        assert!(!a.use_key().contains(&a.params.signature));
        assert_eq!(a.use_key().len(), 64);
    }

    #[test]
    fn debug_output_never_shows_the_signature() {
        let link = verify(params(NOW + 600)).unwrap();
        let printed = format!("{link:?} {:?}", link.params);
        assert!(!printed.contains(&link.params.signature), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
