//! Abandoned checkouts end, and no intent of an order stays open in Stripe
//! unseen: against the real emulators (the reconciler runs in process).
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use shared::clock;
use shared::domain::{Mode, PAYING_GRACE_SECS};
use shared::reconcile::{self, Limits, Report};
use system_tests::*;

/// A run ends every abandoned checkout in the table: one test at a time, so
/// each sees its own orders end by its own runs.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn limits() -> Limits {
    Limits {
        max_orders: 5000,
        ..Limits::default()
    }
}

async fn run_at(now: u64) -> Report {
    let app = in_process::service_app().await;
    reconcile::run(app, now, limits()).await.unwrap()
}

/// A checkout session of `ttl` seconds: (order_id, token, expires_at).
async fn session(store: &str, ttl: u64) -> (String, String, u64) {
    let mut body = cart(store);
    body["expires_in"] = ttl.into();
    let (status, session) = create_session(&body).await;
    assert_eq!(status, 201, "{session}");
    (
        session["order_id"].as_str().unwrap().to_owned(),
        token_of(session["checkout_url"].as_str().unwrap()),
        session["expires_at"].as_u64().unwrap(),
    )
}

/// The payment page's call: the intent's id.
async fn page_view(token: &str) -> String {
    let (status, intent) = create_intent(token, "{}").await;
    assert_eq!(status, 200, "{intent}");
    intent_of(intent["client_secret"].as_str().expect("client_secret"))
}

async fn intent_status(secret: &str, intent: &str) -> String {
    let (status, body) = stripe_call(
        secret,
        reqwest::Method::GET,
        &format!("/payment_intents/{intent}"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().unwrap().to_owned()
}

async fn in_index(order_id: &str) -> bool {
    let item = order_item(order_id).await;
    item.contains_key("pending_pk") || item.contains_key("pending_sk")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_checkout_ends_canceled_with_its_intent_cancelled_in_stripe() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret) = connected_store().await;
    let (order_id, token, expires_at) = session(&store, 300).await;
    let intent = page_view(&token).await;

    // The session has ended, but a customer who opened the form just
    // before may still be paying: nothing is cancelled yet.
    run_at(expires_at + 60).await;
    assert_eq!(get_order(&order_id).await["status"], "pending");
    assert_eq!(
        intent_status(&secret, &intent).await,
        "requires_payment_method"
    );

    let report = run_at(expires_at + PAYING_GRACE_SECS + 1).await;
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "canceled", "{order} {report:?}");
    assert_eq!(intent_status(&secret, &intent).await, "canceled");
    assert!(report.canceled >= 1, "{report:?}");
    assert!(
        !in_index(&order_id).await,
        "a final status leaves the index"
    );

    // Nothing reopens it (here the session is still live by the real
    // clock): no new intent is made for a canceled order.
    let (status, body) = create_intent(&token, "{}").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("order_closed")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_never_opened_ends_expired() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, _) = connected_store().await;
    let (order_id, _, expires_at) = session(&store, 300).await;
    assert!(in_index(&order_id).await, "indexed from the start");

    run_at(expires_at + PAYING_GRACE_SECS + 1).await;
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "expired", "{order}");
    assert!(!in_index(&order_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_paid_just_before_it_was_abandoned_is_paid_not_cancelled() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret) = connected_store().await;
    let (order_id, token, expires_at) = session(&store, 300).await;
    let intent = page_view(&token).await;
    let (status, paid) = pay_in_emulator(&secret, &intent, "4242424242424242").await;
    assert_eq!(status, 200, "{paid}");

    // Stripe refuses to cancel a succeeded intent; the refusal pays the order.
    run_at(expires_at + PAYING_GRACE_SECS + 1).await;
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(intent_status(&secret, &intent).await, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_intent_is_cancelled_when_it_is_replaced() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret) = connected_store().await;
    let (order_id, token, _) = session(&store, 3600).await;
    let first = page_view(&token).await;
    // Changed at Stripe so it no longer matches the order: the page makes
    // a new intent instead of handing out this one.
    let (status, body) = stripe_call(
        &secret,
        reqwest::Method::POST,
        &format!("/payment_intents/{first}"),
        &[("metadata[order_id]", "someone-else")],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let second = page_view(&token).await;
    assert_ne!(second, first);
    assert_eq!(
        intent_status(&secret, &first).await,
        "canceled",
        "the replaced intent can no longer be paid"
    );
    assert_eq!(
        intent_status(&secret, &second).await,
        "requires_payment_method"
    );
    let item = order_item(&order_id).await;
    assert!(
        !item.contains_key("intents_to_cancel"),
        "nothing left to cancel: {item:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_intent_that_succeeded_puts_the_order_in_review() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret) = connected_store().await;
    let (order_id, token, _) = session(&store, 3600).await;
    let first = page_view(&token).await;

    // A second intent took its place while Stripe could not be reached to
    // cancel the first: the order lists the first as left to cancel.
    let app = in_process::service_app().await;
    let order = stored_order(app, &order_id).await;
    let (status, second) = stripe_call(
        &secret,
        reqwest::Method::POST,
        "/payment_intents",
        &[
            ("amount", &order.total.minor().to_string()),
            ("currency", "eur"),
            ("metadata[order_id]", &order_id),
            ("metadata[store_id]", &store),
        ],
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let second = second["id"].as_str().unwrap();
    assert!(
        app.table
            .attach_intent(&order, second, 2, Mode::Test, true, clock::now())
            .await
            .unwrap()
    );
    // Meanwhile the customer paid in the tab that still had the first.
    let (status, paid) = pay_in_emulator(&secret, &first, "4242424242424242").await;
    assert_eq!(status, 200, "{paid}");

    let report = run_at(clock::now() + 600).await;
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "needs_review", "{order} {report:?}");
    assert_eq!(order["needs_review"], true, "{order}");
    let reason = order["review_reason"].as_str().unwrap();
    assert!(
        reason.contains(&first) && reason.contains("no longer uses"),
        "{reason}"
    );
    assert!(
        !in_index(&order_id).await,
        "a person decides; no more looks"
    );
    assert!(
        !order_item(&order_id)
            .await
            .contains_key("intents_to_cancel")
    );
}

/// Stripe's sample PaymentIntent as ours: a new EUR intent of `amount`.
fn stripe_intent(id: &str, order_id: &str, store: &str, amount: u64) -> serde_json::Value {
    stripe_object(
        "payment_intent",
        serde_json::json!({"id": id, "amount": amount, "currency": "eur",
               "client_secret": format!("{id}_secret_abc"),
               "metadata": {"order_id": order_id, "store_id": store}}),
    )
}

/// Stripe answers everything but the cancel of the intent being replaced:
/// the page still gets its new intent, and the order keeps the old one on
/// its list for the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_intent_stripe_would_not_cancel_stays_listed_on_the_order() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, _) = connected_store().await;
    let (order_id, _, _) = session(&store, 3600).await;
    let app = in_process::service_app().await;
    let order = stored_order(app, &order_id).await;
    let old = format!("pi_old{}", uuid::Uuid::new_v4().simple());
    assert!(
        app.table
            .attach_intent(&order, &old, 1, Mode::Test, false, clock::now())
            .await
            .unwrap()
    );
    let order = stored_order(app, &order_id).await;

    // Intent ids link to one order for good (`PI#` items): fresh per run.
    let new = format!("pi_new{}", uuid::Uuid::new_v4().simple());
    let stripe = MockServer::start().await;
    // The old intent no longer matches the order: replaced.
    Mock::given(method("GET"))
        .and(path(format!("/v1/payment_intents/{old}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_intent(
            &old,
            "someone-else",
            &store,
            order.total.minor(),
        )))
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_intent(
            &new,
            &order_id,
            &store,
            order.total.minor(),
        )))
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/payment_intents/{old}/cancel")))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&stripe)
        .await;
    let via_mock = in_process::app_with_stripe_at(&stripe.uri()).await;
    let (connection, key) = shared::checkout::merchant_key(&via_mock, &order.store_id)
        .await
        .unwrap();
    let intent = shared::checkout::payment_intent_for(&via_mock, &order, &connection, &key)
        .await
        .unwrap();
    assert_eq!(intent.id, new);

    let order = stored_order(app, &order_id).await;
    assert_eq!(order.payment_intent_id.as_deref(), Some(new.as_str()));
    assert_eq!(order.intents_to_cancel, vec![old]);
}

/// What the reconciler does with such a list once Stripe answers: cancels
/// the old intent, leaves the order waiting on its new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_cancels_a_replaced_intent_left_open() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret) = connected_store().await;
    let (order_id, token, _) = session(&store, 3600).await;
    let first = page_view(&token).await;
    let app = in_process::service_app().await;
    let order = stored_order(app, &order_id).await;
    let (status, second) = stripe_call(
        &secret,
        reqwest::Method::POST,
        "/payment_intents",
        &[
            ("amount", &order.total.minor().to_string()),
            ("currency", "eur"),
            ("metadata[order_id]", &order_id),
            ("metadata[store_id]", &store),
        ],
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let second = second["id"].as_str().unwrap();
    // Replaced while the cancel could not reach Stripe.
    assert!(
        app.table
            .attach_intent(&order, second, 2, Mode::Test, true, clock::now())
            .await
            .unwrap()
    );
    assert_eq!(
        intent_status(&secret, &first).await,
        "requires_payment_method"
    );

    run_at(clock::now() + 600).await;
    assert_eq!(intent_status(&secret, &first).await, "canceled");
    assert_eq!(
        intent_status(&secret, second).await,
        "requires_payment_method"
    );
    let order = stored_order(app, &order_id).await;
    assert!(order.intents_to_cancel.is_empty(), "{order:?}");
    assert_eq!(order.status.as_str(), "pending");
    assert!(in_index(&order_id).await, "still waiting on its new intent");
}
