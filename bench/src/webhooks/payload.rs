//! Event bodies as Stripe posts them: Stripe's sample event and objects
//! (`shared::stripe::samples`, the ones every test uses) with our order's
//! fields set, and the `Stripe-Signature` Stripe computes for them.

use super::lifecycle::StripeEvent;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use shared::domain::{OrderId, StoreId};
use shared::stripe::samples;

/// What an event body is about.
pub struct Subject<'a> {
    pub store_id: StoreId,
    pub order_id: &'a OrderId,
    pub amount: u64,
    pub payment_intent: &'a str,
}

fn object(subject: &Subject<'_>, event: &StripeEvent) -> Value {
    let (pi, amount) = (subject.payment_intent, subject.amount);
    let dispute = |status: &str| {
        samples::object(
            "dispute",
            json!({"payment_intent": pi, "amount": amount, "currency": "eur", "status": status}),
        )
    };
    let (status, error) = match event {
        StripeEvent::Refunded { amount_refunded } => {
            return samples::object(
                "charge",
                json!({"payment_intent": pi, "amount": amount, "currency": "eur",
                       "amount_refunded": amount_refunded, "refunded": *amount_refunded >= amount}),
            );
        }
        StripeEvent::DisputeCreated => return dispute("needs_response"),
        StripeEvent::DisputeClosed { won } => return dispute(if *won { "won" } else { "lost" }),
        StripeEvent::Processing => ("processing", Value::Null),
        StripeEvent::Succeeded => ("succeeded", Value::Null),
        StripeEvent::Canceled => ("canceled", Value::Null),
        StripeEvent::PaymentFailed { message } => (
            "requires_payment_method",
            json!({"type": "card_error", "code": "card_declined", "message": message}),
        ),
    };
    samples::object(
        "payment_intent",
        json!({"id": pi, "amount": amount, "currency": "eur", "status": status,
               "last_payment_error": error,
               "metadata": {"store_id": subject.store_id.to_string(), "order_id": subject.order_id}}),
    )
}

/// The whole event as Stripe posts it (test mode).
pub fn event_body(
    event_id: &str,
    event: &StripeEvent,
    subject: &Subject<'_>,
    created: u64,
) -> String {
    let mut body = samples::event(event.event_type(), object(subject, event));
    body["id"] = json!(event_id);
    body["created"] = json!(created);
    body.to_string()
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe
/// signs each delivery.
pub fn sign(whsec: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(whsec.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}
