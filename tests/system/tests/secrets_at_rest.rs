//! Nothing secret is stored or logged in plaintext. Runs after a connect so
//! there is something to find.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use system_tests::*;

#[tokio::test]
async fn a_raw_scan_of_the_table_holds_no_plaintext_secret() {
    let store = new_store_id();
    let body = key_body();
    let link = connect_link(&store, "http://localhost:3000/back").await;
    let response = submit_connect_form(
        &link,
        &[
            ("publishable_key", &format!("pk_test_{body}")),
            ("secret_key", &format!("sk_test_{body}")),
            ("webhook_secret", &format!("whsec_{body}")),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);

    let mut scanned = 0;
    let mut pages = dynamodb()
        .await
        .scan()
        .table_name(env("TABLE_NAME"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.expect("scan").items.unwrap_or_default() {
            scanned += 1;
            let raw = format!("{item:?}");
            for needle in ["sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_"] {
                assert!(!raw.contains(needle), "plaintext {needle} in {raw}");
            }
            // The key bodies themselves must not appear either (only the
            // publishable key may).
            assert!(
                !raw.replace(&format!("pk_test_{body}"), "").contains(&body),
                "{raw}"
            );
        }
    }
    assert!(
        scanned >= 2,
        "the connection and its audit entry were scanned"
    );
}
