//! The reconciler settles an order whose webhook never came (nor the
//! customer back from Stripe), against the real emulators.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use shared::clock;
use shared::reconcile::{self, Limits};
use system_tests::*;

/// A run settles every stale order in the table, so one test's run would
/// pay another test's order before that test looked: one at a time.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_paid_in_stripe_without_any_webhook_is_settled() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret) = connected_store().await;
    let (order_id, _) = paid_in_stripe(&store, &secret).await;
    assert_eq!(get_order(&order_id).await["status"], "pending");
    let app = in_process::service_app().await;

    // Too young: left to the webhook.
    let young = reconcile::run(
        app,
        clock::now(),
        Limits {
            max_orders: 1000,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(get_order(&order_id).await["status"], "pending", "{young:?}");

    // Bounded work: one order per run when asked.
    let later = clock::now() + 600;
    let one = reconcile::run(
        app,
        later,
        Limits {
            max_orders: 1,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    assert!(one.examined <= 1, "{one:?}");

    // Two runs at once: both may look, the order is paid once.
    let limits = Limits {
        max_orders: 1000,
        ..Limits::default()
    };
    let (a, b) = tokio::join!(
        reconcile::run(app, later, limits),
        reconcile::run(app, later, limits)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "paid", "{a:?} {b:?}");
    assert!(order["paid_at"].as_str().is_some());

    // Settled orders leave the sparse index, so no later run asks about them.
    let item = dynamodb()
        .await
        .get_item()
        .table_name(env("TABLE_NAME"))
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ORDER#{order_id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(
        !item.contains_key("pending_pk") && !item.contains_key("pending_sk"),
        "{item:?}"
    );

    // A store without a webhook secret is told so.
    let status = internal_status(&store).await;
    assert_eq!(
        status["webhook_health"]["status"], "not_configured",
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_parked_before_the_payment_applies_when_the_reconciler_finds_it_paid() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent) = paid_in_stripe(&store, &secret).await;
    // The refund's event came; the payment's never will.
    let refund = stripe_event(
        &evt_id(),
        "charge.refunded",
        false,
        json!({"id": "ch_1", "object": "charge", "payment_intent": intent, "amount": 2999, "amount_refunded": 1000}),
    );
    assert_webhook_result(
        &format!("/webhook/stripe/{store}"),
        &whsec,
        &refund,
        "parked: applies once the order is paid",
    )
    .await;

    let app = in_process::service_app().await;
    let limits = Limits {
        max_orders: 1000,
        ..Limits::default()
    };
    reconcile::run(app, clock::now() + 600, limits)
        .await
        .unwrap();
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["amount_refunded"].as_u64()),
        (Some("partially_refunded"), Some(1000)),
        "paid by asking Stripe, then the waiting refund: {order}"
    );
}
