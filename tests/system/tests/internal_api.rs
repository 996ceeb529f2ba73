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

#[tokio::test]
async fn a_replayed_signed_request_is_refused_and_makes_no_second_order() {
    let (store, _) = connected_store().await;
    let path = "/api/internal/checkout-sessions";
    let body = cart(&store).to_string();
    let captured = signed_headers("POST", path, &body);

    let (status, first, _) = post_session_with(captured.clone(), &body).await;
    assert_eq!(status, 201, "{first}");
    let (status, replayed, _) = post_session_with(captured.clone(), &body).await;
    assert_eq!(
        (status, replayed["error"]["code"].as_str()),
        (401, Some("replayed")),
        "{replayed}"
    );
    // The same signature in capitals is the same request.
    let mut shouted = captured.clone();
    let upper = captured["x-internal-signature"]
        .to_str()
        .unwrap()
        .to_uppercase()
        .replace("V1=", "v1=");
    shouted.insert("x-internal-signature", upper.parse().unwrap());
    let (status, body_json, _) = post_session_with(shouted, &body).await;
    assert_eq!(status, 401, "{body_json}");
    assert_eq!(body_json["error"]["code"], "replayed");

    assert_eq!(
        orders_of_store(&store).await,
        vec![first["order_id"].as_str().unwrap().to_owned()],
        "one order, the first request's"
    );
}

#[tokio::test]
async fn signed_reads_may_be_repeated_and_timestamps_may_be_only_a_little_ahead() {
    let store = new_store_id();
    let path = format!("/api/internal/stores/{store}/stripe-status");
    let headers = signed_headers("GET", &path, "");
    for _ in 0..2 {
        assert_eq!(internal_status(&store, headers.clone()).await.status(), 200);
    }
    let now = shared::clock::now();
    let ahead = signed_headers_at(now + 30, "GET", &path, "");
    assert_eq!(internal_status(&store, ahead).await.status(), 200);
    let far_ahead = signed_headers_at(now + 120, "GET", &path, "");
    let response = internal_status(&store, far_ahead).await;
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ahead"),
        "{body}"
    );
}

/// Sends `GET <target>` byte for byte (HTTP clients normalise paths first),
/// signed for exactly that target; returns the status line and the body.
async fn raw_get(target: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = url::Url::parse(&base_url()).unwrap();
    let mut stream = tokio::net::TcpStream::connect((
        base.host_str().unwrap(),
        base.port_or_known_default().unwrap(),
    ))
    .await
    .unwrap();
    let signed = signed_headers("GET", target, "");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nX-Internal-Timestamp: {}\r\nX-Internal-Signature: {}\r\nConnection: close\r\n\r\n",
        base.host_str().unwrap(),
        signed["x-internal-timestamp"].to_str().unwrap(),
        signed["x-internal-signature"].to_str().unwrap(),
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_path_spelled_another_way_is_refused_even_when_signed_as_sent() {
    let store = new_store_id();
    let (status, _) = raw_get(&format!("/api/internal/stores/{store}/stripe-status")).await;
    assert!(status.contains(" 200 "), "{status}");
    // `%2D` is `-`: the same store to a decoder, another string to a signature.
    let spelled = store.replacen('-', "%2D", 1);
    let (status, body) = raw_get(&format!("/api/internal/stores/{spelled}/stripe-status")).await;
    assert!(status.contains(" 400 "), "{status} {body}");
    assert!(body.contains("non_canonical_path"), "{body}");
}
