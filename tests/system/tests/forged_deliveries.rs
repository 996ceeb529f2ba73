//! Forged webhook deliveries over real HTTP: cheap and quiet. A flood for a
//! connected store writes its record about once a minute, never turns the
//! store's own deliveries away, and does not tell the merchant that a secret
//! which verifies is wrong; a secret that never verifies is still reported.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::time::{Duration, Instant};
use system_tests::*;

/// `webhook_failures` on the store's connection item (0 when absent).
async fn recorded_failures(store: &str) -> u64 {
    let items = store_items(store).await;
    let connection = items
        .iter()
        .find(|item| item["sk"].as_s().is_ok_and(|sk| sk == "STRIPE"))
        .expect("connection item");
    connection
        .get("webhook_failures")
        .map_or(0, |n| n.as_n().unwrap().parse().unwrap())
}

/// A verified event that changes nothing: an intent we never made.
fn harmless_event(store: &str) -> String {
    stripe_event(
        &evt_id(),
        "payment_intent.succeeded",
        false,
        intent_object(
            "pi_not_made_by_us",
            store,
            "5d9e7c1a-0000-4000-8000-00000000f00d",
            2999,
        ),
    )
}

/// Sends `forged` deliveries signed with a secret that is not the store's,
/// 8 at a time, and after every `valid_every`th a delivery signed with the
/// store's own `whsec`. Returns the answers to the valid ones.
async fn flood(
    store: &str,
    whsec: Option<&str>,
    forged: usize,
    valid_every: usize,
) -> Vec<(u16, Value)> {
    let path = format!("/webhook/stripe/{store}");
    let wrong = format!("whsec_{}", key_body());
    let mut valid = Vec::new();
    let mut sent = 0;
    while sent < forged {
        let batch: Vec<_> = (0..8.min(forged - sent))
            .map(|_| {
                let (path, wrong, payload) = (path.clone(), wrong.clone(), harmless_event(store));
                tokio::spawn(async move { deliver_signed(&path, &wrong, &payload).await })
            })
            .collect();
        for task in batch {
            let (status, body) = task.await.unwrap();
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (400, Some("invalid_signature")),
                "{body}"
            );
            sent += 1;
            if let Some(whsec) = whsec
                && sent % valid_every == 0
            {
                valid.push(deliver_signed(&path, whsec, &harmless_event(store)).await);
            }
        }
    }
    valid
}

#[tokio::test]
async fn a_flood_of_forgeries_writes_once_a_minute_and_does_not_blame_a_working_secret() {
    let (store, _, whsec) = connected_store_with_webhook().await;
    let (status, body) = deliver_signed(
        &format!("/webhook/stripe/{store}"),
        &whsec,
        &harmless_event(&store),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(recorded_failures(&store).await, 0);

    let started = Instant::now();
    let valid = flood(&store, Some(&whsec), 200, 20).await;
    let minutes = started.elapsed().as_secs() / 60;

    // Each valid delivery verified and was answered as usual.
    assert_eq!(valid.len(), 10);
    for (status, body) in &valid {
        assert_eq!(
            (*status, body["result"].as_str()),
            (200, Some("no change: payment intent not made by us")),
            "{body}"
        );
    }
    // The first failure is written at once, the other 199 wait for the
    // store's next turn a minute later: one write instead of 200.
    let recorded = recorded_failures(&store).await;
    if minutes == 0 {
        assert_eq!(recorded, 1, "one write for 200 forgeries");
    } else {
        assert!(
            recorded < 200,
            "{recorded} after {minutes} min: a write each"
        );
    }
    let status = internal_status(&store).await;
    assert_eq!(status["webhook_health"]["status"], "ok", "{status}");
    assert!(status["last_webhook_at"].as_str().is_some(), "{status}");
}

#[tokio::test]
async fn a_secret_that_never_verifies_is_still_reported_at_the_first_failure() {
    let (store, _, _) = connected_store_with_webhook().await;
    assert!(flood(&store, None, 40, 1).await.is_empty());
    assert_eq!(recorded_failures(&store).await, 1);
    let status = internal_status(&store).await;
    assert_eq!(status["webhook_health"]["status"], "attention", "{status}");
    assert!(
        status["webhook_health"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("failed verification"),
        "{status}"
    );
}

#[tokio::test]
async fn a_store_connected_after_deliveries_were_refused_is_reachable_within_seconds() {
    // Stripe (or anyone) delivers for a store id before it is connected:
    // refused, and the container remembers the store has no connection.
    let store = new_store_id();
    let path = format!("/webhook/stripe/{store}");
    let whsec = format!("whsec_{}", key_body());
    for _ in 0..20 {
        let (status, body) = deliver_signed(&path, &whsec, &harmless_event(&store)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("unknown_store")),
            "{body}"
        );
    }
    // The merchant connects with that secret (the real flow, as BMOS does).
    let body = key_body();
    let link = connect_link(&store, "http://localhost:3000/admin").await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &format!("sk_test_{body}")),
            ("webhook_secret", &whsec),
        ],
    )
    .await;
    assert_eq!(response.status(), 303, "connect");
    // Within a second (`shared::webhooks::memory::REREAD_INTERVAL`) the
    // store is read again; fifteen allow for a slow, busy first run (the
    // point is seconds, not the thirty of the no-connection memory).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = deliver_signed(&path, &whsec, &harmless_event(&store)).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
