//! Payments under load against the local stack: 1,000 orders across 10
//! stores get their PaymentIntents from create-intent (KMS calls, DynamoDB
//! requests, CPU per call), the paying ones are paid in the Stripe
//! emulator, then Stripe's webhooks for their stories arrive: 10,000
//! deliveries (30% duplicates; shuffled, or with `--order stripe` each
//! order's events in Stripe's order) from 8 concurrent senders. Then every
//! order's end is checked against production's own decisions. See
//! bench/README.md; the report goes to stdout and to
//! `bench/results/webhooks.md` (`webhooks-stripe-order.md` for
//! `--order stripe`).
// A benchmark's output is its report.
#![allow(clippy::print_stdout)]

use bench::webhooks::report::{self, Report};
use bench::webhooks::workload::{self, DeliveryOrder, Shape};
use bench::webhooks::{end_state, send};
use bench::{BoxError, cpu, fixtures, intents};
use shared::App;
use shared::config::Config;
use shared::testing::counting::CountedApp;
use shared::vault::KmsDataKeys;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "usage: webhooks [--stores N] [--orders N] [--events N] [--duplicates N] \
[--senders N] [--tries N] [--seed N] [--order shuffled|stripe] [--out PATH]";

struct Options {
    shape: Shape,
    senders: usize,
    max_tries: usize,
    out: Option<PathBuf>,
}

fn options() -> Result<Options, BoxError> {
    let mut o = Options {
        shape: Shape {
            stores: 10,
            orders: 1000,
            distinct_events: 7000,
            duplicates: 3000,
            seed: 20_261_128,
            order: DeliveryOrder::Shuffled,
        },
        senders: 8,
        // With the 4 s cap, about four minutes: longer than any first pass
        // here, as Stripe's three days are longer than any real delay.
        max_tries: 64,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--stores" => o.shape.stores = value()?.parse()?,
            "--orders" => o.shape.orders = value()?.parse()?,
            "--events" => o.shape.distinct_events = value()?.parse()?,
            "--duplicates" => o.shape.duplicates = value()?.parse()?,
            "--senders" => o.senders = value()?.parse()?,
            "--tries" => o.max_tries = value()?.parse()?,
            "--seed" => o.shape.seed = value()?.parse()?,
            "--order" => {
                o.shape.order = match value()?.as_str() {
                    "shuffled" => DeliveryOrder::Shuffled,
                    "stripe" => DeliveryOrder::Stripe,
                    other => return Err(format!("unknown order {other}; {USAGE}").into()),
                }
            }
            "--out" => o.out = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {arg}; {USAGE}").into()),
        }
    }
    if o.shape.stores == 0 || o.senders == 0 || o.max_tries == 0 {
        return Err(format!("--stores, --senders and --tries must be at least 1; {USAGE}").into());
    }
    Ok(o)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let load_before = report::load_average();
    let config = Config::from_env()?;
    let ticks = cpu::clock_ticks();

    // Setup, on an app of its own; its client also reads the results.
    let started = Instant::now();
    let aws = shared::app::load_aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(&aws), config.kms_key_id.clone());
    let setup = Arc::new(App::with_parts(
        config.clone(),
        dynamodb.clone(),
        Arc::new(kms),
    ));
    let mut workload = workload::prepare(&setup, &options.shape).await?;
    eprintln!(
        "setup: {} stores, {} orders in {:.1} s",
        workload.stores.len(),
        workload.orders.len(),
        started.elapsed().as_secs_f64()
    );

    // create-intent, measured: a fresh app, as after a cold start. Then
    // every call again (a reload, a double click): the same intent.
    let create = CountedApp::new(config.clone()).await;
    let tokens: Vec<String> = workload.orders.iter().map(|o| o.token.clone()).collect();
    let passes = [
        intents::pass("create", &create, &tokens, ticks).await?,
        intents::pass("reuse", &create, &tokens, ticks).await?,
    ];
    for (plan, (first, again)) in (workload.orders.iter_mut()).zip(
        passes[0]
            .client_secrets
            .iter()
            .zip(&passes[1].client_secrets),
    ) {
        if first != again {
            return Err(format!(
                "order {}: create-intent made a second intent",
                plan.order_id
            )
            .into());
        }
        plan.payment_intent = first
            .split("_secret_")
            .next()
            .unwrap_or_default()
            .to_owned();
    }

    // The customers whose stories pay do (not measured), 8 at a time.
    let mut paying = tokio::task::JoinSet::new();
    for plan in workload.orders.iter().filter(|plan| plan.paid()) {
        if paying.len() >= 8
            && let Some(done) = paying.join_next().await
        {
            done??;
        }
        let (app, intent) = (setup.clone(), plan.payment_intent.clone());
        let store = workload.stores[plan.store].store_id;
        paying.spawn(async move { fixtures::pay(&app, store, &intent).await });
    }
    while let Some(done) = paying.join_next().await {
        done??;
    }
    workload.sign_deliveries(&options.shape);

    // The webhooks, measured: another fresh app (another function).
    let counted = Arc::new(CountedApp::new(config).await);
    let reads_before = report::stripe_reads();
    let measured = send::run(
        counted,
        workload.deliveries.clone(),
        options.senders,
        options.max_tries,
        ticks,
    )
    .await?;
    // The emulator logs a request after answering it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stripe_reads = reads_before
        .zip(report::stripe_reads())
        .map(|(before, after)| after - before);
    eprintln!(
        "webhooks: {} deliveries in {:.1} s",
        workload.deliveries.len(),
        measured.wall.as_secs_f64()
    );
    if shared::clock::now().saturating_sub(workload.signed_at)
        > shared::webhooks::signature::TOLERANCE_SECS
    {
        eprintln!(
            "warning: the run outlasted the signature tolerance; late deliveries were refused"
        );
    }

    let end = end_state::check(&setup, &dynamodb, &workload, &measured).await?;
    let report = Report {
        machine: report::machine(&load_before),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        shape: &options.shape,
        workload: &workload,
        intents: &passes,
        measured: &measured,
        end: &end,
        stripe_reads,
    };
    let markdown = report.markdown();
    println!("{markdown}");
    let out = options.out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(match options.shape.order {
            DeliveryOrder::Shuffled => "results/webhooks.md",
            DeliveryOrder::Stripe => "results/webhooks-stripe-order.md",
        })
    });
    std::fs::write(&out, markdown)?;
    eprintln!("report written to {}", out.display());
    if report.correct() {
        Ok(())
    } else {
        Err("lost effects, double transitions or unacknowledged deliveries: see the report".into())
    }
}
