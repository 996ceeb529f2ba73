//! The reconciler: every few minutes, ask Stripe about orders that still
//! wait for a payment outcome well after their intent was made, and apply
//! what Stripe says through the same guarded transitions as the webhook and
//! the return page. A missing or misconfigured webhook then delays an
//! order by minutes instead of stranding it.
//!
//! Bounded work per run, and safe to run twice at once: every change is a
//! conditional write, so a second run finds nothing left to do.

use crate::app::App;
use crate::checkout::{self, PaymentState};
use crate::domain::{SecretKey, StoreId};
use crate::error::{AppError, cause_chain};
use crate::key_health;
use crate::metrics::{Metric, PaidVia};
use crate::store::{StripeConnection, pending_partitions};
use crate::stripe::StripeFailure;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Orders whose intent is younger than this are left to the webhook.
    pub min_age_secs: u64,
    /// Orders untouched for longer than this are dropped from the index.
    pub give_up_after_secs: u64,
    /// At most this many orders per run.
    pub max_orders: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_age_secs: 5 * 60,
            give_up_after_secs: 7 * 24 * 60 * 60,
            max_orders: 100,
        }
    }
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub examined: usize,
    pub paid: usize,
    pub processing: usize,
    pub failed: usize,
    pub flagged: usize,
    pub unchanged: usize,
    pub given_up: usize,
    pub errors: usize,
    /// Left for later: the store's key is rejected by Stripe, or the order
    /// is flagged for (or resolved by) a person.
    pub deferred: usize,
    /// Of `paid`: orders of stores whose webhook is configured, so their
    /// `succeeded` delivery should have come first. Many of them mean the
    /// store's webhook (or ours) is broken.
    pub paid_with_webhook: usize,
}

impl Report {
    /// Orders this run moved on: paid, paying, failed or flagged.
    pub fn healed(&self) -> usize {
        self.paid + self.processing + self.failed + self.flagged
    }
}

/// A store's key, opened once per run, and whether its webhook is set up.
#[derive(Clone)]
struct MerchantKey {
    connection: StripeConnection,
    key: SecretKey,
    has_webhook: bool,
}

pub async fn run(app: &App, now: u64, limits: Limits) -> Result<Report, AppError> {
    let mut report = Report::default();
    let mut keys: HashMap<StoreId, MerchantKey> = HashMap::new();
    let cutoff = now.saturating_sub(limits.min_age_secs);
    for partition in pending_partitions() {
        let room = limits.max_orders.saturating_sub(report.examined);
        if room == 0 {
            break;
        }
        let limit = i32::try_from(room).unwrap_or(i32::MAX);
        for order_id in app
            .store
            .stale_pending_orders(&partition, cutoff, limit)
            .await?
        {
            report.examined += 1;
            if let Err(err) =
                reconcile_one(app, &order_id, now, limits, &mut keys, &mut report).await
            {
                // One store's broken key must not stop the others.
                report.errors += 1;
                tracing::warn!(order_id = %order_id, cause = %cause_chain(&err), "could not reconcile order");
            }
        }
    }
    tracing::info!(?report, "reconciler run finished");
    app.metrics.emit(Metric::ReconcilerRun {
        examined: report.examined,
        healed: report.healed(),
        errors: report.errors,
        paid_with_webhook: report.paid_with_webhook,
    });
    Ok(report)
}

async fn reconcile_one(
    app: &App,
    order_id: &str,
    now: u64,
    limits: Limits,
    keys: &mut HashMap<StoreId, MerchantKey>,
    report: &mut Report,
) -> Result<(), AppError> {
    let Some(order) = app.store.get_order(order_id).await? else {
        return Ok(());
    };
    let Some(intent_id) = order.payment_intent_id.as_deref() else {
        report.unchanged += 1;
        return Ok(());
    };
    if !order.status.awaits_payment() {
        // The index lags the table; the order was settled meanwhile.
        report.unchanged += 1;
        return Ok(());
    }
    if order.review_reason.is_some() {
        // Flagged for a person (or resolved by one): not Stripe's to settle.
        report.deferred += 1;
        return Ok(());
    }
    let merchant = match keys.get(&order.store_id) {
        Some(merchant) => merchant.clone(),
        None => {
            let (connection, key) = match checkout::merchant_key(app, &order.store_id).await {
                Err(err) if err.code() == "store_needs_reconnect" => {
                    report.deferred += 1;
                    return Ok(());
                }
                opened => opened?,
            };
            let merchant = MerchantKey {
                connection: connection.clone(),
                key,
                has_webhook: connection.webhook_secret.is_some(),
            };
            keys.insert(order.store_id, merchant.clone());
            merchant
        }
    };
    let read = app.stripe.retrieve_intent(&merchant.key, intent_id).await;
    let intent =
        match key_health::watch(app, &merchant.connection, "retrieve PaymentIntent", read).await {
            Err(StripeFailure::InvalidKey) => {
                // Marked now: the store's other orders wait for new keys.
                keys.remove(&order.store_id);
                report.deferred += 1;
                return Ok(());
            }
            read => read?,
        };
    match checkout::apply_intent(app, &order, &intent, PaidVia::Reconciler).await? {
        PaymentState::Paid => {
            report.paid += 1;
            if merchant.has_webhook {
                report.paid_with_webhook += 1;
            }
        }
        PaymentState::Processing => report.processing += 1,
        PaymentState::Failed { .. } => report.failed += 1,
        PaymentState::Flagged => report.flagged += 1,
        PaymentState::Unfinished
            if now.saturating_sub(order.updated_at) > limits.give_up_after_secs =>
        {
            app.store.forget_pending(order_id).await?;
            report.given_up += 1;
        }
        PaymentState::Unfinished => report.unchanged += 1,
    }
    Ok(())
}
