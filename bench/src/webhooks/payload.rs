//! Stripe-shaped event bodies (the fields of API objects as Stripe sends
//! them, so parsing costs what it costs with real deliveries) and the
//! `Stripe-Signature` header Stripe computes for them.

use super::lifecycle::StripeEvent;
use crate::rng::Rng;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use shared::domain::StoreId;

/// The ids an order's objects carry at Stripe.
#[derive(Clone, Debug)]
pub struct StripeIds {
    pub payment_intent: String,
    pub charge: String,
    pub dispute: String,
    pub payment_method: String,
}

impl StripeIds {
    pub fn new(rng: &mut Rng) -> Self {
        StripeIds {
            payment_intent: format!("pi_3{}", rng.alphanumeric(23)),
            charge: format!("ch_3{}", rng.alphanumeric(23)),
            dispute: format!("dp_1{}", rng.alphanumeric(23)),
            payment_method: format!("pm_1{}", rng.alphanumeric(23)),
        }
    }
}

/// What an event body is about.
pub struct Subject<'a> {
    pub store_id: StoreId,
    pub order_id: &'a str,
    pub amount: u64,
    pub ids: &'a StripeIds,
}

fn intent(subject: &Subject<'_>, event: &StripeEvent, created: u64) -> Value {
    let ids = subject.ids;
    let (status, sepa) = match event {
        StripeEvent::Processing => ("processing", true),
        StripeEvent::Succeeded => ("succeeded", false),
        StripeEvent::PaymentFailed { .. } => ("requires_payment_method", false),
        StripeEvent::Canceled => ("canceled", false),
        _ => unreachable!("not a payment_intent event"),
    };
    let last_payment_error = match event {
        StripeEvent::PaymentFailed { message } => json!({
            "charge": ids.charge,
            "code": "card_declined",
            "decline_code": "generic_decline",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": message,
            "payment_method": {"id": ids.payment_method, "object": "payment_method", "type": "card",
                "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2030, "funding": "credit", "last4": "0002"}},
            "type": "card_error"
        }),
        _ => Value::Null,
    };
    let succeeded = matches!(event, StripeEvent::Succeeded);
    json!({
        "id": ids.payment_intent,
        "object": "payment_intent",
        "amount": subject.amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": if succeeded { subject.amount } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": if matches!(event, StripeEvent::Canceled) { Value::from(created) } else { Value::Null },
        "cancellation_reason": if matches!(event, StripeEvent::Canceled) { Value::from("abandoned") } else { Value::Null },
        "capture_method": "automatic",
        "client_secret": format!("{}_secret_{}", ids.payment_intent, &ids.charge[3..]),
        "confirmation_method": "automatic",
        "created": created.saturating_sub(600),
        "currency": "eur",
        "customer": null,
        "description": null,
        "invoice": null,
        "last_payment_error": last_payment_error,
        "latest_charge": if succeeded { Value::from(ids.charge.as_str()) } else { Value::Null },
        "livemode": false,
        "metadata": {"store_id": subject.store_id.to_string(), "order_id": subject.order_id},
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": if succeeded { Value::from(ids.payment_method.as_str()) } else { Value::Null },
        "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic"},
                                   "sepa_debit": {}},
        "payment_method_types": if sepa { json!(["sepa_debit"]) } else { json!(["card"]) },
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": status,
        "transfer_data": null,
        "transfer_group": null
    })
}

fn charge(subject: &Subject<'_>, amount_refunded: u64, refunds: u64, created: u64) -> Value {
    let ids = subject.ids;
    // In parts: one `json!` this size exceeds the macro recursion limit.
    let billing_details = json!({"address": {"city": null, "country": "DE", "line1": null, "line2": null, "postal_code": null, "state": null},
                            "email": "jenny.rosen@example.com", "name": "Jenny Rosen", "phone": null});
    let outcome = json!({"network_status": "approved_by_network", "reason": null, "risk_level": "normal", "risk_score": 32,
                    "seller_message": "Payment complete.", "type": "authorized"});
    let payment_method_details = json!({"card": {"amount_authorized": subject.amount, "brand": "visa",
            "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
            "country": "US", "exp_month": 12, "exp_year": 2030, "fingerprint": "Xt5EWLLDS7FJjR1c", "funding": "credit",
            "installments": null, "last4": "4242", "mandate": null, "network": "visa", "three_d_secure": null, "wallet": null},
            "type": "card"});
    let refund_list = json!({"object": "list", "data": [], "has_more": refunds > 0, "total_count": refunds,
                    "url": format!("/v1/charges/{}/refunds", ids.charge)});
    let head = json!({
        "id": ids.charge,
        "object": "charge",
        "amount": subject.amount,
        "amount_captured": subject.amount,
        "amount_refunded": amount_refunded,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": format!("txn_{}", &ids.charge[3..]),
        "billing_details": billing_details,
        "calculated_statement_descriptor": "BMOS SHOP",
        "captured": true,
        "created": created.saturating_sub(3600),
        "currency": "eur",
        "customer": null,
        "description": null,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "invoice": null
    });
    let rest = json!({
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "outcome": outcome,
        "paid": true,
        "payment_intent": ids.payment_intent,
        "payment_method": ids.payment_method,
        "payment_method_details": payment_method_details,
        "receipt_email": null,
        "receipt_number": null,
        "receipt_url": format!("https://pay.stripe.com/receipts/payment/{}", &ids.charge[3..]),
        "refunded": amount_refunded >= subject.amount,
        "refunds": refund_list,
        "review": null,
        "shipping": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null
    });
    merge(head, rest)
}

/// `a` with the fields of `b` added (both objects).
fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn dispute(subject: &Subject<'_>, status: &str, created: u64) -> Value {
    let ids = subject.ids;
    let evidence = json!({"access_activity_log": null, "billing_address": null, "cancellation_policy": null,
            "cancellation_policy_disclosure": null, "cancellation_rebuttal": null, "customer_communication": null,
            "customer_email_address": null, "customer_name": null, "customer_purchase_ip": null, "customer_signature": null,
            "duplicate_charge_documentation": null, "duplicate_charge_explanation": null, "duplicate_charge_id": null,
            "product_description": null, "receipt": null, "refund_policy": null, "refund_policy_disclosure": null,
            "refund_refusal_explanation": null, "service_date": null, "service_documentation": null,
            "shipping_address": null, "shipping_carrier": null, "shipping_date": null, "shipping_documentation": null,
            "shipping_tracking_number": null, "uncategorized_file": null, "uncategorized_text": null});
    json!({
        "id": ids.dispute,
        "object": "dispute",
        "amount": subject.amount,
        "balance_transactions": [],
        "charge": ids.charge,
        "created": created,
        "currency": "eur",
        "evidence": evidence,
        "evidence_details": {"due_by": created + 7 * 86_400, "has_evidence": false, "past_due": false, "submission_count": 0},
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": ids.payment_intent,
        "reason": "fraudulent",
        "status": status
    })
}

/// The whole event as Stripe posts it. `refunds` is how many refunds the
/// charge has had so far (for `charge.refunded`).
pub fn event_body(
    event_id: &str,
    event: &StripeEvent,
    subject: &Subject<'_>,
    refunds: u64,
    created: u64,
    api_version: &str,
) -> String {
    let object = match event {
        StripeEvent::Refunded { amount_refunded } => {
            charge(subject, *amount_refunded, refunds, created)
        }
        StripeEvent::DisputeCreated => dispute(subject, "needs_response", created),
        StripeEvent::DisputeClosed { won } => {
            dispute(subject, if *won { "won" } else { "lost" }, created)
        }
        _ => intent(subject, event, created),
    };
    json!({
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event.event_type()
    })
    .to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{OrderStatus, WebhookSecret};
    use shared::webhooks::{Effect, Envelope, verify};

    #[test]
    fn bodies_parse_into_the_effects_the_model_expects_and_signatures_verify() {
        let mut rng = Rng::new(3);
        let ids = StripeIds::new(&mut rng);
        let store_id = StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11")
            .unwrap_or_else(|_| unreachable!());
        let subject = Subject {
            store_id,
            order_id: "o-1",
            amount: 2999,
            ids: &ids,
        };
        for event in [
            StripeEvent::Processing,
            StripeEvent::Succeeded,
            StripeEvent::PaymentFailed {
                message: "Your card was declined.",
            },
            StripeEvent::Canceled,
            StripeEvent::Refunded {
                amount_refunded: 1000,
            },
            StripeEvent::Refunded {
                amount_refunded: 2999,
            },
            StripeEvent::DisputeCreated,
            StripeEvent::DisputeClosed { won: true },
            StripeEvent::DisputeClosed { won: false },
        ] {
            let body = event_body("evt_1", &event, &subject, 1, 1_800_000_000, "2025-01-01");
            let envelope = Envelope::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                envelope.payment_intent_id(),
                Some(ids.payment_intent.as_str())
            );
            assert_eq!(envelope.prerequisite(), event.prerequisite(), "{event:?}");
            match envelope.effect().unwrap_or_else(|e| panic!("{e}")) {
                Effect::Transition {
                    status,
                    payment_error,
                    amount_refunded,
                    why,
                    ..
                } => {
                    assert_eq!(status, event.target(2999), "{event:?}");
                    assert_eq!(amount_refunded, event.amount_refunded());
                    assert_eq!(payment_error.as_deref(), event.payment_error());
                    assert_eq!(why, event.why(), "{event:?}");
                }
                // Paid on Stripe's word: the workload's intents are real
                // (and succeeded) in the Stripe emulator.
                Effect::Succeeded { payment_intent } => {
                    assert_eq!(event, StripeEvent::Succeeded);
                    assert_eq!(payment_intent, ids.payment_intent);
                    assert_eq!(event.target(2999), OrderStatus::Paid);
                }
                other => panic!("{event:?}: {other:?}"),
            }
            let header = sign(
                "whsec_test_secret_0123456789",
                1_800_000_000,
                body.as_bytes(),
            );
            let secret = WebhookSecret::parse("whsec_test_secret_0123456789")
                .unwrap_or_else(|_| unreachable!());
            assert_eq!(
                verify(Some(&header), body.as_bytes(), &secret, 1_800_000_000),
                Ok(1_800_000_000)
            );
        }
    }
}
