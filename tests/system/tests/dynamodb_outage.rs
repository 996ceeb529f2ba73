//! DynamoDB stops answering in the middle of a delivery: Stripe gets a 5xx
//! (so it retries) and nothing is half-written; the retry after DynamoDB
//! comes back applies the event exactly once. DynamoDB Local is frozen with
//! SIGSTOP rather than killed, since it keeps its tables in memory. This file
//! is its own test binary, so no other test runs while the table is frozen.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use hmac::{KeyInit, Mac};
use std::process::Command;
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

#[tokio::test]
async fn a_frozen_table_is_a_5xx_and_the_retry_applies_once() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let payload = serde_json::json!({
        "id": format!("evt_{}", key_body()), "object": "event", "livemode": false, "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent, "object": "payment_intent", "amount": 2999, "currency": "eur",
                            "metadata": {"store_id": store, "order_id": order_id}}}
    })
    .to_string();
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
