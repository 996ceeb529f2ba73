//! KMS calls, DynamoDB requests and CPU time of create-intent for 1,000
//! intents across 10 stores in one warm process, against the local stack.
//! See bench/README.md for how to run it; the report goes to stdout and to
//! `bench/results/intents.md`.
// A benchmark's output is its report.
#![allow(clippy::print_stdout)]

use bench::passes::{self, CountedApp, StackLogs};
use bench::report::{self, Machine, Report};
use bench::{BoxError, cpu, fixtures};
use shared::App;
use shared::config::Config;
use shared::vault::KmsDataKeys;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// From the issue: at most 10 KMS calls for 1,000 intents across 10 stores.
const KMS_GOAL: u64 = 10;

struct Options {
    stores: usize,
    per_store: usize,
    out: PathBuf,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        stores: 10,
        per_store: 100,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/intents.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--stores" => options.stores = value()?.parse()?,
            "--orders-per-store" => options.per_store = value()?.parse()?,
            "--out" => options.out = PathBuf::from(value()?),
            _ => {
                return Err(format!(
                    "unknown argument {arg}; usage: intents [--stores N] [--orders-per-store N] [--out PATH]"
                )
                .into());
            }
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let load_before = report::load_average();
    let started = Instant::now();
    let config = Config::from_env()?;
    let ticks = cpu::clock_ticks();

    // Setup, on its own app so the measured one starts cold.
    let aws = shared::app::load_aws_config().await;
    let setup_app = App::with_parts(
        config.clone(),
        aws_sdk_dynamodb::Client::new(&aws),
        Arc::new(KmsDataKeys::new(
            aws_sdk_kms::Client::new(&aws),
            config.kms_key_id.clone(),
        )),
    );
    let checkouts =
        fixtures::stores_with_checkouts(&setup_app, options.stores, options.per_store).await?;
    drop(setup_app);
    let setup = started.elapsed();
    eprintln!(
        "setup: {} stores, {} checkouts in {:.1} s",
        options.stores,
        checkouts.len(),
        setup.as_secs_f64()
    );

    let data_key_cache_ttl = config.data_key_cache_ttl;
    let counted = CountedApp::new(config).await;
    let logs = StackLogs::from_env();
    let first = passes::run("A (create)", &counted, &checkouts, logs.as_ref(), ticks).await?;
    eprintln!("pass A: {:.1} s", first.wall.as_secs_f64());
    let again = passes::run("B (reuse)", &counted, &checkouts, logs.as_ref(), ticks).await?;
    eprintln!("pass B: {:.1} s", again.wall.as_secs_f64());
    if let Some(i) =
        (0..checkouts.len()).find(|&i| first.client_secrets[i] != again.client_secrets[i])
    {
        return Err(format!(
            "order {}: pass B returned another intent than pass A",
            checkouts[i].order_id
        )
        .into());
    }

    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let passes = [first, again];
    let report = Report {
        machine: Machine::describe(&repo, load_before),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        stores: options.stores,
        per_store: options.per_store,
        kms_goal: KMS_GOAL,
        passes: &passes,
        setup,
        total: started.elapsed(),
        ticks_per_second: ticks,
        data_key_cache_ttl,
    };
    let markdown = report.markdown();
    println!("{}\n\n{}", report.goal_line(), report.table());
    println!("{}", report.operations_table());
    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.out, markdown)?;
    eprintln!("report written to {}", options.out.display());
    Ok(())
}
