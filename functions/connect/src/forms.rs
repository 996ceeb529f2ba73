//! The two forms a merchant posts, read from the raw body in one place:
//! the key form (`POST /stripe/connect`) and the webhook-secret form
//! (`POST /stripe/webhook-secret`). Anyone can post anything here, so a
//! body we cannot read is a 400 that names no field value.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use shared::AppError;
use shared::auth::connect_link::LinkParams;

/// The key form. Deliberately no `Debug`: it holds the secret key as typed.
#[derive(Deserialize)]
pub struct ConnectFormPost {
    #[serde(flatten)]
    pub link: LinkParams,
    #[serde(default)]
    pub csrf_token: String,
    #[serde(default)]
    pub publishable_key: String,
    #[serde(default)]
    pub secret_key: String,
    #[serde(default)]
    pub webhook_secret: String,
}

/// The webhook-secret form. No `Debug` either: it holds the `whsec_`.
#[derive(Deserialize)]
pub struct SecretPost {
    #[serde(flatten)]
    pub link: LinkParams,
    #[serde(default)]
    pub csrf_token: String,
    #[serde(default)]
    pub webhook_secret: String,
}

impl ConnectFormPost {
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        parse(body)
    }
}

impl SecretPost {
    pub fn parse(body: &[u8]) -> Result<Self, AppError> {
        parse(body)
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        AppError::bad_request(
            "malformed_form",
            "The form could not be read; please start again.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_form_is_read_and_garbage_is_a_400() {
        let post = ConnectFormPost::parse(
            b"store_id=s&return_url=https%3A%2F%2Fa&expires=1&signature=ab&csrf_token=t&publishable_key=pk_test_1&secret_key=sk_test_2",
        )
        .unwrap();
        assert_eq!(post.link.store_id, "s");
        assert_eq!(post.secret_key, "sk_test_2");
        assert_eq!(post.webhook_secret, "");
        // A field given twice is ambiguous: which key did the merchant mean?
        for twice in [&b"secret_key=a&secret_key=b"[..], b"store_id=a&store_id=b"] {
            let err = ConnectFormPost::parse(twice).err().unwrap();
            assert_eq!((err.status().as_u16(), err.code()), (400, "malformed_form"));
        }
        assert!(SecretPost::parse(b"webhook_secret=a&webhook_secret=b").is_err());
        // Undecodable bytes are read as the browser would send them
        // (replaced), then refused by the checks of each field.
        let odd = ConnectFormPost::parse(b"store_id=%ZZ&secret_key=\xff").unwrap();
        assert_eq!(odd.link.store_id, "%ZZ");
    }
}
