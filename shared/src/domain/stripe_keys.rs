//! The Stripe credentials a merchant enters, checked for shape before anything
//! talks to Stripe. Secret values live in `Secret`, so `Debug` shows
//! `[redacted]` and nothing else can print them.

use super::Secret;
use crate::error::AppError;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn parse(raw: &str) -> Option<Mode> {
        match raw {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }
}

/// Whether the merchant gave a full secret key or a restricted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Secret,
    Restricted,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Restricted => "restricted",
        }
    }

    pub fn parse(raw: &str) -> Option<KeyKind> {
        match raw {
            "secret" => Some(KeyKind::Secret),
            "restricted" => Some(KeyKind::Restricted),
            _ => None,
        }
    }
}

// Stripe keys are base62 after the prefix; a generous upper bound keeps a
// pasted essay out of KMS and DynamoDB.
const MAX_KEY_LEN: usize = 255;
const MIN_BODY_LEN: usize = 8;

/// Splits `<prefix><body>` and checks the body looks like a Stripe key body.
fn key_body<'a>(raw: &'a str, prefix: &str) -> Option<&'a str> {
    let body = raw.strip_prefix(prefix)?;
    let well_formed = raw.len() <= MAX_KEY_LEN
        && body.len() >= MIN_BODY_LEN
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    well_formed.then_some(body)
}

/// `pk_test_...` or `pk_live_...`. Not a secret: it is printed on our pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishableKey {
    value: String,
    mode: Mode,
}

impl PublishableKey {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let raw = raw.trim();
        let mode = if key_body(raw, "pk_test_").is_some() {
            Mode::Test
        } else if key_body(raw, "pk_live_").is_some() {
            Mode::Live
        } else {
            return Err(AppError::unprocessable(
                "invalid_publishable_key",
                "The publishable key must start with pk_test_ or pk_live_",
            ));
        };
        Ok(PublishableKey {
            value: raw.to_owned(),
            mode,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl fmt::Display for PublishableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// `sk_test_`, `sk_live_`, `rk_test_` or `rk_live_`. Never printed.
#[derive(Clone, Debug)]
pub struct SecretKey {
    value: Secret<String>,
    mode: Mode,
    kind: KeyKind,
}

impl SecretKey {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let raw = raw.trim();
        let (mode, kind) = [
            ("sk_test_", Mode::Test, KeyKind::Secret),
            ("sk_live_", Mode::Live, KeyKind::Secret),
            ("rk_test_", Mode::Test, KeyKind::Restricted),
            ("rk_live_", Mode::Live, KeyKind::Restricted),
        ]
        .into_iter()
        .find(|(prefix, ..)| key_body(raw, prefix).is_some())
        .map(|(_, mode, kind)| (mode, kind))
        .ok_or_else(|| {
            AppError::unprocessable(
                "invalid_secret_key",
                "The secret key must start with sk_test_, sk_live_, rk_test_ or rk_live_",
            )
        })?;
        Ok(SecretKey {
            value: Secret::new(raw.to_owned()),
            mode,
            kind,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The only way to the key's text; call it where the key leaves for
    /// Stripe or for sealing, nowhere else.
    pub fn expose(&self) -> &str {
        self.value.expose()
    }
}

/// A webhook signing secret, `whsec_...`. Never printed.
#[derive(Clone, Debug)]
pub struct WebhookSecret(Secret<String>);

impl WebhookSecret {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let raw = raw.trim();
        if key_body(raw, "whsec_").is_none() {
            return Err(AppError::unprocessable(
                "invalid_webhook_secret",
                "The webhook signing secret must start with whsec_",
            ));
        }
        Ok(WebhookSecret(Secret::new(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A publishable and a secret key of the same mode: the only pair we store.
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub publishable: PublishableKey,
    pub secret: SecretKey,
}

impl KeyPair {
    pub fn new(publishable: PublishableKey, secret: SecretKey) -> Result<Self, AppError> {
        if publishable.mode() != secret.mode() {
            return Err(AppError::unprocessable(
                "mode_mismatch",
                format!(
                    "The publishable key is a {} key but the secret key is a {} key. Use both keys from the same mode.",
                    publishable.mode().as_str(),
                    secret.mode().as_str()
                ),
            ));
        }
        Ok(KeyPair {
            publishable,
            secret,
        })
    }

    pub fn mode(&self) -> Mode {
        self.publishable.mode()
    }
}

/// Whether `value` holds something shaped like a secret (a secret or
/// restricted key, a webhook signing secret), wherever it was typed: such a
/// value is never echoed back into a page, even into the field it came from.
pub fn looks_like_secret(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    ["sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_"]
        .iter()
        .any(|prefix| lower.contains(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "51HqLyjWDarjtT1zdp7dcXYZ";

    #[test]
    fn publishable_keys_know_their_mode() {
        assert_eq!(
            PublishableKey::parse(&format!("pk_test_{BODY}"))
                .unwrap()
                .mode(),
            Mode::Test
        );
        assert_eq!(
            PublishableKey::parse(&format!(" pk_live_{BODY}\n"))
                .unwrap()
                .mode(),
            Mode::Live
        );
    }

    #[test]
    fn secret_keys_know_mode_and_kind() {
        let cases = [
            ("sk_test_", Mode::Test, KeyKind::Secret),
            ("sk_live_", Mode::Live, KeyKind::Secret),
            ("rk_test_", Mode::Test, KeyKind::Restricted),
            ("rk_live_", Mode::Live, KeyKind::Restricted),
        ];
        for (prefix, mode, kind) in cases {
            let key = SecretKey::parse(&format!("{prefix}{BODY}")).unwrap();
            assert_eq!((key.mode(), key.kind()), (mode, kind), "{prefix}");
            assert_eq!(key.expose(), format!("{prefix}{BODY}"));
        }
    }

    #[test]
    fn wrong_prefixes_and_shapes_are_rejected() {
        for raw in [
            "",
            "sk_test_",
            "sk_test_short",
            &format!("pk_test_{BODY}"),
            &format!("sk_prod_{BODY}"),
            &format!("sk_test_{BODY} extra"),
            &format!("sk_test_{BODY}<script>"),
            &format!("sk_test_{}", "a".repeat(300)),
        ] {
            assert_eq!(
                SecretKey::parse(raw).unwrap_err().code(),
                "invalid_secret_key",
                "{raw}"
            );
        }
        assert_eq!(
            PublishableKey::parse(&format!("sk_test_{BODY}"))
                .unwrap_err()
                .code(),
            "invalid_publishable_key"
        );
        assert_eq!(
            WebhookSecret::parse(&format!("wh_{BODY}"))
                .unwrap_err()
                .code(),
            "invalid_webhook_secret"
        );
    }

    #[test]
    fn modes_must_match() {
        let pk = PublishableKey::parse(&format!("pk_live_{BODY}")).unwrap();
        let sk = SecretKey::parse(&format!("sk_test_{BODY}")).unwrap();
        let err = KeyPair::new(pk, sk).unwrap_err();
        assert_eq!(err.code(), "mode_mismatch");
        assert!(
            !err.to_string().contains(BODY),
            "the message must not echo a key"
        );
    }

    #[test]
    fn secrets_print_redacted() {
        let sk = SecretKey::parse(&format!("sk_live_{BODY}")).unwrap();
        let wh = WebhookSecret::parse(&format!("whsec_{BODY}")).unwrap();
        let pair = KeyPair::new(
            PublishableKey::parse(&format!("pk_live_{BODY}")).unwrap(),
            sk.clone(),
        )
        .unwrap();
        for printed in [
            format!("{sk:?}"),
            format!("{wh:?}"),
            format!("{pair:?}"),
            format!("{pair:#?}"),
        ] {
            assert!(printed.contains("[redacted]"), "{printed}");
            assert!(!printed.contains("sk_live_"), "{printed}");
            assert!(!printed.contains("whsec_"), "{printed}");
        }
    }

    #[test]
    fn secret_shaped_values_are_recognised_wherever_they_sit() {
        for secret in [
            format!("sk_live_{BODY}"),
            format!(" rk_test_{BODY}"),
            format!("pk_test_x sk_test_{BODY}"),
            format!("WHSEC_{BODY}"),
        ] {
            assert!(looks_like_secret(&secret), "{secret}");
        }
        for harmless in [format!("pk_live_{BODY}"), String::new(), "desk_lamp".into()] {
            assert!(!looks_like_secret(&harmless), "{harmless}");
        }
    }
}
