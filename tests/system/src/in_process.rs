//! Calling handlers in this process against the local stack's DynamoDB and
//! KMS, with Stripe played by a wiremock server: for the answers the Stripe
//! emulator cannot give (403, 429, 5xx, timeouts, webhook endpoints).

use crate::{aws, dynamodb, env};
use lambda_http::{Body, Request};
use shared::auth::connect_link::{
    self, AccountChange, ConnectLink, Expiry, LinkParams, LinkPurpose,
};
use shared::auth::csrf;
use shared::config::Config;
use shared::domain::StoreId;
use shared::vault::KmsDataKeys;
use shared::webhooks::WebhookMemory;
use shared::{App, clock};
use std::sync::Arc;

/// The service's app as configured for the local stack, for the life of
/// the test process (spawned deliveries share it).
pub async fn service_app() -> &'static App {
    Box::leak(Box::new(app_with_dynamodb(dynamodb().await).await))
}

/// A warm webhook container's memory, fresh, for the life of the test
/// process (spawned deliveries share it, as they share `service_app`).
pub fn webhook_memory() -> &'static WebhookMemory {
    Box::leak(Box::default())
}

/// The service's app with its DynamoDB requests going through `dynamodb`
/// (a client with an interceptor that fails some of them, say).
pub async fn app_with_dynamodb(dynamodb: aws_sdk_dynamodb::Client) -> App {
    let config = Config::from_env().expect("service configuration in the environment");
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(aws().await), env("KMS_KEY_ID"));
    App::with_parts(config, dynamodb, Arc::new(kms))
}

/// The service's app, but with Stripe at `stripe_base` (a wiremock URI).
pub async fn app_with_stripe_at(stripe_base: &str) -> App {
    let mut config = Config::from_env().expect("service configuration in the environment");
    config.stripe_api_base = url::Url::parse(&format!("{stripe_base}/")).expect("stripe base");
    config.payment_method_types = None;
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(aws().await), env("KMS_KEY_ID"));
    App::with_parts(config, dynamodb().await, Arc::new(kms))
}

/// A fresh signed link for `store`, as BMOS would hand it out. Links work
/// once, so each call gives another: two links alike in every field are one
/// link, so each names its own return URL (an earlier expiry alone is not
/// enough: the clock moving on by a second cancels it out).
pub fn link(app: &App, store: &str) -> ConnectLink {
    link_with(app, store, AccountChange::Refuse)
}

/// A fresh signed link for `store` in which BMOS says whether keys of
/// another Stripe account may replace the store's.
pub fn link_with(app: &App, store: &str, account_change: AccountChange) -> ConnectLink {
    static ISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = StoreId::parse(store).expect("store id");
    let issued = ISSUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let return_url = &format!("http://localhost:3000/back?link={issued}");
    let expires = clock::now() + 600;
    let params = LinkParams {
        store_id: store.into(),
        return_url: return_url.into(),
        expires: expires.to_string(),
        signature: connect_link::sign_connect(
            &app.cached_link_keys().expect("link signing secret").current,
            &id,
            return_url,
            expires,
            account_change,
        ),
        account_change: (account_change == AccountChange::Allow).then(|| "allow".to_owned()),
    };
    ConnectLink::verify(
        params,
        &app.cached_link_keys().expect("link signing secret"),
        &app.config.return_urls,
        clock::now(),
        Expiry::Enforce,
        LinkPurpose::Connect,
    )
    .expect("a fresh link verifies")
}

/// The link of ours that a save's 303 carries to the success page (and on
/// to the webhook-secret form).
pub fn next_link(app: &App, saved: &lambda_http::Response<Body>) -> ConnectLink {
    let location = saved.headers()["location"].to_str().expect("location");
    let query = location.split_once('?').expect("a query").1;
    let params: LinkParams = serde_urlencoded::from_str(query).expect("link params");
    ConnectLink::verify(
        params,
        &app.cached_link_keys().expect("link signing secret"),
        &app.config.return_urls,
        clock::now(),
        Expiry::Enforce,
        LinkPurpose::WebhookSecret,
    )
    .expect("the save hands out a webhook-secret link")
}

/// A webhook-secret link for `store`, as a save would hand it out.
pub fn webhook_secret_link(app: &App, store: &str) -> ConnectLink {
    ConnectLink::issue(
        &app.cached_link_keys().expect("link signing secret").current,
        LinkPurpose::WebhookSecret,
        StoreId::parse(store).expect("store id"),
        shared::domain::ReturnUrl::parse("http://localhost:3000/back", &app.config.return_urls)
            .expect("return url"),
        clock::now(),
    )
}

/// A form post to `path` from our own page: link fields, CSRF token,
/// Origin, and `fields`.
pub fn form_post(app: &App, link: &ConnectLink, path: &str, fields: &[(&str, &str)]) -> Request {
    let p = &link.params;
    let csrf = csrf::token(
        &app.cached_link_keys().expect("link signing secret").current,
        link,
    );
    let mut form: Vec<(&str, &str)> = vec![
        ("store_id", &p.store_id),
        ("return_url", &p.return_url),
        ("expires", &p.expires),
        ("signature", &p.signature),
        ("csrf_token", &csrf),
    ];
    if let Some(change) = &p.account_change {
        form.push(("account_change", change));
    }
    form.extend_from_slice(fields);
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("origin", crate::base_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::Text(serde_urlencoded::to_string(form).expect("form")))
        .expect("request")
}

/// `GET path?<link params>` with path parameters set, as the gateway would.
pub fn page_get(link: &ConnectLink, path: &str, path_params: &[(&str, &str)]) -> Request {
    let query = serde_urlencoded::to_string(&link.params).expect("query");
    let req = lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("{path}?{query}"))
        .body(Body::Empty)
        .expect("request");
    let params = path_params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<std::collections::HashMap<_, _>>();
    lambda_http::RequestExt::with_path_parameters(req, params)
}
