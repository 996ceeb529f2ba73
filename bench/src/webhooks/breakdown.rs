//! Where the CPU goes (measured separately, after the run): the handler's
//! own work without I/O, and one DynamoDB read through the same client.

use super::workload::Workload;
use crate::BoxError;
use crate::cpu;
use crate::passes::CountedApp;
use shared::domain::WebhookSecret;
use shared::webhooks::{Envelope, verify};
use std::sync::Arc;
use std::time::Duration;

pub struct Breakdown {
    /// Parse, verify the signature, read the effect: per delivery.
    pub logic: Duration,
    pub logic_rounds: usize,
    /// One `GetItem` (the connection read every delivery starts with),
    /// through the measured app's client, `senders` at a time.
    pub get_item: Duration,
    pub get_items: usize,
}

/// `rounds` passes over every delivery on this thread, then `get_items`
/// connection reads from `senders` tasks.
pub async fn measure(
    counted: Arc<CountedApp>,
    workload: &Workload,
    deliveries: &[super::workload::Delivery],
    rounds: usize,
    get_items: usize,
    senders: usize,
    ticks: u64,
) -> Result<Breakdown, BoxError> {
    let secrets = workload
        .stores
        .iter()
        .map(|s| Ok((s.store_id, WebhookSecret::parse(&s.whsec)?)))
        .collect::<Result<std::collections::HashMap<_, _>, BoxError>>()?;
    let now = workload.signed_at;
    let before = cpu::process_cpu(ticks)?;
    let mut checked = 0usize;
    for _ in 0..rounds {
        for d in deliveries {
            let envelope = Envelope::parse(&d.body)?;
            let secret = &secrets[&d.store_id];
            verify(Some(&d.signature), &d.body, secret, now)
                .map_err(|e| format!("signature: {e}"))?;
            if envelope.effect().is_ok() {
                checked += 1;
            }
        }
    }
    let logic_cpu = cpu::process_cpu(ticks)?.since(&before).total();
    if checked != rounds * deliveries.len() {
        return Err("a delivery's effect did not parse".into());
    }

    let store_id = workload.stores.first().ok_or("no store")?.store_id;
    let per_task = get_items / senders.max(1);
    let before = cpu::process_cpu(ticks)?;
    let mut tasks = Vec::new();
    for _ in 0..senders.max(1) {
        let counted = counted.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                counted.app.store.get_connection(&store_id).await?;
            }
            Ok::<_, shared::AppError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let read_cpu = cpu::process_cpu(ticks)?.since(&before).total();
    let reads = per_task * senders.max(1);
    Ok(Breakdown {
        logic: logic_cpu / (rounds * deliveries.len()).max(1) as u32,
        logic_rounds: rounds,
        get_item: read_cpu / reads.max(1) as u32,
        get_items: reads,
    })
}
