//! Forged webhook deliveries against the local stack: 10,000 a minute for
//! one store (about 167/s) while the store's own signed deliveries arrive at
//! a modest rate, in one warm process (one container's memory). Reports
//! whether the valid ones are all answered, their latency with and without
//! the flood (same run, as a ratio), the KMS calls and DynamoDB requests
//! each forgery causes, and the store's `webhook_health` afterwards. See
//! bench/README.md; the report goes to stdout and `bench/results/forged.md`.
// A benchmark's output is its report.
#![allow(clippy::print_stdout)]

use bench::counting::{DynamoCounts, KmsCounts};
use bench::passes::CountedApp;
use bench::report::{self as machine, Machine};
use bench::webhooks::lifecycle::StripeEvent;
use bench::webhooks::payload::{self, StripeIds, Subject};
use bench::{BoxError, cpu, fixtures, rng::Rng};
use shared::App;
use shared::config::Config;
use shared::domain::StoreId;
use shared::vault::KmsDataKeys;
use shared::webhooks::{Outcome, process, webhook_health};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const USAGE: &str = "usage: forged [--baseline-secs N] [--flood-secs N] [--forged-per-sec N] \
[--valid-per-sec N] [--unknown N] [--out PATH]";

struct Options {
    baseline: Duration,
    flood: Duration,
    forged_per_sec: u32,
    valid_per_sec: u32,
    /// Forgeries for a store id with no connection, at the same rate.
    unknown: usize,
    out: PathBuf,
}

fn options() -> Result<Options, BoxError> {
    let mut o = Options {
        baseline: Duration::from_secs(20),
        flood: Duration::from_secs(60),
        forged_per_sec: 167,
        valid_per_sec: 4,
        unknown: 1000,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/forged.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--baseline-secs" => o.baseline = Duration::from_secs(value()?.parse()?),
            "--flood-secs" => o.flood = Duration::from_secs(value()?.parse()?),
            "--forged-per-sec" => o.forged_per_sec = value()?.parse()?,
            "--valid-per-sec" => o.valid_per_sec = value()?.parse()?,
            "--unknown" => o.unknown = value()?.parse()?,
            "--out" => o.out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {arg}; {USAGE}").into()),
        }
    }
    // Bounded: at most ten minutes of load, at most 1,000 deliveries a second.
    let bounded = |d: Duration| d > Duration::ZERO && d <= Duration::from_secs(600);
    if !bounded(o.baseline)
        || !bounded(o.flood)
        || !(1..=1000).contains(&o.forged_per_sec)
        || !(1..=50).contains(&o.valid_per_sec)
        || o.unknown > 100_000
    {
        return Err(format!("durations 1-600 s, rates 1-1000 and 1-50 /s; {USAGE}").into());
    }
    Ok(o)
}

/// The store's own deliveries: one `payment_intent.succeeded` per order,
/// signed with its secret when sent.
struct Valid {
    store_id: StoreId,
    whsec: String,
    bodies: Vec<String>,
}

/// A Stripe-shaped delivery for the store signed with a secret that is not
/// its own: what anyone who knows the URL can send.
fn forged_body(store_id: StoreId, rng: &mut Rng) -> String {
    let ids = StripeIds::new(rng);
    let subject = Subject {
        store_id,
        order_id: "5d9e7c1a-0000-4000-8000-00000000f00d",
        amount: 2999,
        ids: &ids,
    };
    let id = format!("evt_3{}", rng.alphanumeric(23));
    payload::event_body(
        &id,
        &StripeEvent::Succeeded,
        &subject,
        0,
        shared::clock::now(),
        "2026-09-30.endive",
    )
}

#[derive(Default)]
struct Answers {
    latencies: Vec<Duration>,
    ok: usize,
    refused: usize,
    failed: usize,
}

impl Answers {
    fn add(&mut self, (latency, answer): (Duration, Result<Outcome, shared::AppError>)) {
        self.latencies.push(latency);
        match answer {
            Ok(_) => self.ok += 1,
            Err(err) if err.status().is_client_error() => self.refused += 1,
            Err(_) => self.failed += 1,
        }
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        // Nearest rank.
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied().unwrap_or_default()
    }
}

/// What one phase sent and what it cost.
struct Phase {
    name: &'static str,
    valid: Answers,
    forged: Answers,
    /// Forgeries not sent on time because 256 were already in flight.
    skipped: usize,
    dynamodb: DynamoCounts,
    kms: KmsCounts,
    cpu: Duration,
    wall: Duration,
}

/// Sends, for `length`, valid deliveries at `valid_rate`/s (if any) and
/// forgeries for `forged_store` at `forged_rate`/s (if any), each on its
/// own schedule; waits for every answer.
#[allow(clippy::too_many_arguments)]
async fn phase(
    name: &'static str,
    counted: &Arc<CountedApp>,
    valid: &Valid,
    next_valid: &mut usize,
    valid_rate: u32,
    forged_store: Option<StoreId>,
    forged_rate: u32,
    forged_limit: usize,
    length: Duration,
    ticks: u64,
) -> Result<Phase, BoxError> {
    let (dynamodb_before, kms_before) = (counted.dynamodb.counts(), counted.kms.counts());
    let cpu_before = cpu::process_cpu(ticks)?;
    let started = Instant::now();
    let mut rng = Rng::new(shared::clock::now_millis() as u64);
    let wrong = format!("whsec_{}", rng.alphanumeric(32));
    let mut valid_tasks = JoinSet::new();
    let mut forged_tasks = JoinSet::new();
    let mut forged_answers = Answers::default();
    let (mut valid_sent, mut forged_sent, mut skipped) = (0u64, 0usize, 0usize);
    let valid_every = Duration::from_secs(1) / valid_rate.max(1);
    let forged_every = Duration::from_secs(1) / forged_rate.max(1);
    loop {
        let elapsed = started.elapsed();
        let valid_due = valid_rate > 0 && elapsed >= valid_every * valid_sent as u32;
        let forged_due = forged_store.is_some()
            && forged_sent + skipped < forged_limit
            && elapsed >= forged_every * (forged_sent + skipped) as u32;
        if elapsed >= length && !forged_due {
            break;
        }
        if valid_due && elapsed < length {
            let body = valid
                .bodies
                .get(*next_valid)
                .ok_or("not enough orders for the valid deliveries")?
                .clone();
            *next_valid += 1;
            valid_sent += 1;
            let (app, store, whsec) = (counted.clone(), valid.store_id, valid.whsec.clone());
            valid_tasks.spawn(async move {
                let signature = payload::sign(&whsec, shared::clock::now(), body.as_bytes());
                let sent = Instant::now();
                let answer =
                    process(&app.app, Some(store), Some(&signature), body.as_bytes()).await;
                (sent.elapsed(), answer)
            });
        }
        if let Some(store) = forged_store.filter(|_| forged_due) {
            if forged_tasks.len() >= 256 {
                skipped += 1;
            } else {
                forged_sent += 1;
                let (app, body, wrong) =
                    (counted.clone(), forged_body(store, &mut rng), wrong.clone());
                forged_tasks.spawn(async move {
                    let signature = payload::sign(&wrong, shared::clock::now(), body.as_bytes());
                    let sent = Instant::now();
                    let answer =
                        process(&app.app, Some(store), Some(&signature), body.as_bytes()).await;
                    (sent.elapsed(), answer)
                });
            }
        }
        while let Some(done) = forged_tasks.try_join_next() {
            forged_answers.add(done?);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut valid_answers = Answers::default();
    while let Some(done) = valid_tasks.join_next().await {
        valid_answers.add(done?);
    }
    while let Some(done) = forged_tasks.join_next().await {
        forged_answers.add(done?);
    }
    Ok(Phase {
        name,
        valid: valid_answers,
        forged: forged_answers,
        skipped,
        dynamodb: counted.dynamodb.counts().since(&dynamodb_before),
        kms: counted.kms.counts().since(&kms_before),
        cpu: cpu::process_cpu(ticks)?.since(&cpu_before).total(),
        wall: started.elapsed(),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ops(counts: &DynamoCounts) -> String {
    let by: Vec<String> = counts
        .requests_by_operation
        .iter()
        .map(|(op, n)| format!("{n} {op}"))
        .collect();
    if by.is_empty() {
        "none".into()
    } else {
        by.join(", ")
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let load_before = machine::load_average();
    let config = Config::from_env()?;
    let ticks = cpu::clock_ticks();

    // Setup (unmeasured), on its own app: the store, its secret, and an
    // order with an intent for each valid delivery.
    let aws = shared::app::load_aws_config().await;
    let setup = App::with_parts(
        config.clone(),
        aws_sdk_dynamodb::Client::new(&aws),
        Arc::new(KmsDataKeys::new(
            aws_sdk_kms::Client::new(&aws),
            config.kms_key_id.clone(),
        )),
    );
    let (store_id, whsec) = fixtures::connect_store_with_webhook(&setup).await?;
    let secs = (options.baseline + options.flood).as_secs() as usize;
    let orders = secs * options.valid_per_sec as usize + 10;
    // Fresh intent ids per run: the table may hold an earlier run's links.
    let mut rng = Rng::new(shared::clock::now_millis() as u64);
    let mut bodies = Vec::with_capacity(orders);
    for _ in 0..orders {
        let mut ids = StripeIds::new(&mut rng);
        // Paid in the Stripe emulator: the webhook confirms a `succeeded`
        // there before it pays the order.
        let (checkout, payment_intent) =
            fixtures::create_checkout_with_stripe_intent(&setup, store_id, 2999, true).await?;
        ids.payment_intent = payment_intent;
        let subject = Subject {
            store_id,
            order_id: &checkout.order_id,
            amount: 2999,
            ids: &ids,
        };
        let id = format!("evt_3{}", rng.alphanumeric(23));
        bodies.push(payload::event_body(
            &id,
            &StripeEvent::Succeeded,
            &subject,
            0,
            shared::clock::now(),
            "2026-09-30.endive",
        ));
    }
    let valid = Valid {
        store_id,
        whsec,
        bodies,
    };
    let unknown_store = StoreId::parse(&uuid::Uuid::new_v4().to_string())?;
    eprintln!("setup: 1 store, {orders} orders with intents");

    // Measured: a fresh app, as after a cold start; one container's memory.
    let counted = Arc::new(CountedApp::new(config).await);
    let mut next = 0;
    let vr = options.valid_per_sec;
    let fr = options.forged_per_sec;
    let flood_count = (options.flood.as_secs() * u64::from(fr)) as usize;
    let baseline = phase(
        "baseline: valid only",
        &counted,
        &valid,
        &mut next,
        vr,
        None,
        0,
        0,
        options.baseline,
        ticks,
    )
    .await?;
    eprintln!("baseline done");
    let flood = phase(
        "flood: valid + forged",
        &counted,
        &valid,
        &mut next,
        vr,
        Some(store_id),
        fr,
        flood_count,
        options.flood,
        ticks,
    )
    .await?;
    eprintln!("flood done");
    let unknown_secs = (options.unknown as f64 / f64::from(fr)).ceil() as u64;
    let unknown = phase(
        "forged for a store with no connection",
        &counted,
        &valid,
        &mut next,
        0,
        Some(unknown_store),
        fr,
        options.unknown,
        Duration::from_secs(unknown_secs.max(1)),
        ticks,
    )
    .await?;
    eprintln!("unknown-store flood done");

    // What BMOS would be shown now (internal status computes exactly this).
    let connection = setup
        .store
        .get_connection(&store_id)
        .await?
        .ok_or("the store's connection is gone")?;
    let health = webhook_health(
        &connection,
        "https://pay.example/webhook",
        shared::clock::now(),
    );

    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let m = Machine::describe(&repo, load_before);
    let per_valid = baseline.dynamodb.requests() as f64 / baseline.valid.ok.max(1) as f64;
    let forged_requests =
        flood.dynamodb.requests() as f64 - per_valid * flood.valid.latencies.len() as f64;
    let mut out = String::new();
    writeln!(
        out,
        "# Forged webhook deliveries: cost, and the store's own deliveries\n"
    )?;
    writeln!(
        out,
        "{} · {} CPUs ({}) · {} · commit {} · load {} before, {} after\n",
        m.date, m.cpus, m.cpu_model, m.rustc, m.commit, m.load_before, m.load_after
    )?;
    writeln!(
        out,
        "Command: `{}`\n",
        std::env::args().collect::<Vec<_>>().join(" ")
    )?;
    writeln!(
        out,
        "| phase | wall | valid sent | valid 200 / 4xx / 5xx | valid median | valid p99 | forged sent (skipped) | forged 400 / other | DynamoDB requests | KMS calls | CPU |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    for p in [&baseline, &flood, &unknown] {
        let forged_other = p.forged.ok + p.forged.failed;
        writeln!(
            out,
            "| {} | {:.1} s | {} | {} / {} / {} | {} | {} | {} ({}) | {} / {} | {} ({}) | {} | {} |",
            p.name,
            p.wall.as_secs_f64(),
            p.valid.latencies.len(),
            p.valid.ok,
            p.valid.refused,
            p.valid.failed,
            ms(p.valid.percentile(0.5)),
            ms(p.valid.percentile(0.99)),
            p.forged.latencies.len(),
            p.skipped,
            p.forged.refused,
            forged_other,
            p.dynamodb.requests(),
            ops(&p.dynamodb),
            p.kms.total(),
            ms(p.cpu),
        )?;
    }
    let ratio = |q: f64| {
        flood.valid.percentile(q).as_secs_f64()
            / baseline.valid.percentile(q).as_secs_f64().max(1e-9)
    };
    let forged_n = flood.forged.latencies.len().max(1) as f64;
    let unknown_n = unknown.forged.latencies.len().max(1) as f64;
    writeln!(out)?;
    writeln!(
        out,
        "- Valid deliveries answered 200 during the flood: **{} of {}** (goal: all).",
        flood.valid.ok,
        flood.valid.latencies.len()
    )?;
    writeln!(
        out,
        "- Valid latency with the flood ÷ without: median **{:.2}×**, p99 **{:.2}×**.",
        ratio(0.5),
        ratio(0.99)
    )?;
    writeln!(
        out,
        "- DynamoDB requests per valid delivery (baseline): {per_valid:.2}."
    )?;
    writeln!(
        out,
        "- Per forged delivery for the connected store: **{:.4} DynamoDB requests** ((flood requests − {per_valid:.2} × valid deliveries) ÷ forged), **{:.4} KMS calls**, {:.0} µs CPU (answers to the {} forgeries: median {}, p99 {}).",
        forged_requests / forged_n,
        flood.kms.total() as f64 / forged_n,
        (flood.cpu.as_secs_f64()
            - baseline.cpu.as_secs_f64() * flood.wall.as_secs_f64() / baseline.wall.as_secs_f64())
            * 1e6
            / forged_n,
        flood.forged.latencies.len(),
        ms(flood.forged.percentile(0.5)),
        ms(flood.forged.percentile(0.99))
    )?;
    writeln!(
        out,
        "- Per forged delivery for a store id with no connection: **{:.4} DynamoDB requests**, {:.4} KMS calls.",
        unknown.dynamodb.requests() as f64 / unknown_n,
        unknown.kms.total() as f64 / unknown_n
    )?;
    writeln!(
        out,
        "- The store's record after the flood: `webhook_failures` {}, last reason \"{}\"; `webhook_health`: **{}** {:?} (goal: not signatures failing).",
        connection.activity.failures,
        connection.activity.last_failure.as_deref().unwrap_or("-"),
        health.status,
        health.problems
    )?;
    writeln!(
        out,
        "\nMethod: one process calls `shared::webhooks::process` (the webhook function's whole path below HTTP) on a fresh `App` whose KMS and DynamoDB clients count their calls (`bench/src/counting.rs`), against DynamoDB Local and moto. Valid deliveries are `payment_intent.succeeded` for orders with intents (one per order, applied), signed when sent; forgeries are the same shape with a made-up intent, signed with another secret. Each delivery is started on its own schedule (no waiting for answers, at most 256 forgeries in flight) on a 2-worker runtime; latency is from the start of `process` to its answer. CPU per forgery is the flood's process CPU less the baseline's rate for the same time."
    )?;
    print!("{out}");
    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.out, &out)?;
    eprintln!("report written to {}", options.out.display());
    Ok(())
}
