//! What one payment costs in KMS calls and DynamoDB requests, counted on the
//! clients themselves (`shared::testing::counting`) and asserted to be
//! exactly the figures BENCHMARKS.md documents ("What one payment costs"):
//! more is a regression; fewer means the document is out of date. Each
//! function runs in containers of its own, so create-intent and the webhook
//! each get a fresh app (empty data-key cache, no remembered connection), as
//! after a cold start, and every store's first call pays the cold costs.
// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use lambda_http::{Body, RequestExt};
use shared::config::Config;
use shared::domain::{OrderStatus, StoreId};
use shared::testing::counting::{CountedApp, Counts};
use shared::webhooks::{self, Outcome};
use std::collections::HashMap;
use system_tests::*;

const STORES: usize = 2;
const ORDERS_PER_STORE: usize = 3;

/// create-intent, first call for an order: the session, the order and the
/// store's connection read, then one transaction attaching the intent.
const CREATE: &[(&str, u64)] = &[("GetItem", 3), ("TransactWriteItems", 1)];
/// create-intent again for that order (reload, double click): the same
/// three reads and one write spending one of the order's Stripe reads
/// (`MAX_INTENT_READS`); the intent is read from Stripe and reused.
const REUSE: &[(&str, u64)] = &[("GetItem", 3), ("UpdateItem", 1)];
/// `payment_intent.succeeded`, first delivery: the order's read (is the
/// event new, does the order await a payment), then Stripe is asked, then
/// one conditional write pays the order and records the event.
const SUCCEEDED: &[(&str, u64)] = &[("GetItem", 1), ("UpdateItem", 1)];
/// The same event delivered again: the order's read finds it recorded.
const DUPLICATE: &[(&str, u64)] = &[("GetItem", 1)];
/// What a store's first delivery to a container adds: the connection's
/// read (remembered 30 s) and the note of the store's last webhook (at most
/// one a minute).
const STORE_FIRST_DELIVERY: &[(&str, u64)] = &[("GetItem", 1), ("UpdateItem", 1)];
/// KMS per store and container: create-intent opens the store's secret key
/// once (then the data key is cached); the webhook opens the signing secret
/// and, to ask Stripe, the secret key, once each.
const KMS_CREATE_PER_STORE: u64 = 1;
const KMS_WEBHOOK_PER_STORE: u64 = 2;

fn expected(parts: &[&[(&str, u64)]]) -> Counts {
    let mut dynamodb = std::collections::BTreeMap::new();
    for part in parts {
        for (op, n) in *part {
            *dynamodb.entry(op.to_string()).or_insert(0) += n;
        }
    }
    Counts { kms: 0, dynamodb }
}

/// `what` made exactly the documented DynamoDB requests.
fn assert_requests(what: &str, counted: &Counts, documented: &[&[(&str, u64)]]) {
    assert_eq!(
        counted.dynamodb,
        expected(documented).dynamodb,
        "{what}: DynamoDB requests by operation (left: counted, right: documented in \
         BENCHMARKS.md, \"What one payment costs\")"
    );
}

fn create_intent_request(token: &str) -> lambda_http::Request {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("{}/checkout/{token}/payment-intent", base_url()))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    req.with_path_parameters(HashMap::from([("token".to_owned(), token.to_owned())]))
}

/// Calls create-intent in process; returns its client secret.
async fn create_intent_in(app: &CountedApp, token: &str) -> String {
    let response = create_intent::handler::handle(&app.app, create_intent_request(token))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    body["client_secret"].as_str().unwrap().to_owned()
}

struct Payment {
    store: String,
    whsec: String,
    order_id: String,
    token: String,
    intent: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_makes_exactly_the_documented_kms_calls_and_dynamodb_requests() {
    let mut payments = Vec::new();
    let mut secrets = HashMap::new();
    for _ in 0..STORES {
        let (store, secret, whsec) = connected_store_with_webhook().await;
        for _ in 0..ORDERS_PER_STORE {
            let (status, session) = create_session(&cart(&store)).await;
            assert_eq!(status, 201, "{session}");
            payments.push(Payment {
                store: store.clone(),
                whsec: whsec.clone(),
                order_id: session["order_id"].as_str().unwrap().to_owned(),
                token: token_of(session["checkout_url"].as_str().unwrap()),
                intent: String::new(),
            });
        }
        secrets.insert(store, secret);
    }
    // create-intent, in a fresh container.
    let config = Config::from_env().unwrap();
    let create = CountedApp::new(config.clone()).await;
    let start = create.counts();
    for payment in &mut payments {
        let before = create.counts();
        let client_secret = create_intent_in(&create, &payment.token).await;
        assert_requests(
            "create-intent, first call",
            &create.counts().since(&before),
            &[CREATE],
        );
        payment.intent = intent_of(&client_secret);
        let before = create.counts();
        assert_eq!(
            create_intent_in(&create, &payment.token).await,
            client_secret
        );
        let again = create.counts().since(&before);
        assert_requests("create-intent, again", &again, &[REUSE]);
        assert_eq!(again.kms, 0, "the data key is cached");
    }
    assert_eq!(
        create.counts().since(&start).kms,
        KMS_CREATE_PER_STORE * STORES as u64,
        "create-intent's KMS calls, one cold container"
    );

    // The customers pay; Stripe sends `payment_intent.succeeded`, twice.
    for payment in &payments {
        let (status, paid) = pay_in_emulator(
            &secrets[&payment.store],
            &payment.intent,
            "4242424242424242",
        )
        .await;
        assert_eq!(status, 200, "{paid}");
    }
    let webhook = CountedApp::new(config).await;
    let start = webhook.counts();
    let mut stores_seen = Vec::new();
    for payment in &payments {
        let payload = succeeded_event(&payment.intent, &payment.store, &payment.order_id);
        let signature = stripe_signature(&payment.whsec, &payload, shared::clock::now());
        let store_id = StoreId::parse(&payment.store).unwrap();
        let deliver = || {
            webhooks::process(
                &webhook.app,
                &webhook.webhook_memory,
                Some(store_id),
                Some(&signature),
                payload.as_bytes(),
            )
        };

        let before = webhook.counts();
        let outcome = deliver().await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Applied { to: "paid", .. }),
            "{outcome:?}"
        );
        let first = webhook.counts().since(&before);
        if stores_seen.contains(&payment.store) {
            assert_requests("succeeded", &first, &[SUCCEEDED]);
        } else {
            stores_seen.push(payment.store.clone());
            assert_requests(
                "succeeded, the store's first delivery",
                &first,
                &[SUCCEEDED, STORE_FIRST_DELIVERY],
            );
        }

        let before = webhook.counts();
        assert_eq!(deliver().await.unwrap(), Outcome::Duplicate);
        let again = webhook.counts().since(&before);
        assert_requests("succeeded, delivered again", &again, &[DUPLICATE]);
        assert_eq!(again.kms, 0);

        let order = webhook
            .app
            .table
            .get_order(&order_id_of(&payment.order_id))
            .await;
        assert_eq!(order.unwrap().unwrap().status, OrderStatus::Paid);
    }
    assert_eq!(
        webhook.counts().since(&start).kms,
        KMS_WEBHOOK_PER_STORE * STORES as u64,
        "the webhook's KMS calls, one cold container"
    );
}
