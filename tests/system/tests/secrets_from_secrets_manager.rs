//! In AWS each secret is a Secrets Manager secret the template creates, read
//! at cold start and re-read every `SECRET_CACHE_TTL_SECONDS`. Proven against
//! moto's Secrets Manager, through a rotation of both secrets with the
//! connect-links handler answering every request: BMOS's old and new
//! signatures both work while the rotation is under way, and links are
//! signed with the new value only once every warm container can know it.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::auth::connect_link::{ConnectLink, Expiry, LinkParams, LinkPurpose};
use shared::auth::sign_hex;
use shared::config::InternalSecret;
use shared::domain::ReturnUrlPolicy;
use shared::secrets::SecretKeys;
use shared::{App, clock};
use std::time::Duration;
use system_tests::*;

const TTL: Duration = Duration::from_secs(1);
const STORE: &str = "0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11";

fn client_value(tag: &str) -> String {
    format!("{tag}-{}", key_body())
}

async fn create(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) -> String {
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.arn.unwrap()
}

/// What the template gives a function that verifies BMOS and signs links,
/// with a one-second cache.
fn lookup(bmos_arn: &str, link_arn: &str) -> impl Fn(&str) -> Option<String> {
    let (bmos_arn, link_arn) = (bmos_arn.to_owned(), link_arn.to_owned());
    move |var: &str| match var {
        "BMOS_AUTH_SECRET" | "LINK_SIGNING_SECRET" => None,
        "BMOS_AUTH_SECRET_ARN" => Some(bmos_arn.clone()),
        "LINK_SIGNING_SECRET_ARN" => Some(link_arn.clone()),
        "SECRET_CACHE_TTL_SECONDS" => Some(TTL.as_secs().to_string()),
        "ALLOWED_RETURN_HOSTS" => Some("bmos.example".to_owned()),
        other => std::env::var(other).ok(),
    }
}

/// A connect-links request signed with each of `bmos_values` (one `v1=`
/// each), as BMOS sends it. Each asks for another lifetime, so no two are
/// the same signed request.
fn request(bmos_values: &[&str], n: u64) -> lambda_http::Request {
    let path = format!("/api/internal/stores/{STORE}/connect-links");
    let body = format!(
        r#"{{"return_url": "https://shop.bmos.example/admin", "expires_in": {}}}"#,
        1800 - n
    );
    let ts = clock::now().to_string();
    let signatures: Vec<String> = bmos_values
        .iter()
        .map(|value| {
            let secret = InternalSecret::new((*value).to_owned()).unwrap();
            let mac = sign_hex(
                &secret,
                &[
                    ts.as_bytes(),
                    b".POST.",
                    path.as_bytes(),
                    b".",
                    body.as_bytes(),
                ],
            );
            format!("v1={mac}")
        })
        .collect();
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/connect-links.json")).unwrap();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("x-internal-secret");
    headers.insert("x-internal-timestamp".into(), ts.into());
    headers.insert("x-internal-signature".into(), signatures.join(",").into());
    event["body"] = body.into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// Calls connect-links; every call must succeed. Returns the link's params.
async fn link_from(app: &App, bmos_values: &[&str], n: u64) -> LinkParams {
    let response = connect_links::handler::handle(app, request(bmos_values, n))
        .await
        .unwrap_or_else(|err| panic!("request {n} refused: {err}"));
    assert_eq!(response.status(), 200, "request {n}");
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
    serde_urlencoded::from_str(url.query().unwrap()).unwrap()
}

/// Whether `params` is signed with `value`, and only that.
fn signed_with(params: &LinkParams, value: &str) -> bool {
    let keys = SecretKeys::single(InternalSecret::new(value.to_owned()).unwrap());
    let policy = ReturnUrlPolicy {
        allowed_hosts: vec!["bmos.example".into()],
        allow_http_localhost: false,
    };
    ConnectLink::verify(
        params.clone(),
        &keys,
        &policy,
        clock::now(),
        Expiry::Enforce,
        LinkPurpose::Connect,
    )
    .is_ok()
}

#[tokio::test]
async fn both_secrets_rotate_without_a_failed_request() {
    let client = aws_sdk_secretsmanager::Client::new(aws().await);
    let run = key_body();
    let (bmos_old, link_old) = (client_value("bmos-old"), client_value("link-old"));
    let bmos_arn = create(
        &client,
        &format!("checkout-best-test-bmos-auth-{run}"),
        &bmos_old,
    )
    .await;
    let link_arn = create(
        &client,
        &format!("checkout-best-test-link-{run}"),
        &link_old,
    )
    .await;
    let app = App::from_lookup(lookup(&bmos_arn, &link_arn))
        .await
        .unwrap();

    let first = link_from(&app, &[&bmos_old], 0).await;
    assert!(signed_with(&first, &link_old));
    assert!(
        !signed_with(&first, &bmos_old),
        "links are not signed with BMOS's secret"
    );

    // Rotate both: put-secret-value moves AWSCURRENT to the new value and
    // AWSPREVIOUS to the old one.
    let (bmos_new, link_new) = (client_value("bmos-new"), client_value("link-new"));
    for (arn, value) in [(&bmos_arn, &bmos_new), (&link_arn, &link_new)] {
        client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    // BMOS sends both signatures while containers may hold either value;
    // the old one alone keeps working too.
    link_from(&app, &[&bmos_old, &bmos_new], 1).await;
    link_from(&app, &[&bmos_old], 2).await;

    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    // Re-read: the new value works alone and the old one still does. Links
    // are still signed with the old link secret: a connect container that
    // read just before the rotation knows only that one for up to a TTL.
    link_from(&app, &[&bmos_new], 3).await;
    let during = link_from(&app, &[&bmos_old], 4).await;
    assert!(
        signed_with(&during, &link_old),
        "signed with what every container can verify"
    );
    assert!(app.link_keys().await.unwrap().previous.is_some());
    // Once the new value has been current for a TTL (and the clock skew
    // allowed), every container knows it: it signs.
    tokio::time::sleep(TTL + Duration::from_secs(2)).await;
    let second = link_from(&app, &[&bmos_old], 7).await;
    assert!(
        signed_with(&second, &link_new),
        "signed with the current value"
    );
    assert!(!signed_with(&second, &link_old));
    // A link handed out before the rotation still opens the form.
    let keys = app.link_keys().await.unwrap();
    assert!(keys.previous.is_some());
    ConnectLink::verify(
        first,
        &keys,
        &ReturnUrlPolicy {
            allowed_hosts: vec!["bmos.example".into()],
            allow_http_localhost: false,
        },
        clock::now(),
        Expiry::Enforce,
        LinkPurpose::Connect,
    )
    .expect("a link signed before the rotation verifies");

    // Finishing the rotation: the old version loses AWSPREVIOUS. After the
    // cache's TTL the old value is refused and the new one alone works.
    let versions = client
        .list_secret_version_ids()
        .secret_id(&bmos_arn)
        .send()
        .await
        .unwrap();
    let previous = versions
        .versions()
        .iter()
        .find(|v| v.version_stages().iter().any(|s| s == "AWSPREVIOUS"))
        .and_then(|v| v.version_id())
        .unwrap()
        .to_owned();
    client
        .update_secret_version_stage()
        .secret_id(&bmos_arn)
        .version_stage("AWSPREVIOUS")
        .remove_from_version_id(previous)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    link_from(&app, &[&bmos_new], 5).await;
    let refused = connect_links::handler::handle(&app, request(&[&bmos_old], 6))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn an_unreadable_secret_stops_the_cold_start_naming_it() {
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:checkout-best-none-AbCdEf";
    let err = App::from_lookup(lookup(missing, missing))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(missing) && err.contains("BMOS_AUTH_SECRET_ARN"),
        "{err}"
    );
}

#[tokio::test]
async fn functions_without_secret_settings_start_without_reading_any() {
    // The public functions' configuration: no variable names a secret.
    let app = App::from_lookup(|var: &str| match var {
        "BMOS_AUTH_SECRET" | "LINK_SIGNING_SECRET" => None,
        "BMOS_AUTH_SECRET_ARN" | "LINK_SIGNING_SECRET_ARN" => None,
        other => std::env::var(other).ok(),
    })
    .await
    .unwrap();
    assert!(app.bmos_auth.is_none() && app.link_signing.is_none());
    assert_eq!(app.bmos_keys().await.unwrap_err().status(), 500);
}
