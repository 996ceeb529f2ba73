//! A customer's checkout over real HTTP: BMOS opens a session, the page
//! renders with the merchant's publishable key, create-intent makes one
//! PaymentIntent on the merchant's account (the Stripe emulator), the
//! customer pays with a test card, and the return page pays the order.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
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
    let intent_id = client_secret.split("_secret_").next().unwrap().to_owned();
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
    let intent_id = body["client_secret"]
        .as_str()
        .unwrap()
        .split("_secret_")
        .next()
        .unwrap()
        .to_owned();
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
    let intent_id = intent["client_secret"]
        .as_str()
        .unwrap()
        .split("_secret_")
        .next()
        .unwrap()
        .to_owned();
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
