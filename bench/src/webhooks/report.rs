//! The Markdown report of a run: where it ran, the goals, create-intent's
//! passes and the webhook run. The method is in bench/README.md.

use super::end_state::EndState;
use super::send::Measured;
use super::workload::{Shape, Workload};
use crate::intents::Pass;
use shared::testing::counting::Counts;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

/// From the issue: at most 10 KMS calls for 1,000 intents across 10 stores.
pub const KMS_GOAL_PER_STORE: u64 = 1;
/// From the issue: webhook CPU per delivery, waits excluded.
pub const CPU_GOAL_US: f64 = 200.0;

pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "?".into(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
}

/// Date, CPUs, rustc, commit (and whether the tree had changes), load
/// average before and now.
pub fn machine(load_before: &str) -> String {
    let dirty = output("git", &["status", "--porcelain"]);
    format!(
        "{} · {} CPUs · {} · commit {}{} · load average {load_before} before, {} after",
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        output("rustc", &["--version"]),
        output("git", &["rev-parse", "--short", "HEAD"]),
        if dirty.is_empty() {
            ""
        } else {
            " + uncommitted changes"
        },
        load_average(),
    )
}

/// `GET /v1/payment_intents/{id}` lines in the Stripe emulator's access log
/// (`$STACK_DIR/localstripe.log`); `None` without it.
pub fn stripe_reads() -> Option<u64> {
    let log = std::path::Path::new(&std::env::var_os("STACK_DIR")?).join("localstripe.log");
    let text = std::fs::read_to_string(log).ok()?;
    Some(
        text.lines()
            .filter(|l| l.contains("\"GET /v1/payment_intents/"))
            .count() as u64,
    )
}

pub struct Report<'a> {
    pub machine: String,
    pub command: String,
    pub shape: &'a Shape,
    pub workload: &'a Workload,
    pub intents: &'a [Pass],
    pub measured: &'a Measured,
    pub end: &'a EndState,
    pub stripe_reads: Option<u64>,
}

fn us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**PASS**" } else { "**FAIL**" }
}

fn by_operation(counts: &Counts, n: usize, per: &str) -> String {
    let ops: Vec<String> = (counts.dynamodb.iter())
        .map(|(op, k)| format!("{op} {k} ({:.2})", *k as f64 / n.max(1) as f64))
        .collect();
    format!(
        "{} ({:.2} per {per}: {})",
        counts.dynamodb_requests(),
        counts.dynamodb_requests() as f64 / n.max(1) as f64,
        ops.join(", ")
    )
}

impl Report<'_> {
    pub fn correct(&self) -> bool {
        let end = self.end;
        end.lost_effects() == 0 && end.double_transitions == 0 && end.never_acknowledged == 0
    }

    pub fn markdown(&self) -> String {
        let (m, end, w) = (self.measured, self.end, self.workload);
        let deliveries = w.deliveries.len();
        let cpu_us = us(m.cpu.user + m.cpu.system, deliveries);
        let mut out =
            String::from("# Payments under load: create-intent, then Stripe's webhooks\n\n");
        let _ = writeln!(out, "{}\n\nCommand: `{}`\n", self.machine, self.command);

        let kms = self.intents.first().map_or(0, |p| p.counts.kms);
        let kms_goal = KMS_GOAL_PER_STORE * self.shape.stores as u64;
        let _ = writeln!(
            out,
            "Goals: ≤ {kms_goal} KMS calls for {} intents across {} stores: {} ({kms}). \
             No lost effect, no double transition, every delivery acknowledged: {}. \
             Webhook CPU per delivery ≤ {CPU_GOAL_US} µs: {} ({cpu_us:.0} µs).\n",
            w.orders.len(),
            self.shape.stores,
            verdict(kms <= kms_goal),
            verdict(self.correct()),
            verdict(cpu_us <= CPU_GOAL_US),
        );

        out.push_str("## create-intent (one call at a time, a fresh app)\n\n");
        out.push_str("| pass | calls | KMS calls | DynamoDB requests | CPU µs per call (user + sys) | wall ms per call |\n|---|---|---|---|---|---|\n");
        for p in self.intents {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} ({:.0} + {:.0}) | {:.2} |",
                p.name,
                p.calls,
                p.counts.kms,
                by_operation(&p.counts, p.calls, "call"),
                us(p.cpu.user + p.cpu.system, p.calls),
                us(p.cpu.user, p.calls),
                us(p.cpu.system, p.calls),
                us(p.wall, p.calls) / 1e3,
            );
        }

        let a = &end.answers;
        let no_change: Vec<String> = a
            .no_change
            .iter()
            .map(|(r, n)| format!("{n} \"{r}\""))
            .collect();
        let failed: Vec<String> = a.failed.iter().map(|(c, n)| format!("{n} {c}")).collect();
        let paid = w.orders.iter().filter(|o| o.paid()).count();
        let rows = [
            (
                "deliveries (distinct events + duplicates)",
                format!(
                    "{deliveries} ({} + {}), {:?}, {} senders, at most {} tries",
                    w.distinct_events(),
                    self.shape.duplicates,
                    self.shape.order,
                    m.senders,
                    m.max_tries
                ),
            ),
            ("attempts", m.attempt_count().to_string()),
            (
                "answers",
                format!(
                    "applied {}, duplicate {}, no change {} ({}), parked {}, flagged {}, failed {} ({})",
                    a.applied,
                    a.duplicate,
                    a.no_change.values().sum::<usize>(),
                    no_change.join(", "),
                    a.parked,
                    a.flagged,
                    a.failed.values().sum::<usize>(),
                    failed.join(", ")
                ),
            ),
            (
                "double transitions (an event answered as new twice)",
                end.double_transitions.to_string(),
            ),
            (
                "lost effects (events not recorded + orders not where production's decisions put them)",
                format!(
                    "**{}** ({} + {})",
                    end.lost_effects(),
                    end.unrecorded,
                    end.differ.len()
                ),
            ),
            (
                "orders where production's decisions on their events put them",
                format!("{} of {}", end.as_decided, w.orders.len()),
            ),
            (
                "deliveries never acknowledged",
                end.never_acknowledged.to_string(),
            ),
            ("events left parked", end.parked_left.to_string()),
            (
                "DynamoDB requests",
                by_operation(&m.counts, deliveries, "delivery"),
            ),
            ("KMS calls", m.counts.kms.to_string()),
            (
                "Stripe reads per paid order",
                self.stripe_reads.map_or("(no $STACK_DIR log)".into(), |r| {
                    format!("{:.3} ({r} for {paid})", r as f64 / paid.max(1) as f64)
                }),
            ),
            (
                "throughput",
                format!(
                    "{:.0} deliveries/s in the first pass, {:.0}/s until all were acknowledged",
                    deliveries as f64 / m.first_pass.as_secs_f64().max(1e-9),
                    deliveries as f64 / m.wall.as_secs_f64().max(1e-9)
                ),
            ),
            (
                "CPU per delivery, waits excluded (user + sys)",
                format!(
                    "**{cpu_us:.0} µs** ({:.0} + {:.0})",
                    us(m.cpu.user, deliveries),
                    us(m.cpu.system, deliveries)
                ),
            ),
        ];
        out.push_str("\n## Webhooks\n\n| measure | result |\n|---|---|\n");
        for (measure, result) in rows {
            let _ = writeln!(out, "| {measure} | {result} |");
        }
        for (i, stored, decided) in end.differ.iter().take(20) {
            let o = &w.orders[*i];
            let _ = writeln!(
                out,
                "\n- order {} ({:?}): stored {stored}, production decides {decided}",
                o.order_id, o.lifecycle.category
            );
        }
        out
    }
}
