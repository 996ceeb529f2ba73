//! The Markdown report: where it ran, the results table, the goal, the method.

use crate::passes::Pass;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The machine and revision the numbers come from.
pub struct Machine {
    pub date: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub rustc: String,
    pub commit: String,
    pub load_before: String,
    pub load_after: String,
}

fn command_line(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}

impl Machine {
    pub fn describe(repo: &Path, load_before: String) -> Machine {
        let unknown = || "?".to_string();
        let commit = match command_line("git", &["rev-parse", "--short", "HEAD"], repo) {
            Some(hash) => {
                let dirty = command_line("git", &["status", "--porcelain"], repo)
                    .is_some_and(|status| !status.is_empty());
                if dirty {
                    format!("{hash} + uncommitted changes")
                } else {
                    hash
                }
            }
            None => unknown(),
        };
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"], repo)
                .unwrap_or_else(unknown),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split(':').nth(1))
                        .map(|m| m.trim().to_owned())
                })
                .unwrap_or_else(unknown),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_else(|_| unknown()),
            rustc: command_line("rustc", &["--version"], repo).unwrap_or_else(unknown),
            commit,
            load_before,
            load_after: load_average(),
        }
    }
}

/// Everything the report shows.
pub struct Report<'a> {
    pub machine: Machine,
    pub command: String,
    pub stores: usize,
    pub per_store: usize,
    pub kms_goal: u64,
    pub passes: &'a [Pass],
    pub setup: Duration,
    pub total: Duration,
    pub ticks_per_second: u64,
    /// The vault's data-key cache TTL (`DATA_KEY_CACHE_TTL_SECONDS`).
    pub data_key_cache_ttl: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_call_us(d: Duration, calls: usize) -> f64 {
    d.as_secs_f64() * 1e6 / calls.max(1) as f64
}

impl Report<'_> {
    /// The first pass creates the intents: the goal is about it.
    pub fn goal_met(&self) -> bool {
        self.passes
            .first()
            .is_some_and(|p| p.kms.total() <= self.kms_goal)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let with_logs = self.passes.iter().all(|p| p.emulators.is_some());
        out.push_str("| pass | calls | KMS calls (decrypt / generate) | DynamoDB requests | DynamoDB / call |");
        if with_logs {
            out.push_str(" Stripe requests | moto requests |");
        }
        out.push_str(" CPU µs / call (user + sys) | wall ms / call | p50 ms | p99 ms |\n|---|---|---|---|---|");
        if with_logs {
            out.push_str("---|---|");
        }
        out.push_str("---|---|---|---|\n");
        for p in self.passes {
            let requests = p.dynamodb.requests();
            let _ = write!(
                out,
                "| {} | {} | {} ({} / {}) | {} | {:.2} |",
                p.name,
                p.calls,
                p.kms.total(),
                p.kms.decrypt,
                p.kms.generate,
                requests,
                requests as f64 / p.calls.max(1) as f64,
            );
            if let Some(e) = &p.emulators {
                let _ = write!(
                    out,
                    " {} ({} create, {} retrieve, {} cancel, {} other) | {} |",
                    e.stripe(),
                    e.stripe_create,
                    e.stripe_retrieve,
                    e.stripe_cancel,
                    e.stripe_other,
                    e.moto
                );
            }
            let _ = writeln!(
                out,
                " {:.0} ({:.0} + {:.0}) | {:.2} | {:.2} | {:.2} |",
                per_call_us(p.cpu.total(), p.calls),
                per_call_us(p.cpu.user, p.calls),
                per_call_us(p.cpu.system, p.calls),
                ms(p.wall) / p.calls.max(1) as f64,
                ms(p.percentile(50.0)),
                ms(p.percentile(99.0)),
            );
        }
        out
    }

    pub fn operations_table(&self) -> String {
        let operations: BTreeSet<&String> = self
            .passes
            .iter()
            .flat_map(|p| p.dynamodb.requests_by_operation.keys())
            .collect();
        let mut out = String::from("| pass |");
        for op in &operations {
            let _ = write!(out, " {op} |");
        }
        out.push_str(" operations started | requests (incl. retries) |\n|---|");
        out.push_str(&"---|".repeat(operations.len() + 2));
        out.push('\n');
        for p in self.passes {
            let _ = write!(out, "| {} |", p.name);
            for op in &operations {
                let n = p
                    .dynamodb
                    .requests_by_operation
                    .get(*op)
                    .copied()
                    .unwrap_or(0);
                let _ = write!(out, " {n} ({:.2}/call) |", n as f64 / p.calls.max(1) as f64);
            }
            let _ = writeln!(
                out,
                " {} | {} |",
                p.dynamodb.operations,
                p.dynamodb.requests()
            );
        }
        out
    }

    pub fn goal_line(&self) -> String {
        let intents = self.stores * self.per_store;
        match self.passes.first() {
            Some(first) => format!(
                "Goal: ≤ {} KMS calls for {intents} intents across {} stores in one warm process: **{}** ({} in pass {}: {} Decrypt, {} GenerateDataKey).",
                self.kms_goal,
                self.stores,
                if self.goal_met() { "PASS" } else { "FAIL" },
                first.kms.total(),
                first.name,
                first.kms.decrypt,
                first.kms.generate,
            ),
            None => "Goal: no pass ran.".into(),
        }
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out =
            String::from("# create-intent: KMS calls, DynamoDB requests and CPU per call\n\n");
        let _ = writeln!(
            out,
            "{} · {} CPUs ({}) · Linux {} · {} · commit {} · load average {} before, {} after\n",
            m.date, m.cpus, m.cpu_model, m.kernel, m.rustc, m.commit, m.load_before, m.load_after
        );
        let _ = writeln!(out, "Command: `{}`\n", self.command);
        let _ = writeln!(out, "{}\n", self.goal_line());
        out.push_str(&self.table());
        out.push_str("\nDynamoDB requests by operation:\n\n");
        out.push_str(&self.operations_table());
        let _ = writeln!(
            out,
            "\nTimings: setup {:.1} s, {}, total {:.1} s.\n",
            self.setup.as_secs_f64(),
            self.passes
                .iter()
                .map(|p| format!("pass {} {:.1} s", p.name, p.wall.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            self.total.as_secs_f64()
        );
        out.push_str(&self.method());
        out
    }

    fn method(&self) -> String {
        let intents = self.stores * self.per_store;
        format!(
            "## Method\n\n\
- Stack: `infra/stack.sh start` (DynamoDB Local, moto for KMS, localstripe for the Stripe API), nothing else using it. \
`STRIPE_PAYMENT_METHOD_TYPES=card` because localstripe refuses automatic payment methods.\n\
- Setup (not measured): {stores} stores connected by writing the connection straight to the table \
(`Store::save_connection`), each with its own `sk_test_` key sealed through the real KMS vault (one GenerateDataKey each, \
on a separate app, so none of these counts); then {per_store} pending orders and checkout sessions per store (`Store::create_checkout`), {intents} in all.\n\
- Then a fresh `App` (new AWS config and connection pools, empty data-key cache), as after a cold start: \
`App::with_parts` with the real `KmsDataKeys` behind a counting `DataKeys` decorator, and a DynamoDB client built from \
`shared::app::load_aws_config()` (the service's own) plus a counting SDK interceptor (operations in `read_before_execution`, \
HTTP requests by `X-Amz-Target` in `read_before_transmit`, so retries would show).\n\
- Pass A: `create_intent::handler::handle` once per order, one call at a time (as one Lambda sandbox serves requests), \
stores interleaved round-robin; every answer must be 200 with a `pi_…_secret_…` client secret. \
Pass B: the same {intents} calls again (reload or double click: the order has its intent, which is retrieved and reused); \
every client secret must equal pass A's for the same order.\n\
- Requests (`POST /checkout/{{token}}/payment-intent`, body `{{}}`, path parameter `token`) are built before the clock starts; \
the handler's work includes everything it awaits (AWS SDK signing and HTTP, the Stripe client, JSON).\n\
- CPU: this process's utime + stime from `/proc/self/stat` (all threads, {ticks} ticks/s: ±1 tick per pass, ±{tick_us} µs per call) around the pass, \
÷ calls. It varies with the load on the shared machine (load average above). The emulators are other processes, so waiting on them is not counted. Release build (the workspace profile: \
opt-level s, fat LTO). Endpoints are plain HTTP: production adds TLS to AWS and Stripe, which this does not measure.\n\
- KMS calls: the decorator's count; the vault's data-key cache TTL is {ttl_s} s (both passes together took {passes_s:.1} s). Stripe and moto columns: request lines in `$STACK_DIR/localstripe.log` and \
`$STACK_DIR/moto.log` written during the pass (read 0.5 s after it ends), an independent count of what reached the emulators.\n\
- No tracing subscriber is installed: the per-request log line of `shared::serve` is not part of the handler and is not measured.\n\
- Wall times include the emulators (DynamoDB Local, moto and localstripe share the same {cpus} CPUs) and say little about AWS; \
p50/p99 are nearest-rank over the calls of the pass.\n",
            stores = self.stores,
            per_store = self.per_store,
            intents = intents,
            ticks = self.ticks_per_second,
            tick_us = 1_000_000 / self.ticks_per_second.max(1) / intents.max(1) as u64,
            ttl_s = self.data_key_cache_ttl.as_secs(),
            passes_s = self
                .passes
                .iter()
                .map(|p| p.wall.as_secs_f64())
                .sum::<f64>(),
            cpus = self.machine.cpus,
        )
    }
}
