//! BMOS's internal API over real HTTP: every credential form, and what the
//! answers hold.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use system_tests::*;

async fn internal_status(store: &str, headers: reqwest::header::HeaderMap) -> reqwest::Response {
    http()
        .get(format!(
            "{}/api/internal/stores/{store}/stripe-status",
            base_url()
        ))
        .headers(headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn internal_status_needs_credentials() {
    let store = new_store_id();
    let path = format!("/api/internal/stores/{store}/stripe-status");

    let none = internal_status(&store, Default::default()).await;
    assert_eq!(none.status(), 401);
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let mut wrong = reqwest::header::HeaderMap::new();
    wrong.insert(
        "x-internal-secret",
        "not-the-secret-but-long-enough-0000000".parse().unwrap(),
    );
    assert_eq!(internal_status(&store, wrong).await.status(), 401);

    let mut right = reqwest::header::HeaderMap::new();
    right.insert("x-internal-secret", env("INTERNAL_SECRET").parse().unwrap());
    let ok = internal_status(&store, right).await;
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["has_stripe"], false);
    assert_eq!(body["last_webhook_at"], serde_json::Value::Null);

    assert_eq!(
        internal_status(&store, signed_headers("GET", &path, ""))
            .await
            .status(),
        200
    );
    // A signature for another path, method or a stale time does not work.
    assert_eq!(
        internal_status(
            &store,
            signed_headers("GET", "/api/internal/stores/x/stripe-status", "")
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        internal_status(&store, signed_headers("POST", &path, ""))
            .await
            .status(),
        401
    );
    let mut stale = signed_headers("GET", &path, "");
    stale.insert(
        "x-internal-timestamp",
        (shared::clock::now() - 301).to_string().parse().unwrap(),
    );
    assert_eq!(internal_status(&store, stale).await.status(), 401);
}

#[tokio::test]
async fn connect_links_verify_the_body_signature_and_validate_input() {
    let store = new_store_id();
    let path = format!("/api/internal/stores/{store}/connect-links");
    let body = r#"{"return_url":"http://localhost:3000/back"}"#;
    let post = |headers, body: &'static str| {
        http()
            .post(format!("{}{path}", base_url()))
            .headers(headers)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        post(signed_headers("POST", &path, body), body)
            .await
            .unwrap()
            .status(),
        200
    );
    // Signed for one body, sent with another.
    let other = r#"{"return_url":"http://localhost:3000/elsewhere"}"#;
    assert_eq!(
        post(signed_headers("POST", &path, body), other)
            .await
            .unwrap()
            .status(),
        401
    );

    let evil = r#"{"return_url":"https://evil.example/"}"#;
    let response = post(signed_headers("POST", &path, evil), evil)
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "invalid_return_url");
}
