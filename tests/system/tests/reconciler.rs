//! The reconciler settles an order whose webhook never came (nor the
//! customer back from Stripe), against the real emulators.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use shared::checkout::{self, PaymentState};
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
    // Unless a thousand older due orders (left on this stack by earlier
    // runs) kept both from reaching it: then a later run does.
    reconcile_until_settled(app, later, limits, &order_id).await;
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "paid", "{a:?} {b:?}");
    assert!(order["paid_at"].as_str().is_some());

    // Settled orders leave the sparse index, so no later run asks about them.
    let item = order_item(&order_id).await;
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
    let refund = refund_event(&intent, 1000);
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
    reconcile_until_settled(app, clock::now() + 600, limits, &order_id).await;
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["amount_refunded"].as_u64()),
        (Some("partially_refunded"), Some(1000)),
        "paid by asking Stripe, then the waiting refund: {order}"
    );
}

/// Fails every DynamoDB request about a parked event, as a DynamoDB that
/// throttles or times out just then would.
#[derive(Debug)]
struct ParkedEventWritesFail;

impl Intercept for ParkedEventWritesFail {
    fn name(&self) -> &'static str {
        "ParkedEventWritesFail"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        if body.windows(b"parked:".len()).any(|w| w == b"parked:") {
            return Err("injected: DynamoDB did not answer".into());
        }
        Ok(())
    }
}

/// The checkout's return page and the reconciler record a payment Stripe's
/// API reports and then release what waited for it. A failure in the
/// release must not fail the page (a customer who sees an error after
/// paying may pay again) nor lose the parked event: Stripe's delivery of
/// `succeeded`, which comes later, releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_neither_fails_the_payment_nor_loses_the_parked_refund() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let (store, secret, whsec) = connected_store_with_webhook().await;
    let (order_id, intent_id) = paid_in_stripe(&store, &secret).await;
    let refund = refund_event(&intent_id, 1000);
    let path = format!("/webhook/stripe/{store}");
    assert_webhook_result(
        &path,
        &whsec,
        &refund,
        "parked: applies once the order is paid",
    )
    .await;

    let failing = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws().await)
            .interceptor(ParkedEventWritesFail)
            .build(),
    );
    let app = in_process::app_with_dynamodb(failing).await;
    let order = stored_order(&app, &order_id).await;
    let (_, key) = checkout::merchant_key(&app, &order.store_id).await.unwrap();
    let intent = app.stripe.retrieve_intent(&key, &intent_id).await.unwrap();
    let state =
        checkout::apply_intent(&app, &order, &intent, shared::metrics::PaidVia::Return).await;
    assert_eq!(state.unwrap(), PaymentState::Paid);
    let order = get_order(&order_id).await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(parked_attributes(&order_id).await.len(), 1, "still waiting");

    assert_webhook_result(
        &path,
        &whsec,
        &succeeded_event(&intent_id, &store, &order_id),
        "no change: order does not allow this change",
    )
    .await;
    let order = get_order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["amount_refunded"].as_u64()),
        (Some("partially_refunded"), Some(1000)),
        "released by the delivery of succeeded: {order}"
    );
    assert_eq!(parked_attributes(&order_id).await, Vec::<String>::new());
}

/// Every order in the index due by `now`, across all shards.
async fn due_by(app: &shared::App, now: u64) -> Vec<String> {
    let mut all = Vec::new();
    for partition in shared::store::pending_partitions() {
        let mut after: Option<String> = None;
        loop {
            let page = app
                .table
                .due_pending_orders(&partition, now, after.as_deref(), 1000)
                .await
                .unwrap();
            after = page.orders.last().map(|o| o.sort_key.clone());
            all.extend(page.orders.into_iter().map(|o| o.order_id.to_string()));
            if !page.more || after.is_none() {
                break;
            }
        }
    }
    all
}

/// The measurement, small: hundreds of abandoned checkouts used to
/// fill every run's budget, so a paid order whose webhook never came was
/// never looked at. Now every order due is examined within
/// ceil(waiting / budget) runs, and the paid ones are paid by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_orders_behind_hundreds_of_abandoned_checkouts_are_reached_within_the_bound() {
    let _alone = ONE_RUN_AT_A_TIME.lock().await;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(connected_store().await);
    }
    // 300 checkouts whose customers looked at the payment page and left.
    let app = in_process::service_app().await;
    let mut merchants = Vec::new();
    for (store, _) in &stores {
        let store = shared::domain::StoreId::parse(store).unwrap();
        merchants.push(checkout::merchant_key(app, &store).await.unwrap());
    }
    let merchants = std::sync::Arc::new(merchants);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let merchants = merchants.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (worker..300).step_by(8) {
                let (connection, key) = &merchants[i % merchants.len()];
                made.push(abandoned_checkout(app, connection, key).await);
            }
            made
        }));
    }
    let mut abandoned = Vec::new();
    for task in tasks {
        abandoned.extend(task.await.unwrap());
    }
    // Ten paid in Stripe whose webhooks never came.
    let mut paid = Vec::new();
    for i in 0..10 {
        let (store, secret) = &stores[i % stores.len()];
        paid.push(paid_in_stripe(store, secret).await.0);
    }

    let started = std::time::Instant::now();
    let first_run = clock::now() + 600;
    let waiting = due_by(app, first_run).await;
    for order in abandoned.iter().chain(&paid) {
        assert!(waiting.contains(order), "{order} is due at the first run");
    }
    let budget = 40;
    let bound = waiting.len().div_ceil(budget);
    let limits = Limits {
        max_orders: budget,
        ..Limits::default()
    };
    let mut all_paid_after = None;
    for run in 1..=bound {
        let report = reconcile::run(app, first_run + 300 * (run as u64 - 1), limits)
            .await
            .unwrap();
        assert_eq!(
            report.examined,
            budget.min(report.examined + report.unexamined),
            "{report:?}"
        );
        let mut unpaid = 0;
        for order in &paid {
            if get_order(order).await["status"] != "paid" {
                unpaid += 1;
            }
        }
        if unpaid == 0 && all_paid_after.is_none() {
            all_paid_after = Some(run);
        }
    }
    let runs = all_paid_after.unwrap_or_else(|| {
        panic!(
            "not every paid order was paid within {bound} runs of {budget} ({} waiting)",
            waiting.len()
        )
    });
    eprintln!(
        "{} waiting, budget {budget}: the 10 paid orders were paid after {runs} runs (bound {bound}); {bound} runs took {:?}",
        waiting.len(),
        started.elapsed()
    );
    // And every abandoned checkout was looked at too, and moved back.
    for order in &abandoned {
        let item = order_item(order).await;
        assert!(
            item.contains_key("reconcile_checks"),
            "{order} never examined"
        );
        assert_eq!(get_order(order).await["status"], "pending");
    }
}
