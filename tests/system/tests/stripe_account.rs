//! The Stripe account is part of the connection: keys of another account
//! replace a store's keys only through a link in which BMOS consented, and
//! every replacement names both accounts in the audit trail and in internal
//! status. Against the real DynamoDB Local and KMS, with Stripe played by
//! wiremock answering `GET /v1/account` with Stripe's own sample account
//! (`fixtures/stripe/account.json`) or, for restricted keys, Stripe's 403.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use shared::App;
use shared::auth::connect_link::{AccountChange, ConnectLink};
use shared::domain::StoreId;
use std::collections::HashMap;
use system_tests::in_process::{self, app_with_stripe_at};
use system_tests::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT_A: &str = "acct_1PgafTB7WZ01zgkW";
const ACCOUNT_B: &str = "acct_1Nv0FGQ9RKHgCVdK";

/// Stripe's sample account object with another id.
fn account_object(id: &str) -> serde_json::Value {
    stripe_object("account", serde_json::json!({"id": id}))
}

/// A Stripe whose keys pass the key check and may not create webhook
/// endpoints (so saves need no endpoint bookkeeping).
async fn stripe() -> MockServer {
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"object": "list", "data": [], "has_more": false}),
            ),
        )
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error", "code": "parameter_missing", "param": "amount",
            "message": "Missing required param: amount."}})),
        )
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({"error": {"type": "invalid_request_error",
            "message": "Having the 'rak_webhook_write' permission would allow this request to continue."}})))
        .mount(&stripe)
        .await;
    stripe
}

/// `GET /v1/account` with `key` answers `answer`.
async fn account_of(stripe: &MockServer, key: &str, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/v1/account"))
        .and(header("authorization", format!("Bearer {key}").as_str()))
        .respond_with(answer)
        .mount(stripe)
        .await;
}

/// A full secret key of `account`.
async fn secret_key_of(stripe: &MockServer, account: &str) -> String {
    let key = format!("sk_test_{}", key_body());
    account_of(
        stripe,
        &key,
        ResponseTemplate::new(200).set_body_json(account_object(account)),
    )
    .await;
    key
}

/// A restricted key of `account`: Stripe refuses it the account and names
/// the account in its 403 (`None`: in the older wording that names none).
async fn restricted_key_of(stripe: &MockServer, account: Option<&str>) -> String {
    let key = format!("rk_test_{}", key_body());
    let on = account.map_or(String::new(), |a| format!(" '{a}'"));
    let message = format!(
        "The provided key 'rk_test_****{}' does not have the required permissions for this endpoint on account{on}. This is a restricted API key, but the required permissions are not available for use by restricted keys.",
        &key[key.len() - 4..]
    );
    account_of(
        stripe,
        &key,
        ResponseTemplate::new(403).set_body_json(
            serde_json::json!({"error": {"type": "invalid_request_error", "message": message}}),
        ),
    )
    .await;
    key
}

/// Posts `secret` (with a publishable key of the same mode) through `link`.
async fn save(app: &App, link: &ConnectLink, secret: &str) -> (u16, String) {
    let pk = format!("pk_test_{}", key_body());
    let post = in_process::form_post(
        app,
        link,
        "/stripe/connect",
        &[("publishable_key", &pk), ("secret_key", secret)],
    );
    let response = connect::handler::handle(app, post).await.unwrap();
    let html = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    (response.status().as_u16(), html)
}

/// The audit entries of `store`, oldest first.
async fn audit(store: &str) -> Vec<HashMap<String, AttributeValue>> {
    store_items(store)
        .await
        .into_iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("AUDIT#"))
        .collect()
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).map(|v| v.as_s().unwrap().clone())
}

async fn stored_account(app: &App, store: &str) -> Option<String> {
    app.table
        .get_connection(&StoreId::parse(store).unwrap())
        .await
        .unwrap()
        .unwrap()
        .account_id
        .map(|a| a.to_string())
}

/// `GET /api/internal/stores/{store}/stripe-status` through the handler.
async fn internal_status(app: &App, store: &str) -> serde_json::Value {
    let path = format!("/api/internal/stores/{store}/stripe-status");
    let req = lambda_http::http::Request::builder()
        .method("GET")
        .uri(&path)
        .header("x-internal-secret", env("INTERNAL_SECRET"))
        .body(lambda_http::Body::Empty)
        .unwrap();
    // As API Gateway sends it: the raw path is what authentication checks.
    let req = lambda_http::RequestExt::with_raw_http_path(req, path);
    let req = lambda_http::RequestExt::with_path_parameters(
        req,
        HashMap::from([("store_id".to_owned(), store.to_owned())]),
    );
    // The path as API Gateway hands it over: what authentication checks.
    let req = lambda_http::RequestExt::with_raw_http_path(
        req,
        format!("/api/internal/stores/{store}/stripe-status"),
    );
    let response = internal_status::handler::handle(app, req).await.unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn keys_of_another_account_are_refused_without_consent_and_nothing_changes() {
    let stripe = stripe().await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let first = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &first).await.0,
        303
    );
    let before = store_items(&store).await;

    // Someone with a link of the store binds their own account.
    let link = in_process::link(&app, &store);
    let theirs = secret_key_of(&stripe, ACCOUNT_B).await;
    let (status, html) = save(&app, &link, &theirs).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("These keys belong to another Stripe account")
            && html.contains("choose to change the account")
            && html.contains("nothing was saved"),
        "{html}"
    );
    assert!(html.contains("<form"), "the form again: {html}");
    assert!(
        !html.contains(&theirs) && !html.contains(ACCOUNT_A),
        "{html}"
    );
    assert_eq!(store_items(&store).await, before, "nothing saved");
    assert_eq!(
        stored_account(&app, &store).await.as_deref(),
        Some(ACCOUNT_A)
    );

    // The link was not spent: the merchant can still save a rolled key of
    // the store's own account with it.
    assert!(!app.table.link_used(&link.one_time_use()).await.unwrap());
    let rolled = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(save(&app, &link, &rolled).await.0, 303);
}

#[tokio::test]
async fn with_a_consenting_link_another_account_replaces_the_keys_and_both_ids_are_audited() {
    let stripe = stripe().await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let first = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &first).await.0,
        303
    );

    let consenting = in_process::link_with(&app, &store, AccountChange::Allow);
    let form = connect::handler::handle(
        &app,
        in_process::page_get(&consenting, "/stripe/connect", &[]),
    )
    .await
    .unwrap();
    let html = String::from_utf8_lossy(form.body().as_ref()).into_owned();
    assert!(
        html.contains("lets you connect a different Stripe account"),
        "{html}"
    );
    assert_eq!(hidden_field(&html, "account_change"), "allow");

    let new = secret_key_of(&stripe, ACCOUNT_B).await;
    assert_eq!(save(&app, &consenting, &new).await.0, 303);
    assert_eq!(
        stored_account(&app, &store).await.as_deref(),
        Some(ACCOUNT_B)
    );

    let trail = audit(&store).await;
    let actions: Vec<_> = trail.iter().map(|i| text(i, "action").unwrap()).collect();
    assert_eq!(actions, ["stripe_connected", "stripe_keys_replaced"]);
    assert_eq!(
        text(&trail[0], "stripe_account_id").as_deref(),
        Some(ACCOUNT_A)
    );
    let replaced = &trail[1];
    assert_eq!(
        text(replaced, "previous_stripe_account_id").as_deref(),
        Some(ACCOUNT_A)
    );
    assert_eq!(
        text(replaced, "stripe_account_id").as_deref(),
        Some(ACCOUNT_B)
    );
    assert_eq!(
        text(replaced, "stripe_account_change").as_deref(),
        Some("changed")
    );

    let status = internal_status(&app, &store).await;
    assert_eq!(status["stripe_account_id"], ACCOUNT_B);
    let last = &status["last_key_replacement"];
    assert_eq!(last["from_stripe_account_id"], ACCOUNT_A);
    assert_eq!(last["to_stripe_account_id"], ACCOUNT_B);
    assert_eq!(last["account_change"], "changed");
    assert!(last["at"].as_str().unwrap().ends_with('Z'), "{last}");
}

#[tokio::test]
async fn a_rolled_key_of_the_same_account_needs_no_consent_and_a_restricted_keys_account_comes_from_the_403()
 {
    let stripe = stripe().await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let first = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &first).await.0,
        303
    );

    // The merchant swaps the full key for a restricted one: Stripe will not
    // show it the account, but names it in the refusal.
    let restricted = restricted_key_of(&stripe, Some(ACCOUNT_A)).await;
    let (status, html) = save(&app, &in_process::link(&app, &store), &restricted).await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(
        stored_account(&app, &store).await.as_deref(),
        Some(ACCOUNT_A)
    );
    let trail = audit(&store).await;
    assert_eq!(
        text(&trail[1], "stripe_account_change").as_deref(),
        Some("same")
    );
    assert_eq!(
        text(&trail[1], "previous_stripe_account_id").as_deref(),
        Some(ACCOUNT_A)
    );
    let status = internal_status(&app, &store).await;
    assert_eq!(status["stripe_account_id"], ACCOUNT_A);
    assert_eq!(status["key_kind"], "restricted");
    assert_eq!(status["last_key_replacement"]["account_change"], "same");

    // A restricted key of another account is told apart the same way.
    let theirs = restricted_key_of(&stripe, Some(ACCOUNT_B)).await;
    let (status, html) = save(&app, &in_process::link(&app, &store), &theirs).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("another Stripe account"), "{html}");
    assert_eq!(audit(&store).await.len(), 2, "nothing saved");
}

#[tokio::test]
async fn a_restricted_key_connecting_first_records_the_account_stripes_403_names() {
    let stripe = stripe().await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let restricted = restricted_key_of(&stripe, Some(ACCOUNT_B)).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &restricted)
            .await
            .0,
        303
    );
    assert_eq!(
        stored_account(&app, &store).await.as_deref(),
        Some(ACCOUNT_B)
    );
    let trail = audit(&store).await;
    assert_eq!(
        text(&trail[0], "stripe_account_id").as_deref(),
        Some(ACCOUNT_B)
    );
    let status = internal_status(&app, &store).await;
    assert_eq!(status["stripe_account_id"], ACCOUNT_B);
    assert!(status["last_key_replacement"].is_null(), "{status}");
}

#[tokio::test]
async fn an_account_stripe_does_not_name_cannot_replace_a_known_one_without_consent() {
    let stripe = stripe().await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let first = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &first).await.0,
        303
    );

    let unnamed = restricted_key_of(&stripe, None).await;
    let (status, html) = save(&app, &in_process::link(&app, &store), &unnamed).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("Stripe did not tell us which account"),
        "{html}"
    );
    assert_eq!(audit(&store).await.len(), 1, "nothing saved");

    // With consent it goes through, and the trail says what was not known.
    let consenting = in_process::link_with(&app, &store, AccountChange::Allow);
    assert_eq!(save(&app, &consenting, &unnamed).await.0, 303);
    assert_eq!(stored_account(&app, &store).await, None);
    let trail = audit(&store).await;
    assert_eq!(
        text(&trail[1], "previous_stripe_account_id").as_deref(),
        Some(ACCOUNT_A)
    );
    assert_eq!(text(&trail[1], "stripe_account_id"), None);
    assert_eq!(
        text(&trail[1], "stripe_account_change").as_deref(),
        Some("unknown")
    );
}

#[tokio::test]
async fn a_store_connected_before_accounts_were_recorded_records_it_at_the_next_save() {
    let stripe = stripe().await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let first = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &first).await.0,
        303
    );
    // As the item of a store connected before this change looks.
    dynamodb()
        .await
        .update_item()
        .table_name(env("TABLE_NAME"))
        .key("pk", AttributeValue::S(format!("STORE#{store}")))
        .key("sk", AttributeValue::S("STRIPE".into()))
        .update_expression("REMOVE stripe_account_id")
        .send()
        .await
        .unwrap();
    assert_eq!(stored_account(&app, &store).await, None);

    // Nothing to compare with: the save goes through and says so.
    let new = secret_key_of(&stripe, ACCOUNT_B).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &new).await.0,
        303
    );
    assert_eq!(
        stored_account(&app, &store).await.as_deref(),
        Some(ACCOUNT_B)
    );
    let trail = audit(&store).await;
    assert_eq!(text(&trail[1], "previous_stripe_account_id"), None);
    assert_eq!(
        text(&trail[1], "stripe_account_change").as_deref(),
        Some("unknown")
    );
    let last = &internal_status(&app, &store).await["last_key_replacement"];
    assert!(last["from_stripe_account_id"].is_null(), "{last}");
    assert_eq!(last["to_stripe_account_id"], ACCOUNT_B);

    // From now on the account is on record and guarded.
    let theirs = secret_key_of(&stripe, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &theirs).await.0,
        422
    );
}

/// Stripe's sample PaymentIntent (fixtures3.json): the account's newest, as
/// the key check lists it; a publishable key retrieving it with its client
/// secret gets `found`.
async fn newest_intent_found_with_the_publishable_key(stripe: &MockServer, found: bool) {
    let intent = stripe_sample("payment_intent");
    let id = intent["id"].as_str().unwrap().to_owned();
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"object": "list", "data": [intent.clone()], "has_more": true}),
        ))
        .with_priority(1)
        .mount(stripe)
        .await;
    let answer = if found {
        ResponseTemplate::new(200).set_body_json(intent.clone())
    } else {
        ResponseTemplate::new(404).set_body_json(serde_json::json!({"error": {
            "code": "resource_missing", "param": "intent", "type": "invalid_request_error",
            "message": format!("No such payment_intent: '{id}'")}}))
    };
    Mock::given(method("GET"))
        .and(path(format!("/v1/payment_intents/{id}")))
        .and(wiremock::matchers::query_param(
            "client_secret",
            intent["client_secret"].as_str().unwrap(),
        ))
        .and(wiremock::matchers::header_regex(
            "authorization",
            "^Bearer pk_test_",
        ))
        .respond_with(answer)
        .expect(1)
        .mount(stripe)
        .await;
}

#[tokio::test]
async fn a_publishable_key_of_another_account_is_refused_and_nothing_is_saved() {
    let stripe = stripe().await;
    newest_intent_found_with_the_publishable_key(&stripe, false).await;
    let app = app_with_stripe_at(&stripe.uri()).await;
    let store = new_store_id();
    let link = in_process::link(&app, &store);
    let secret = secret_key_of(&stripe, ACCOUNT_A).await;
    let (status, html) = save(&app, &link, &secret).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("The publishable key belongs to another Stripe account than the secret key")
            && html.contains("nothing was saved"),
        "{html}"
    );
    assert!(!html.contains(&secret), "{html}");
    assert!(store_items(&store).await.is_empty(), "nothing saved");
    assert!(
        !app.table.link_used(&link.one_time_use()).await.unwrap(),
        "link not spent"
    );
}

#[tokio::test]
async fn a_publishable_key_is_proven_at_connect_or_else_by_the_first_payment() {
    // An account with a PaymentIntent: the publishable key finds it.
    let busy = stripe().await;
    newest_intent_found_with_the_publishable_key(&busy, true).await;
    let app = app_with_stripe_at(&busy.uri()).await;
    let store = new_store_id();
    let secret = secret_key_of(&busy, ACCOUNT_A).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &secret).await.0,
        303
    );
    let status = internal_status(&app, &store).await;
    assert!(status["publishable_key_proven_at"].is_string(), "{status}");

    // A new account has none: saved, not yet proven, until a customer's
    // payment (confirmed in the browser with that key) is recorded.
    let fresh = stripe().await;
    let app = app_with_stripe_at(&fresh.uri()).await;
    let store = new_store_id();
    let secret = secret_key_of(&fresh, ACCOUNT_B).await;
    assert_eq!(
        save(&app, &in_process::link(&app, &store), &secret).await.0,
        303
    );
    assert!(internal_status(&app, &store).await["publishable_key_proven_at"].is_null());
    let id = StoreId::parse(&store).unwrap();
    app.table
        .note_api_payment(&id, shared::clock::now())
        .await
        .unwrap();
    let proven = internal_status(&app, &store).await["publishable_key_proven_at"].clone();
    assert!(proven.is_string(), "{proven}");
    // Later payments keep the first proof's time.
    app.table
        .note_api_payment(&id, shared::clock::now() + 60)
        .await
        .unwrap();
    assert_eq!(
        internal_status(&app, &store).await["publishable_key_proven_at"],
        proven
    );
}
