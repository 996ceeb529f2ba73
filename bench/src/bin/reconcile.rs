//! The reconciler at volume (issue 14), against the local stack: 10,000
//! abandoned checkouts, 200 orders of a store whose key Stripe rejects, 100
//! flagged orders and 50 orders paid in the Stripe emulator whose webhooks
//! never came, spread over every shard. The reconciler runs with its
//! default limits, one run per simulated 5 minutes, and the report says in
//! which run the last of the 50 was paid, against the bound
//! ceil(waiting / budget). Then the checkouts are let run out and the runs
//! end them. See bench/README.md; the report goes to stdout and to
//! `bench/results/reconcile.md`.
// A benchmark's output is its report.
#![allow(clippy::print_stdout)]

use aws_sdk_dynamodb::types::AttributeValue;
use bench::counting::DynamoCounter;
use bench::passes::StackLogs;
use bench::report::{self, Machine};
use bench::{BoxError, fixtures};
use shared::checkout;
use shared::config::Config;
use shared::domain::{Currency, LineItem, Mode, SecretKey, StoreId};
use shared::reconcile::{self, Limits, Report};
use shared::store::{CheckoutSession, Order, StripeConnection, pending_partitions};
use shared::vault::KmsDataKeys;
use shared::{App, clock};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Options {
    abandoned: usize,
    dead: usize,
    flagged: usize,
    paid: usize,
    stores: usize,
    max_runs: usize,
    out: PathBuf,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        abandoned: 10_000,
        dead: 200,
        flagged: 100,
        paid: 50,
        stores: 10,
        max_runs: 30,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/reconcile.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--abandoned" => options.abandoned = value()?.parse()?,
            "--dead" => options.dead = value()?.parse()?,
            "--flagged" => options.flagged = value()?.parse()?,
            "--paid" => options.paid = value()?.parse()?,
            "--stores" => options.stores = value()?.parse::<usize>()?.max(1),
            "--max-runs" => options.max_runs = value()?.parse()?,
            "--out" => options.out = PathBuf::from(value()?),
            _ => {
                return Err(format!(
                    "unknown argument {arg}; usage: reconcile [--abandoned N] [--dead N] [--flagged N] \
                     [--paid N] [--stores N] [--max-runs N] [--out PATH]"
                )
                .into());
            }
        }
    }
    Ok(options)
}

/// What an order of the workload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Abandoned,
    DeadKey,
    /// Flagged before flags took orders out of the index (still indexed).
    FlaggedBefore,
    /// Paid in Stripe with an amount that differs: flagged at its first look.
    Mismatched,
    Paid,
}

struct Made {
    kind: Kind,
    order_id: String,
    store: StoreId,
    intent: Option<String>,
}

/// A Stripe emulator call with a merchant's key, as Stripe.js would make.
async fn stripe(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Result<serde_json::Value, BoxError> {
    let response = http
        .post(format!("{base}v1{path}"))
        .bearer_auth(key)
        .form(form)
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("{path}: {status} {body}").into());
    }
    Ok(body)
}

/// The customer pays `intent` with a test card in the emulator.
async fn pay(http: &reqwest::Client, base: &str, key: &str, intent: &str) -> Result<(), BoxError> {
    let pm = stripe(
        http,
        base,
        key,
        "/payment_methods",
        &[
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2034"),
            ("card[cvc]", "123"),
        ],
    )
    .await?;
    let pm = pm["id"].as_str().ok_or("payment method id")?;
    stripe(
        http,
        base,
        key,
        &format!("/payment_intents/{intent}"),
        &[("payment_method", pm)],
    )
    .await?;
    let paid = stripe(
        http,
        base,
        key,
        &format!("/payment_intents/{intent}/confirm"),
        &[],
    )
    .await?;
    if paid["status"] != "succeeded" {
        return Err(format!("{intent} not paid: {}", paid["status"]).into());
    }
    Ok(())
}

struct Setup {
    app: &'static App,
    http: reqwest::Client,
    stripe_base: String,
    merchants: Vec<(StripeConnection, SecretKey, String)>,
    dead_store: StoreId,
}

/// A pending order with an hour's session, indexed as checkout-sessions
/// writes it.
async fn checkout_for(app: &App, store: StoreId, amount: u64) -> Result<Order, BoxError> {
    let now = clock::now();
    let order = Order {
        session_expires_at: Some(now + 3600),
        ..Order::pending(
            store,
            Mode::Test,
            Currency::parse("eur")?,
            amount,
            vec![LineItem {
                name: "Blue mug".into(),
                unit_amount: amount,
                quantity: 1,
            }],
            now,
        )
    };
    let (_, token_hash) = shared::auth::session_token::generate()?;
    let session = CheckoutSession {
        token_hash,
        order_id: order.order_id.clone(),
        store_id: store,
        expires_at: now + 3600,
        created_at: now,
    };
    app.store
        .create_checkout(&order, &session, None, now)
        .await?;
    Ok(order)
}

async fn make(setup: &Setup, kind: Kind, n: usize) -> Result<Made, BoxError> {
    let app = setup.app;
    let (connection, key, raw_key) = &setup.merchants[n % setup.merchants.len()];
    let store = if kind == Kind::DeadKey {
        setup.dead_store
    } else {
        connection.store_id
    };
    let order = checkout_for(app, store, 2999).await?;
    let intent = match kind {
        Kind::DeadKey => {
            // Made before the merchant rolled the key; Stripe now says 401.
            let intent = format!("pi_dead{}", uuid::Uuid::new_v4().simple());
            app.store
                .attach_intent(&order, &intent, 1, Mode::Test, false, clock::now())
                .await?;
            intent
        }
        Kind::Mismatched => {
            let made = stripe(
                &setup.http,
                &setup.stripe_base,
                raw_key,
                "/payment_intents",
                &[
                    ("amount", "3999"),
                    ("currency", "eur"),
                    ("metadata[order_id]", &order.order_id),
                    ("metadata[store_id]", &store.to_string()),
                ],
            )
            .await?;
            let intent = made["id"].as_str().ok_or("intent id")?.to_owned();
            app.store
                .attach_intent(&order, &intent, 1, Mode::Test, false, clock::now())
                .await?;
            pay(&setup.http, &setup.stripe_base, raw_key, &intent).await?;
            intent
        }
        Kind::Abandoned | Kind::FlaggedBefore | Kind::Paid => {
            checkout::payment_intent_for(app, &order, connection, key)
                .await?
                .id
        }
    };
    match kind {
        Kind::Paid => pay(&setup.http, &setup.stripe_base, raw_key, &intent).await?,
        Kind::FlaggedBefore => {
            app.store
                .flag_order(&order.order_id, "bench: flagged before", clock::now())
                .await?;
            // As flags were written before: the order stays in the index.
            raw_update(app, &order.order_id, &order).await?;
        }
        _ => {}
    }
    Ok(Made {
        kind,
        order_id: order.order_id,
        store,
        intent: Some(intent),
    })
}

/// Puts the order's index keys back as an old flag left them.
async fn raw_update(app: &App, order_id: &str, order: &Order) -> Result<(), BoxError> {
    let client = aws_sdk_dynamodb::Client::new(&shared::app::load_aws_config().await);
    let table = &app.config.table_name;
    let shard = pending_partitions()
        .nth(shard_of(order_id))
        .ok_or("no shard")?;
    client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("ORDER#{order_id}")))
        .key("sk", AttributeValue::S("ORDER".into()))
        .update_expression("SET pending_pk = :p, pending_sk = :s")
        .expression_attribute_values(":p", AttributeValue::S(shard))
        .expression_attribute_values(
            ":s",
            AttributeValue::S(format!("{:010}#{order_id}", order.created_at)),
        )
        .send()
        .await?;
    Ok(())
}

/// The shard `store/orders.rs` puts an order in (same hash).
fn shard_of(order_id: &str) -> usize {
    let hash = order_id.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    (hash % 8) as usize
}

/// Every order id due by `now` in the index.
async fn due_by(app: &App, now: u64) -> Result<Vec<String>, BoxError> {
    let mut all = Vec::new();
    for partition in pending_partitions() {
        let mut after: Option<String> = None;
        loop {
            let page = app
                .store
                .due_pending_orders(&partition, now, after.as_deref(), 1000)
                .await?;
            after = page.orders.last().map(|o| o.sort_key.clone());
            all.extend(page.orders.into_iter().map(|o| o.order_id));
            if !page.more || after.is_none() {
                break;
            }
        }
    }
    Ok(all)
}

/// The order's status, whether it is in the reconciler's index, and
/// whether the reconciler moved it back at least once.
async fn state(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    order_id: &str,
) -> Result<(String, bool, bool), BoxError> {
    let item = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("ORDER#{order_id}")))
        .key("sk", AttributeValue::S("ORDER".into()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .ok_or("order gone")?;
    let status = item
        .get("status")
        .and_then(|s| s.as_s().ok())
        .ok_or("no status")?
        .clone();
    Ok((
        status,
        item.contains_key("pending_pk"),
        item.contains_key("reconcile_checks"),
    ))
}

/// Where an order stands: its status, whether it is still in the index,
/// whether the reconciler moved it back at least once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct State {
    status: String,
    indexed: bool,
    looked: bool,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {}{}",
            self.status,
            if self.indexed {
                "in the index"
            } else {
                "out of the index"
            },
            if self.looked { ", moved back" } else { "" }
        )
    }
}

fn states(map: &BTreeMap<State, usize>) -> String {
    map.iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join("; ")
}

struct RunRow {
    run: usize,
    at: u64,
    report: Report,
    wall: Duration,
    stripe_get: u64,
    stripe_cancel: u64,
    dynamodb: u64,
    paid_so_far: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let load_before = report::load_average();
    let config = Config::from_env()?;
    let aws = shared::app::load_aws_config().await;
    let counter = DynamoCounter::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws)
            .interceptor(counter.clone())
            .build(),
    );
    let app: &'static App = Box::leak(Box::new(App::with_parts(
        config.clone(),
        dynamodb,
        Arc::new(KmsDataKeys::new(
            aws_sdk_kms::Client::new(&aws),
            config.kms_key_id.clone(),
        )),
    )));
    let logs = StackLogs::from_env();

    // --- setup (unmeasured) ---
    let started = Instant::now();
    let mut merchants = Vec::new();
    for _ in 0..options.stores {
        let id = fixtures::connect_store(app).await?;
        let (connection, key) = checkout::merchant_key(app, &id).await?;
        let raw = secrecy::ExposeSecret::expose_secret(
            &app.vault
                .open(
                    shared::vault::EncryptionContext::new(
                        id,
                        shared::vault::Purpose::StripeSecretKey,
                    ),
                    &connection.secret_key,
                )
                .await?,
        )
        .to_owned();
        merchants.push((connection, key, raw));
    }
    // localstripe answers 401 to any key that is not sk_: as Stripe does to
    // a rolled key.
    let dead_store = fixtures::connect_store_with_key(
        app,
        &format!("rk_test_{}", uuid::Uuid::new_v4().simple()),
    )
    .await?;
    let setup = Arc::new(Setup {
        app,
        http: reqwest::Client::new(),
        stripe_base: config.stripe_api_base.to_string(),
        merchants,
        dead_store,
    });
    let mut plan: Vec<Kind> = Vec::new();
    plan.extend(std::iter::repeat_n(Kind::Abandoned, options.abandoned));
    plan.extend(std::iter::repeat_n(Kind::DeadKey, options.dead));
    plan.extend(std::iter::repeat_n(
        Kind::FlaggedBefore,
        options.flagged / 2,
    ));
    plan.extend(std::iter::repeat_n(
        Kind::Mismatched,
        options.flagged - options.flagged / 2,
    ));
    // Last: their index keys sort behind everything else's.
    plan.extend(std::iter::repeat_n(Kind::Paid, options.paid));
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (setup, plan, next) = (setup.clone(), plan.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(kind) = plan.get(n) else {
                    return Ok::<_, String>(made);
                };
                made.push(make(&setup, *kind, n).await.map_err(|e| e.to_string())?);
                if n % 1000 == 999 {
                    eprintln!("setup: {} orders", n + 1);
                }
            }
        }));
    }
    let mut made: Vec<Made> = Vec::new();
    for worker in workers {
        made.extend(worker.await??);
    }
    let setup_took = started.elapsed();
    eprintln!(
        "setup: {} orders in {:.0} s",
        made.len(),
        setup_took.as_secs_f64()
    );

    // --- phase 1: one run per 5 minutes after every intent is due ---
    let limits = Limits::default();
    let first_run = clock::now() + 301;
    let waiting = due_by(app, first_run).await?;
    let mut shards = [0usize; 8];
    for order in &made {
        shards[shard_of(&order.order_id)] += 1;
    }
    let bound = waiting.len().div_ceil(limits.max_orders);
    let paid: Vec<&Made> = made.iter().filter(|m| m.kind == Kind::Paid).collect();
    let mut rows = Vec::new();
    let mut last_paid_run = None;
    for run in 1..=options.max_runs {
        let at = first_run + 300 * (run as u64 - 1);
        let row = measured_run(app, run, at, limits, logs.as_ref(), &counter, &paid).await?;
        eprintln!(
            "run {run}: {:?} in {:.1} s",
            row.report,
            row.wall.as_secs_f64()
        );
        let all_paid = row.paid_so_far == paid.len();
        rows.push(row);
        if all_paid && last_paid_run.is_none() {
            last_paid_run = Some(run);
        }
        if run >= bound && all_paid {
            break;
        }
    }
    // Every order of the workload was looked at (or settled) by now.
    let plain = aws_sdk_dynamodb::Client::new(&aws);
    let table = config.table_name.as_str();
    let mut by_kind: BTreeMap<Kind, BTreeMap<State, usize>> = BTreeMap::new();
    for order in &made {
        let (status, indexed, looked) = state(&plain, table, &order.order_id).await?;
        let state = State {
            status,
            indexed,
            looked,
        };
        *by_kind
            .entry(order.kind)
            .or_default()
            .entry(state)
            .or_default() += 1;
    }

    // --- phase 2: the sessions run out; the runs end the checkouts ---
    let abandon_at = first_run + 3600 + 900;
    let mut rows2 = Vec::new();
    for run in 1..=options.max_runs {
        let at = abandon_at + 300 * (run as u64 - 1);
        let row = measured_run(app, run, at, limits, logs.as_ref(), &counter, &paid).await?;
        eprintln!(
            "ending run {run}: {:?} in {:.1} s",
            row.report,
            row.wall.as_secs_f64()
        );
        // Done once a run reaches every due order and ends none.
        let r = &row.report;
        let done = r.unexamined == 0 && r.canceled + r.expired == 0;
        rows2.push(row);
        if done {
            break;
        }
    }
    let mut ended: BTreeMap<Kind, BTreeMap<State, usize>> = BTreeMap::new();
    for order in &made {
        let (status, indexed, looked) = state(&plain, table, &order.order_id).await?;
        let state = State {
            status,
            indexed,
            looked,
        };
        *ended
            .entry(order.kind)
            .or_default()
            .entry(state)
            .or_default() += 1;
    }
    // A sample of the abandoned intents, read back from the emulator.
    let mut sample_canceled = 0;
    let sample: Vec<&Made> = made
        .iter()
        .filter(|m| m.kind == Kind::Abandoned)
        .step_by((options.abandoned / 100).max(1))
        .collect();
    for order in &sample {
        let (_, key, _) = setup
            .merchants
            .iter()
            .find(|(c, _, _)| c.store_id == order.store)
            .ok_or("merchant")?;
        let intent = app
            .stripe
            .retrieve_intent(key, order.intent.as_deref().ok_or("intent")?)
            .await?;
        if intent.status == shared::stripe::IntentStatus::Canceled {
            sample_canceled += 1;
        }
    }
    let peak = match &logs {
        Some(_) => peak_calls_per_store_second(&made)?,
        None => None,
    };

    let machine = Machine::describe(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        load_before,
    );
    let paid_ok = last_paid_run.is_some_and(|r| r <= bound);
    let markdown = render(&Rendered {
        options: &options,
        machine: &machine,
        setup_took,
        waiting: waiting.len(),
        shards,
        bound,
        limits,
        last_paid_run,
        rows: &rows,
        rows2: &rows2,
        by_kind: &by_kind,
        ended: &ended,
        sample: (sample_canceled, sample.len()),
        peak,
    });
    println!("{markdown}");
    std::fs::write(&options.out, &markdown)?;
    if !paid_ok {
        return Err(format!(
            "the {} paid orders were not all paid within {bound} runs",
            options.paid
        )
        .into());
    }
    Ok(())
}

async fn measured_run(
    app: &App,
    run: usize,
    at: u64,
    limits: Limits,
    logs: Option<&StackLogs>,
    counter: &DynamoCounter,
    paid: &[&Made],
) -> Result<RunRow, BoxError> {
    let stripe_before = logs.map(StackLogs::counts).transpose()?;
    let dynamodb_before = counter.counts();
    let started = Instant::now();
    let report = reconcile::run(app, at, limits).await?;
    let wall = started.elapsed();
    let dynamodb = counter.counts().since(&dynamodb_before).requests();
    let (stripe_get, stripe_cancel) = match (logs, stripe_before) {
        (Some(logs), Some(before)) => {
            let after = logs.counts()?;
            (
                after.stripe_retrieve - before.stripe_retrieve,
                after.stripe_cancel - before.stripe_cancel,
            )
        }
        _ => (0, 0),
    };
    let mut paid_so_far = 0;
    for order in paid {
        let status = app
            .store
            .get_order(&order.order_id)
            .await?
            .ok_or("order gone")?
            .status;
        if status.is_paid() {
            paid_so_far += 1;
        }
    }
    Ok(RunRow {
        run,
        at,
        report,
        wall,
        stripe_get,
        stripe_cancel,
        dynamodb,
        paid_so_far,
    })
}

/// The most calls to one store's account in one second of the emulator's
/// log (calls naming an intent of the workload), and the store's mode.
fn peak_calls_per_store_second(made: &[Made]) -> Result<Option<usize>, BoxError> {
    let Some(dir) = std::env::var_os("STACK_DIR") else {
        return Ok(None);
    };
    let log = std::fs::read_to_string(PathBuf::from(dir).join("localstripe.log"))?;
    let store_of: HashMap<&str, StoreId> = made
        .iter()
        .filter_map(|m| m.intent.as_deref().map(|i| (i, m.store)))
        .collect();
    let mut per_second: HashMap<(StoreId, &str), usize> = HashMap::new();
    for line in log.lines() {
        // 2026-12-07 12:51:06,124 127.0.0.1 [...] "GET /v1/payment_intents/pi_x HTTP/1.1" ...
        let Some(second) = line.get(..19) else {
            continue;
        };
        let Some(request) = line.split('"').nth(1) else {
            continue;
        };
        let Some(path) = request.split(' ').nth(1) else {
            continue;
        };
        let Some(rest) = path.strip_prefix("/v1/payment_intents/") else {
            continue;
        };
        let intent = rest.split('/').next().unwrap_or(rest);
        if let Some(store) = store_of.get(intent) {
            *per_second.entry((*store, second)).or_default() += 1;
        }
    }
    Ok(per_second.values().max().copied())
}

struct Rendered<'a> {
    options: &'a Options,
    machine: &'a Machine,
    setup_took: Duration,
    waiting: usize,
    shards: [usize; 8],
    bound: usize,
    limits: Limits,
    last_paid_run: Option<usize>,
    rows: &'a [RunRow],
    rows2: &'a [RunRow],
    by_kind: &'a BTreeMap<Kind, BTreeMap<State, usize>>,
    ended: &'a BTreeMap<Kind, BTreeMap<State, usize>>,
    sample: (usize, usize),
    peak: Option<usize>,
}

fn runs_table(out: &mut String, rows: &[RunRow]) {
    let _ = writeln!(
        out,
        "| run | examined | paid | canceled | expired | review | deferred (errors) | dropped (flagged) | unexamined | oldest due unexamined | Stripe GET | Stripe cancel | DynamoDB req. | wall |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let r = &row.report;
        let _ = writeln!(
            out,
            "| {} (t+{} s) | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} s | {} | {} | {} | {:.1} s |",
            row.run,
            row.at.saturating_sub(rows[0].at),
            r.examined,
            r.paid,
            r.canceled,
            r.expired,
            r.needs_review,
            r.deferred,
            r.errors,
            r.dropped,
            r.flagged,
            r.unexamined,
            r.oldest_unexamined_due_secs,
            row.stripe_get,
            row.stripe_cancel,
            row.dynamodb,
            row.wall.as_secs_f64()
        );
    }
}

fn render(r: &Rendered<'_>) -> String {
    let o = r.options;
    let m = r.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# Reconciler at volume (issue 14)\n");
    let _ = writeln!(
        out,
        "{} · commit {} · {} CPUs ({}) · {} · load {} → {}\n",
        m.date, m.commit, m.cpus, m.cpu_model, m.rustc, m.load_before, m.load_after
    );
    let _ = writeln!(
        out,
        "Workload: {} abandoned checkouts over {} stores (an intent each in the emulator), {} orders of a store whose key the emulator answers 401, {} flagged orders ({} flagged before flags left the index, {} paid with a different amount), {} orders paid in the emulator without a webhook. Per shard: {:?}. Setup took {:.0} s.\n",
        o.abandoned,
        o.stores,
        o.dead,
        o.flagged,
        o.flagged / 2,
        o.flagged - o.flagged / 2,
        o.paid,
        r.shards,
        r.setup_took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Limits (the defaults): {} orders a run, time budget {} s, {} stores × {} orders at once, Stripe calls per account {}/s test, {}/s live.\n",
        r.limits.max_orders,
        r.limits.time_budget.as_secs(),
        r.limits.stores_at_once,
        r.limits.orders_per_store_at_once,
        r.limits.calls_per_sec_test,
        r.limits.calls_per_sec_live
    );
    let _ = writeln!(
        out,
        "**Result: waiting at the first run {}, bound ceil({} / {}) = {} runs; the {} paid orders were all paid after run {}** ({}).\n",
        r.waiting,
        r.waiting,
        r.limits.max_orders,
        r.bound,
        o.paid,
        r.last_paid_run
            .map_or("never".to_string(), |n| n.to_string()),
        if r.last_paid_run.is_some_and(|n| n <= r.bound) {
            "PASS"
        } else {
            "FAIL"
        }
    );
    let _ = writeln!(
        out,
        "## Runs, 5 simulated minutes apart, from 5 minutes after the intents\n"
    );
    runs_table(&mut out, r.rows);
    let _ = writeln!(out, "\nAfter these runs, by kind:\n");
    for (kind, map) in r.by_kind {
        let _ = writeln!(out, "- {kind:?}: {}", states(map));
    }
    let _ = writeln!(
        out,
        "\n## Runs after the checkouts were abandoned (session end + 15 min)\n"
    );
    runs_table(&mut out, r.rows2);
    let _ = writeln!(out, "\nAt the end, by kind:\n");
    for (kind, map) in r.ended {
        let _ = writeln!(out, "- {kind:?}: {}", states(map));
    }
    let _ = writeln!(
        out,
        "\nAbandoned intents read back from the emulator: {} of a sample of {} canceled.",
        r.sample.0, r.sample.1
    );
    if let Some(peak) = r.peak {
        let _ = writeln!(
            out,
            "Most calls to one store's account in one second (emulator log): {peak} (Stripe's limit: 25 in test mode)."
        );
    }
    let _ = writeln!(
        out,
        "\nCommand: `target/debug/reconcile --abandoned {} --dead {} --flagged {} --paid {} --stores {}` against `infra/stack.sh start` (DynamoDB Local, moto KMS, localstripe); wall times are real, the clock the reconciler sees moves 5 minutes a run.",
        o.abandoned, o.dead, o.flagged, o.paid, o.stores
    );
    out
}
