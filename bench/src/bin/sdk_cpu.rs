//! Process CPU per DynamoDB request through `aws-sdk-dynamodb`, against the
//! local stack (`infra/stack.sh start`, then source `$STACK_DIR/env`): one
//! `GetItem`; one conditional `UpdateItem` of an order that also adds the
//! event id to the order's `processed_events`, as `record_event` does, and
//! one refused (the event is in the set; `ALL_OLD`); and for comparison the
//! two-item transaction the webhook used before (a Put of an `EVENT#` item
//! with `attribute_not_exists(pk)` plus the order's conditional Update),
//! committed and cancelled.
//!
//! The client is built as `shared::App::from_lookup` builds it; flags change
//! one setting at a time, so the difference is that setting's CPU cost:
//!
//! ```sh
//! sdk_cpu [--n 5000] [--tasks 8] [--workers 2] [--warmup 300] [--ops get,tx,txfail,update,updatefail,mixed]
//!         [--no-stalled-stream] [--timeouts all|none|operation|attempt] [--no-retries]
//!         [--tracing] [--no-clock-skew] [--customize] [--account-id-endpoint-mode MODE]
//!         [--checksums-when-required] [--endpoint-resolver] [--current-thread] [--ab BLOCK]
//! ```
//!
//! `--ab BLOCK` compares, in one process, the default client (A) with the
//! flags' variant (B) in alternating blocks of BLOCK requests: a paired
//! measurement that other load on the machine disturbs far less than
//! separate runs (`--tracing` is process-wide, so it applies to both).
//! `--endpoint-resolver` times the endpoint rules engine alone.
//!
//! CPU is this process's utime + stime from `/proc/self/stat`, and the
//! summed `schedstat` run time of its live threads (ns resolution);
//! DynamoDB Local runs in another process.
// A benchmark's output is its report.
#![allow(clippy::print_stdout)]

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use bench::{BoxError, cpu};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Timeouts {
    /// As `App::from_lookup`: connect 1 s, attempt 2 s, operation 5 s.
    All,
    None,
    /// Connect and operation timeouts, no per-attempt timeout.
    Operation,
    /// Connect and per-attempt timeouts, no operation timeout.
    Attempt,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Get,
    Tx,
    TxFail,
    /// One conditional `UpdateItem` of the order that also adds the event id
    /// to the order's set of processed events (exactly-once without a
    /// transaction).
    Update,
    /// The same, refused (the event id is already in the set), `ALL_OLD`.
    UpdateFail,
    /// One `GetItem` then one committing `TransactWriteItems` (a delivery's
    /// shape); reported per request, i.e. per pair ÷ 2.
    Mixed,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Tx => "tx",
            Op::TxFail => "txfail",
            Op::Update => "update",
            Op::UpdateFail => "updatefail",
            Op::Mixed => "mixed",
        }
    }
}

/// How the client is configured; the default is `App::from_lookup`'s.
#[derive(Clone, Debug)]
struct Variant {
    no_stalled_stream: bool,
    timeouts: Timeouts,
    no_retries: bool,
    no_clock_skew: bool,
    customize: bool,
    /// `preferred` (the default), `disabled` or `required`.
    account_id_endpoint_mode: Option<String>,
    checksums_when_required: bool,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            no_stalled_stream: false,
            timeouts: Timeouts::All,
            no_retries: false,
            no_clock_skew: false,
            customize: false,
            account_id_endpoint_mode: None,
            checksums_when_required: false,
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stalled_stream={} timeouts={:?} retries={} clock_skew={} customize={} \
             account_id_endpoint_mode={} checksums={}",
            !self.no_stalled_stream,
            self.timeouts,
            !self.no_retries,
            !self.no_clock_skew,
            self.customize,
            self.account_id_endpoint_mode
                .as_deref()
                .unwrap_or("default"),
            if self.checksums_when_required {
                "when_required"
            } else {
                "default"
            },
        )
    }
}

struct Options {
    n: usize,
    tasks: usize,
    workers: usize,
    warmup: usize,
    ops: Vec<Op>,
    variant: Variant,
    tracing: bool,
    endpoint_resolver: bool,
    /// A current-thread runtime (one thread) instead of `workers` workers.
    current_thread: bool,
    /// Paired comparison in one process: the default client (A) against
    /// `variant` (B), in alternating blocks of this many requests.
    ab_block: Option<usize>,
}

const USAGE: &str = "usage: sdk_cpu [--n N] [--tasks N] [--workers N] [--warmup N] \
[--ops get,tx,txfail,update,updatefail,mixed] [--no-stalled-stream] [--timeouts all|none|operation|attempt] \
[--no-retries] [--tracing] [--no-clock-skew] [--customize] [--account-id-endpoint-mode MODE] \
[--checksums-when-required] [--endpoint-resolver] [--current-thread] [--ab BLOCK]";

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        n: 5000,
        tasks: 8,
        workers: 2,
        warmup: 300,
        ops: vec![Op::Get, Op::Tx, Op::TxFail],
        variant: Variant::default(),
        tracing: false,
        endpoint_resolver: false,
        current_thread: false,
        ab_block: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--n" => options.n = value()?.parse()?,
            "--tasks" => options.tasks = value()?.parse::<usize>()?.max(1),
            "--workers" => options.workers = value()?.parse::<usize>()?.max(1),
            "--warmup" => options.warmup = value()?.parse()?,
            "--ops" => {
                options.ops = value()?
                    .split(',')
                    .map(|op| match op {
                        "get" => Ok(Op::Get),
                        "tx" => Ok(Op::Tx),
                        "txfail" => Ok(Op::TxFail),
                        "update" => Ok(Op::Update),
                        "updatefail" => Ok(Op::UpdateFail),
                        "mixed" => Ok(Op::Mixed),
                        other => Err(format!("unknown op {other}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--no-stalled-stream" => options.variant.no_stalled_stream = true,
            "--timeouts" => {
                options.variant.timeouts = match value()?.as_str() {
                    "all" => Timeouts::All,
                    "none" => Timeouts::None,
                    "operation" => Timeouts::Operation,
                    "attempt" => Timeouts::Attempt,
                    other => return Err(format!("unknown --timeouts {other}").into()),
                }
            }
            "--no-retries" => options.variant.no_retries = true,
            "--tracing" => options.tracing = true,
            "--no-clock-skew" => options.variant.no_clock_skew = true,
            "--customize" => options.variant.customize = true,
            "--account-id-endpoint-mode" => {
                options.variant.account_id_endpoint_mode = Some(value()?);
            }
            "--checksums-when-required" => options.variant.checksums_when_required = true,
            "--endpoint-resolver" => options.endpoint_resolver = true,
            "--current-thread" => options.current_thread = true,
            "--ab" => options.ab_block = Some(value()?.parse::<usize>()?.max(1)),
            _ => return Err(format!("unknown argument {arg}; {USAGE}").into()),
        }
    }
    Ok(options)
}

fn timeout_config(which: Timeouts) -> Option<TimeoutConfig> {
    let connect = Duration::from_secs(1);
    let attempt = Duration::from_secs(2);
    let operation = Duration::from_secs(5);
    let builder = TimeoutConfig::builder();
    match which {
        Timeouts::None => None,
        Timeouts::All => Some(
            builder
                .connect_timeout(connect)
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
        ),
        Timeouts::Operation => Some(
            builder
                .connect_timeout(connect)
                .operation_timeout(operation)
                .build(),
        ),
        Timeouts::Attempt => Some(
            builder
                .connect_timeout(connect)
                .operation_attempt_timeout(attempt)
                .build(),
        ),
    }
}

async fn client(variant: &Variant) -> Result<Client, BoxError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(timeouts) = timeout_config(variant.timeouts) {
        loader = loader.timeout_config(timeouts);
    }
    if variant.no_stalled_stream {
        loader = loader.stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    }
    if variant.no_retries {
        loader = loader.retry_config(RetryConfig::disabled());
    }
    // The bench crate does not depend on aws-types / aws-smithy-types, so
    // these settings' types are named by inference from their `FromStr`.
    if let Some(mode) = &variant.account_id_endpoint_mode {
        loader = loader.account_id_endpoint_mode(mode.parse()?);
    }
    if variant.checksums_when_required {
        loader = loader
            .request_checksum_calculation("when_required".parse()?)
            .response_checksum_validation("when_required".parse()?);
    }
    let aws = loader.load().await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&aws);
    if variant.no_clock_skew {
        config = config.disable_clock_skew_correction(true);
    }
    Ok(Client::from_conf(config.build()))
}

/// A per-call override, as a handler with its own deadline would set:
/// the same timeouts again, so only the layering costs.
/// Sends a request, with `config_override` per operation under `--customize`.
macro_rules! send {
    ($bench:expr, $request:expr) => {
        if $bench.customize {
            $request
                .customize()
                .config_override(config_override())
                .send()
                .await
        } else {
            $request.send().await
        }
    };
}

fn config_override() -> aws_sdk_dynamodb::config::Builder {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    aws_sdk_dynamodb::config::Builder::default().timeout_config(timeouts)
}

/// Already in every order's set of processed events.
const SEEN_EVENT: &str = "evt_000000000000000000000000";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// An order-shaped item (about 0.5 KB), so reads and `ALL_OLD` return
/// something like what the service stores.
fn order_item(pk: &str, now: u64) -> HashMap<String, AttributeValue> {
    let line = |name: &str, qty: u64, price: u64| {
        AttributeValue::M(HashMap::from([
            ("name".to_string(), s(name)),
            ("quantity".to_string(), n(qty)),
            ("unit_amount".to_string(), n(price)),
        ]))
    };
    HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), s("ORDER")),
        ("order_id".to_string(), s(uuid::Uuid::new_v4().to_string())),
        ("store_id".to_string(), s(uuid::Uuid::new_v4().to_string())),
        ("status".to_string(), s("paid")),
        ("amount".to_string(), n(4599)),
        ("currency".to_string(), s("eur")),
        (
            "payment_intent_id".to_string(),
            s("pi_3Pq2ZxLkdIwHu7ix0Qy1AbCd"),
        ),
        ("created_at".to_string(), n(now)),
        ("updated_at".to_string(), n(now)),
        ("paid_at".to_string(), n(now)),
        ("status_as_of".to_string(), n(now)),
        ("amount_refunded".to_string(), n(0)),
        (
            "events".to_string(),
            AttributeValue::Ss(vec![SEEN_EVENT.to_string()]),
        ),
        (
            "return_url".to_string(),
            s("https://shop.example.com/orders/complete?ref=abc123"),
        ),
        (
            "line_items".to_string(),
            AttributeValue::L(vec![
                line("Espresso beans 1 kg", 1, 2899),
                line("Paper filters", 2, 450),
                line("Shipping", 1, 800),
            ]),
        ),
    ])
}

struct Bench {
    client: Client,
    table: String,
    run: String,
    customize: bool,
    seq: AtomicU64,
    now: u64,
}

impl Bench {
    fn order_pk(&self, task: usize) -> String {
        format!("SDKCPU#{}#ORDER#{task}", self.run)
    }

    /// An order whose event set `update` grows; apart from `order_pk`'s, so
    /// what a refusal returns stays order-sized.
    fn growing_pk(&self, task: usize) -> String {
        format!("SDKCPU#{}#ORDER#{task}#GROWING", self.run)
    }

    async fn get(&self, task: usize) -> Result<(), BoxError> {
        let request = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(self.order_pk(task)))
            .key("sk", s("ORDER"))
            .consistent_read(true);
        let out = send!(self, request)?;
        if out.item.is_none_or(|item| item.len() < 10) {
            return Err("GetItem: order missing".into());
        }
        Ok(())
    }

    /// The former webhook write, a two-item transaction; `fail` makes the order's
    /// condition false, so it is cancelled with the old order returned.
    async fn transact(&self, task: usize, fail: bool) -> Result<(), BoxError> {
        let i = self.seq.fetch_add(1, Ordering::Relaxed);
        let now = self.now + i;
        let event = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("SDKCPU#{}#EVENT#evt_{i:024}", self.run)))
            .item("sk", s("EVENT"))
            .item("received_at", n(now))
            .item("expires_at", n(now + 30 * 86_400))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let pi = if fail {
            "pi_not_this_one"
        } else {
            "pi_3Pq2ZxLkdIwHu7ix0Qy1AbCd"
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(self.order_pk(task)))
            .key("sk", s("ORDER"))
            .update_expression("SET #status = :to, updated_at = :now, amount_refunded = :refunded")
            .condition_expression(
                "attribute_exists(pk) AND #status IN (:s0, :s1) AND payment_intent_id = :pi \
                 AND (attribute_not_exists(amount_refunded) OR amount_refunded < :refunded)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s("paid"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":s0", s("paid"))
            .expression_attribute_values(":s1", s("processing"))
            .expression_attribute_values(":pi", s(pi))
            .expression_attribute_values(":refunded", n(i + 1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(event).build())
            .transact_items(TransactWriteItem::builder().update(update).build());
        let result = send!(self, request);
        match (result, fail) {
            (Ok(_), false) => Ok(()),
            (Ok(_), true) => Err("TransactWriteItems: expected a cancellation".into()),
            (Err(err), true) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel))
                    if cancel.cancellation_reasons().get(1).is_some_and(|r| {
                        r.code() == Some("ConditionalCheckFailed") && r.item().is_some()
                    }) =>
                {
                    Ok(())
                }
                _ => Err(format!("TransactWriteItems: {err:?}").into()),
            },
            (Err(err), false) => Err(format!("TransactWriteItems: {err:?}").into()),
        }
    }

    /// The order update alone, recording the event in the order itself;
    /// `fail` sends an event id already recorded, so it is refused with the
    /// old order returned.
    async fn update(&self, task: usize, fail: bool) -> Result<(), BoxError> {
        let i = self.seq.fetch_add(1, Ordering::Relaxed);
        let now = self.now + i;
        let (pk, event_id) = if fail {
            (self.order_pk(task), SEEN_EVENT.to_string())
        } else {
            (self.growing_pk(task), format!("evt_{i:024}"))
        };
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s("ORDER"))
            .update_expression(
                "SET #status = :to, updated_at = :now, amount_refunded = :refunded ADD events :event",
            )
            .condition_expression(
                "attribute_exists(pk) AND NOT contains(events, :event_id) \
                 AND #status IN (:s0, :s1) AND payment_intent_id = :pi \
                 AND (attribute_not_exists(amount_refunded) OR amount_refunded < :refunded)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s("paid"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":s0", s("paid"))
            .expression_attribute_values(":s1", s("processing"))
            .expression_attribute_values(":pi", s("pi_3Pq2ZxLkdIwHu7ix0Qy1AbCd"))
            .expression_attribute_values(":refunded", n(i + 1))
            .expression_attribute_values(":event", AttributeValue::Ss(vec![event_id.clone()]))
            .expression_attribute_values(":event_id", s(event_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let result = send!(self, request);
        match (result, fail) {
            (Ok(_), false) => Ok(()),
            (Ok(_), true) => Err("UpdateItem: expected a refusal".into()),
            (Err(err), true) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(refused))
                    if refused.item().is_some() =>
                {
                    Ok(())
                }
                _ => Err(format!("UpdateItem: {err:?}").into()),
            },
            (Err(err), false) => Err(format!("UpdateItem: {err:?}").into()),
        }
    }

    async fn one(&self, op: Op, task: usize) -> Result<(), BoxError> {
        match op {
            Op::Get => self.get(task).await,
            Op::Tx => self.transact(task, false).await,
            Op::TxFail => self.transact(task, true).await,
            Op::Update => self.update(task, false).await,
            Op::UpdateFail => self.update(task, true).await,
            Op::Mixed => {
                self.get(task).await?;
                self.transact(task, false).await
            }
        }
    }
}

/// Summed run time (ns) of this process's live threads.
fn threads_runtime() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat"))
                && let Some(ns) = text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
            }
        }
    }
    Duration::from_nanos(total)
}

async fn run_op(
    bench: &Arc<Bench>,
    op: Op,
    count: usize,
    tasks: usize,
) -> Result<Duration, BoxError> {
    let per_task = count / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let bench = bench.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                bench.one(op, task).await?;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(started.elapsed())
}

fn per_request(total: Duration, requests: usize) -> f64 {
    total.as_secs_f64() * 1e6 / requests.max(1) as f64
}

/// Rules-engine cost alone: production-shaped parameters (no endpoint
/// override), the same ones again (the resolver's one-entry cache hits), and
/// alternating `GetItem`/`TransactWriteItems` parameters (it misses).
async fn endpoint_resolver(table: &str, rounds: usize) -> Result<(), BoxError> {
    let base = || {
        Params::builder()
            .region("us-east-1")
            .use_dual_stack(false)
            .use_fips(false)
            .account_id_endpoint_mode("preferred")
    };
    let get = base().resource_arn(table).build()?;
    let tx = base()
        .resource_arn_list(vec![table.to_string(), table.to_string()])
        .build()?;
    let local = Params::builder()
        .region("us-east-1")
        .use_dual_stack(false)
        .use_fips(false)
        .endpoint("http://127.0.0.1:8000")
        .account_id_endpoint_mode("preferred")
        .resource_arn(table)
        .build()?;
    let local_tx = Params::builder()
        .region("us-east-1")
        .use_dual_stack(false)
        .use_fips(false)
        .endpoint("http://127.0.0.1:8000")
        .account_id_endpoint_mode("preferred")
        .resource_arn_list(vec![table.to_string(), table.to_string()])
        .build()?;
    let cases: [(&str, [&Params; 2]); 4] = [
        ("aws, same params (cache hit)", [&get, &get]),
        ("aws, get/tx alternating (cache miss)", [&get, &tx]),
        ("override, same params", [&local, &local]),
        ("override, get/tx alternating", [&local, &local_tx]),
    ];
    for (name, params) in cases {
        let resolver = DefaultResolver::new();
        let started = Instant::now();
        let mut url_len = 0usize;
        for i in 0..rounds {
            let endpoint = resolver.resolve_endpoint(params[i % 2]).await?;
            url_len += endpoint.url().len();
        }
        let elapsed = started.elapsed();
        println!(
            "endpoint_resolver case=\"{name}\" ns_per_resolve={:.0} (url bytes {url_len})",
            elapsed.as_secs_f64() * 1e9 / rounds as f64
        );
    }
    Ok(())
}

async fn new_bench(variant: &Variant, tasks: usize, now: u64) -> Result<Arc<Bench>, BoxError> {
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let bench = Arc::new(Bench {
        client: client(variant).await?,
        table,
        run: uuid::Uuid::new_v4().simple().to_string(),
        customize: variant.customize,
        seq: AtomicU64::new(1),
        now,
    });
    for task in 0..tasks {
        bench
            .client
            .put_item()
            .table_name(&bench.table)
            .set_item(Some(order_item(&bench.order_pk(task), now)))
            .send()
            .await?;
        bench
            .client
            .put_item()
            .table_name(&bench.table)
            .set_item(Some(order_item(&bench.growing_pk(task), now)))
            .send()
            .await?;
    }
    Ok(bench)
}

/// A against B in alternating blocks (A B B A ...), so drift and other
/// load on the machine fall on both alike; CPU from the threads' schedstat,
/// read between blocks when the workers are idle.
async fn paired(options: &Options, block: usize, now: u64) -> Result<(), BoxError> {
    let benches = [
        new_bench(&Variant::default(), options.tasks, now).await?,
        new_bench(&options.variant, options.tasks, now).await?,
    ];
    println!("A: {}", Variant::default());
    println!("B: {}", options.variant);
    let block = (block / options.tasks).max(1) * options.tasks;
    let blocks = (options.n / block).max(1);
    for &op in &options.ops {
        for bench in &benches {
            run_op(bench, op, options.warmup, options.tasks).await?;
        }
        let requests_per = if op == Op::Mixed { 2 } else { 1 };
        let mut totals = [Duration::ZERO; 2];
        let mut ratios = Vec::new();
        for b in 0..blocks {
            let order = if b % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut this = [Duration::ZERO; 2];
            for which in order {
                let before = threads_runtime();
                run_op(&benches[which], op, block, options.tasks).await?;
                this[which] = threads_runtime().saturating_sub(before);
                totals[which] += this[which];
            }
            ratios.push(this[1].as_secs_f64() / this[0].as_secs_f64().max(1e-9));
        }
        ratios.sort_by(f64::total_cmp);
        let requests = blocks * block * requests_per;
        let a = per_request(totals[0], requests);
        let b = per_request(totals[1], requests);
        println!(
            "ab op={} requests_each={requests} a_us={a:.1} b_us={b:.1} diff_us={:.1} \
             diff_pct={:+.1} median_block_ratio_pct={:+.1}",
            op.name(),
            b - a,
            100.0 * (b / a - 1.0),
            100.0 * (ratios[ratios.len() / 2] - 1.0),
        );
    }
    Ok(())
}

async fn main_async(options: Options) -> Result<(), BoxError> {
    if options.endpoint_resolver {
        let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
        return endpoint_resolver(&table, 200_000).await;
    }
    if options.tracing {
        shared::telemetry::init();
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    if let Some(block) = options.ab_block {
        return paired(&options, block, now).await;
    }
    let ticks = cpu::clock_ticks();
    let bench = new_bench(&options.variant, options.tasks, now).await?;
    println!(
        "variant {} tracing={} tasks={} runtime={}",
        options.variant,
        options.tracing,
        options.tasks,
        if options.current_thread {
            "current_thread".to_string()
        } else {
            format!("multi_thread({})", options.workers)
        }
    );
    for &op in &options.ops {
        // Warm the connection pool, allocator and caches first.
        run_op(&bench, op, options.warmup, options.tasks).await?;
        let requests_per = if op == Op::Mixed { 2 } else { 1 };
        let count = options.n / options.tasks * options.tasks;
        let before = cpu::process_cpu(ticks)?;
        let threads_before = threads_runtime();
        let wall = run_op(&bench, op, count, options.tasks).await?;
        let threads = threads_runtime().saturating_sub(threads_before);
        let used = cpu::process_cpu(ticks)?.since(&before);
        let requests = count * requests_per;
        println!(
            "op={} requests={requests} cpu_us={:.1} user_us={:.1} sys_us={:.1} \
             sched_us={:.1} wall_s={:.2} rps={:.0}",
            op.name(),
            per_request(used.total(), requests),
            per_request(used.user, requests),
            per_request(used.system, requests),
            per_request(threads, requests),
            wall.as_secs_f64(),
            requests as f64 / wall.as_secs_f64(),
        );
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let options = options()?;
    let runtime = if options.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(main_async(options))
}
