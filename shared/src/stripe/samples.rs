//! Stripe's published sample objects (`tests/system/fixtures/stripe`, see
//! its README), for unit tests, the system tests and the bench (feature
//! `testing`): what Stripe really sends, fields we ignore included, with
//! only the fields a test is about set.

use serde_json::Value;

/// Stripe's sample object `name`, unchanged.
pub fn sample(name: &str) -> Value {
    let text = match name {
        "account" => include_str!("../../../tests/system/fixtures/stripe/account.json"),
        "charge" => include_str!("../../../tests/system/fixtures/stripe/charge.json"),
        "customer" => include_str!("../../../tests/system/fixtures/stripe/customer.json"),
        "deleted_webhook_endpoint" => {
            include_str!("../../../tests/system/fixtures/stripe/deleted_webhook_endpoint.json")
        }
        "dispute" => include_str!("../../../tests/system/fixtures/stripe/dispute.json"),
        "event" => include_str!("../../../tests/system/fixtures/stripe/event.json"),
        "payment_intent" => {
            include_str!("../../../tests/system/fixtures/stripe/payment_intent.json")
        }
        "refund" => include_str!("../../../tests/system/fixtures/stripe/refund.json"),
        "webhook_endpoint" => {
            include_str!("../../../tests/system/fixtures/stripe/webhook_endpoint.json")
        }
        other => panic!("no Stripe sample {other}"),
    };
    serde_json::from_str(text).expect("a Stripe sample object")
}

/// Stripe's sample `name` with the top-level `fields` set.
pub fn object(name: &str, fields: Value) -> Value {
    let mut object = sample(name);
    for (field, value) in fields.as_object().expect("fields are an object") {
        object[field] = value.clone();
    }
    object
}

/// Stripe's sample event, a test-mode `kind` carrying `object`.
pub fn event(kind: &str, object: Value) -> Value {
    let mut event = sample("event");
    event["type"] = kind.into();
    event["livemode"] = false.into();
    event["data"]["object"] = object;
    event
}
