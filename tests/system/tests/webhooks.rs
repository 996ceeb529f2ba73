//! Stripe webhooks over real HTTP: a real delivery from the Stripe emulator,
//! and events we sign ourselves for what the emulator cannot send (refunds,
//! disputes, replays, forgeries).
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::time::Duration;
use system_tests::*;

/// Polls until the order is `status`, for up to 30 s: the emulator delivers
/// about a second after the payment, and a slow first run must not fail.
async fn wait_for_status(order_id: &str, status: &str) -> Value {
    for _ in 0..300 {
        let order = get_order(order_id).await;
        if order["status"] == status {
            return order;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "order {order_id} never became {status}: {}",
        get_order(order_id).await
    );
}

#[tokio::test]
async fn a_real_delivery_from_the_stripe_emulator_pays_the_order() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    // Register our per-store URL with the emulator, as auto-registration
    // does with real Stripe.
    let hook = format!("{}_config/webhooks/{}", env("STRIPE_API_BASE"), key_body());
    let response = http()
        .post(hook)
        .json(&json!({"url": format!("{}/webhook/stripe/{store}", base_url()), "secret": whsec, "events": ["payment_intent.succeeded"]}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );

    let (order_id, _) = paid_in_stripe(&store, &secret).await;
    let order = wait_for_status(&order_id, "paid").await;
    assert!(order["paid_at"].as_str().is_some());

    // The delivery's bookkeeping lands after the write that paid the order
    // (in the same request, but later): wait for it rather than race it.
    let mut status = internal_status(&store).await;
    for _ in 0..300 {
        if status["last_webhook_at"].as_str().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = internal_status(&store).await;
    }
    assert!(status["last_webhook_at"].as_str().is_some(), "{status}");
}

#[tokio::test]
async fn refunds_and_disputes_move_a_paid_order_and_never_backwards() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = format!("/webhook/stripe/{store}");

    let succeeded = succeeded_event(&intent, &store, &order_id);
    let (status, body) = deliver_signed(&path, &whsec, &succeeded).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_order(&order_id).await["status"], "paid");

    // The same event again: acknowledged, nothing changes.
    assert_webhook_result(&path, &whsec, &succeeded, "duplicate: already processed").await;

    // A late payment_failed never undoes paid.
    let mut failed_object = intent_object(&intent, &store, &order_id, 2999);
    failed_object["status"] = json!(intent_status("payment_intent.payment_failed"));
    failed_object["last_payment_error"] = json!({"message": "Your card was declined."});
    let failed = stripe_event(
        &evt_id(),
        "payment_intent.payment_failed",
        false,
        failed_object,
    );
    let (status, _) = deliver_signed(&path, &whsec, &failed).await;
    assert_eq!(status, 200);
    assert_eq!(get_order(&order_id).await["status"], "paid");

    let charge = |refunded: u64| charge_object(&intent, refunded);
    let dispute = |status: &str| dispute_object(&intent, status);
    for (kind, object, expected) in [
        (
            "charge.dispute.created",
            dispute("needs_response"),
            "disputed",
        ),
        ("charge.dispute.closed", dispute("won"), "paid"),
        ("charge.refunded", charge(1000), "partially_refunded"),
        ("charge.refunded", charge(2999), "refunded"),
        // Nothing leaves refunded.
        (
            "charge.dispute.created",
            dispute("needs_response"),
            "refunded",
        ),
    ] {
        let payload = stripe_event(&evt_id(), kind, false, object);
        // Charges and disputes carry no metadata of ours: use the shared URL,
        // which finds the store through the PaymentIntent link.
        let (status, body) = deliver_signed("/webhook/stripe", &whsec, &payload).await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(get_order(&order_id).await["status"], expected, "{kind}");
    }
}

#[tokio::test]
async fn a_lost_dispute_is_lost() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = format!("/webhook/stripe/{store}");
    for (kind, object) in [
        (
            "payment_intent.succeeded",
            intent_object(&intent, &store, &order_id, 2999),
        ),
        (
            "charge.dispute.created",
            dispute_object(&intent, "needs_response"),
        ),
        ("charge.dispute.closed", dispute_object(&intent, "lost")),
    ] {
        let payload = stripe_event(&evt_id(), kind, false, object);
        assert_eq!(
            deliver_signed(&path, &whsec, &payload).await.0,
            200,
            "{kind}"
        );
    }
    assert_eq!(get_order(&order_id).await["status"], "lost");
}

#[tokio::test]
async fn forged_misdirected_and_mismatched_events_change_nothing() {
    let (store_a, secret_a, whsec_a) = connected_store_with_webhook().await;
    let (store_b, _, whsec_b) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store_a, &secret_a).await;
    let now = shared::clock::now();
    let succeeded = succeeded_event(&intent, &store_a, &order_id);

    // A merchant who pasted their own signing secret can sign anything: the
    // event's metadata must not reach another store's order.
    let forged_for_b = succeeded_event(&intent, &store_b, &order_id);
    let dispute_via_b = stripe_event(
        &evt_id(),
        "charge.dispute.created",
        false,
        dispute_object(&intent, "needs_response"),
    );

    let cases = [
        (
            "signed with store B's secret",
            format!("/webhook/stripe/{store_a}"),
            succeeded.clone(),
            stripe_signature(&whsec_b, &succeeded, now),
            "invalid_signature",
        ),
        (
            "stale timestamp",
            format!("/webhook/stripe/{store_a}"),
            succeeded.clone(),
            stripe_signature(&whsec_a, &succeeded, now - 301),
            "invalid_signature",
        ),
        (
            "tampered body",
            format!("/webhook/stripe/{store_a}"),
            succeeded.replace("2999", "1"),
            stripe_signature(&whsec_a, &succeeded, now),
            "invalid_signature",
        ),
        (
            "no signature",
            format!("/webhook/stripe/{store_a}"),
            succeeded.clone(),
            String::new(),
            "invalid_signature",
        ),
    ];
    for (what, path, payload, signature, code) in cases {
        let (status, body) = deliver(&path, &payload, &signature).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{what}: {body}"
        );
    }
    // Verified with store B's secret (B's endpoint on an account A shares,
    // or B's merchant signing anything): B's own news, and A's payment is
    // not B's to change. Acknowledged, so Stripe does not retry it for days.
    for (what, payload) in [
        ("A's payment", succeeded.clone()),
        ("metadata naming A's order", forged_for_b.clone()),
        ("A's dispute (found by the intent)", dispute_via_b.clone()),
    ] {
        let (status, body) = deliver(
            &format!("/webhook/stripe/{store_b}"),
            &payload,
            &stripe_signature(&whsec_b, &payload, now),
        )
        .await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("no change: payment belongs to another store")),
            "store B's URL and secret for {what}: {body}"
        );
    }
    assert_eq!(
        get_order(&order_id).await["status"],
        "pending",
        "nothing above changed the order"
    );

    // Signature failures, and no delivery verified: BMOS's view of the
    // store says the secret is probably wrong.
    let status = internal_status(&store_a).await;
    assert_eq!(status["webhook_health"]["status"], "attention", "{status}");
    assert!(
        status["webhook_health"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("failed verification"),
        "{status}"
    );

    // Right store and secret, but a live event for the test order: verified,
    // and of the other mode than the order, so it changes nothing.
    let live = stripe_event(
        &evt_id(),
        "payment_intent.succeeded",
        true,
        intent_object(&intent, &store_a, &order_id, 2999),
    );
    let (status, body) = deliver(
        &format!("/webhook/stripe/{store_a}"),
        &live,
        &stripe_signature(&whsec_a, &live, now),
    )
    .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (
            200,
            Some("no change: event is of another mode than the order")
        ),
        "a live event for a test order: {body}"
    );
    // Right store and secret, and an amount the event gets wrong: the order
    // is paid on what Stripe says of the intent, not on the event's word
    // (Stripe's own amount differing is flagged: webhook_trust.rs).
    let short = stripe_event(
        &evt_id(),
        "payment_intent.succeeded",
        false,
        intent_object(&intent, &store_a, &order_id, 1),
    );
    let (status, body) = deliver(
        &format!("/webhook/stripe/{store_a}"),
        &short,
        &stripe_signature(&whsec_a, &short, now),
    )
    .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("applied: order is now paid")),
        "{body}"
    );
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["needs_review"].as_bool()),
        (Some("paid"), Some(false)),
        "{order}"
    );

    // A delivery verified since: the secret works, the failures were not
    // Stripe's (see shared::webhooks::health::signatures_failing).
    let status = internal_status(&store_a).await;
    assert_eq!(status["webhook_health"]["status"], "ok", "{status}");
}

#[tokio::test]
async fn metadata_only_hints_at_the_order_the_intent_decides() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let (other_order, _) = paid_in_stripe(&store, &secret).await;
    let path = format!("/webhook/stripe/{store}");

    // An intent we never made, named to an order by another integration on
    // the merchant's account, or to one of ours: not ours, nothing changes.
    for named in [
        "5d9e7c1a-0000-4000-8000-00000000dead".to_owned(),
        other_order.clone(),
    ] {
        let foreign = stripe_event(
            &evt_id(),
            "payment_intent.succeeded",
            false,
            intent_object("pi_not_made_by_us", &store, &named, 2999),
        );
        let (status, body) = deliver_signed(&path, &whsec, &foreign).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("no change: payment intent not made by us")),
            "{named}"
        );
    }
    assert_eq!(get_order(&other_order).await["status"], "pending");

    // Metadata edited in the dashboard to name a missing order, another
    // order of the store, or another store's order: the intent's own order
    // is paid, and only it.
    let (other_store, other_secret, _) = connected_store_with_webhook().await;
    let (other_stores_order, _) = paid_in_stripe(&other_store, &other_secret).await;
    for named in [
        "5d9e7c1a-0000-4000-8000-00000000beef".to_owned(),
        other_order.clone(),
        other_stores_order.clone(),
    ] {
        let (order_id, intent) = paid_in_stripe(&store, &secret).await;
        let edited = succeeded_event(&intent, &store, &named);
        let (status, body) = deliver_signed(&path, &whsec, &edited).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("applied: order is now paid")),
            "{named}: {body}"
        );
        assert_eq!(get_order(&order_id).await["status"], "paid", "{named}");
        // Delivered again: a duplicate, found on the intent's order.
        let (status, body) = deliver_signed(&path, &whsec, &edited).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (200, Some("duplicate: already processed")),
            "{named}"
        );
    }
    assert_eq!(get_order(&other_order).await["status"], "pending");
    assert_eq!(get_order(&other_stores_order).await["status"], "pending");

    // And the plain case: metadata naming the intent's order.
    let paid = succeeded_event(&intent, &store, &order_id);
    let (status, body) = deliver_signed(&path, &whsec, &paid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_order(&order_id).await["status"], "paid");
}

#[tokio::test]
async fn news_of_a_replaced_intent_leaves_the_order_to_its_new_one() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (status, session) = create_session(&cart(&store)).await;
    assert_eq!(status, 201, "{session}");
    let token = token_of(session["checkout_url"].as_str().unwrap());
    let order_id = session["order_id"].as_str().unwrap().to_owned();
    let intent_of =
        |reply: &Value| intent_of(reply["client_secret"].as_str().expect("client_secret"));
    let (status, first) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{first}");
    let old = intent_of(&first);
    // Canceled in Stripe (say from the dashboard): the next visit replaces it.
    let (status, canceled) = stripe_call(
        &secret,
        reqwest::Method::POST,
        &format!("/payment_intents/{old}/cancel"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{canceled}");
    let (status, second) = create_intent(&token, "{}").await;
    assert_eq!(status, 200, "{second}");
    let new = intent_of(&second);
    assert_ne!(old, new);

    // The old intent's cancellation, delivered late, names the same order.
    let path = format!("/webhook/stripe/{store}");
    let late = intent_event("payment_intent.canceled", &old, &store, &order_id, 2999);
    assert_webhook_result(
        &path,
        &whsec,
        &late,
        "no change: intent was replaced on the order",
    )
    .await;
    let (status, body) = deliver_signed(&path, &whsec, &late).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("duplicate: already processed")),
        "recorded on the order"
    );
    assert_eq!(get_order(&order_id).await["status"], "pending");

    // Paid in Stripe, which the webhook confirms before it pays the order.
    let (status, charged) = pay_in_emulator(&secret, &new, "4242424242424242").await;
    assert_eq!(status, 200, "{charged}");
    let paid = succeeded_event(&new, &store, &order_id);
    assert_webhook_result(&path, &whsec, &paid, "applied: order is now paid").await;
}

/// An event Stripe created at `created` (seconds), to deliver out of order.
fn event_at(kind: &str, created: u64, object: Value) -> String {
    stripe_event_at(&evt_id(), kind, false, created, object)
}

#[tokio::test]
async fn a_refund_that_arrives_before_the_payment_waits_on_the_order_and_applies_with_it() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = "/webhook/stripe";
    let refund = refund_event(&intent, 1000);

    // Acknowledged (Stripe would otherwise retry for hours) and recorded.
    assert_webhook_result(
        path,
        &whsec,
        &refund,
        "parked: applies once the order is paid",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "pending");
    assert_webhook_result(path, &whsec, &refund, "duplicate: already processed").await;

    let succeeded = succeeded_event(&intent, &store, &order_id);
    assert_webhook_result(path, &whsec, &succeeded, "applied: order is now paid").await;
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["amount_refunded"].as_u64()),
        (Some("partially_refunded"), Some(1000)),
        "the waiting refund applied with the payment: {order}"
    );
    assert_webhook_result(path, &whsec, &succeeded, "duplicate: already processed").await;

    // Later refunds apply as usual, and the parked one never again.
    let rest = refund_event(&intent, 2999);
    assert_webhook_result(path, &whsec, &rest, "applied: order is now refunded").await;
    assert_webhook_result(path, &whsec, &refund, "duplicate: already processed").await;
    assert_eq!(get_order(&order_id).await["amount_refunded"], 2999);
}

#[tokio::test]
async fn a_whole_dispute_delivered_before_the_payment_plays_out_when_it_lands() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = format!("/webhook/stripe/{store}");
    // Stripe made these in this order; they arrive the other way round.
    let created = event_at(
        "charge.dispute.created",
        1_700_000_100,
        dispute_object(&intent, "needs_response"),
    );
    let closed = event_at(
        "charge.dispute.closed",
        1_700_000_200,
        dispute_object(&intent, "lost"),
    );
    assert_webhook_result(
        &path,
        &whsec,
        &closed,
        "parked: applies once the order is disputed",
    )
    .await;
    assert_webhook_result(
        &path,
        &whsec,
        &created,
        "parked: applies once the order is paid",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "pending");

    let succeeded = succeeded_event(&intent, &store, &order_id);
    assert_webhook_result(&path, &whsec, &succeeded, "applied: order is now paid").await;
    assert_eq!(
        get_order(&order_id).await["status"],
        "lost",
        "paid, then disputed, then lost, each in Stripe's order"
    );
    for payload in [&closed, &created] {
        assert_webhook_result(&path, &whsec, payload, "duplicate: already processed").await;
    }
}

#[tokio::test]
async fn a_closure_waiting_for_a_dispute_the_order_never_reaches_changes_nothing() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = "/webhook/stripe";
    let succeeded = succeeded_event(&intent, &store, &order_id);
    assert_webhook_result(path, &whsec, &succeeded, "applied: order is now paid").await;
    // A won closure asks for `paid` too, but only from `disputed`.
    let closed = stripe_event(
        &evt_id(),
        "charge.dispute.closed",
        false,
        dispute_object(&intent, "won"),
    );
    assert_webhook_result(
        path,
        &whsec,
        &closed,
        "parked: applies once the order is disputed",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "paid");

    let refund = refund_event(&intent, 2999);
    assert_webhook_result(path, &whsec, &refund, "applied: order is now refunded").await;
    // Refunded is final: the dispute cannot begin, so its closure never applies.
    let created = stripe_event(
        &evt_id(),
        "charge.dispute.created",
        false,
        dispute_object(&intent, "needs_response"),
    );
    assert_webhook_result(
        path,
        &whsec,
        &created,
        "no change: order does not allow this change",
    )
    .await;
    assert_webhook_result(path, &whsec, &closed, "duplicate: already processed").await;
    assert_eq!(get_order(&order_id).await["status"], "refunded");
}

#[tokio::test]
async fn a_partly_refunded_order_can_still_be_disputed_and_its_early_closure_waits() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = "/webhook/stripe";
    let succeeded = succeeded_event(&intent, &store, &order_id);
    assert_webhook_result(path, &whsec, &succeeded, "applied: order is now paid").await;
    let refund = refund_event(&intent, 1000);
    assert_webhook_result(
        path,
        &whsec,
        &refund,
        "applied: order is now partially_refunded",
    )
    .await;

    // The closure overtakes the dispute: it must wait, not be judged final.
    let closed = stripe_event(
        &evt_id(),
        "charge.dispute.closed",
        false,
        dispute_object(&intent, "lost"),
    );
    assert_webhook_result(
        path,
        &whsec,
        &closed,
        "parked: applies once the order is disputed",
    )
    .await;
    // A redelivered payment finds the closure still not ready.
    assert_webhook_result(path, &whsec, &succeeded, "duplicate: already processed").await;
    assert_eq!(get_order(&order_id).await["status"], "partially_refunded");

    let created = stripe_event(
        &evt_id(),
        "charge.dispute.created",
        false,
        dispute_object(&intent, "needs_response"),
    );
    assert_webhook_result(path, &whsec, &created, "applied: order is now disputed").await;
    assert_eq!(get_order(&order_id).await["status"], "lost", "as at Stripe");
}

#[tokio::test]
async fn a_won_disputes_closure_delivered_again_is_a_duplicate_not_parked() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let path = format!("/webhook/stripe/{store}");
    let dispute = |status: &str| dispute_object(&intent, status);
    let closed = stripe_event(&evt_id(), "charge.dispute.closed", false, dispute("won"));
    for payload in [
        succeeded_event(&intent, &store, &order_id),
        stripe_event(
            &evt_id(),
            "charge.dispute.created",
            false,
            dispute("needs_response"),
        ),
        closed.clone(),
    ] {
        let (status, body) = deliver_signed(&path, &whsec, &payload).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(get_order(&order_id).await["status"], "paid");
    // Back at paid, the order looks as if the dispute had not begun; the
    // redelivered closure must still be known as applied, or it would be
    // parked again to wait for a dispute that is over.
    assert_webhook_result(&path, &whsec, &closed, "duplicate: already processed").await;
}

#[tokio::test]
async fn older_news_delivered_late_does_not_override_newer() {
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");
    let now = shared::clock::now();
    let send = |payload: String| {
        let (path, whsec) = (path.clone(), whsec.clone());
        async move { deliver_signed(&path, &whsec, &payload).await }
    };

    // Refund totals: the larger, newer one arrives first and stays.
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let intent_event = |kind: &str, created: u64| {
        let mut object = intent_object(&intent, &store, &order_id, 2999);
        object["status"] = json!(intent_status(kind));
        object["last_payment_error"] = json!({"message": "Your card was declined."});
        event_at(kind, created, object)
    };
    assert_eq!(
        send(intent_event("payment_intent.succeeded", now)).await.0,
        200
    );
    let (status, body) = send(event_at(
        "charge.refunded",
        now,
        charge_object(&intent, 2000),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_webhook_result(
        &path,
        &whsec,
        &event_at("charge.refunded", now - 60, charge_object(&intent, 1000)),
        "no change: an older refund total",
    )
    .await;
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["amount_refunded"].as_u64()),
        (Some("partially_refunded"), Some(2000)),
        "{order}"
    );

    // A SEPA-like payment: it failed, and the earlier `processing` comes
    // last. The order stays failed; a later attempt's `processing` moves it.
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let intent_event = |kind: &str, created: u64| {
        let mut object = intent_object(&intent, &store, &order_id, 2999);
        object["status"] = json!(intent_status(kind));
        object["last_payment_error"] = json!({"message": "The account has insufficient funds."});
        event_at(kind, created, object)
    };
    assert_webhook_result(
        &path,
        &whsec,
        &intent_event("payment_intent.payment_failed", now - 100),
        "applied: order is now failed",
    )
    .await;
    assert_webhook_result(
        &path,
        &whsec,
        &intent_event("payment_intent.processing", now - 200),
        "no change: older than the payment state the order shows",
    )
    .await;
    assert_eq!(get_order(&order_id).await["status"], "failed");
    assert_webhook_result(
        &path,
        &whsec,
        &intent_event("payment_intent.processing", now - 50),
        "applied: order is now processing",
    )
    .await;
    // Stripe may cancel what it was processing.
    assert_webhook_result(
        &path,
        &whsec,
        &intent_event("payment_intent.canceled", now - 10),
        "applied: order is now canceled",
    )
    .await;
}

#[tokio::test]
async fn a_replaced_signing_secret_is_used_at_once_by_a_warm_container() {
    let (store, secret, old_whsec) = connected_store_with_webhook().await;
    let path = format!("/webhook/stripe/{store}");
    // The container has now verified with the old secret (and remembers
    // the store's connection).
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    let processing = intent_event(
        "payment_intent.processing",
        &intent,
        &store,
        &order_id,
        2999,
    );
    let (status, body) = deliver_signed(&path, &old_whsec, &processing).await;
    assert_eq!(status, 200, "{body}");

    let new_whsec = format!("whsec_{}", key_body());
    let response = put_webhook_secret(&store, &new_whsec).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    let succeeded = succeeded_event(&intent, &store, &order_id);
    // The container still remembers the old secret (for up to
    // `CONNECTION_TTL`, see shared::webhooks::memory); failing with it, it
    // reads the store again instead of turning the delivery away.
    assert_webhook_result(&path, &new_whsec, &succeeded, "applied: order is now paid").await;
}
