//! Shared helpers for the system tests. They need the local stack and the
//! running service; `make test` (infra/test.sh) starts both and exports:
//! `CHECKOUT_BASE_URL`, `INTERNAL_SECRET`, `TABLE_NAME`, `KMS_KEY_ID`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_KMS` and `STRIPE_API_BASE`.

pub mod faults;
pub mod in_process;
pub mod recorded;

use reqwest::header::HeaderMap;
use shared::auth::sign_hex;
use shared::config::InternalSecret;
use std::sync::{Mutex, OnceLock};

pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: system tests run against the local stack, start them with `make test`"
        ),
    }
}

pub fn base_url() -> String {
    env("CHECKOUT_BASE_URL").trim_end_matches('/').to_owned()
}

pub fn internal_secret() -> InternalSecret {
    InternalSecret::new(env("INTERNAL_SECRET")).expect("INTERNAL_SECRET is long enough")
}

/// An HTTP client that does not follow redirects, so tests see each 303.
/// Bounded: a request the stack dropped fails its test instead of hanging
/// the suite (generous, so a slow first run is not a failure).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client")
}

pub async fn aws() -> &'static aws_config::SdkConfig {
    static AWS: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    AWS.get_or_init(|| aws_config::defaults(aws_config::BehaviorVersion::latest()).load())
        .await
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(aws().await)
}

pub fn new_store_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Headers for a signed internal request, made the documented way. Like a
/// careful client it signs every request anew: a signed request that changes
/// something works once, and the same request signed within the same second
/// is the same signature, so a repeat waits for the next second.
pub fn signed_headers(method: &str, path_and_query: &str, body: &str) -> HeaderMap {
    static ISSUED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    loop {
        let ts = shared::clock::now();
        let headers = signed_headers_at(ts, method, path_and_query, body);
        let recorded = method
            .parse()
            .is_ok_and(|m| shared::auth::internal::is_recorded(&m));
        let signature = headers["x-internal-signature"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let mut issued = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
        if !recorded || !issued.contains(&signature) {
            issued.push(signature);
            return headers;
        }
        drop(issued);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Headers for a request signed with timestamp `ts` (unix seconds).
pub fn signed_headers_at(ts: u64, method: &str, path_and_query: &str, body: &str) -> HeaderMap {
    let ts = ts.to_string();
    let sig = sign_hex(
        &internal_secret(),
        &[
            ts.as_bytes(),
            b".",
            method.as_bytes(),
            b".",
            path_and_query.as_bytes(),
            b".",
            body.as_bytes(),
        ],
    );
    let mut headers = HeaderMap::new();
    headers.insert("x-internal-timestamp", ts.parse().expect("header"));
    headers.insert(
        "x-internal-signature",
        format!("v1={sig}").parse().expect("header"),
    );
    headers
}

/// A connect link from the internal API. Links work once, and two links of
/// one store, return URL and expiry second are one link, so each call asks
/// for a longer lifetime than the last: with the clock never going back,
/// every link expires at its own second.
pub async fn connect_link(store_id: &str, return_url: &str) -> String {
    static ISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let expires_in = 600 + ISSUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 3000;
    let path = format!("/api/internal/stores/{store_id}/connect-links");
    let body =
        serde_json::json!({ "return_url": return_url, "expires_in": expires_in }).to_string();
    let response = http()
        .post(format!("{}{path}", base_url()))
        .headers(signed_headers("POST", &path, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("connect-links request");
    assert_eq!(response.status(), 200, "connect-links");
    let json: serde_json::Value = response.json().await.expect("json");
    json["url"].as_str().expect("url").to_owned()
}

/// The value of a hidden input in a rendered form.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#61;", "=")
        .replace("&#47;", "/")
}

/// Unique key bodies per test run, so tests never depend on each other's data.
pub fn key_body() -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    format!("{run}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Opens a connect link, reads its form, and posts `fields` as a browser on
/// our origin would. Returns the response to the post.
pub async fn submit_connect_form(link: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let form_page = http().get(link).send().await.expect("form");
    assert_eq!(form_page.status(), 200, "connect form");
    let html = form_page.text().await.expect("html");
    post_form(&html, "/stripe/connect", fields).await
}

/// Posts the form rendered in `html` (its link fields and CSRF token) to
/// `path`, with `fields`, as a browser on our origin would.
pub async fn post_form(html: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut form: Vec<(String, String)> = [
        "store_id",
        "return_url",
        "expires",
        "signature",
        "csrf_token",
    ]
    .iter()
    .map(|name| (name.to_string(), hidden_field(html, name)))
    .collect();
    // Only a link where BMOS allowed another Stripe account carries it.
    if html.contains("name=\"account_change\"") {
        form.push((
            "account_change".into(),
            hidden_field(html, "account_change"),
        ));
    }
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    http()
        .post(format!("{}{path}", base_url()))
        .header("origin", base_url())
        .form(&form)
        .send()
        .await
        .expect("post")
}

pub async fn public_status(store_id: &str) -> serde_json::Value {
    let response = http()
        .get(format!("{}/stripe/status/{store_id}", base_url()))
        .send()
        .await
        .expect("status");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Every item stored for a store (`STORE#{id}` partition).
pub async fn store_items(
    store_id: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    dynamodb()
        .await
        .query()
        .table_name(env("TABLE_NAME"))
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("STORE#{store_id}")),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("query")
        .items
        .unwrap_or_default()
}

/// Opens the sealed secret key of a stored connection item through KMS, as
/// the service would.
pub async fn open_stored_secret(
    store_id: &str,
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> String {
    use secrecy::ExposeSecret;
    use shared::vault::{EncryptionContext, KmsDataKeys, Purpose, SealedSecret, Vault};
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(aws().await), env("KMS_KEY_ID"));
    let vault = Vault::new(std::sync::Arc::new(kms), std::time::Duration::from_secs(1));
    let sealed = SealedSecret {
        wrapped_key: item["secret_key_wrapped"]
            .as_b()
            .expect("wrapped key")
            .as_ref()
            .to_vec(),
        token: item["secret_key_token"].as_s().expect("token").clone(),
    };
    let ctx = EncryptionContext::new(
        shared::domain::StoreId::parse(store_id).expect("id"),
        Purpose::StripeSecretKey,
    );
    vault
        .open(ctx, &sealed)
        .await
        .expect("opens")
        .expose_secret()
        .to_owned()
}

/// Connects a fresh store through the real connect flow; returns its id and
/// the secret key it was connected with (the emulator accepts any sk_test_).
pub async fn connected_store() -> (String, String) {
    let store = new_store_id();
    let body = key_body();
    let secret = format!("sk_test_{body}");
    let link = connect_link(&store, "http://localhost:3000/admin").await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &secret),
        ],
    )
    .await;
    assert_eq!(response.status(), 303, "connect");
    (store, secret)
}

/// `POST /api/internal/checkout-sessions`, signed.
pub async fn create_session(body: &serde_json::Value) -> (u16, serde_json::Value) {
    let path = "/api/internal/checkout-sessions";
    let raw = body.to_string();
    let response = http()
        .post(format!("{}{path}", base_url()))
        .headers(signed_headers("POST", path, &raw))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("checkout-sessions");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// `GET /api/internal/orders/{id}`, signed.
pub async fn get_order(order_id: &str) -> serde_json::Value {
    let path = format!("/api/internal/orders/{order_id}");
    let response = http()
        .get(format!("{}{path}", base_url()))
        .headers(signed_headers("GET", &path, ""))
        .send()
        .await
        .expect("orders");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Runs the reconciler at `now` while `order_id` is `pending`, at most
/// `MAX_RECONCILER_RUNS` times (none when it is settled already). Which
/// other orders are due depends on what ran on this stack before (twenty
/// runs of the suite leave thousands), and one run looks at
/// `limits.max_orders` at most; the reconciler moves past what it looked
/// at, so a later run reaches this order.
pub async fn reconcile_until_settled(
    app: &shared::App,
    now: u64,
    limits: shared::reconcile::Limits,
    order_id: &str,
) {
    for _ in 0..MAX_RECONCILER_RUNS {
        if get_order(order_id).await["status"] != "pending" {
            return;
        }
        shared::reconcile::run(app, now, limits)
            .await
            .expect("a reconciler run");
    }
}

pub const MAX_RECONCILER_RUNS: usize = 20;

/// A call to the Stripe emulator with a merchant's secret key, as Stripe's
/// servers would act on the customer's confirmation.
pub async fn stripe_call(
    secret: &str,
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let base = env("STRIPE_API_BASE");
    let response = http()
        .request(method, format!("{}v1{path}", base))
        .bearer_auth(secret)
        .form(form)
        .send()
        .await
        .expect("stripe emulator");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Pays an intent in the emulator with a test card number: what Stripe.js
/// and Stripe do when the customer submits the Payment Element.
pub async fn pay_in_emulator(
    secret: &str,
    intent_id: &str,
    card_number: &str,
) -> (u16, serde_json::Value) {
    let (status, pm) = stripe_call(
        secret,
        reqwest::Method::POST,
        "/payment_methods",
        &[
            ("type", "card"),
            ("card[number]", card_number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2034"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    assert_eq!(status, 200, "payment method: {pm}");
    let pm_id = pm["id"].as_str().expect("pm id");
    let (status, updated) = stripe_call(
        secret,
        reqwest::Method::POST,
        &format!("/payment_intents/{intent_id}"),
        &[("payment_method", pm_id)],
    )
    .await;
    assert_eq!(status, 200, "attach: {updated}");
    stripe_call(
        secret,
        reqwest::Method::POST,
        &format!("/payment_intents/{intent_id}/confirm"),
        &[],
    )
    .await
}

pub fn cart(store: &str) -> serde_json::Value {
    serde_json::json!({
        "store_id": store,
        "currency": "eur",
        "line_items": [
            {"name": "Blue mug", "unit_amount": 1250, "quantity": 2},
            {"name": "Shipping", "unit_amount": 499, "quantity": 1}
        ],
        "success_url": "http://localhost:3000/thanks",
        "cancel_url": "http://localhost:3000/cart",
        "customer_email": "ann@example.com",
        "metadata": {"bmos_order": "A-17"},
        "store_name": "Ann's Mugs"
    })
}

/// The PaymentIntent id a client secret belongs to (`pi_..._secret_...`).
pub fn intent_of(client_secret: &str) -> String {
    client_secret
        .split("_secret_")
        .next()
        .expect("a client secret")
        .to_owned()
}

/// The token part of a checkout URL.
pub fn token_of(checkout_url: &str) -> String {
    checkout_url.rsplit('/').next().expect("token").to_owned()
}

pub async fn create_intent(token: &str, body: &str) -> (u16, serde_json::Value) {
    let response = http()
        .post(format!("{}/checkout/{token}/payment-intent", base_url()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("create-intent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// BMOS saving a store's webhook signing secret over the internal API.
pub async fn put_webhook_secret(store_id: &str, whsec: &str) -> reqwest::Response {
    let path = format!("/api/internal/stores/{store_id}/webhook-secret");
    let body = serde_json::json!({ "webhook_secret": whsec }).to_string();
    http()
        .put(format!("{}{path}", base_url()))
        .headers(signed_headers("PUT", &path, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook-secret request")
}

/// A store connected with a webhook signing secret: (store, secret key, whsec).
pub async fn connected_store_with_webhook() -> (String, String, String) {
    let store = new_store_id();
    let body = key_body();
    let secret = format!("sk_test_{body}");
    let whsec = format!("whsec_{body}");
    let link = connect_link(&store, "http://localhost:3000/admin").await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &secret),
            ("webhook_secret", &whsec),
        ],
    )
    .await;
    assert_eq!(response.status(), 303, "connect");
    (store, secret, whsec)
}

/// An order with an intent the customer has paid in the emulator; nothing
/// has told our service yet. Returns (order_id, intent_id).
pub async fn paid_in_stripe(store: &str, secret: &str) -> (String, String) {
    let (status, session) = create_session(&cart(store)).await;
    assert_eq!(status, 201, "{session}");
    let token = token_of(session["checkout_url"].as_str().expect("url"));
    let (status, intent) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{intent}");
    let intent_id = intent_of(intent["client_secret"].as_str().expect("client_secret"));
    let (status, paid) = pay_in_emulator(secret, &intent_id, "4242424242424242").await;
    assert_eq!(status, 200, "{paid}");
    (
        session["order_id"].as_str().expect("order").to_owned(),
        intent_id,
    )
}

/// `Stripe-Signature` for `payload` at time `t`, computed here from Stripe's
/// documented scheme (not with the service's code).
pub fn stripe_signature(whsec: &str, payload: &str, t: u64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(whsec.as_bytes())
        .expect("any key length");
    mac.update(format!("{t}.{payload}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// `GET /api/internal/stores/{id}/stripe-status`, signed.
pub async fn internal_status(store_id: &str) -> serde_json::Value {
    let path = format!("/api/internal/stores/{store_id}/stripe-status");
    let response = http()
        .get(format!("{}{path}", base_url()))
        .headers(signed_headers("GET", &path, ""))
        .send()
        .await
        .expect("internal status");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Stripe's published sample object `name`, unchanged
/// (`fixtures/stripe/README.md`): what Stripe really sends, fields we ignore
/// included; and the sample with only the top-level fields a test is about
/// set. One copy, `shared::stripe::samples`, for the unit tests, these and
/// the bench.
pub use shared::stripe::samples::{object as stripe_object, sample as stripe_sample};

/// A Stripe event as Stripe sends it, created now: Stripe's sample event
/// carrying `object`.
pub fn stripe_event(id: &str, kind: &str, livemode: bool, object: serde_json::Value) -> String {
    stripe_event_at(id, kind, livemode, shared::clock::now(), object)
}

/// A Stripe event Stripe created at `created` (seconds): Stripe's sample
/// event carrying `object`, which is of the event's mode as Stripe's are.
pub fn stripe_event_at(
    id: &str,
    kind: &str,
    livemode: bool,
    created: u64,
    mut object: serde_json::Value,
) -> String {
    if object.get("livemode").is_some() {
        object["livemode"] = serde_json::json!(livemode);
    }
    let mut event = stripe_sample("event");
    event["id"] = serde_json::json!(id);
    event["type"] = serde_json::json!(kind);
    event["livemode"] = serde_json::json!(livemode);
    event["created"] = serde_json::json!(created);
    event["data"]["object"] = object;
    event.to_string()
}

/// The status Stripe's PaymentIntent has when Stripe sends `kind` about it.
pub fn intent_status(kind: &str) -> &'static str {
    match kind {
        "payment_intent.succeeded" => "succeeded",
        "payment_intent.processing" => "processing",
        "payment_intent.payment_failed" => "requires_payment_method",
        "payment_intent.canceled" => "canceled",
        other => panic!("no PaymentIntent status for {other}"),
    }
}

/// A succeeded EUR PaymentIntent of ours, as events carry it.
pub fn intent_object(intent: &str, store: &str, order: &str, amount: u64) -> serde_json::Value {
    stripe_object(
        "payment_intent",
        serde_json::json!({"id": intent, "amount": amount, "currency": "eur", "status": "succeeded",
               "metadata": {"store_id": store, "order_id": order}}),
    )
}

/// Stripe's sample charge, as our EUR 29.99 intent's charge with
/// `amount_refunded` refunded so far (`charge.refunded` carries the
/// running total).
pub fn charge_object(intent: &str, amount_refunded: u64) -> serde_json::Value {
    stripe_object(
        "charge",
        serde_json::json!({"payment_intent": intent, "amount": 2999, "currency": "eur",
               "amount_refunded": amount_refunded, "refunded": amount_refunded >= 2999}),
    )
}

/// Stripe's sample dispute, on our EUR 29.99 intent, in `status`.
pub fn dispute_object(intent: &str, status: &str) -> serde_json::Value {
    stripe_object(
        "dispute",
        serde_json::json!({"payment_intent": intent, "amount": 2999, "currency": "eur", "status": status}),
    )
}

/// Stripe's sample refund, of `amount` on our intent's charge, in `status`.
pub fn refund_object(intent: &str, amount: u64, status: &str) -> serde_json::Value {
    stripe_object(
        "refund",
        serde_json::json!({"payment_intent": intent, "amount": amount, "currency": "eur", "status": status}),
    )
}

/// `charge.refunded` for our EUR 29.99 intent, refunded `amount_refunded`
/// so far, created now.
pub fn refund_event(intent: &str, amount_refunded: u64) -> String {
    stripe_event(
        &evt_id(),
        "charge.refunded",
        false,
        charge_object(intent, amount_refunded),
    )
}

/// `payment_intent.succeeded` for our order's EUR 29.99 intent, created now.
pub fn succeeded_event(intent: &str, store: &str, order: &str) -> String {
    intent_event("payment_intent.succeeded", intent, store, order, 2999)
}

/// A test-mode PaymentIntent event `kind` for our order's EUR intent of
/// `amount`, created now, the intent in the status Stripe sends it with.
pub fn intent_event(kind: &str, intent: &str, store: &str, order: &str, amount: u64) -> String {
    let mut object = intent_object(intent, store, order, amount);
    object["status"] = serde_json::json!(intent_status(kind));
    stripe_event(&evt_id(), kind, false, object)
}

/// Delivers a webhook with the given `Stripe-Signature`.
pub async fn deliver(path: &str, payload: &str, signature: &str) -> (u16, serde_json::Value) {
    let response = http()
        .post(format!("{}{path}", base_url()))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(payload.to_owned())
        .send()
        .await
        .expect("webhook");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Delivers `payload` signed now with `whsec`, as Stripe would.
pub async fn deliver_signed(path: &str, whsec: &str, payload: &str) -> (u16, serde_json::Value) {
    let signature = stripe_signature(whsec, payload, shared::clock::now());
    deliver(path, payload, &signature).await
}

/// A fresh Stripe event id.
pub fn evt_id() -> String {
    format!("evt_{}", key_body())
}

/// Delivers `payload` signed now and checks it was answered 200 with
/// `result` (what the delivery did, in words).
pub async fn assert_webhook_result(path: &str, whsec: &str, payload: &str, result: &str) {
    let (status, body) = deliver_signed(path, whsec, payload).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some(result)),
        "{body}"
    );
}

/// The order's stored item, read consistently.
pub async fn order_item(
    order_id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    dynamodb()
        .await
        .get_item()
        .table_name(env("TABLE_NAME"))
        .key("pk", AttributeValue::S(format!("ORDER#{order_id}")))
        .key("sk", AttributeValue::S("ORDER".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("order item")
        .item
        .expect("order exists")
}

/// The parked events (`parked:{event id}` attributes) on the order's
/// stored item.
pub async fn parked_attributes(order_id: &str) -> Vec<String> {
    order_item(order_id)
        .await
        .into_keys()
        .filter(|name| name.starts_with("parked:"))
        .collect()
}

/// The ids of every order stored for `store`, read consistently (a scan:
/// orders are keyed by their own id; the local table is small).
pub async fn orders_of_store(store_id: &str) -> Vec<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let pages = dynamodb()
        .await
        .scan()
        .table_name(env("TABLE_NAME"))
        .filter_expression("sk = :sk AND store_id = :store")
        .expression_attribute_values(":sk", AttributeValue::S("ORDER".into()))
        .expression_attribute_values(":store", AttributeValue::S(store_id.into()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("scan");
    pages
        .iter()
        .map(|item| item["order_id"].as_s().expect("order_id").clone())
        .collect()
}

/// `POST /api/internal/checkout-sessions` with these exact headers (and the
/// JSON content type); returns the status and the JSON body.
pub async fn post_session_with(
    headers: HeaderMap,
    raw: &str,
) -> (u16, serde_json::Value, HeaderMap) {
    let response = http()
        .post(format!("{}/api/internal/checkout-sessions", base_url()))
        .headers(headers)
        .header("content-type", "application/json")
        .body(raw.to_owned())
        .send()
        .await
        .expect("checkout-sessions");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.expect("json"), headers)
}

/// An order of `store` whose customer opened the payment page (an intent in
/// the Stripe emulator, made and attached as create-intent does) and then
/// left, with an hour's session. Made in process: many times faster than
/// over HTTP, for tests that need hundreds. Returns the order id.
pub async fn abandoned_checkout(
    app: &shared::App,
    connection: &shared::store::StripeConnection,
    key: &shared::domain::SecretKey,
) -> String {
    use shared::domain::Order;
    let now = shared::clock::now();
    let order = Order {
        session_expires_at: Some(now + 3600),
        ..one_item_order(connection.store_id, connection.mode(), 2999)
    };
    stored_checkout(app, &order).await;
    shared::checkout::payment_intent_for(app, &order, connection, key)
        .await
        .expect("intent");
    order.order_id.to_string()
}

/// A new pending order of one item costing `amount` euro cents, made now.
pub fn one_item_order(
    store_id: shared::domain::StoreId,
    mode: shared::domain::Mode,
    amount: u64,
) -> shared::domain::Order {
    use shared::domain::{Currency, LineItem, Money, Order};
    Order::pending(
        store_id,
        mode,
        Money::new(amount, Currency::parse("eur").expect("eur")),
        vec![LineItem {
            name: "Blue mug".into(),
            unit_amount: amount,
            quantity: 1,
        }],
        shared::clock::now(),
    )
}

/// Writes `order` and an hour's checkout session for it, as BMOS's
/// checkout-sessions call does, in process.
pub async fn stored_checkout(app: &shared::App, order: &shared::domain::Order) {
    let now = shared::clock::now();
    let (_, token_hash) = shared::auth::session_token::generate().expect("token");
    let session = shared::store::CheckoutSession {
        token_hash,
        order_id: order.order_id,
        store_id: order.store_id,
        expires_at: now + 3600,
        created_at: now,
    };
    app.table
        .create_checkout(order, &session, None, now)
        .await
        .expect("checkout");
}

/// An order id as the API answers it (a string in JSON), for the table's
/// own calls.
pub fn order_id_of(raw: &str) -> shared::domain::OrderId {
    shared::domain::OrderId::parse(raw).expect("an order id")
}

/// The order as the table holds it, read with `app`'s own client.
pub async fn stored_order(app: &shared::App, order_id: &str) -> shared::domain::Order {
    app.table
        .get_order(&order_id_of(order_id))
        .await
        .expect("the table answers")
        .expect("the order exists")
}
