//! The customer's checkout, shared by the checkout page, create-intent and
//! the return from Stripe: find the session, use the merchant's own key, get
//! one PaymentIntent per order, and apply what Stripe says about it.

use crate::app::App;
use crate::auth::session_token;
use crate::clock;
use crate::domain::{Order, OrderId, OrderStatus, SecretKey, StoreId, status_for_intent};
use crate::error::AppError;
use crate::key_health;
use crate::metrics::{Metric, PaidVia};
use crate::store::{CheckoutSession, StripeConnection, Transition, TransitionDetails};
use crate::stripe::{IntentStatus, NewIntent, PaymentIntent, StripeFailure};

pub struct Checkout {
    pub session: CheckoutSession,
    pub order: Order,
}

impl Checkout {
    /// The checkout behind `token`; 404 for anything that is not a live token.
    pub async fn open(app: &App, token: &str) -> Result<Self, AppError> {
        let unknown =
            || AppError::not_found("unknown_checkout", "This checkout link is not valid.");
        let hash = session_token::parse_and_hash(token).ok_or_else(unknown)?;
        let session = app.table.get_session(&hash).await?.ok_or_else(unknown)?;
        let order = app
            .table
            .get_order(&session.order_id)
            .await?
            .ok_or_else(|| {
                AppError::internal(format!("session for missing order {}", session.order_id))
            })?;
        Ok(Checkout { session, order })
    }

    /// 410 once the session's time is up (DynamoDB's TTL deletes it only
    /// some time later, so reads check the time themselves).
    pub fn check_not_expired(&self, now: u64) -> Result<(), AppError> {
        if now < self.session.expires_at {
            return Ok(());
        }
        Err(AppError::Gone {
            code: "checkout_expired",
            message:
                "This checkout link has expired. Please go back to the shop and check out again."
                    .into(),
        })
    }
}

/// The store's connection and its opened secret key; 409 when the store has
/// no Stripe account connected (any more), or Stripe rejects its key
/// (`store_needs_reconnect`). Pass the result of each Stripe call made with
/// the key through `key_health::watch`.
pub async fn merchant_key(
    app: &App,
    store_id: &StoreId,
) -> Result<(StripeConnection, SecretKey), AppError> {
    let connection = app.table.get_connection(store_id).await?.ok_or_else(|| {
        AppError::conflict("store_not_connected", "Store not connected to Stripe")
    })?;
    key_health::require_usable_key(&connection)?;
    let key = crate::webhooks::setup::open_secret_key(app, &connection).await?;
    Ok((connection, key))
}

/// PaymentIntents one order may cause. A leaked checkout link driven in a
/// loop (cancel, retry) would otherwise make a Stripe intent per call on the
/// merchant's key; a real customer needs a handful (a declined card, a
/// switch of payment method keeps the same intent). The idempotency key is
/// `checkout-{order}-{attempt}` and attempts above this are refused before
/// any Stripe call, so at most this many distinct intents exist per order,
/// however many callers race.
pub const MAX_INTENT_ATTEMPTS: u32 = 10;

/// Stripe reads of an order's intent (each reload of the checkout page and
/// each return from Stripe asks Stripe about it). Well above what a
/// customer reloading the page does, it bounds a loop to this many Stripe
/// requests per order. A counter, not a cache: reusing the intent without
/// asking Stripe would need its client secret stored, and would hand out an
/// intent that may have been paid or cancelled meanwhile.
pub const MAX_INTENT_READS: u32 = 50;

fn too_many_attempts() -> AppError {
    AppError::too_many_requests(
        "too_many_attempts",
        "This checkout has had too many payment attempts. Please go back to the shop and check out again.",
    )
}

/// Spends one of the order's Stripe reads; 429 `too_many_attempts` once
/// they are used up.
pub async fn spend_intent_read(app: &App, order: &Order) -> Result<(), AppError> {
    if app
        .table
        .spend_intent_read(&order.order_id, MAX_INTENT_READS)
        .await?
    {
        Ok(())
    } else {
        tracing::warn!(order_id = %order.order_id, "order's Stripe read budget is spent");
        Err(too_many_attempts())
    }
}

fn matches(order: &Order, intent: &PaymentIntent) -> bool {
    order.total.is(intent.amount, &intent.currency) && intent.is_for(&order.order_id)
}

/// The order's PaymentIntent, created on the merchant's account if it has
/// none that can still be paid. One order, one charge: the Stripe
/// idempotency key comes from the order, and the intent is recorded on the
/// order only if nobody recorded one first.
pub async fn payment_intent_for(
    app: &App,
    order: &Order,
    connection: &StripeConnection,
    key: &SecretKey,
) -> Result<PaymentIntent, AppError> {
    if order.status.is_paid() {
        return Err(AppError::conflict(
            "already_paid",
            "This order has already been paid.",
        ));
    }
    if !order.status.awaits_payment() {
        return Err(AppError::conflict(
            "order_closed",
            format!("This order is {}.", order.status),
        ));
    }
    if connection.mode() != order.mode {
        // The order's mode was fixed when its session was made: a key of the
        // other mode must never take (or pretend to take) its payment.
        return Err(AppError::conflict(
            "order_mode_mismatch",
            format!(
                "This order was made in {} mode, and the store's Stripe keys are now {} mode. Please go back to the shop and check out again.",
                order.mode.as_str(),
                connection.mode().as_str()
            ),
        ));
    }
    let mut attempt = order.intent_attempt.max(1);
    // An intent being replaced that Stripe could still charge: cancelled
    // once the new one is recorded.
    let mut replaced_open = None;
    if let Some(existing) = &order.payment_intent_id {
        spend_intent_read(app, order).await?;
        let read = app.stripe.retrieve_intent(key, existing).await;
        match key_health::watch(app, connection, "retrieve PaymentIntent", read).await {
            Ok(intent) if intent.status.is_usable() && matches(order, &intent) => {
                return Ok(intent);
            }
            Ok(intent)
                if intent.status == IntentStatus::Succeeded
                    || intent.status == IntentStatus::Processing =>
            {
                // Paid (or paying) already: record it instead of charging again.
                apply_intent(app, order, &intent, PaidVia::Return).await?;
                return Err(AppError::conflict(
                    "already_paid",
                    "This order has already been paid.",
                ));
            }
            // Canceled, or not matching (an amount changed at Stripe, say):
            // start a new attempt, and cancel this one if it is still open.
            Ok(intent) => {
                attempt += 1;
                if intent.status != IntentStatus::Canceled {
                    replaced_open = Some(intent.id);
                }
            }
            // Made with a key for another mode or account (Stripe says
            // 404): this key cannot cancel it; a payment on it would reach
            // us as an event about an intent the order no longer uses.
            Err(StripeFailure::Refused { status: 404, .. }) => attempt += 1,
            Err(other) => return Err(other.into()),
        }
    }
    if attempt > MAX_INTENT_ATTEMPTS {
        tracing::warn!(order_id = %order.order_id, attempt, "order's PaymentIntent budget is spent");
        return Err(too_many_attempts());
    }
    let new = NewIntent {
        amount: order.total,
        store_id: &order.store_id,
        order_id: &order.order_id,
        idempotency_key: format!("checkout-{}-{attempt}", order.order_id),
        payment_method_types: app.config.payment_method_types.as_deref(),
    };
    let created = app.stripe.create_intent(key, &new).await;
    let intent = key_health::watch(app, connection, "create PaymentIntent", created).await?;
    if app
        .table
        .attach_intent(
            order,
            &intent.id,
            attempt,
            connection.mode(),
            replaced_open.is_some(),
            clock::now(),
        )
        .await?
    {
        if let Some(replaced) = &replaced_open {
            crate::replaced::cancel_replaced_now(app, order, key, replaced, &intent.id).await;
        }
        return Ok(intent);
    }
    // Someone attached an intent first (a double click). Use theirs; ours is
    // the same one when Stripe honoured the idempotency key, and otherwise
    // is cancelled so it can never be charged.
    let current = app
        .table
        .get_order(&order.order_id)
        .await?
        .ok_or_else(|| AppError::internal("order vanished"))?;
    let winner = current
        .payment_intent_id
        .ok_or_else(|| AppError::conflict("concurrent_update", "Please try again."))?;
    if winner != intent.id
        && let Err(failure) = key_health::watch(
            app,
            connection,
            "cancel PaymentIntent",
            app.stripe.cancel_intent(key, &intent.id).await,
        )
        .await
    {
        tracing::warn!(
            order_id = %order.order_id, payment_intent = %intent.id, error = %failure,
            "could not cancel the losing duplicate intent"
        );
    }
    let read = app.stripe.retrieve_intent(key, &winner).await;
    Ok(key_health::watch(app, connection, "retrieve PaymentIntent", read).await?)
}

/// What asking Stripe about an order's intent found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentState {
    Paid,
    Processing,
    Failed {
        message: Option<String>,
    },
    /// The customer has not finished (or the intent was replaced).
    Unfinished,
    /// Stripe's amount or currency differs from the order: flagged, not paid.
    Flagged,
}

/// Refunds or a dispute delivered before the payment wait on the order for
/// it. The delivery of `succeeded` would release them too, but it may never
/// come (that is why we asked Stripe), so the payment's recorder releases
/// them. A failure here must not fail the payment's caller: the payment is
/// recorded, a customer shown an error page after paying may pay again, and
/// Stripe's delivery of `succeeded` (answered "no change" on a paid order
/// that holds parked events) or of any parked event again releases them.
async fn release_after_payment(app: &App, order_id: &OrderId) {
    let released = match app.table.get_order(order_id).await {
        Ok(Some(order)) => crate::webhooks::release_parked(app, order).await,
        Ok(None) => Err(AppError::internal("paid order vanished")),
        Err(err) => Err(err),
    };
    if let Err(err) = released {
        tracing::warn!(%order_id, cause = %crate::error::cause_chain(&err), "parked events not released; the next delivery about this order will");
    }
}

/// What Stripe's own word on an intent means for an order: the one reading
/// of it, for the return page, the reconciler and the webhook (which reads
/// the intent back before it believes a `succeeded` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeView {
    /// Not the order's intent (any more).
    NotTheOrders,
    /// Succeeded, with money that is not the order's: flag, never pay.
    Mismatch { reason: String },
    /// The status Stripe's state gives the order.
    Status(OrderStatus),
    /// Nothing to record (the customer is still paying, or it was cancelled).
    Unsettled,
}

pub fn stripe_view(order: &Order, intent: &PaymentIntent) -> StripeView {
    if order.payment_intent_id.as_deref() != Some(intent.id.as_str()) {
        return StripeView::NotTheOrders;
    }
    let matching = matches(order, intent);
    if !matching && intent.status == IntentStatus::Succeeded {
        return StripeView::Mismatch {
            reason: order.mismatch_reason(&intent.id, intent.amount, &intent.currency),
        };
    }
    match status_for_intent(
        intent.status.as_str(),
        intent.last_error.is_some(),
        matching,
    ) {
        Some(status) => StripeView::Status(status),
        None => StripeView::Unsettled,
    }
}

/// Records what `intent` says about `order`, through the same guarded
/// transitions webhooks use, and says where the order now stands. `via`:
/// who asked Stripe (the return page or the reconciler), for the metrics.
pub async fn apply_intent(
    app: &App,
    order: &Order,
    intent: &PaymentIntent,
    via: PaidVia,
) -> Result<PaymentState, AppError> {
    let target = match stripe_view(order, intent) {
        StripeView::NotTheOrders => return Ok(PaymentState::Unfinished),
        StripeView::Mismatch { reason } => {
            tracing::error!(order_id = %order.order_id, %reason, "payment does not match its order; flagged for review");
            app.table
                .flag_order(&order.order_id, &reason, clock::now())
                .await?;
            return Ok(PaymentState::Flagged);
        }
        StripeView::Unsettled => {
            return Ok(if order.status.is_paid() {
                PaymentState::Paid
            } else {
                PaymentState::Unfinished
            });
        }
        StripeView::Status(target) => target,
    };
    let details = TransitionDetails {
        payment_intent_id: Some(intent.id.clone()),
        payment_error: intent
            .last_error
            .clone()
            .filter(|_| target == OrderStatus::Failed),
        // Read from Stripe just now: as new as any event sent before it.
        status_as_of: Some(clock::now()),
        ..TransitionDetails::default()
    };
    let now_status = match app
        .table
        .transition_order(&order.order_id, target, &details, clock::now())
        .await?
    {
        Transition::Applied { from, has_parked } => {
            tracing::info!(order_id = %order.order_id, %from, to = %target, source = "stripe_api", "order status changed");
            if target == OrderStatus::Paid {
                app.metrics.emit(Metric::OrderPaid(via));
            }
            if has_parked && target == OrderStatus::Paid {
                release_after_payment(app, &order.order_id).await;
            }
            if target == OrderStatus::Paid
                && let Err(err) = app
                    .table
                    .note_api_payment(&order.store_id, clock::now())
                    .await
            {
                // Diagnostics only; the payment itself is recorded.
                tracing::warn!(cause = %crate::error::cause_chain(&err), "could not note the payment for webhook health");
            }
            target
        }
        Transition::Refused { current } => current,
    };
    Ok(match now_status {
        s if s.is_paid() => PaymentState::Paid,
        OrderStatus::Processing => PaymentState::Processing,
        OrderStatus::Failed => PaymentState::Failed {
            message: intent.last_error.clone(),
        },
        _ => PaymentState::Unfinished,
    })
}
