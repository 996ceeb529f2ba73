//! The connect form's CSRF token. There is no session cookie to ride on, so
//! the token binds the form post to the signed link it was rendered from:
//! a forged post needs a valid link *and* a token only our page hands out.
//! The Origin check in the handler is the other half.

use super::connect_link::ConnectLink;
use super::{sign_hex, verify_hex};
use crate::config::InternalSecret;
use crate::secrets::SecretKeys;

fn message(link: &ConnectLink) -> String {
    let p = &link.params;
    format!(
        "csrf.v1.{}.{}.{}.{}",
        p.store_id, p.return_url, p.expires, p.signature
    )
}

/// Made with the link signing secret's current value.
pub fn token(secret: &InternalSecret, link: &ConnectLink) -> String {
    sign_hex(secret, &[message(link).as_bytes()])
}

/// A token made with the current or the previous value verifies, so a form
/// rendered just before a rotation still posts.
pub fn verify(keys: &SecretKeys, link: &ConnectLink, token: &str) -> bool {
    verify_hex(keys, &[message(link).as_bytes()], token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::connect_link::{self, Expiry, LinkParams};
    use crate::auth::{test_keys, test_secret};
    use crate::domain::{ReturnUrlPolicy, StoreId};

    fn link(store: &str, expires: u64) -> ConnectLink {
        let secret = test_secret();
        let id = StoreId::parse(store).unwrap();
        let ret = "https://bmos.example/back";
        let params = LinkParams {
            store_id: store.into(),
            return_url: ret.into(),
            expires: expires.to_string(),
            signature: connect_link::sign(&secret, &id, ret, expires),
            account_change: None,
        };
        let policy = ReturnUrlPolicy {
            allowed_hosts: vec!["bmos.example".into()],
            allow_http_localhost: false,
        };
        ConnectLink::verify(
            params,
            &SecretKeys::single(secret),
            &policy,
            expires - 100,
            Expiry::Enforce,
            connect_link::LinkPurpose::Connect,
        )
        .unwrap()
    }

    #[test]
    fn token_is_bound_to_its_link() {
        let keys = test_keys();
        let secret = keys.current.clone();
        let a = link("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11", 1_800_000_600);
        let b = link("5a0f8d3c-1111-4c2b-8e7e-0a9b8c7d6e5f", 1_800_000_600);
        let later = link("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11", 1_800_000_700);
        let t = token(&secret, &a);
        assert!(verify(&keys, &a, &t));
        assert!(!verify(&keys, &b, &t), "another store's link");
        assert!(
            !verify(&keys, &later, &t),
            "another link for the same store"
        );
        assert!(!verify(&keys, &a, ""), "missing token");
        assert!(!verify(&keys, &a, &t.replace('a', "b")), "altered token");
    }
}
