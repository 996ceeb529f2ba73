//! Configuration, read once per cold start. A missing or malformed variable
//! stops the function at init with a message naming it; secrets have no
//! defaults and are held in redacting types.

use crate::domain::{ReturnUrlPolicy, Secret};
use std::time::Duration;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        reason: &'static str,
    },
}

/// One value of a secret shared with BMOS (see `secrets`): either the one
/// that authenticates BMOS's calls, or the one that signs connect links and
/// CSRF tokens. Redacted in `Debug`, wiped from memory when dropped.
#[derive(Clone, Debug)]
pub struct InternalSecret(Secret<String>);

/// Shorter secrets are guessable offline from one signed link.
pub const MIN_INTERNAL_SECRET_LEN: usize = 32;

impl InternalSecret {
    pub fn new(value: String) -> Result<Self, ConfigError> {
        Self::named("INTERNAL_SECRET", value)
    }

    /// A value read from `name` (a variable, or the variable naming the
    /// secret it was read from), which errors name.
    pub fn named(name: &'static str, value: String) -> Result<Self, ConfigError> {
        // Wrapped first, so a value that is refused is wiped too.
        let value = Secret::new(value);
        if value.expose().len() < MIN_INTERNAL_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name,
                reason: "must be at least 32 characters",
            });
        }
        Ok(InternalSecret(value))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose().as_bytes()
    }
}

/// Where a function gets one of its secrets. A function that neither
/// verifies BMOS nor signs links has neither setting and needs neither.
#[derive(Clone, Debug)]
pub enum SecretSetting {
    /// The value itself, from the environment: the local stack, for speed.
    /// It never changes while the process runs.
    Value(InternalSecret),
    /// The ARN of a Secrets Manager secret (AWS): re-read every
    /// `secret_cache_ttl`, current and previous versions.
    SecretsManager(String),
}

/// The variables of the BMOS authentication secret: the value, or the ARN.
pub const BMOS_AUTH_SECRET: (&str, &str) = ("BMOS_AUTH_SECRET", "BMOS_AUTH_SECRET_ARN");
/// The variables of the link and CSRF signing secret: the value, or the ARN.
pub const LINK_SIGNING_SECRET: (&str, &str) = ("LINK_SIGNING_SECRET", "LINK_SIGNING_SECRET_ARN");

#[derive(Clone, Debug)]
pub struct Config {
    pub table_name: String,
    /// KMS key id or alias that wraps the data keys.
    pub kms_key_id: String,
    /// Verifies BMOS's calls to the internal API.
    pub bmos_auth_secret: Option<SecretSetting>,
    /// Signs and verifies connect links and CSRF tokens.
    pub link_signing_secret: Option<SecretSetting>,
    /// How long a warm container keeps a secret read from Secrets Manager
    /// before reading it again (a rotation reaches it within this time).
    pub secret_cache_ttl: Duration,
    /// Whether BMOS may still send the plain `X-Internal-Secret` header;
    /// `false` once it signs every request.
    pub allow_plain_secret_header: bool,
    /// The custom domain our pages are served from (`https://<domain>/`).
    /// `None`: the origin is the one each request came in on, because the
    /// template cannot name the API from a function without a dependency
    /// cycle (`http::public_base_url`).
    pub public_base_url: Option<Url>,
    /// CloudWatch namespace of the business metrics; one per stack.
    pub metrics_namespace: String,
    /// `https://api.stripe.com/` in production, an emulator locally.
    pub stripe_api_base: Url,
    pub stripe_timeout: Duration,
    pub return_urls: ReturnUrlPolicy,
    /// Local runs: http://localhost return URLs are allowed.
    pub local_mode: bool,
    /// How long opened data keys stay in a warm container.
    pub data_key_cache_ttl: Duration,
    /// Where the checkout page loads Stripe.js from.
    pub stripe_js_url: Url,
    /// `None`: PaymentIntents use automatic payment methods (Stripe's
    /// documented Payment Element flow); `Some`: exactly these types.
    pub payment_method_types: Option<Vec<String>>,
    /// How long a checkout link stays valid unless BMOS asks otherwise.
    pub checkout_session_ttl: Duration,
    /// At most this many orders per reconciler run (`None`: the
    /// reconciler's default).
    pub reconcile_max_orders: Option<usize>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` so tests can supply variables without touching
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let url = |name: &'static str, raw: String| {
            let url = Url::parse(&raw).map_err(|_| ConfigError::Invalid {
                name,
                reason: "must be an absolute URL",
            })?;
            if !url.path().ends_with('/') {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must end with '/'",
                });
            }
            Ok(url)
        };
        let local_mode = match lookup("LOCAL_MODE").as_deref() {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "LOCAL_MODE",
                    reason: "must be true or false",
                });
            }
        };
        let allowed_hosts: Vec<String> = required("ALLOWED_RETURN_HOSTS")?
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if allowed_hosts
            .iter()
            .any(|h| h.contains('/') || h.contains(':') || h.starts_with('.'))
        {
            return Err(ConfigError::Invalid {
                name: "ALLOWED_RETURN_HOSTS",
                reason: "must be a comma-separated list of host names",
            });
        }
        let seconds = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match lookup(name) {
                None => Ok(Duration::from_secs(default)),
                Some(raw) => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
                    .ok_or(ConfigError::Invalid {
                        name,
                        reason: "must be a positive number of seconds",
                    }),
            }
        };
        let secret = |(value_var, arn_var): (&'static str, &'static str)| {
            let value = lookup(value_var).filter(|v| !v.is_empty());
            let arn = lookup(arn_var).filter(|v| !v.trim().is_empty());
            match (value, arn) {
                (Some(_), Some(_)) => Err(ConfigError::Invalid {
                    name: arn_var,
                    reason: "set it or the secret's value, not both",
                }),
                (Some(value), None) => Ok(Some(SecretSetting::Value(InternalSecret::named(
                    value_var, value,
                )?))),
                (None, Some(arn)) => Ok(Some(SecretSetting::SecretsManager(arn.trim().to_owned()))),
                (None, None) => Ok(None),
            }
        };
        let allow_plain_secret_header = match lookup("ALLOW_PLAIN_SECRET_HEADER").as_deref() {
            None | Some("") | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "ALLOW_PLAIN_SECRET_HEADER",
                    reason: "must be true or false",
                });
            }
        };
        let public_base_url = match lookup("PUBLIC_BASE_URL").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(raw) => {
                let base = url("PUBLIC_BASE_URL", raw)?;
                if base.scheme() != "https" && !local_mode {
                    return Err(ConfigError::Invalid {
                        name: "PUBLIC_BASE_URL",
                        reason: "must be https outside LOCAL_MODE",
                    });
                }
                if base.path() != "/" || base.query().is_some() || !base.username().is_empty() {
                    return Err(ConfigError::Invalid {
                        name: "PUBLIC_BASE_URL",
                        reason: "must be an origin like https://secure.checkout.best/",
                    });
                }
                Some(base)
            }
        };
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            kms_key_id: required("KMS_KEY_ID")?,
            bmos_auth_secret: secret(BMOS_AUTH_SECRET)?,
            link_signing_secret: secret(LINK_SIGNING_SECRET)?,
            secret_cache_ttl: seconds("SECRET_CACHE_TTL_SECONDS", 300)?,
            allow_plain_secret_header,
            public_base_url,
            metrics_namespace: lookup("METRICS_NAMESPACE")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "CheckoutBest".into()),
            stripe_api_base: url(
                "STRIPE_API_BASE",
                lookup("STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com/".into()),
            )?,
            stripe_timeout: seconds("STRIPE_TIMEOUT_SECONDS", 10)?,
            return_urls: ReturnUrlPolicy {
                allowed_hosts,
                allow_http_localhost: local_mode,
            },
            local_mode,
            data_key_cache_ttl: seconds("DATA_KEY_CACHE_TTL_SECONDS", 300)?,
            stripe_js_url: Url::parse(
                &lookup("STRIPE_JS_URL").unwrap_or_else(|| "https://js.stripe.com/v3/".into()),
            )
            .map_err(|_| ConfigError::Invalid {
                name: "STRIPE_JS_URL",
                reason: "must be an absolute URL",
            })?,
            payment_method_types: match lookup("STRIPE_PAYMENT_METHOD_TYPES") {
                None => None,
                Some(raw) if raw.trim().is_empty() => None,
                Some(raw) => {
                    let types: Vec<String> = raw
                        .split(',')
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty())
                        .collect();
                    if types
                        .iter()
                        .any(|t| !t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                    {
                        return Err(ConfigError::Invalid {
                            name: "STRIPE_PAYMENT_METHOD_TYPES",
                            reason: "must be a comma-separated list like card,sepa_debit",
                        });
                    }
                    Some(types)
                }
            },
            checkout_session_ttl: seconds("CHECKOUT_SESSION_TTL_SECONDS", 3600)?,
            reconcile_max_orders: match lookup("RECONCILE_MAX_ORDERS") {
                None => None,
                Some(raw) => Some(
                    raw.parse()
                        .ok()
                        .filter(|n| (1..=20_000).contains(n))
                        .ok_or(ConfigError::Invalid {
                            name: "RECONCILE_MAX_ORDERS",
                            reason: "must be a number from 1 to 20000",
                        })?,
                ),
            },
        })
    }

    /// What the checkout page's CSP must allow for Stripe.js.
    pub fn stripe_js_sources(&self) -> crate::csp::StripeSources {
        crate::csp::StripeSources::new(&self.stripe_js_url, &self.stripe_api_base)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub fn vars() -> HashMap<&'static str, String> {
        HashMap::from([
            ("TABLE_NAME", "t".to_string()),
            ("KMS_KEY_ID", "alias/k".to_string()),
            ("BMOS_AUTH_SECRET", "x".repeat(40)),
            ("LINK_SIGNING_SECRET", "y".repeat(40)),
            ("PUBLIC_BASE_URL", "https://pay.example/".to_string()),
            (
                "ALLOWED_RETURN_HOSTS",
                "bmos.example, Shop.Example".to_string(),
            ),
        ])
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn loads_with_defaults_for_non_secrets() {
        let config = load(&vars()).expect("valid");
        assert_eq!(config.stripe_api_base.as_str(), "https://api.stripe.com/");
        assert_eq!(
            config.return_urls.allowed_hosts,
            vec!["bmos.example", "shop.example"]
        );
        assert!(!config.local_mode);
        assert_eq!(
            config.public_base_url.map(String::from).as_deref(),
            Some("https://pay.example/")
        );
        assert_eq!(config.metrics_namespace, "CheckoutBest");
    }

    #[test]
    fn without_a_custom_domain_the_origin_comes_from_each_request() {
        // What the template sets when no DomainName is given.
        let mut v = vars();
        v.insert("PUBLIC_BASE_URL", String::new());
        assert_eq!(load(&v).expect("valid").public_base_url, None);
        v.remove("PUBLIC_BASE_URL");
        assert_eq!(load(&v).expect("valid").public_base_url, None);
    }

    #[test]
    fn a_custom_domain_must_be_a_bare_https_origin() {
        for bad in [
            "https://pay.example/checkout/",
            "https://user:pw@pay.example/",
            "https://pay.example/?x=1",
            "pay.example",
        ] {
            let mut v = vars();
            v.insert("PUBLIC_BASE_URL", bad.into());
            let err = load(&v).expect_err(bad);
            assert!(err.to_string().contains("PUBLIC_BASE_URL"), "{err}");
        }
    }

    #[test]
    fn names_the_missing_variable() {
        for name in ["TABLE_NAME", "KMS_KEY_ID", "ALLOWED_RETURN_HOSTS"] {
            let mut v = vars();
            v.remove(name);
            let err = load(&v).expect_err(name);
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn rejects_weak_secret_and_http_outside_local_mode() {
        let mut v = vars();
        v.insert("LINK_SIGNING_SECRET", "short".into());
        assert!(
            load(&v)
                .unwrap_err()
                .to_string()
                .contains("LINK_SIGNING_SECRET")
        );

        let mut v = vars();
        v.insert("PUBLIC_BASE_URL", "http://127.0.0.1:9000/".into());
        assert!(load(&v).is_err());
        v.insert("LOCAL_MODE", "true".into());
        assert!(load(&v).is_ok());
    }

    #[test]
    fn functions_that_verify_and_sign_nothing_need_no_secret() {
        // The public status, checkout, create-intent, webhook and reconciler
        // functions get neither variable from the template.
        let mut v = vars();
        v.remove("BMOS_AUTH_SECRET");
        v.remove("LINK_SIGNING_SECRET");
        let config = load(&v).expect("valid without secrets");
        assert!(config.bmos_auth_secret.is_none());
        assert!(config.link_signing_secret.is_none());
    }

    #[test]
    fn a_secret_is_a_value_or_a_secrets_manager_arn_not_both() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bmos-auth-AbCdEf";
        let mut v = vars();
        v.remove("BMOS_AUTH_SECRET");
        v.insert("BMOS_AUTH_SECRET_ARN", arn.into());
        let config = load(&v).expect("valid");
        assert!(
            matches!(&config.bmos_auth_secret, Some(SecretSetting::SecretsManager(a)) if a == arn)
        );
        assert!(matches!(
            config.link_signing_secret,
            Some(SecretSetting::Value(_))
        ));
        assert_eq!(config.secret_cache_ttl, Duration::from_secs(300));
        v.insert("BMOS_AUTH_SECRET", "z".repeat(40));
        let err = load(&v).unwrap_err().to_string();
        assert!(err.contains("BMOS_AUTH_SECRET_ARN"), "{err}");
        assert!(!err.contains(&"z".repeat(40)), "{err}");
    }

    #[test]
    fn the_plain_secret_header_is_allowed_unless_switched_off() {
        assert!(load(&vars()).unwrap().allow_plain_secret_header);
        let mut v = vars();
        v.insert("ALLOW_PLAIN_SECRET_HEADER", "false".into());
        assert!(!load(&v).unwrap().allow_plain_secret_header);
        v.insert("ALLOW_PLAIN_SECRET_HEADER", "no".into());
        let err = load(&v).unwrap_err().to_string();
        assert!(err.contains("ALLOW_PLAIN_SECRET_HEADER"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let config = load(&vars()).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains(&"x".repeat(40)), "{printed}");
        assert!(!printed.contains(&"y".repeat(40)), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
