//! What a verified webhook event may and may not do, over real HTTP with
//! the Stripe emulator holding the intents: a `succeeded` pays only what
//! Stripe confirms, nothing undoes a dispute or a refund but the news that
//! ends it, an order's mode is its own, and events that are not ours are
//! acknowledged without changing anything (issue 14, items 2-5 and 8).
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use shared::webhooks::WebhookMemory;
use system_tests::*;

fn event(kind: &str, object: Value) -> String {
    stripe_event(&evt_id(), kind, false, object)
}

async fn status_of(order_id: &str) -> (String, Option<u64>) {
    let order = get_order(order_id).await;
    (
        order["status"].as_str().unwrap().to_owned(),
        order["amount_refunded"].as_u64(),
    )
}

/// A paid order whose `succeeded` has been delivered: `(order, intent)`.
async fn paid_order(store: &str, secret: &str, whsec: &str) -> (String, String) {
    let (order_id, intent) = paid_in_stripe(store, secret).await;
    assert_webhook_result(
        &format!("/webhook/stripe/{store}"),
        whsec,
        &succeeded_event(&intent, store, &order_id),
        "applied: order is now paid",
    )
    .await;
    (order_id, intent)
}

#[tokio::test]
async fn a_late_succeeded_leaves_a_dispute_as_it_is_and_its_loss_lands() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_order(&store, &secret, &whsec).await;
    let path = format!("/webhook/stripe/{store}");
    assert_webhook_result(
        &path,
        &whsec,
        &event(
            "charge.dispute.created",
            dispute_object(&intent, "needs_response"),
        ),
        "applied: order is now disputed",
    )
    .await;
    // Another `succeeded` for the same payment (another event id: Stripe's
    // replays and retries make such things): Stripe confirms the intent
    // succeeded, and still the dispute stands.
    assert_webhook_result(
        &path,
        &whsec,
        &succeeded_event(&intent, &store, &order_id),
        "no change: order does not allow this change",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "disputed");
    assert_webhook_result(
        &path,
        &whsec,
        &event("charge.dispute.closed", dispute_object(&intent, "lost")),
        "applied: order is now lost",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "lost");
}

#[tokio::test]
async fn a_dispute_won_on_a_partly_refunded_order_ends_partially_refunded() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");
    for closure in ["won", "warning_closed"] {
        let (order_id, intent) = paid_order(&store, &secret, &whsec).await;
        for (kind, object, result) in [
            (
                "charge.refunded",
                charge_object(&intent, 1000),
                "applied: order is now partially_refunded",
            ),
            (
                "charge.dispute.created",
                dispute_object(&intent, "needs_response"),
                "applied: order is now disputed",
            ),
            (
                "charge.dispute.closed",
                dispute_object(&intent, closure),
                "applied: order is now partially_refunded",
            ),
        ] {
            assert_webhook_result(&path, &whsec, &event(kind, object), result).await;
        }
        assert_eq!(
            status_of(&order_id).await,
            ("partially_refunded".to_owned(), Some(1000)),
            "{closure}: the refund made before the dispute still stands"
        );
    }
    // Without refunds a won dispute is back at paid, as before.
    let (order_id, intent) = paid_order(&store, &secret, &whsec).await;
    for kind_status in [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.closed", "won"),
    ] {
        let (status, body) = deliver_signed(
            &path,
            &whsec,
            &event(kind_status.0, dispute_object(&intent, kind_status.1)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(get_order(&order_id).await["status"], "paid");
}

#[tokio::test]
async fn a_failed_refund_gives_its_amount_back() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");

    // Refunded in full, and the refund failed: paid again, nothing refunded.
    let (order_id, intent) = paid_order(&store, &secret, &whsec).await;
    assert_webhook_result(
        &path,
        &whsec,
        &event("charge.refunded", charge_object(&intent, 2999)),
        "applied: order is now refunded",
    )
    .await;
    let failed = event(
        "charge.refund.updated",
        refund_object(&intent, 2999, "failed"),
    );
    assert_webhook_result(&path, &whsec, &failed, "applied: order is now paid").await;
    assert_eq!(status_of(&order_id).await, ("paid".to_owned(), Some(0)));
    // Delivered again: given back once.
    assert_webhook_result(&path, &whsec, &failed, "duplicate: already processed").await;
    assert_eq!(status_of(&order_id).await, ("paid".to_owned(), Some(0)));

    // Two refunds, the first fails: the second still stands.
    let (order_id, intent) = paid_order(&store, &secret, &whsec).await;
    for total in [1000, 2000] {
        let (status, body) = deliver_signed(
            &path,
            &whsec,
            &event("charge.refunded", charge_object(&intent, total)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_webhook_result(
        &path,
        &whsec,
        &event(
            "charge.refund.updated",
            refund_object(&intent, 1000, "failed"),
        ),
        "applied: order is now partially_refunded",
    )
    .await;
    assert_eq!(
        status_of(&order_id).await,
        ("partially_refunded".to_owned(), Some(1000))
    );
    // A refund update that is not a failure changes nothing.
    assert_webhook_result(
        &path,
        &whsec,
        &event(
            "charge.refund.updated",
            refund_object(&intent, 1000, "succeeded"),
        ),
        "no change: event type not acted on",
    )
    .await;
    // A failure of more than the order shows refunded gives nothing back.
    assert_webhook_result(
        &path,
        &whsec,
        &event(
            "charge.refund.updated",
            refund_object(&intent, 2999, "failed"),
        ),
        "no change: refund not recorded on the order",
    )
    .await;
    assert_eq!(
        status_of(&order_id).await,
        ("partially_refunded".to_owned(), Some(1000))
    );
}

#[tokio::test]
async fn a_validly_signed_succeeded_that_stripe_does_not_confirm_pays_nothing() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");
    let (status, session) = create_session(&cart(&store)).await;
    assert_eq!(status, 201, "{session}");
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let (status, reply) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{reply}");
    let intent = intent_of(reply["client_secret"].as_str().expect("client_secret"));

    // Whoever holds the signing secret signs a `succeeded` the customer
    // never paid: Stripe says the intent still waits for a payment method.
    let forged = succeeded_event(&intent, &store, &order_id);
    assert_webhook_result(
        &path,
        &whsec,
        &forged,
        "no change: Stripe does not confirm the payment",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "pending");
    // Recorded: delivered again it costs no Stripe call and changes nothing.
    assert_webhook_result(&path, &whsec, &forged, "duplicate: already processed").await;

    // Stripe's amount, not the event's: an event claiming the right money
    // for an intent Stripe holds paid for another amount flags the order.
    // (The emulator cannot change an intent's amount, so Stripe is played
    // by wiremock here, answering with Stripe's shape of the intent.)
    use wiremock::matchers::{method, path as at};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(at(format!("/v1/payment_intents/{intent}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "payment_intent",
            json!({"id": intent, "amount": 1, "amount_received": 1, "currency": "eur",
                   "status": "succeeded", "client_secret": format!("{intent}_secret_x"),
                   "metadata": {"store_id": store, "order_id": order_id}}),
        )))
        .expect(1)
        .mount(&stripe)
        .await;
    let app = in_process::app_with_stripe_at(&stripe.uri()).await;
    let claims_right_money = succeeded_event(&intent, &store, &order_id);
    let outcome = shared::webhooks::process(
        &app,
        &WebhookMemory::default(),
        Some(shared::domain::StoreId::parse(&store).unwrap()),
        Some(&stripe_signature(
            &whsec,
            &claims_right_money,
            shared::clock::now(),
        )),
        claims_right_money.as_bytes(),
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, shared::webhooks::Outcome::Flagged { .. }),
        "{outcome:?}"
    );
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["needs_review"].as_bool()),
        (Some("pending"), Some(true)),
        "{order}"
    );
    assert!(
        order["review_reason"].as_str().unwrap().contains("1 eur"),
        "{order}"
    );

    // And a real payment, announced by an event that gets the amount wrong,
    // is paid on Stripe's word.
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let wrong_amount = stripe_event(
        &evt_id(),
        "payment_intent.succeeded",
        false,
        intent_object(&intent, &store, &order_id, 1),
    );
    assert_webhook_result(&path, &whsec, &wrong_amount, "applied: order is now paid").await;
}

#[tokio::test]
async fn a_stripe_that_cannot_be_asked_gets_a_503_and_nothing_is_recorded() {
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let store_id = shared::domain::StoreId::parse(&store).unwrap();
    let succeeded = succeeded_event(&intent, &store, &order_id);
    let signature = stripe_signature(&whsec, &succeeded, shared::clock::now());

    // Stripe down, or rate limiting: the payment cannot be confirmed now.
    let stripe_says = |status: u16, body: Value| async move {
        let stripe = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path_regex("^/v1/payment_intents/pi_"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .expect(1)
            .mount(&stripe)
            .await;
        let app = in_process::app_with_stripe_at(&stripe.uri()).await;
        (stripe, app)
    };
    for (status, body) in [
        (
            500,
            json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}),
        ),
        (
            429,
            json!({"error": {"type": "rate_limit_error", "message": "Too many requests"}}),
        ),
    ] {
        let (_stripe, app) = stripe_says(status, body).await;
        let err = shared::webhooks::process(
            &app,
            &WebhookMemory::default(),
            Some(store_id),
            Some(&signature),
            succeeded.as_bytes(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (503, "dependency_throttled"),
            "Stripe {status}"
        );
        assert_eq!(get_order(&order_id).await["status"], "pending");
        assert!(
            !order_item(&order_id).await.contains_key("processed_events"),
            "Stripe {status}: nothing recorded, so the redelivery is not a duplicate"
        );
    }
    // Stripe's redelivery, once Stripe answers: paid, once.
    let (status, body) = deliver(
        &format!("/webhook/stripe/{store}"),
        &succeeded,
        &stripe_signature(&whsec, &succeeded, shared::clock::now()),
    )
    .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("applied: order is now paid")),
        "{body}"
    );

    // The merchant's key rolled in Stripe (its 401, as Stripe shapes it):
    // not confirmed (503), and the store is marked as needing reconnection.
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let succeeded = succeeded_event(&intent, &store, &order_id);
    let signature = stripe_signature(&whsec, &succeeded, shared::clock::now());
    let (_stripe, app) = stripe_says(
        401,
        json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****abcd"}}),
    )
    .await;
    let err = shared::webhooks::process(
        &app,
        &WebhookMemory::default(),
        Some(store_id),
        Some(&signature),
        succeeded.as_bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (503, "dependency_throttled")
    );
    assert!(!order_item(&order_id).await.contains_key("processed_events"));
    let status = internal_status(&store).await;
    assert_eq!(status["needs_reconnect"], true, "{status}");
}

/// Sets an order's mode as a session made while the store was connected
/// in live mode writes it (the emulator takes test keys only, so a live
/// session cannot be made here).
async fn made_in_live_mode(order_id: &str) {
    dynamodb()
        .await
        .update_item()
        .table_name(env("TABLE_NAME"))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ORDER#{order_id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER".into()),
        )
        .update_expression("SET #mode = :live")
        .expression_attribute_names("#mode", "mode")
        .expression_attribute_values(
            ":live",
            aws_sdk_dynamodb::types::AttributeValue::S("live".into()),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_live_order_is_never_settled_in_test_mode() {
    // The merchant made the order with live keys, then switched the store
    // to test keys (and the endpoint's secret with them).
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    made_in_live_mode(&order_id).await;
    // A test-mode payment, confirmed by Stripe in test mode: not the order's.
    assert_webhook_result(
        &path,
        &whsec,
        &succeeded_event(&intent, &store, &order_id),
        "no change: event is of another mode than the order",
    )
    .await;
    // Nor does any other test-mode news move it.
    let mut canceled = intent_object(&intent, &store, &order_id, 2999);
    canceled["status"] = json!(intent_status("payment_intent.canceled"));
    assert_webhook_result(
        &path,
        &whsec,
        &event("payment_intent.canceled", canceled),
        "no change: event is of another mode than the order",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "pending");

    // And no intent is made for it with the store's (test) key now.
    let (status, session) = create_session(&cart(&store)).await;
    assert_eq!(status, 201, "{session}");
    let live_order = session["order_id"].as_str().unwrap().to_owned();
    made_in_live_mode(&live_order).await;
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let (status, body) = create_intent(&token, "{}").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("order_mode_mismatch")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("live mode") && message.contains("test mode"),
        "{message}"
    );
    let order = get_order(&live_order).await;
    assert_eq!(order["status"], "pending");
    assert!(
        !order_item(&live_order)
            .await
            .contains_key("payment_intent_id")
    );
}

#[tokio::test]
async fn verified_events_that_are_not_ours_are_acknowledged_and_change_nothing() {
    let (store_a, secret_a, whsec_a) = connected_store_with_webhook().await;
    let (store_b, _, whsec_b) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_order(&store_a, &secret_a, &whsec_a).await;
    let path_a = format!("/webhook/stripe/{store_a}");

    // Another integration's payment on A's Stripe account, in Stripe's own
    // sample shapes: no PaymentIntent of ours behind them.
    let mut lost = stripe_sample("dispute");
    lost["status"] = json!("lost");
    let mut failed = stripe_sample("refund");
    failed["status"] = json!("failed");
    for (kind, object) in [
        ("charge.refunded", stripe_sample("charge")),
        ("charge.dispute.created", stripe_sample("dispute")),
        ("charge.dispute.closed", lost),
        ("charge.refund.updated", failed),
    ] {
        let (status, body) = deliver_signed(&path_a, &whsec_a, &event(kind, object)).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("no change: payment intent not made by us")),
            "{kind}: {body}"
        );
    }
    // A dashboard test event: an intent we never made.
    assert_webhook_result(
        &path_a,
        &whsec_a,
        &succeeded_event("pi_3NotMadeByUsAtAll00000", &store_a, &order_id),
        "no change: payment intent not made by us",
    )
    .await;

    // Two stores on one Stripe account: B's endpoint receives A's events
    // too, signed with B's secret. Verified, and not B's to apply.
    let path_b = format!("/webhook/stripe/{store_b}");
    for payload in [
        refund_event(&intent, 2999),
        event(
            "charge.dispute.created",
            dispute_object(&intent, "needs_response"),
        ),
        succeeded_event(&intent, &store_a, &order_id),
    ] {
        assert_webhook_result(
            &path_b,
            &whsec_b,
            &payload,
            "no change: payment belongs to another store",
        )
        .await;
    }
    assert_eq!(status_of(&order_id).await, ("paid".to_owned(), None));

    // Only what cannot be verified is refused.
    let refund = refund_event(&intent, 2999);
    let (status, body) = deliver(
        &path_a,
        &refund,
        &stripe_signature(&whsec_b, &refund, shared::clock::now()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_signature")),
        "{body}"
    );
    assert_eq!(status_of(&order_id).await, ("paid".to_owned(), None));
}

#[tokio::test]
async fn a_payment_on_a_replaced_intent_flags_the_order_and_never_pays_it() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");
    let (status, session) = create_session(&cart(&store)).await;
    assert_eq!(status, 201, "{session}");
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let (status, reply) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{reply}");
    let old = intent_of(reply["client_secret"].as_str().expect("client_secret"));

    // The order moves on to a new intent (as create-intent's replacement
    // writes it: the order's intent, and the new intent's link), while the
    // old one is still open in Stripe.
    let (status, new) = stripe_call(
        &secret,
        reqwest::Method::POST,
        "/payment_intents",
        &[
            ("amount", "2999"),
            ("currency", "eur"),
            ("payment_method_types[]", "card"),
            ("metadata[store_id]", &store),
            ("metadata[order_id]", &order_id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{new}");
    let new = new["id"].as_str().unwrap().to_owned();
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let db = dynamodb().await;
    db.update_item()
        .table_name(env("TABLE_NAME"))
        .key("pk", V::S(format!("ORDER#{order_id}")))
        .key("sk", V::S("ORDER".into()))
        .update_expression("SET payment_intent_id = :new, intent_attempt = :two")
        .condition_expression("payment_intent_id = :old")
        .expression_attribute_values(":new", V::S(new.clone()))
        .expression_attribute_values(":old", V::S(old.clone()))
        .expression_attribute_values(":two", V::N("2".into()))
        .send()
        .await
        .unwrap();
    db.put_item()
        .table_name(env("TABLE_NAME"))
        .item("pk", V::S(format!("PI#{new}")))
        .item("sk", V::S("PI".into()))
        .item("order_id", V::S(order_id.clone()))
        .item("store_id", V::S(store.clone()))
        .send()
        .await
        .unwrap();

    // The customer pays the old intent anyway (a second tab, a late 3D
    // Secure): the money is taken, and must not go unseen.
    let (status, paid) = pay_in_emulator(&secret, &old, "4242424242424242").await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("succeeded")),
        "{paid}"
    );
    let succeeded = succeeded_event(&old, &store, &order_id);
    assert_webhook_result(
        &path,
        &whsec,
        &succeeded,
        "flagged: paid on an intent the order no longer uses",
    )
    .await;
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["needs_review"].as_bool()),
        (Some("needs_review"), Some(true)),
        "never paid on it, and waiting for a person as the reconciler leaves it: {order}"
    );
    let reason = order["review_reason"].as_str().unwrap();
    assert!(reason.contains(&old) && reason.contains(&new), "{reason}");
    assert_webhook_result(&path, &whsec, &succeeded, "duplicate: already processed").await;
}
