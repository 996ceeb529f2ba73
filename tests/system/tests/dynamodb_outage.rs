//! DynamoDB stops answering in the middle of a delivery: Stripe gets a 5xx
//! (so it retries) and nothing is half-written; the retry after DynamoDB
//! comes back applies the event exactly once. DynamoDB Local is frozen with
//! SIGSTOP rather than killed, since it keeps its tables in memory. This file
//! is its own test binary, so no other test runs while the table is frozen.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use hmac::{KeyInit, Mac};
use std::process::Command;
use std::time::Duration;
use system_tests::*;

/// The DynamoDB Local process the stack recorded (`name pid starttime port`).
fn dynamodb_pid() -> String {
    let pids = std::fs::read_to_string(format!("{}/pids", env("STACK_DIR"))).unwrap();
    pids.lines()
        .find_map(|line| {
            line.strip_prefix("dynamodb ")
                .and_then(|rest| rest.split_whitespace().next())
        })
        .expect("dynamodb in the stack's pid file")
        .to_owned()
}

fn signal(pid: &str, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, pid])
            .status()
            .unwrap()
            .success(),
        "kill {sig} {pid}"
    );
}

/// Thaws DynamoDB Local even if the test fails half-way.
struct Thaw(String);

impl Drop for Thaw {
    fn drop(&mut self) {
        signal(&self.0, "-CONT");
    }
}

/// One frozen table at a time: the tests of this file run in parallel.
static FREEZER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_frozen_table_is_a_5xx_and_the_retry_applies_once() {
    let _one_at_a_time = FREEZER.lock().await;
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let payload = succeeded_event(&intent, &store, &order_id);
    let deliver = || async {
        let t = shared::clock::now();
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(whsec.as_bytes()).unwrap();
        mac.update(format!("{t}.{payload}").as_bytes());
        let response = http()
            .post(format!("{}/webhook/stripe/{store}", base_url()))
            .header(
                "stripe-signature",
                format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes())),
            )
            .body(payload.clone())
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };

    // The first thing a delivery does with DynamoDB is read the store, so it
    // stalls there, before any write; that read replays harmlessly on thaw.
    let pid = dynamodb_pid();
    signal(&pid, "-STOP");
    let thaw = Thaw(pid);
    let (status, body) = deliver().await;
    assert!(
        (500..600).contains(&status),
        "a 5xx while the table is frozen, got {status}: {body}"
    );
    drop(thaw);

    assert_eq!(
        get_order(&order_id).await["status"],
        "pending",
        "nothing was half-written"
    );
    let (status, body) = deliver().await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("applied"), "{body}");
    assert_eq!(get_order(&order_id).await["status"], "paid");
    let (status, body) = deliver().await;
    assert!(
        status == 200 && body.contains("duplicate"),
        "{status} {body}"
    );
}

/// Creating a connect link reads and writes nothing but the record of its
/// signed request, so while DynamoDB is frozen a signed request cannot be
/// recorded: it is a 5xx, never a link from a request that could be replayed.
#[tokio::test]
async fn a_signed_request_that_cannot_be_recorded_is_refused() {
    let store = new_store_id();
    let path = format!("/api/internal/stores/{store}/connect-links");
    let body = r#"{"return_url":"http://localhost:3000/back"}"#;
    let send = |headers| {
        http()
            .post(format!("{}{path}", base_url()))
            .headers(headers)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
    };
    let _one_at_a_time = FREEZER.lock().await;
    let pid = dynamodb_pid();
    signal(&pid, "-STOP");
    let thaw = Thaw(pid);
    let response = send(signed_headers("POST", &path, body)).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(
        (502..=503).contains(&status),
        "a 502/503 while the table is frozen, got {status}: {text}"
    );
    assert!(!text.contains("/stripe/connect?"), "no link: {text}");
    drop(thaw);
    // Signed requests work again once the table is back.
    let response = send(signed_headers("POST", &path, body)).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}
