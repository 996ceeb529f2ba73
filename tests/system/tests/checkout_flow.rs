//! A customer's checkout over real HTTP: BMOS opens a session, the page
//! renders with the merchant's publishable key, create-intent makes one
//! PaymentIntent on the merchant's account (the Stripe emulator), the
//! customer pays with a test card, and the return page pays the order.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use reqwest::header::HeaderMap;
use system_tests::*;

#[tokio::test]
async fn a_customer_pays_and_the_order_is_paid_without_any_webhook() {
    let (store, secret) = connected_store().await;
    let (status, session) = create_session(&cart(&store)).await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["amount"], 2999);
    assert_eq!(session["status"], "pending");
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let checkout_url = session["checkout_url"].as_str().unwrap();
    assert!(
        checkout_url.starts_with(&format!("{}/checkout/", base_url())),
        "{checkout_url}"
    );
    let token = token_of(checkout_url);

    let page = http().get(checkout_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'nonce-")
            && csp.contains(env("STRIPE_API_BASE").trim_end_matches('/')),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Ann&#39;s Mugs") || html.contains("Ann&#x27;s Mugs"),
        "{html}"
    );
    assert!(
        html.contains("29.99 EUR") && html.contains("Blue mug"),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "data-publishable-key=\"pk_test_{}\"",
            secret.trim_start_matches("sk_test_")
        )),
        "{html}"
    );
    assert!(
        html.contains("id=\"test-mode\"") && html.contains("4242 4242 4242 4242"),
        "{html}"
    );
    assert!(
        html.contains(&env("STRIPE_JS_URL")),
        "Stripe.js from the setting: {html}"
    );

    let (status, intent) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{intent}");
    let client_secret = intent["client_secret"].as_str().unwrap().to_owned();
    let intent_id = intent_of(&client_secret);
    assert_eq!(intent["amount"], 2999);

    let (status, confirmed) = pay_in_emulator(&secret, &intent_id, "4242424242424242").await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "succeeded");
    assert_eq!(
        get_order(&order_id).await["status"],
        "pending",
        "nothing told us yet"
    );

    let complete = http()
        .get(format!(
            "{}/checkout/{token}/complete?payment_intent={intent_id}&redirect_status=succeeded",
            base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(complete.status(), 303);
    assert_eq!(
        complete.headers()["location"].to_str().unwrap(),
        format!("http://localhost:3000/thanks?order_id={order_id}")
    );
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(order["payment_intent_id"], intent_id.as_str());
    assert!(order["paid_at"].as_str().is_some());

    // Paid is final for this flow: the page shows the receipt, and no new
    // intent can be made for the order.
    let page = http().get(checkout_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Payment received"));
    assert_eq!(create_intent(&token, "{}").await.0, 409);
}

#[tokio::test]
async fn repeated_and_concurrent_calls_get_one_intent() {
    let (store, secret) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let token = token_of(session["checkout_url"].as_str().unwrap());

    let calls: Vec<_> = (0..5)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move { create_intent(&token, "{}").await })
        })
        .collect();
    let mut secrets = std::collections::HashSet::new();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
        secrets.insert(body["client_secret"].as_str().unwrap().to_owned());
    }
    let (_, again) = create_intent(&token, "{}").await;
    secrets.insert(again["client_secret"].as_str().unwrap().to_owned());
    assert_eq!(
        secrets.len(),
        1,
        "every call returns the same intent: {secrets:?}"
    );

    let order = get_order(session["order_id"].as_str().unwrap()).await;
    let intent_id = order["payment_intent_id"].as_str().unwrap();
    let (_, intent) = stripe_call(
        &secret,
        Method::GET,
        &format!("/payment_intents/{intent_id}"),
        &[],
    )
    .await;
    assert_eq!(intent["metadata"]["order_id"], order["order_id"]);
    assert_eq!(intent["metadata"]["store_id"], store.as_str());
}

#[tokio::test]
async fn the_browser_cannot_change_what_is_charged() {
    let (store, secret) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let (status, body) = create_intent(
        &token,
        r#"{"amount": 1, "currency": "jpy", "line_items": []}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["amount"], 2999);
    let intent_id = intent_of(body["client_secret"].as_str().expect("client_secret"));
    let (_, intent) = stripe_call(
        &secret,
        Method::GET,
        &format!("/payment_intents/{intent_id}"),
        &[],
    )
    .await;
    assert_eq!(
        (intent["amount"].as_u64(), intent["currency"].as_str()),
        (Some(2999), Some("eur"))
    );
}

#[tokio::test]
async fn a_declined_card_goes_back_to_the_page_with_the_reason() {
    let (store, secret) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let (_, intent) = create_intent(&token, "{}").await;
    let intent_id = intent_of(intent["client_secret"].as_str().expect("client_secret"));
    // The one card the emulator declines at confirmation.
    let (status, _) = pay_in_emulator(&secret, &intent_id, "4000000000000341").await;
    assert_eq!(status, 402);

    let complete = http()
        .get(format!("{}/checkout/{token}/complete", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(complete.status(), 303);
    assert_eq!(
        complete.headers()["location"],
        format!("/checkout/{token}").as_str()
    );
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "failed", "{order}");
    let page = http()
        .get(format!("{}/checkout/{token}", base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"previous-error\""), "{page}");

    // The customer may try another card: the same intent is handed out
    // again. (The emulator cannot confirm an intent after a declined charge,
    // so failed -> paid is proven by the state machine's unit tests.)
    let (status, again) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["client_secret"], intent["client_secret"]);
}

#[tokio::test]
async fn unknown_and_expired_checkouts_get_clear_pages() {
    let unknown = http()
        .get(format!("{}/checkout/{}", base_url(), "A".repeat(43)))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("not valid"));
    assert_eq!(
        http()
            .get(format!("{}/checkout/nope", base_url()))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(create_intent(&"A".repeat(43), "{}").await.0, 404);

    let (store, _) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let token = token_of(session["checkout_url"].as_str().unwrap());
    expire_session(&token).await;
    let page = http()
        .get(format!("{}/checkout/{token}", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("expired"));
    let (status, body) = create_intent(&token, "{}").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("checkout_expired"))
    );
}

/// Moves a session's expiry into the past, as time would.
async fn expire_session(token: &str) {
    use sha2_hash::hash;
    dynamodb()
        .await
        .update_item()
        .table_name(env("TABLE_NAME"))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SESSION#{}", hash(token))),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("SESSION".into()),
        )
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .unwrap();
}

mod sha2_hash {
    pub fn hash(token: &str) -> String {
        shared::auth::session_token::parse_and_hash(token).expect("a real token")
    }
}

#[tokio::test]
async fn sessions_are_validated_and_need_a_connected_store() {
    let (status, body) = create_session(&cart(&new_store_id())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("store_not_connected"))
    );

    let (store, _) = connected_store().await;
    let mut bad = cart(&store);
    bad["line_items"][0]["unit_amount"] = serde_json::json!(12.5);
    let (status, body) = create_session(&bad).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line_items[0].unit_amount"),
        "{body}"
    );

    let mut bad = cart(&store);
    bad["success_url"] = serde_json::json!("ftp://shop.example/");
    assert_eq!(create_session(&bad).await.0, 422);
}

#[tokio::test]
async fn a_live_mode_store_gets_a_page_without_test_cards() {
    // The Stripe emulator accepts sk_live_ keys like test ones.
    let store = new_store_id();
    let body = key_body();
    let link = connect_link(&store, "http://localhost:3000/admin").await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_live_{body}")),
            ("secret_key", &format!("sk_live_{body}")),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(public_status(&store).await["is_live_mode"], true);

    let (status, session) = create_session(&cart(&store)).await;
    assert_eq!(status, 201, "{session}");
    let page = http()
        .get(session["checkout_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("data-publishable-key=\"pk_live_{body}\"")),
        "{page}"
    );
    assert!(
        !page.contains("id=\"test-mode\"") && !page.contains("4242 4242"),
        "no test banner in live mode: {page}"
    );
    let order = get_order(session["order_id"].as_str().unwrap()).await;
    assert_eq!(order["livemode"], true);
}

/// A cart BMOS retries under one `Idempotency-Key`.
fn idempotent_cart(store: &str) -> (String, String) {
    let mut body = cart(store);
    body["metadata"]["bmos_order"] = serde_json::json!(key_body());
    (format!("cart-{}", key_body()), body.to_string())
}

async fn post_with_key(key: &str, raw: &str, ts: u64) -> (u16, serde_json::Value, HeaderMap) {
    let mut headers = signed_headers_at(ts, "POST", "/api/internal/checkout-sessions", raw);
    headers.insert("idempotency-key", key.parse().unwrap());
    post_session_with(headers, raw).await
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_give_the_same_order_and_link() {
    let (store, _) = connected_store().await;
    let (key, raw) = idempotent_cart(&store);
    let now = shared::clock::now();
    let (status, first, headers) = post_with_key(&key, &raw, now).await;
    assert_eq!(status, 201, "{first}");
    assert!(!headers.contains_key("idempotent-replayed"));
    // BMOS's retry: signed anew, the same body re-serialised another way.
    let reordered: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let reordered = serde_json::to_string_pretty(&reordered).unwrap();
    let (status, again, headers) = post_with_key(&key, &reordered, now - 1).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again, first, "the first answer, link included");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(
        orders_of_store(&store).await,
        vec![first["order_id"].as_str().unwrap().to_owned()]
    );
    // The link works: it opens the order's page.
    let page = http()
        .get(again["checkout_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // The token is stored sealed, never as itself.
    let token = token_of(first["checkout_url"].as_str().unwrap());
    let scan = dynamodb()
        .await
        .scan()
        .table_name(env("TABLE_NAME"))
        .send()
        .await
        .unwrap();
    assert!(
        !format!("{:?}", scan.items()).contains(&token),
        "a checkout token in the table"
    );
    // Another store may use the same key for its own cart.
    let (other_store, _) = connected_store().await;
    let mut other: serde_json::Value = serde_json::from_str(&raw).unwrap();
    other["store_id"] = serde_json::json!(other_store);
    let (status, theirs, _) = post_with_key(&key, &other.to_string(), now).await;
    assert_eq!(status, 201, "{theirs}");
    assert_ne!(theirs["order_id"], first["order_id"]);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_409() {
    let (store, _) = connected_store().await;
    let (key, raw) = idempotent_cart(&store);
    let now = shared::clock::now();
    let (status, first, _) = post_with_key(&key, &raw, now).await;
    assert_eq!(status, 201, "{first}");
    let mut changed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    changed["line_items"][0]["quantity"] = serde_json::json!(3);
    let (status, body, _) = post_with_key(&key, &changed.to_string(), now).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused")),
        "{body}"
    );
    assert_eq!(orders_of_store(&store).await.len(), 1);
    // Without a key, the same cart makes another order, as before. (Signed
    // at another second: the key is not part of the signature, so the same
    // body at the same second would be the first request replayed.)
    let (status, _, _) = post_session_with(
        signed_headers_at(now - 2, "POST", "/api/internal/checkout-sessions", &raw),
        &raw,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(orders_of_store(&store).await.len(), 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_make_one_order() {
    let (store, _) = connected_store().await;
    let (key, raw) = idempotent_cart(&store);
    let now = shared::clock::now();
    // Signed at different seconds, so replay protection lets each through.
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (key, raw) = (key.clone(), raw.clone());
            tokio::spawn(async move { post_with_key(&key, &raw, now - i).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let (status, body, _) = task.await.unwrap();
        assert!(
            status == 201 || (status == 409 && body["error"]["code"] == "idempotency_key_in_use"),
            "{status} {body}"
        );
        answers.push((status, body));
    }
    let orders = orders_of_store(&store).await;
    assert_eq!(orders.len(), 1, "exactly one order: {orders:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s == 201) {
        assert_eq!(body["order_id"], orders[0].as_str(), "{status} {body}");
        assert_eq!(body["checkout_url"], answers[0].1["checkout_url"]);
    }
}

#[tokio::test]
async fn return_urls_with_user_info_are_refused_naming_the_field() {
    let (store, _) = connected_store().await;
    for (field, url) in [
        ("success_url", "https://user:pw@shop.example/thanks"),
        ("cancel_url", "https://shop.example@evil.example/cart"),
        ("success_url", "https://shop.example/th\nanks"),
    ] {
        let mut bad = cart(&store);
        bad[field] = serde_json::json!(url);
        let (status, body) = create_session(&bad).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    assert!(orders_of_store(&store).await.is_empty());
}

/// The local router runs one request per function at a time, so the HTTP
/// test above meets the key's record on the read before the write. Here
/// the handler runs in this process on several threads at once, so the
/// requests race to the transaction and its condition decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_handlers_with_one_idempotency_key_make_one_order() {
    let app = system_tests::in_process::service_app().await;
    let (store, _) = connected_store().await;
    let (key, raw) = idempotent_cart(&store);
    let request = || {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/checkout-sessions.json")).unwrap();
        event["headers"]["x-internal-secret"] = serde_json::json!(env("INTERNAL_SECRET"));
        event["headers"]["idempotency-key"] = serde_json::json!(key);
        event["body"] = serde_json::json!(raw);
        lambda_http::request::from_str(&event.to_string()).unwrap()
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(checkout_sessions::handler::handle(app, request())))
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(response) => {
                assert_eq!(response.status(), 201);
                let body: serde_json::Value =
                    serde_json::from_slice(response.body().as_ref()).unwrap();
                created.push(body);
            }
            Err(err) => assert_eq!(err.code(), "idempotency_key_in_use", "{err:?}"),
        }
    }
    let orders = orders_of_store(&store).await;
    assert_eq!(orders.len(), 1, "exactly one order: {orders:?}");
    assert!(!created.is_empty());
    for body in &created {
        assert_eq!(body, &created[0], "one order, one link");
    }
    assert_eq!(created[0]["order_id"], orders[0].as_str());
}

#[tokio::test]
async fn a_link_called_in_a_loop_makes_one_intent_and_reads_it_at_most_fifty_times() {
    // A leaked link driven in a loop (`bench/flood.py` measured it; BENCHMARKS.md,
    // "Isolation"): one PaymentIntent, read back from Stripe at most the
    // order's budget of times, then 429 for every later call.
    let (store, secret) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    // The first call makes the intent; each later one spends a read.
    for call in 0..=shared::checkout::MAX_INTENT_READS {
        let (status, body) = create_intent(&token, "{}").await;
        assert_eq!(status, 200, "call {call}: {body}");
    }
    for _ in 0..3 {
        let (status, body) = create_intent(&token, "{}").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (429, Some("too_many_attempts")),
            "{body}"
        );
    }
    assert_eq!(intents_for_order(&secret, &order_id).await.len(), 1);
}

/// Every PaymentIntent the emulator holds for `order_id` (all pages).
async fn intents_for_order(secret: &str, order_id: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/payment_intents?limit=100".to_owned();
        if let Some(last) = &after {
            path.push_str(&format!("&starting_after={last}"));
        }
        let (status, page) = stripe_call(secret, Method::GET, &path, &[]).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        for intent in data {
            if intent["metadata"]["order_id"] == order_id {
                ids.push(intent["id"].as_str().unwrap().to_owned());
            }
        }
        if page["has_more"] != true || data.is_empty() {
            return ids;
        }
        after = data.last().unwrap()["id"].as_str().map(str::to_owned);
    }
}

#[tokio::test]
async fn one_order_causes_at_most_ten_intents_then_429() {
    // A leaked link in a loop: each time the intent is unusable (here
    // cancelled in Stripe) the next call starts a new attempt with a new
    // PaymentIntent, until the order's budget of ten is spent.
    let (store, secret) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let order_id = session["order_id"].as_str().unwrap().to_owned();

    let mut seen = std::collections::HashSet::new();
    for attempt in 1..=10 {
        let (status, body) = create_intent(&token, "{}").await;
        assert_eq!(status, 200, "attempt {attempt}: {body}");
        let order = get_order(&order_id).await;
        let intent_id = order["payment_intent_id"].as_str().unwrap().to_owned();
        assert!(
            seen.insert(intent_id.clone()),
            "attempt {attempt} reused {intent_id}"
        );
        let (cancelled, body) = stripe_call(
            &secret,
            Method::POST,
            &format!("/payment_intents/{intent_id}/cancel"),
            &[],
        )
        .await;
        assert_eq!(cancelled, 200, "{body}");
    }
    assert_eq!(intents_for_order(&secret, &order_id).await.len(), 10);

    let (status, body) = create_intent(&token, "{}").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("go back to the shop"),
        "{body}"
    );
    assert_eq!(
        intents_for_order(&secret, &order_id).await.len(),
        10,
        "the refused call created no PaymentIntent"
    );
    // The refusal changed nothing: the order still names the last intent.
    let order = get_order(&order_id).await;
    assert!(seen.contains(order["payment_intent_id"].as_str().unwrap()));
}
