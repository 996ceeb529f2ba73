//! BMOS resolves an order flagged for review over the signed internal API:
//! accepted (the order is paid) or settled outside (refunded), audited,
//! once, and the reconciler leaves flagged and resolved orders alone.
//!
//! The flag is a real one: the customer pays in the Stripe emulator an
//! intent whose currency was changed there, and the return page, asking
//! Stripe, finds a payment that does not match the order.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use shared::clock;
use shared::reconcile::{self, Limits};
use system_tests::*;

/// A flagged order of a fresh store: (order id, store id).
async fn flagged_order() -> (String, String) {
    let (store, secret) = connected_store().await;
    let (code, session) = create_session(&cart(&store)).await;
    assert_eq!(code, 201, "{session}");
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let (code, intent) = create_intent(&token, "{}").await;
    assert_eq!(code, 200, "{intent}");
    let intent_id = intent_of(intent["client_secret"].as_str().expect("client_secret"));
    // Someone changed the currency in Stripe; the customer pays that. (The
    // emulator keeps an updated amount as a string, which Stripe never
    // sends, so the mismatch is the currency.)
    let (code, changed) = stripe_call(
        &secret,
        reqwest::Method::POST,
        &format!("/payment_intents/{intent_id}"),
        &[("currency", "usd")],
    )
    .await;
    assert_eq!(code, 200, "{changed}");
    let (code, paid) = pay_in_emulator(&secret, &intent_id, "4242424242424242").await;
    assert_eq!(code, 200, "{paid}");
    let back = http()
        .get(format!("{}/checkout/{token}/complete", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    let order = get_order(&order_id).await;
    assert_eq!(
        (&order["status"], &order["needs_review"]),
        (&"pending".into(), &true.into()),
        "{order}"
    );
    (order_id, store)
}

fn review_path(order_id: &str) -> String {
    format!("/api/internal/orders/{order_id}/review")
}

async fn send(
    path: &str,
    headers: reqwest::header::HeaderMap,
    body: &str,
) -> (u16, serde_json::Value) {
    let response = http()
        .post(format!("{}{path}", base_url()))
        .headers(headers)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A signed review request for `order_id`.
async fn review(order_id: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let path = review_path(order_id);
    let body = body.to_string();
    send(&path, signed_headers("POST", &path, &body), &body).await
}

async fn audit_entries(order_id: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    dynamodb()
        .await
        .query()
        .table_name(env("TABLE_NAME"))
        .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("ORDER#{order_id}")))
        .expression_attribute_values(":audit", AttributeValue::S("AUDIT#".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

fn text<'a>(item: &'a std::collections::HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item[name].as_s().unwrap()
}

#[tokio::test]
async fn accepting_a_flagged_payment_pays_the_order_once_and_audits_it() {
    let (order_id, store) = flagged_order().await;
    let accept = serde_json::json!({
        "resolution": "accepted", "resolved_by": "staff-17", "note": "Checked in the Dashboard"
    });

    // The plain shared-secret header is not enough for this write.
    let path = review_path(&order_id);
    let mut plain = reqwest::header::HeaderMap::new();
    plain.insert("x-internal-secret", env("INTERNAL_SECRET").parse().unwrap());
    let (code, body) = send(&path, plain, &accept.to_string()).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (401, &"signed_request_required".into())
    );
    assert_eq!(get_order(&order_id).await["needs_review"], true);

    let raw = accept.to_string();
    let headers = signed_headers("POST", &path, &raw);
    let (code, body) = send(&path, headers.clone(), &raw).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            &body["status"],
            &body["needs_review"],
            &body["resolution"],
            &body["resolved_by"]
        ),
        (
            &"paid".into(),
            &false.into(),
            &"accepted".into(),
            &"staff-17".into()
        ),
        "{body}"
    );
    let order = get_order(&order_id).await;
    assert_eq!(
        (&order["status"], &order["needs_review"]),
        (&"paid".into(), &false.into()),
        "{order}"
    );
    assert!(order["paid_at"].is_string(), "{order}");
    assert!(
        order["review_reason"].as_str().unwrap().contains("usd"),
        "{order}"
    );
    assert_eq!(
        order["review_resolution"]["resolution"], "accepted",
        "{order}"
    );
    assert_eq!(
        order["review_resolution"]["resolved_by"], "staff-17",
        "{order}"
    );
    let item = order_item(&order_id).await;
    assert!(
        !item.contains_key("pending_pk"),
        "left the reconciler's queue: {item:?}"
    );

    // Audited: who, when, which decision, from what.
    let entries = audit_entries(&order_id).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(text(entry, "action"), "order_review_resolved");
    assert_eq!(text(entry, "actor"), "bmos:signed-request");
    assert_eq!(text(entry, "resolved_by"), "staff-17");
    assert_eq!(text(entry, "resolution"), "accepted");
    assert_eq!(text(entry, "from_status"), "pending");
    assert_eq!(text(entry, "to_status"), "paid");
    assert_eq!(text(entry, "store_id"), store);
    assert_eq!(text(entry, "note"), "Checked in the Dashboard");
    assert!(entry.contains_key("at"));

    // The captured request cannot be sent again.
    let (code, body) = send(&path, headers, &raw).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (401, &"replayed".into()),
        "{body}"
    );

    // The same decision again is answered the same; nothing more is written.
    let (code, again) = review(&order_id, &serde_json::json!({"resolution": "accepted"})).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        (&again["resolved_by"], &again["resolved_at"]),
        (
            &order["review_resolution"]["resolved_by"],
            &order["review_resolution"]["resolved_at"]
        )
    );
    assert_eq!(audit_entries(&order_id).await.len(), 1);

    // The other decision is a conflict.
    let (code, body) = review(
        &order_id,
        &serde_json::json!({"resolution": "settled_outside"}),
    )
    .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (409, &"review_already_resolved".into()),
        "{body}"
    );
    assert_eq!(get_order(&order_id).await["status"], "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_leaves_a_flagged_order_to_a_person_and_settled_outside_refunds_it() {
    let (order_id, _) = flagged_order().await;
    let before = order_item(&order_id).await;
    // Flagging takes it out of the reconciler's index, so no run asks
    // Stripe about it again (and flags it again).
    assert!(!before.contains_key("pending_pk"), "{before:?}");
    // A second later any write would show in updated_at.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let limits = Limits {
        max_orders: 1000,
        ..Limits::default()
    };
    let app = in_process::service_app().await;
    // What else is due depends on the tests run before this one; only this
    // order's record is judged.
    reconcile::run(app, clock::now() + 600, limits)
        .await
        .unwrap();
    assert_eq!(
        order_item(&order_id).await["updated_at"],
        before["updated_at"],
        "not flagged again, not changed"
    );

    let (code, body) = review(
        &order_id,
        &serde_json::json!({"resolution": "settled_outside", "note": "Refunded in the Dashboard"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let order = get_order(&order_id).await;
    assert_eq!(
        (
            &order["status"],
            &order["needs_review"],
            &order["review_resolution"]["resolved_by"]
        ),
        (
            &"refunded".into(),
            &false.into(),
            &"bmos:signed-request".into()
        ),
        "{order}"
    );
    assert!(!order_item(&order_id).await.contains_key("pending_pk"));
}

#[tokio::test]
async fn concurrent_decisions_resolve_an_order_once() {
    // Two people press "accept" at once: one decision, one audit entry.
    let (order_id, _) = flagged_order().await;
    let (ann, bob) = (
        serde_json::json!({"resolution": "accepted", "resolved_by": "ann"}),
        serde_json::json!({"resolution": "accepted", "resolved_by": "bob"}),
    );
    let (a, b) = tokio::join!(review(&order_id, &ann), review(&order_id, &bob));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(
        a.1["resolved_by"], b.1["resolved_by"],
        "both answered with the one decision"
    );
    assert_eq!(audit_entries(&order_id).await.len(), 1);

    // Two different decisions at once: one wins, the other is told.
    let (order_id, _) = flagged_order().await;
    let (accept, settle) = (
        serde_json::json!({"resolution": "accepted"}),
        serde_json::json!({"resolution": "settled_outside"}),
    );
    let (a, b) = tokio::join!(review(&order_id, &accept), review(&order_id, &settle));
    let mut codes = [a.0, b.0];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "{a:?} {b:?}");
    assert_eq!(audit_entries(&order_id).await.len(), 1);
}

#[tokio::test]
async fn only_a_flagged_order_with_a_sound_body_is_resolved() {
    let (code, body) = review(
        &uuid::Uuid::new_v4().to_string(),
        &serde_json::json!({"resolution": "accepted"}),
    )
    .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (404, &"unknown_order".into())
    );

    let (code, body) = review("not-a-uuid", &serde_json::json!({"resolution": "accepted"})).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (400, &"invalid_order_id".into())
    );

    // An order nobody flagged.
    let (store, _) = connected_store().await;
    let (_, session) = create_session(&cart(&store)).await;
    let order_id = session["order_id"].as_str().unwrap();
    let (code, body) = review(order_id, &serde_json::json!({"resolution": "accepted"})).await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (409, &"order_not_flagged".into()),
        "{body}"
    );
    assert_eq!(get_order(order_id).await["status"], "pending");

    let (flagged, _) = flagged_order().await;
    for body in [
        serde_json::json!({"resolution": "refunded"}),
        serde_json::json!({}),
        serde_json::json!({"resolution": "accepted", "amount": 100}),
        serde_json::json!({"resolution": "accepted", "note": "sk_live_51HqLyjWDarjtT1zdp7dcXYZabc"}),
    ] {
        let (code, answer) = review(&flagged, &body).await;
        assert_eq!(
            (code, &answer["error"]["code"]),
            (422, &"invalid_field".into()),
            "{body}"
        );
        assert!(!answer.to_string().contains("sk_live"), "{answer}");
    }
    let path = review_path(&flagged);
    let (code, answer) = send(&path, signed_headers("POST", &path, "not json"), "not json").await;
    assert_eq!(
        (code, &answer["error"]["code"]),
        (400, &"invalid_body".into())
    );
    let order = get_order(&flagged).await;
    assert_eq!(
        (&order["status"], &order["needs_review"]),
        (&"pending".into(), &true.into()),
        "nothing above changed it: {order}"
    );
    assert!(audit_entries(&flagged).await.is_empty());
}
