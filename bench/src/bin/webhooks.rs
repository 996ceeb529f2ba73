//! Load on the Stripe webhook handling against the local stack: 10,000
//! deliveries over 1,000 orders (30% duplicates; shuffled, or with
//! `--order stripe` each order's events in Stripe's order) from 8 concurrent
//! senders; lost effects, double transitions, throughput and CPU per
//! delivery. See bench/README.md; the report goes to stdout and to
//! `bench/results/webhooks.md` (`webhooks-stripe-order.md` for
//! `--order stripe`).
// A benchmark's output is its report.
#![allow(clippy::print_stdout)]

use bench::passes::{CountedApp, StackLogs};
use bench::report::{self as machine, Machine};
use bench::webhooks::report::{Report, Timings};
use bench::webhooks::workload::{self, DeliveryOrder, Shape};
use bench::webhooks::{breakdown, repro, send, verify};
use bench::{BoxError, cpu};
use shared::App;
use shared::config::Config;
use shared::vault::KmsDataKeys;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

struct Options {
    shape: Shape,
    senders: usize,
    max_tries: usize,
    breakdown: bool,
    repro: bool,
    out: PathBuf,
}

/// The report's default path for each delivery order, so both can coexist.
fn default_out(order: DeliveryOrder) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(match order {
        DeliveryOrder::Shuffled => "results/webhooks.md",
        DeliveryOrder::Stripe => "results/webhooks-stripe-order.md",
    })
}

const USAGE: &str = "usage: webhooks [--stores N] [--orders N] [--events N] [--duplicates N] [--senders N] \
[--tries N] [--seed N] [--order shuffled|stripe] [--no-breakdown] [--no-repro] [--out PATH] \
(--out defaults to bench/results/webhooks.md, or webhooks-stripe-order.md for --order stripe)";

fn options() -> Result<Options, BoxError> {
    let mut o = Options {
        shape: Shape {
            stores: 10,
            orders: 1000,
            distinct_events: 7000,
            duplicates: 3000,
            seed: 20_261_128,
            setup_concurrency: 8,
            order: DeliveryOrder::Shuffled,
        },
        senders: 8,
        // With the 4 s cap, about four minutes: longer than any first pass
        // here, as Stripe's three days are longer than any real delay.
        max_tries: 64,
        breakdown: true,
        repro: true,
        out: PathBuf::new(),
    };
    let mut out = None;
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
            "--no-breakdown" => o.breakdown = false,
            "--no-repro" => o.repro = false,
            "--order" => o.shape.order = value()?.parse().map_err(|e| format!("{e}; {USAGE}"))?,
            "--out" => out = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {arg}; {USAGE}").into()),
        }
    }
    if o.shape.stores == 0 || o.senders == 0 || o.max_tries == 0 {
        return Err(format!("--stores, --senders and --tries must be at least 1; {USAGE}").into());
    }
    o.out = out.unwrap_or_else(|| default_out(o.shape.order));
    Ok(o)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let load_before = machine::load_average();
    let started = Instant::now();
    let config = Config::from_env()?;
    let ticks = cpu::clock_ticks();

    // Setup, on its own app; its DynamoDB client also reads the results.
    let aws = shared::app::load_aws_config().await;
    let setup_dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let setup_app = Arc::new(App::with_parts(
        config.clone(),
        setup_dynamodb.clone(),
        Arc::new(KmsDataKeys::new(
            aws_sdk_kms::Client::new(&aws),
            config.kms_key_id.clone(),
        )),
    ));
    let mut workload = workload::prepare(setup_app.clone(), &options.shape).await?;
    let deliveries = Arc::new(std::mem::take(&mut workload.deliveries));
    eprintln!(
        "setup {:.1} s ({} stores, {} orders), {} deliveries ({}) built and signed in {:.1} s",
        workload.setup_time.as_secs_f64(),
        workload.stores.len(),
        workload.orders.len(),
        deliveries.len(),
        options.shape.order.name(),
        workload.build_time.as_secs_f64()
    );

    // Measured: a fresh app, as after a cold start.
    let data_key_cache_ttl = config.data_key_cache_ttl;
    let table = config.table_name.clone();
    let counted = Arc::new(CountedApp::new(config).await);
    // Stripe's confirmation reads, from the emulator's log (only this run
    // uses the stack).
    let stripe_log = StackLogs::from_env();
    let stripe_before = stripe_log.as_ref().map(StackLogs::counts).transpose()?;
    let measured = send::run(
        counted.clone(),
        deliveries.clone(),
        options.senders,
        options.max_tries,
        ticks,
    )
    .await?;
    let stripe = match (&stripe_log, &stripe_before) {
        (Some(log), Some(before)) => Some(log.counts()?.since(before)),
        _ => None,
    };
    eprintln!(
        "measured: {} deliveries in {:.1} s",
        deliveries.len(),
        measured.wall.as_secs_f64()
    );
    if shared::clock::now().saturating_sub(workload.signed_at)
        > shared::webhooks::signature::TOLERANCE_SECS
    {
        eprintln!(
            "warning: the run outlasted the signature tolerance; late deliveries were refused"
        );
    }

    let verify_started = Instant::now();
    let verification =
        verify::verify(&setup_dynamodb, &table, &workload, &deliveries, &measured).await?;
    let verify_time = verify_started.elapsed();
    eprintln!("verified in {:.1} s", verify_time.as_secs_f64());

    let breakdown_started = Instant::now();
    let breakdown = if options.breakdown {
        Some(
            breakdown::measure(
                counted.clone(),
                &workload,
                &deliveries,
                3,
                2000,
                options.senders,
                ticks,
            )
            .await?,
        )
    } else {
        None
    };
    let breakdown_time = breakdown_started.elapsed();
    let reproduced = if options.repro {
        Some(repro::run(&setup_app, &setup_dynamodb, &table).await?)
    } else {
        None
    };

    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let report = Report {
        machine: Machine::describe(&repo, load_before),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        shape: &options.shape,
        workload: &workload,
        deliveries: &deliveries,
        measured: &measured,
        verification: &verification,
        breakdown: breakdown.as_ref(),
        reproduced: reproduced.as_deref(),
        timings: Timings {
            setup: workload.setup_time,
            build: workload.build_time,
            measured: measured.wall,
            verify: verify_time,
            breakdown: breakdown_time,
            total: started.elapsed(),
        },
        ticks_per_second: ticks,
        data_key_cache_ttl,
        stripe,
    };
    println!(
        "{}
{}",
        report.goals(),
        report.results()
    );
    println!("{}", report.outcomes());
    println!("{}", report.against_stripe());
    if let Some(reproduced) = &reproduced {
        println!("{}", repro::markdown(reproduced));
        for r in reproduced.iter().filter(|r| !repro::agrees_with_model(r)) {
            eprintln!(
                "warning: reproduction \"{}\" differs from the model's answers or orders",
                r.scenario.name
            );
        }
    }
    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.out, report.markdown())?;
    eprintln!("report written to {}", options.out.display());
    if report.lost_ok() && report.double_ok() {
        Ok(())
    } else {
        Err("lost effects or double transitions: see the report".into())
    }
}
