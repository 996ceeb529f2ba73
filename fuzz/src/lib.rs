//! Every parser of bytes that strangers send us, as a fuzz target: the
//! `Stripe-Signature` header and the webhook event JSON (Stripe, or anyone
//! posting to our webhook URL), BMOS's signed-request headers, connect-link
//! queries, the two forms a merchant posts, and BMOS's checkout-session
//! body. Each takes arbitrary bytes and must end in a value or a typed
//! error: a panic is a crash, and libFuzzer's `-rss_limit_mb` catches
//! unbounded allocation.
//!
//! Where a signature guards what comes after it, the target also signs the
//! fuzzed fields with a key of its own, so inputs reach the parsing behind
//! the signature check (return URLs, expiry) instead of stopping at it.
//!
//! `make fuzz` runs each under libFuzzer (`fuzz_targets/`); the test below
//! replays the kept corpus through the same functions, which is what CI runs.

use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use shared::auth::connect_link::{self, ConnectLink, Expiry, LinkParams, LinkPurpose};
use shared::auth::internal::{self, PlainHeader, SignedParts};
use shared::auth::{canonical_path, sign_hex};
use shared::config::InternalSecret;
use shared::domain::{
    CartRequest, KeyPair, PublishableKey, ReturnUrlPolicy, SecretKey, StoreId, WebhookSecret,
};
use shared::secrets::SecretKeys;
use shared::webhooks::event::Envelope;
use shared::webhooks::signature;

/// A fixed "now", so a run is reproducible.
const NOW: u64 = 1_765_000_000;

/// One target: arbitrary bytes in, nothing out but a panic on a bug.
pub type Target = fn(&[u8]);

/// Each target by name: `fuzz_targets/<name>.rs` calls the function, and
/// `corpus/<name>/` holds its inputs.
pub const TARGETS: &[(&str, Target)] = &[
    ("stripe_signature", stripe_signature),
    ("webhook_event", webhook_event),
    ("internal_signature", internal_signature),
    ("connect_link", connect_link),
    ("connect_form", connect_form),
    ("webhook_secret_form", webhook_secret_form),
    ("checkout_session", checkout_session),
];

fn webhook_secret() -> WebhookSecret {
    WebhookSecret::parse("whsec_fuzzFuzzFuzzFuzzFuzzFuzzFuzz12").expect("a valid secret")
}

fn keys() -> SecretKeys {
    SecretKeys::single(
        InternalSecret::new("fuzz-internal-secret-0123456789abcdef".into()).expect("long"),
    )
}

/// Splits `data` at NUL bytes into at most `n` fields (missing ones empty).
fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == 0).collect();
    out.resize(n, &[]);
    out
}

/// First line: the header as API Gateway would hand it over (text or
/// nothing); the rest: the payload. A header we sign ourselves over the
/// same payload must verify.
pub fn stripe_signature(data: &[u8]) {
    let [header, payload] = fields(data, 2)[..] else {
        unreachable!("two fields")
    };
    let secret = webhook_secret();
    let _ = signature::verify(std::str::from_utf8(header).ok(), payload, &secret, NOW);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .expect("any key length");
    mac.update(format!("{NOW}.").as_bytes());
    mac.update(payload);
    let ours = format!("t={NOW},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        signature::verify(Some(&ours), payload, &secret, NOW),
        Ok(NOW),
        "a correctly signed payload must verify"
    );
}

/// Everything we read from an event, verified or not.
pub fn webhook_event(data: &[u8]) {
    let Ok(envelope) = Envelope::parse(data) else {
        return;
    };
    let _ = envelope.metadata_store_id();
    let _ = envelope.metadata_order_id();
    let _ = envelope.payment_intent_id();
    let _ = envelope.prerequisite();
    let _ = envelope.status_as_of();
    let _ = envelope.effect();
}

/// method, path with query, timestamp, signature header, body, plain
/// secret header: as BMOS (or anyone) sends them.
pub fn internal_signature(data: &[u8]) {
    let f = fields(data, 6);
    let (Ok(method), Ok(path_and_query)) = (std::str::from_utf8(f[0]), std::str::from_utf8(f[1]))
    else {
        return;
    };
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path);
    let _ = canonical_path::require(path);
    let parts = SignedParts {
        method,
        path_and_query,
        body: f[4],
    };
    let header = |name: &'static str, value: &[u8]| {
        HeaderValue::from_bytes(value)
            .ok()
            .map(|v| (HeaderName::from_static(name), v))
    };
    let mut headers = HeaderMap::new();
    for (name, value) in [
        header("x-internal-timestamp", f[2]),
        header("x-internal-signature", f[3]),
        header("x-internal-secret", f[5]),
    ]
    .into_iter()
    .flatten()
    {
        headers.insert(name, value);
    }
    let keys = keys();
    for plain in [PlainHeader::Allowed, PlainHeader::Refused] {
        let _ = internal::authenticate(&keys, plain, &headers, &parts, NOW);
    }
    // Signed as BMOS signs: it must be accepted.
    let mac = sign_hex(
        &keys.current,
        &[
            NOW.to_string().as_bytes(),
            b".",
            method.as_bytes(),
            b".",
            path_and_query.as_bytes(),
            b".",
            f[4],
        ],
    );
    let mut signed = HeaderMap::new();
    signed.insert("x-internal-timestamp", HeaderValue::from(NOW));
    signed.insert(
        "x-internal-signature",
        HeaderValue::from_str(&format!("v1={mac}")).expect("hex"),
    );
    assert!(
        internal::authenticate(&keys, PlainHeader::Refused, &signed, &parts, NOW).is_ok(),
        "a correctly signed request must verify"
    );
}

fn return_policy() -> ReturnUrlPolicy {
    ReturnUrlPolicy {
        allowed_hosts: vec!["bmos.example".into()],
        allow_http_localhost: true,
    }
}

/// A link's query string, as the connect form's GET receives it; then the
/// same fields signed with our key, to reach what the signature guards.
pub fn connect_link(data: &[u8]) {
    let Ok(params) = serde_urlencoded::from_bytes::<LinkParams>(data) else {
        return;
    };
    verify_link(params);
}

fn verify_link(mut params: LinkParams) {
    let keys = keys();
    let policy = return_policy();
    for purpose in [LinkPurpose::Connect, LinkPurpose::WebhookSecret] {
        let _ = ConnectLink::verify(
            params.clone(),
            &keys,
            &policy,
            NOW,
            Expiry::Enforce,
            purpose,
        );
    }
    let (Ok(store_id), Ok(expires)) = (
        StoreId::parse(&params.store_id),
        params.expires.parse::<u64>(),
    ) else {
        return;
    };
    if params.account_change.is_some() {
        return;
    }
    params.signature = connect_link::sign(&keys.current, &store_id, &params.return_url, expires);
    // Signed: what decides now is the return URL and the expiry.
    let _ = ConnectLink::verify(
        params,
        &keys,
        &policy,
        NOW,
        Expiry::Enforce,
        LinkPurpose::Connect,
    );
}

/// Whether an error `message` quotes the `secret` typed into a form. A
/// "secret" that is only words of the parsers' own fixed texts (`sk_test_`
/// is a prefix their errors name) is not quoted: the fixed texts are what
/// the parsers say about inputs that hold no secret at all.
fn quotes(message: &str, secret: &str) -> bool {
    static FIXED_TEXTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let bad = [
            "",
            "x",
            "sk_test_",
            "rk_live_",
            "pk_test_",
            "whsec_",
            "sk_prod_x",
        ];
        bad.iter()
            .flat_map(|raw| {
                [
                    PublishableKey::parse(raw).err(),
                    SecretKey::parse(raw).err(),
                    WebhookSecret::parse(raw).err(),
                ]
            })
            .flatten()
            .map(|err| err.public_message().into_owned())
            .collect()
    });
    let secret = secret.trim();
    secret.len() >= 8
        && message.contains(secret)
        && !FIXED_TEXTS.iter().any(|text| text.contains(secret))
}

/// The key form's body. The keys go through the same parsers as a save,
/// and no error may quote the secret key back.
pub fn connect_form(data: &[u8]) {
    let Ok(post) = connect::forms::ConnectFormPost::parse(data) else {
        return;
    };
    let pair = PublishableKey::parse(&post.publishable_key)
        .and_then(|pk| KeyPair::new(pk, SecretKey::parse(&post.secret_key)?));
    if let Err(err) = pair {
        assert!(
            !quotes(&err.public_message(), &post.secret_key),
            "an error quotes the secret key"
        );
    }
    if let Err(err) = WebhookSecret::parse(&post.webhook_secret) {
        assert!(
            !quotes(&err.public_message(), &post.webhook_secret),
            "an error quotes the webhook secret"
        );
    }
    verify_link(post.link);
}

/// The webhook-secret form's body.
pub fn webhook_secret_form(data: &[u8]) {
    let Ok(post) = connect::forms::SecretPost::parse(data) else {
        return;
    };
    if let Err(err) = WebhookSecret::parse(&post.webhook_secret) {
        assert!(
            !quotes(&err.public_message(), &post.webhook_secret),
            "an error quotes the webhook secret"
        );
    }
    verify_link(post.link);
}

/// BMOS's `POST /api/internal/checkout-sessions` body, validated as in
/// production and as locally (http return URLs to localhost).
pub fn checkout_session(data: &[u8]) {
    for local in [false, true] {
        let Ok(request) = serde_json::from_slice::<CartRequest>(data) else {
            return;
        };
        let _ = request.validate(local);
    }
}

#[cfg(test)]
mod tests {
    use super::{TARGETS, quotes};
    use std::path::Path;

    #[test]
    fn a_secret_is_quoted_only_when_its_own_characters_come_back() {
        let secret = "sk_test_51HqLyjWDarjtT1zdp7dcXYZ";
        assert!(quotes(&format!("The key {secret} is wrong"), secret));
        assert!(quotes(&format!("bad: {secret}\n"), &format!(" {secret}\n")));
        // A bare prefix is what the parsers' own texts name.
        assert!(!quotes(
            "The secret key must start with sk_test_ or sk_live_",
            "sk_test_"
        ));
        assert!(!quotes("The key is wrong", secret));
    }

    /// What CI runs: every kept input of every target, without libFuzzer.
    #[test]
    fn every_corpus_input_is_handled() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let mut inputs = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                inputs += 1;
            }
            assert!(inputs > 0, "{name} has no corpus");
        }
    }
}
