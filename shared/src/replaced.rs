//! Intents an order no longer uses. When the page replaces an order's intent
//! the old one is cancelled in Stripe at once (an open intent is money that
//! can still arrive: a second tab, a late 3-D Secure), and the reconciler
//! retries what could not be cancelled then. Money that arrived on such an
//! intent goes to a person (`needs_review`), never nowhere. Ending an
//! abandoned checkout (`abandoned.rs`) cancels the order's own intent the
//! same way.

use crate::app::App;
use crate::clock;
use crate::domain::{Order, OrderStatus, SecretKey};
use crate::error::{AppError, cause_chain};
use crate::store::{Transition, TransitionDetails};
use crate::stripe::pace::Pace;
use crate::stripe::{IntentStatus, PaymentIntent, StripeApi, StripeFailure};

/// What asking Stripe to cancel an intent found.
#[derive(Debug)]
pub enum Cancel {
    /// Cancelled now or before: nothing can be charged on it any more.
    Canceled,
    /// Stripe does not know it under this key (another account or mode).
    Unknown,
    /// Stripe would not cancel it (it succeeded, or is processing): its state.
    NotCancelable(Box<PaymentIntent>),
}

/// Cancels intent `id` on the merchant's account. Stripe refuses to cancel
/// an intent that succeeded, is processing or is already canceled (400);
/// the intent is then read back to say which.
pub async fn cancel_in_stripe(
    stripe: &StripeApi,
    key: &SecretKey,
    id: &str,
    pace: &impl Pace,
) -> Result<Cancel, StripeFailure> {
    pace.turn().await;
    let intent = match stripe.cancel_intent(key, id).await {
        Ok(intent) => intent,
        Err(StripeFailure::Refused { status: 404, .. }) => return Ok(Cancel::Unknown),
        Err(StripeFailure::Refused { status: 400, .. }) => {
            pace.turn().await;
            match stripe.retrieve_intent(key, id).await {
                Ok(intent) => intent,
                Err(StripeFailure::Refused { status: 404, .. }) => return Ok(Cancel::Unknown),
                Err(other) => return Err(other),
            }
        }
        Err(other) => return Err(other),
    };
    Ok(if intent.status == IntentStatus::Canceled {
        Cancel::Canceled
    } else {
        Cancel::NotCancelable(Box::new(intent))
    })
}

/// Cancels the intents the order replaced (`Order::intents_to_cancel`),
/// taking each off the list once it can no longer take money. One that
/// succeeded puts the order in `needs_review`. Returns whether it did.
pub async fn cancel_replaced(
    app: &App,
    order: &Order,
    key: &SecretKey,
    pace: &impl Pace,
) -> Result<bool, AppError> {
    let mut reviewed = false;
    for id in &order.intents_to_cancel {
        match cancel_in_stripe(&app.stripe, key, id, pace).await? {
            Cancel::Canceled | Cancel::Unknown => {}
            Cancel::NotCancelable(intent) if intent.status == IntentStatus::Succeeded => {
                review_replaced_payment(app, order, &intent).await?;
                reviewed = true;
            }
            // Processing: Stripe decides soon; look again then.
            Cancel::NotCancelable(_) => continue,
        }
        app.table.intent_cancelled(&order.order_id, id).await?;
    }
    Ok(reviewed)
}

/// Cancels the intent `replaced` right after a new one took its place on
/// the order. A failure is logged, not raised: the customer has the new
/// intent, and the order still lists the old one for the reconciler.
pub async fn cancel_replaced_now(
    app: &App,
    order: &Order,
    key: &SecretKey,
    replaced: &str,
    current: &str,
) {
    let listed = Order {
        payment_intent_id: Some(current.to_owned()),
        intents_to_cancel: vec![replaced.to_owned()],
        ..order.clone()
    };
    if let Err(err) = cancel_replaced(app, &listed, key, &crate::stripe::pace::Unpaced).await {
        tracing::warn!(
            order_id = %order.order_id, payment_intent = %replaced, cause = %cause_chain(&err),
            "could not cancel the replaced intent; the reconciler will"
        );
    }
}

/// Money Stripe took on an intent the order no longer uses: a person
/// decides (refund it, or take it as the payment). An order that was paid
/// meanwhile keeps its status and is flagged: it was paid twice. Also for
/// the webhook, when Stripe confirms a success on such an intent.
pub async fn review_replaced_payment(
    app: &App,
    order: &Order,
    intent: &PaymentIntent,
) -> Result<(), AppError> {
    let reason = format!(
        "Stripe took {} {} on intent {}, which this order no longer uses (replaced by {})",
        intent.amount,
        intent.currency,
        intent.id,
        order.payment_intent_id.as_deref().unwrap_or("none"),
    );
    tracing::error!(order_id = %order.order_id, %reason, "payment on a replaced intent; order needs review");
    let details = TransitionDetails {
        review_reason: Some(reason.clone()),
        ..TransitionDetails::default()
    };
    match app
        .table
        .transition_order(
            &order.order_id,
            OrderStatus::NeedsReview,
            &details,
            clock::now(),
        )
        .await?
    {
        Transition::Applied { .. } => Ok(()),
        Transition::Refused {
            current: OrderStatus::NeedsReview,
        } => Ok(()),
        Transition::Refused { .. } => {
            app.table
                .flag_order(&order.order_id, &reason, clock::now())
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::pace::Unpaced;
    use std::time::Duration;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn intent(status: &str) -> serde_json::Value {
        crate::stripe::samples::object(
            "payment_intent",
            serde_json::json!({"id": "pi_1", "amount": 2999, "currency": "eur", "status": status,
                   "client_secret": "pi_1_secret_x", "metadata": {"order_id": "o", "store_id": "s"}}),
        )
    }

    fn refused(status: u16, code: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({"error": {
            "type": "invalid_request_error", "code": code,
            "message": "You cannot cancel this PaymentIntent because it has a status of succeeded."
        }}))
    }

    async fn cancel_with(
        cancel: ResponseTemplate,
        get: Option<ResponseTemplate>,
    ) -> Result<Cancel, StripeFailure> {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents/pi_1/cancel"))
            .respond_with(cancel)
            .expect(1)
            .mount(&server)
            .await;
        if let Some(get) = get {
            Mock::given(method("GET"))
                .and(path("/v1/payment_intents/pi_1"))
                .respond_with(get)
                .expect(1)
                .mount(&server)
                .await;
        }
        let stripe = StripeApi::new(
            url::Url::parse(&format!("{}/", server.uri())).unwrap(),
            Duration::from_secs(2),
        );
        let key = SecretKey::parse("sk_test_storeAAAAAAAAAAAA").unwrap();
        cancel_in_stripe(&stripe, &key, "pi_1", &Unpaced).await
    }

    #[tokio::test]
    async fn a_cancelled_intent_is_cancelled() {
        let got = cancel_with(
            ResponseTemplate::new(200).set_body_json(intent("canceled")),
            None,
        )
        .await;
        assert!(matches!(got, Ok(Cancel::Canceled)), "{got:?}");
    }

    #[tokio::test]
    async fn a_refused_cancel_reads_the_intent_back_so_a_success_is_never_lost() {
        let got = cancel_with(
            refused(400, "payment_intent_unexpected_state"),
            Some(ResponseTemplate::new(200).set_body_json(intent("succeeded"))),
        )
        .await;
        match got {
            Ok(Cancel::NotCancelable(intent)) => assert_eq!(intent.status, IntentStatus::Succeeded),
            other => panic!("{other:?}"),
        }
        // Already canceled (by the dashboard, or a cancel whose answer was lost).
        let got = cancel_with(
            refused(400, "payment_intent_unexpected_state"),
            Some(ResponseTemplate::new(200).set_body_json(intent("canceled"))),
        )
        .await;
        assert!(matches!(got, Ok(Cancel::Canceled)), "{got:?}");
    }

    #[tokio::test]
    async fn an_intent_another_account_holds_is_unknown_and_failures_are_errors() {
        let got = cancel_with(refused(404, "resource_missing"), None).await;
        assert!(matches!(got, Ok(Cancel::Unknown)), "{got:?}");
        let got = cancel_with(refused(401, "api_key_expired"), None).await;
        assert!(matches!(got, Err(StripeFailure::InvalidKey)), "{got:?}");
        let got = cancel_with(ResponseTemplate::new(503), None).await;
        assert!(matches!(got, Err(StripeFailure::Unreachable(_))), "{got:?}");
    }
}
