//! The merchant's connect flow over real HTTP against the running service,
//! DynamoDB Local, moto's KMS and localstripe.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use system_tests::*;

const RETURN_URL: &str = "http://localhost:3000/admin/payments";

#[tokio::test]
async fn a_merchant_connects_and_everyone_sees_it() {
    let store = new_store_id();
    assert_eq!(
        public_status(&store).await,
        serde_json::json!({"store_id": store, "has_stripe": false, "is_live_mode": false, "can_take_payments": false})
    );

    let body = key_body();
    let pk = format!("pk_test_{body}");
    let link = connect_link(&store, RETURN_URL).await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &pk),
            ("secret_key", &format!("sk_test_{body}")),
            ("webhook_secret", &format!("whsec_{body}")),
        ],
    )
    .await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/stripe/success/{store}?")),
        "{location}"
    );

    let success = http()
        .get(format!("{}{location}", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(success.status(), 200);
    let csp = success.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"));
    let html = success.text().await.unwrap();
    assert!(html.contains(">test</span>"), "{html}");
    assert!(
        html.contains(&format!("href=\"{}\"", RETURN_URL)),
        "links back to the signed return_url: {html}"
    );
    assert!(!html.contains("sk_test_"), "{html}");

    assert_eq!(
        public_status(&store).await,
        serde_json::json!({"store_id": store, "has_stripe": true, "is_live_mode": false, "can_take_payments": true})
    );

    let internal = internal_status(&store).await;
    assert_eq!(internal["has_stripe"], true);
    assert_eq!(internal["publishable_key"], pk);
    assert_eq!(internal["webhook_configured"], true);
    assert_eq!(internal["key_kind"], "secret");
    assert!(internal["connected_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(internal["last_webhook_at"], serde_json::Value::Null);
    let printed = internal.to_string();
    assert!(
        !printed.contains("sk_test_") && !printed.contains("whsec_"),
        "{printed}"
    );
}

#[tokio::test]
async fn replacing_keys_bumps_the_version_and_keeps_connected_at() {
    let store = new_store_id();
    let first = key_body();
    let second = key_body();
    for body in [&first, &second] {
        let link = connect_link(&store, RETURN_URL).await;
        let response = submit_connect_form(
            &link,
            &[
                ("publishable_key", &format!("pk_test_{body}")),
                ("secret_key", &format!("sk_test_{body}")),
            ],
        )
        .await;
        assert_eq!(response.status(), 303);
    }
    let items = store_items(&store).await;
    let connection = items
        .iter()
        .find(|i| i["sk"].as_s().unwrap() == "STRIPE")
        .expect("connection");
    assert_eq!(connection["version"].as_n().unwrap(), "2");
    assert_eq!(
        connection["publishable_key"].as_s().unwrap(),
        &format!("pk_test_{second}")
    );
    let audits: Vec<_> = items
        .iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("AUDIT#"))
        .collect();
    assert_eq!(audits.len(), 2, "one audit entry per save");
    let actions: Vec<&str> = audits
        .iter()
        .map(|a| a["action"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(actions, ["stripe_connected", "stripe_keys_replaced"]);
}

#[tokio::test]
async fn mismatched_modes_re_render_the_form_with_422_and_store_nothing() {
    let store = new_store_id();
    let body = key_body();
    let link = connect_link(&store, RETURN_URL).await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_live_{body}")),
            ("secret_key", &format!("sk_test_{body}")),
        ],
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("same mode"), "{html}");
    assert!(
        html.contains(&format!("value=\"pk_live_{body}\"")),
        "publishable key kept: {html}"
    );
    assert!(!html.contains("sk_test_"), "secret never echoed: {html}");
    assert!(store_items(&store).await.is_empty());
}

#[tokio::test]
async fn a_key_stripe_rejects_is_422_and_stores_nothing() {
    // The Stripe emulator answers 401 for restricted keys.
    let store = new_store_id();
    let body = key_body();
    let link = connect_link(&store, RETURN_URL).await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &format!("rk_test_{body}")),
        ],
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("Invalid API key"), "{html}");
    assert!(!html.contains("rk_test_"), "{html}");
    assert!(store_items(&store).await.is_empty());
    assert_eq!(public_status(&store).await["has_stripe"], false);
}

#[tokio::test]
async fn forged_posts_are_refused() {
    let store = new_store_id();
    let body = key_body();
    let link = connect_link(&store, RETURN_URL).await;
    let html = http()
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form: Vec<(String, String)> = ["store_id", "return_url", "expires", "signature"]
        .iter()
        .map(|n| (n.to_string(), hidden_field(&html, n)))
        .collect();
    form.push(("publishable_key".into(), format!("pk_test_{body}")));
    form.push(("secret_key".into(), format!("sk_test_{body}")));

    let cases = [
        ("no csrf token", Some(base_url()), None),
        ("wrong csrf token", Some(base_url()), Some("0".repeat(64))),
        (
            "foreign origin",
            Some("https://evil.example".to_owned()),
            Some(hidden_field(&html, "csrf_token")),
        ),
    ];
    for (what, origin, csrf) in cases {
        let mut form = form.clone();
        if let Some(token) = csrf {
            form.push(("csrf_token".into(), token));
        }
        let mut request = http()
            .post(format!("{}/stripe/connect", base_url()))
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
    }
    assert!(store_items(&store).await.is_empty());
}

#[tokio::test]
async fn links_that_are_tampered_or_malformed_do_not_open_the_form() {
    let store = new_store_id();
    let link = connect_link(&store, RETURN_URL).await;
    let tampered = link.replace(&store, &new_store_id());
    assert_eq!(http().get(&tampered).send().await.unwrap().status(), 403);
    let other_return = link.replace("localhost%3A3000", "localhost%3A4000");
    assert_eq!(
        http().get(&other_return).send().await.unwrap().status(),
        403
    );
    let bad_store = format!(
        "{}/stripe/connect?store_id=nope&return_url=x&expires=1&signature=00",
        base_url()
    );
    assert_eq!(http().get(&bad_store).send().await.unwrap().status(), 400);
    let response = http()
        .get(format!("{}/stripe/status/not-a-uuid", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "invalid_store_id");
}

#[tokio::test]
async fn concurrent_saves_never_mix_two_submissions() {
    let store = new_store_id();
    let bodies: Vec<String> = (0..6).map(|_| key_body()).collect();
    let mut tasks = Vec::new();
    for body in bodies.clone() {
        let link = connect_link(&store, RETURN_URL).await;
        tasks.push(tokio::spawn(async move {
            let pk = format!("pk_test_{body}");
            let sk = format!("sk_test_{body}");
            submit_connect_form(&link, &[("publishable_key", &pk), ("secret_key", &sk)])
                .await
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 409),
        "{statuses:?}"
    );
    let saved = statuses.iter().filter(|s| **s == 303).count();
    assert!(saved >= 1);

    let items = store_items(&store).await;
    let connection = items
        .iter()
        .find(|i| i["sk"].as_s().unwrap() == "STRIPE")
        .unwrap();
    assert_eq!(
        connection["version"].as_n().unwrap(),
        &saved.to_string(),
        "one version per successful save"
    );
    let audits = items
        .iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("AUDIT#"))
        .count();
    assert_eq!(
        audits, saved,
        "one audit entry per successful save, none for conflicts"
    );

    // The sealed secret opens to the secret key submitted with the stored
    // publishable key: the record is one submission, not a mix.
    let pk = connection["publishable_key"].as_s().unwrap();
    let body = pk.strip_prefix("pk_test_").unwrap();
    assert!(bodies.iter().any(|b| b == body));
    let secret = open_stored_secret(&store, connection).await;
    assert_eq!(secret, format!("sk_test_{body}"));
}

#[tokio::test]
async fn the_form_page_keeps_origin_on_its_post_and_leaks_no_referer_elsewhere() {
    let link = connect_link(&new_store_id(), RETURN_URL).await;
    let response = http().get(&link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    // `no-referrer` would make browsers post `Origin: null`.
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
}

/// The version and publishable key stored for `store`.
async fn stored_keys(store: &str) -> (String, String) {
    let items = store_items(store).await;
    let connection = items
        .iter()
        .find(|i| i["sk"].as_s().unwrap() == "STRIPE")
        .expect("connection");
    (
        connection["version"].as_n().unwrap().clone(),
        connection["publishable_key"].as_s().unwrap().clone(),
    )
}

fn keys(body: &str) -> [(&'static str, String); 2] {
    [
        ("publishable_key", format!("pk_test_{body}")),
        ("secret_key", format!("sk_test_{body}")),
    ]
}

async fn post_keys(html: &str, body: &str) -> reqwest::Response {
    let [(pk_name, pk), (sk_name, sk)] = keys(body);
    post_form(html, "/stripe/connect", &[(pk_name, &pk), (sk_name, &sk)]).await
}

#[tokio::test]
async fn a_connect_link_saves_once_and_then_opens_nothing() {
    let store = new_store_id();
    let link = connect_link(&store, RETURN_URL).await;
    let form = http().get(&link).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    let (first, second) = (key_body(), key_body());
    let saved = post_keys(&html, &first).await;
    assert_eq!(saved.status(), 303);

    // Whoever holds the link afterwards (a leak, a second tab) gets a page
    // that says so, never the form.
    let again = http().get(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    let page = again.text().await.unwrap();
    assert!(
        page.contains("already used") && !page.contains("<form"),
        "{page}"
    );

    // A post from the form still open in another tab saves nothing.
    let replay = post_keys(&html, &second).await;
    assert_eq!(replay.status(), 410);
    assert!(!replay.text().await.unwrap().contains("sk_test_"));
    assert_eq!(
        stored_keys(&store).await,
        ("1".into(), format!("pk_test_{first}"))
    );

    // Nor does the used link open the success page or the secret form,
    // which only our own link from the save opens.
    let query = link.split_once('?').unwrap().1;
    for path in [
        format!("/stripe/success/{store}"),
        "/stripe/webhook-secret".into(),
    ] {
        let page = http()
            .get(format!("{}{path}?{query}", base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 403, "{path}");
        assert!(!page.text().await.unwrap().contains("<form"));
    }
}

#[tokio::test]
async fn of_two_racing_saves_through_one_link_exactly_one_wins() {
    let store = new_store_id();
    let link = connect_link(&store, RETURN_URL).await;
    let html = http()
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bodies = [key_body(), key_body()];
    let (a, b) = tokio::join!(post_keys(&html, &bodies[0]), post_keys(&html, &bodies[1]));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    // The loser is told the link was used (410), or that the other save
    // landed at the same moment (409): either way it saved nothing.
    assert!(
        statuses == [303, 410] || statuses == [303, 409],
        "{statuses:?}"
    );
    let (version, pk) = stored_keys(&store).await;
    assert_eq!(version, "1");
    assert!(bodies.iter().any(|b| pk == format!("pk_test_{b}")));
    let audits = store_items(&store)
        .await
        .iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("AUDIT#"))
        .count();
    assert_eq!(audits, 1, "one save, one audit entry");
}

#[tokio::test]
async fn the_webhook_secret_link_from_the_save_works_once() {
    // The Stripe emulator has no webhook endpoints API, so the save leaves
    // the webhook to the merchant and the success page links to the form.
    let store = new_store_id();
    let link = connect_link(&store, RETURN_URL).await;
    let body = key_body();
    let [(pk_name, pk), (sk_name, sk)] = keys(&body);
    let saved = submit_connect_form(&link, &[(pk_name, &pk), (sk_name, &sk)]).await;
    assert_eq!(saved.status(), 303);
    let location = saved.headers()["location"].to_str().unwrap().to_owned();
    let success = http()
        .get(format!("{}{location}", base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "href=\"/stripe/webhook-secret?";
    let start = success.find(marker).expect("a link to paste the secret") + "href=\"".len();
    let end = start + success[start..].find('"').unwrap();
    let secret_link = format!(
        "{}{}",
        base_url(),
        success[start..end]
            .replace("&amp;", "&")
            .replace("&#38;", "&")
    );

    let form = http().get(&secret_link).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    let whsec = format!("whsec_{}", key_body());
    let first = post_form(
        &html,
        "/stripe/webhook-secret",
        &[("webhook_secret", &whsec)],
    )
    .await;
    assert_eq!(first.status(), 303);
    assert_eq!(internal_status(&store).await["webhook_configured"], true);

    let again = http().get(&secret_link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    let other = format!("whsec_{}", key_body());
    let replay = post_form(
        &html,
        "/stripe/webhook-secret",
        &[("webhook_secret", &other)],
    )
    .await;
    assert_eq!(replay.status(), 410);
    let (version, _) = stored_keys(&store).await;
    assert_eq!(version, "2", "the keys' save and one secret save, no more");
}

#[tokio::test]
async fn a_secret_typed_into_the_publishable_key_field_is_not_shown_back() {
    let store = new_store_id();
    let link = connect_link(&store, RETURN_URL).await;
    let body = key_body();
    let secret = format!("sk_test_{body}");
    let response = submit_connect_form(
        &link,
        &[("publishable_key", &secret), ("secret_key", &secret)],
    )
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("<form"), "the form comes back: {html}");
    assert!(
        !html.contains(&body) && !html.contains("sk_test_"),
        "{html}"
    );
    assert!(store_items(&store).await.is_empty());
}
