//! The parts of a Stripe event we act on, parsed into our own structs: only
//! the fields we use, so a merchant account pinned to another API version
//! (or an emulator that leaves fields out) still works.

use crate::domain::{Move, OrderId, OrderStatus};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub livemode: bool,
    /// When Stripe created the event (seconds). Every real event has it.
    #[serde(default)]
    pub created: Option<u64>,
    pub data: Data,
}

#[derive(Debug, Deserialize)]
pub struct Data {
    pub object: Object,
}

/// The fields of `data.object` we may use; every other field is skipped
/// unread. Each is kept as whatever JSON it holds and typed only by the
/// event that needs it, so an object we do not act on, whatever its
/// fields' types, never makes the event unreadable.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Object {
    object: Value,
    id: Value,
    amount: Value,
    currency: Value,
    amount_refunded: Value,
    payment_intent: Value,
    status: Value,
    last_payment_error: Value,
    metadata: Value,
}

/// A move an event asks of its order, trusting the verified event (nothing
/// here releases goods). `apply::event_change` turns it into the write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTransition {
    pub payment_intent: String,
    pub status: OrderStatus,
    pub payment_error: Option<String>,
    pub amount_refunded: Option<u64>,
    /// What kind of news: only a dispute's closure ends a dispute, only a
    /// failed refund gives an amount back.
    pub why: Move,
    /// For a failed refund: the amount that came back.
    pub refund_failed: Option<u64>,
}

/// What an event asks of its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Move the order of the transition's intent.
    Transition(EventTransition),
    /// `payment_intent.succeeded`: only a notification. The order is paid
    /// on what Stripe's API says of the intent, not on the event's word.
    Succeeded { payment_intent: String },
    /// A charge or dispute without a PaymentIntent, or a refund update that
    /// is not a failure: a payment we did not make, or news we need not act on.
    NotOurs,
    /// An event we do not act on (acknowledged with 200).
    Ignore,
}

#[derive(Debug, thiserror::Error)]
#[error("event {kind} is missing a field we need: {reason}")]
pub struct MalformedEvent {
    kind: String,
    reason: String,
}

impl Envelope {
    pub fn parse(payload: &[u8]) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_slice(payload)?;
        // serde also reads a struct from a JSON array, field by position;
        // Stripe sends objects (openapi.yaml says so), so arrays are refused.
        let data = value.get("data");
        let object = data.and_then(|d| d.get("object"));
        for (name, part) in [
            ("event", Some(&value)),
            ("data", data),
            ("data.object", object),
        ] {
            if part.is_some_and(|v| !v.is_object()) {
                return Err(serde::de::Error::custom(format!(
                    "{name} is not a JSON object"
                )));
            }
        }
        serde_json::from_value(value)
    }

    /// `metadata.store_id` of the object, which our PaymentIntents carry.
    pub fn metadata_store_id(&self) -> Option<&str> {
        self.data.object.metadata.get("store_id")?.as_str()
    }

    /// `metadata.order_id` of the object, in our order ids' form: our
    /// PaymentIntents carry it, and their charges copy it (a dispute does
    /// not). Only a hint of where to write: the write itself checks that
    /// the order is this store's and has this intent.
    pub fn metadata_order_id(&self) -> Option<OrderId> {
        OrderId::from_metadata(self.data.object.metadata.get("order_id")?.as_str()?)
    }

    /// The PaymentIntent this event is about: the object itself, or the
    /// charge's or dispute's `payment_intent`.
    pub fn payment_intent_id(&self) -> Option<&str> {
        let object = &self.data.object;
        match object.object.as_str()? {
            "payment_intent" => object.id.as_str(),
            _ => object.payment_intent.as_str(),
        }
    }

    /// The status this event's change presupposes: a refund or a dispute
    /// follows the payment, a dispute's closure follows its creation. Until
    /// the order has reached it, the event arrived early (Stripe does not
    /// deliver in order) and must be delivered again later, not dropped.
    pub fn prerequisite(&self) -> Option<OrderStatus> {
        match self.kind.as_str() {
            "charge.refunded" | "charge.dispute.created" => Some(OrderStatus::Paid),
            "charge.dispute.closed" => Some(OrderStatus::Disputed),
            _ => None,
        }
    }

    /// For a PaymentIntent event, when the intent was in the state it
    /// reports: lets an older attempt's `processing` or `payment_failed`,
    /// delivered late, be told from a newer one's.
    pub fn status_as_of(&self) -> Option<u64> {
        self.kind
            .starts_with("payment_intent.")
            .then_some(self.created)
            .flatten()
    }

    pub fn effect(&self) -> Result<Effect, MalformedEvent> {
        let object = &self.data.object;
        let missing = |field: &str| MalformedEvent {
            kind: self.kind.clone(),
            reason: format!("no valid `{field}`"),
        };
        let text = |value: &Value, field: &str| {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| missing(field))
        };
        let number = |value: &Value, field: &str| value.as_u64().ok_or_else(|| missing(field));
        let move_to = |payment_intent, status, why| {
            Effect::Transition(EventTransition {
                payment_intent,
                status,
                payment_error: None,
                amount_refunded: None,
                why,
                refund_failed: None,
            })
        };
        let intent = |status| -> Result<Effect, MalformedEvent> {
            let id = text(&object.id, "id")?;
            Ok(Effect::Transition(EventTransition {
                payment_intent: id,
                status,
                payment_error: match status {
                    OrderStatus::Failed => object.last_payment_error["message"]
                        .as_str()
                        .map(str::to_owned),
                    _ => None,
                },
                amount_refunded: None,
                why: Move::Course,
                refund_failed: None,
            }))
        };
        // A charge's, dispute's or refund's intent: null for a payment made
        // without one, which is never ours (we only take payments through
        // PaymentIntents): another integration's on the merchant's account.
        let charge_intent = || match &object.payment_intent {
            Value::Null => Ok(None),
            value => text(value, "payment_intent").map(Some),
        };
        let effect = match self.kind.as_str() {
            "payment_intent.succeeded" => {
                // Read for the shape only: what counts is Stripe's answer.
                text(&object.id, "id")?;
                number(&object.amount, "amount")?;
                text(&object.currency, "currency")?;
                Effect::Succeeded {
                    payment_intent: text(&object.id, "id")?,
                }
            }
            "payment_intent.processing" => intent(OrderStatus::Processing)?,
            "payment_intent.payment_failed" => intent(OrderStatus::Failed)?,
            "payment_intent.canceled" => intent(OrderStatus::Canceled)?,
            "charge.refunded" => {
                let Some(charge_intent) = charge_intent()? else {
                    return Ok(Effect::NotOurs);
                };
                let amount = number(&object.amount, "amount")?;
                let refunded = match &object.amount_refunded {
                    Value::Null => 0,
                    value => number(value, "amount_refunded")?,
                };
                let status = if refunded >= amount {
                    OrderStatus::Refunded
                } else {
                    OrderStatus::PartiallyRefunded
                };
                Effect::Transition(EventTransition {
                    payment_intent: charge_intent,
                    status,
                    payment_error: None,
                    amount_refunded: Some(refunded),
                    why: Move::Course,
                    refund_failed: None,
                })
            }
            // A refund Stripe could not pay out (`status: failed`): the money
            // is the merchant's again. Other updates change nothing of ours.
            "charge.refund.updated" => match text(&object.status, "status")?.as_str() {
                "failed" => {
                    let Some(charge_intent) = charge_intent()? else {
                        return Ok(Effect::NotOurs);
                    };
                    let amount = number(&object.amount, "amount")?;
                    Effect::Transition(EventTransition {
                        payment_intent: charge_intent,
                        // A first guess (the failed refund was the whole
                        // refunded total), fitted to the order as it is
                        // (`Change::fitted`) before it is applied.
                        status: OrderStatus::Paid,
                        payment_error: None,
                        amount_refunded: Some(0),
                        why: Move::RefundFailed,
                        refund_failed: Some(amount),
                    })
                }
                _ => Effect::Ignore,
            },
            "charge.dispute.created" => match charge_intent()? {
                Some(pi) => move_to(pi, OrderStatus::Disputed, Move::Course),
                None => Effect::NotOurs,
            },
            "charge.dispute.closed" => {
                let Some(charge_intent) = charge_intent()? else {
                    return Ok(Effect::NotOurs);
                };
                // won / warning_closed: the money stays (the order returns to
                // where its refunds left it, `Change::fitted`); lost: it is gone.
                let status = match text(&object.status, "status")?.as_str() {
                    "lost" => OrderStatus::Lost,
                    _ => OrderStatus::Paid,
                };
                move_to(charge_intent, status, Move::DisputeClosed)
            }
            _ => Effect::Ignore,
        };
        Ok(effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::samples::{self, object, sample};
    use serde_json::json;

    /// Stripe's sample event carrying `object`, as we read it.
    fn event(kind: &str, object: serde_json::Value) -> Envelope {
        Envelope::parse(samples::event(kind, object).to_string().as_bytes()).unwrap()
    }

    /// Stripe's sample PaymentIntent as an EUR intent of `amount`.
    fn intent(amount: u64) -> serde_json::Value {
        object(
            "payment_intent",
            json!({"id": "pi_1", "amount": amount, "currency": "eur"}),
        )
    }

    /// Stripe's sample charge on intent `pi_1`, of `amount` with
    /// `amount_refunded` refunded so far.
    fn charge(amount: u64, amount_refunded: u64) -> serde_json::Value {
        object(
            "charge",
            json!({"id": "ch_1", "payment_intent": "pi_1", "amount": amount,
                   "amount_refunded": amount_refunded, "refunded": amount_refunded >= amount}),
        )
    }

    /// Stripe's sample dispute on intent `pi_1`, in `status`.
    fn dispute(status: &str) -> serde_json::Value {
        object(
            "dispute",
            json!({"id": "dp_1", "payment_intent": "pi_1", "charge": "ch_1", "status": status, "amount": 2999}),
        )
    }

    #[test]
    fn payment_intent_events_map_to_their_transitions() {
        let mut pi = intent(2999);
        pi["metadata"] = json!({"store_id": "s", "order_id": "o"});
        pi["last_payment_error"] = json!({"message": "Your card was declined.", "code": "card_declined", "type": "card_error"});
        let succeeded = event("payment_intent.succeeded", pi.clone());
        assert_eq!(succeeded.metadata_store_id(), Some("s"));
        assert_eq!(succeeded.payment_intent_id(), Some("pi_1"));
        // Only a notification: Stripe's API decides (`confirm.rs`).
        assert_eq!(
            succeeded.effect().unwrap(),
            Effect::Succeeded {
                payment_intent: "pi_1".into(),
            }
        );
        match event("payment_intent.payment_failed", pi.clone())
            .effect()
            .unwrap()
        {
            Effect::Transition(EventTransition {
                status,
                payment_error,
                ..
            }) => {
                assert_eq!(status, OrderStatus::Failed);
                assert_eq!(payment_error.as_deref(), Some("Your card was declined."));
            }
            other => panic!("{other:?}"),
        }
        for (kind, status) in [
            ("payment_intent.processing", OrderStatus::Processing),
            ("payment_intent.canceled", OrderStatus::Canceled),
        ] {
            assert!(
                matches!(event(kind, pi.clone()).effect().unwrap(), Effect::Transition(EventTransition { status: s, .. }) if s == status),
                "{kind}"
            );
        }
    }

    #[test]
    fn the_order_is_named_by_metadata_only_in_our_ids_form() {
        let with = |order_id: serde_json::Value| {
            event(
                "charge.refunded",
                object(
                    "charge",
                    json!({"payment_intent": "pi_1", "amount": 2999,
                           "metadata": {"store_id": "s", "order_id": order_id}}),
                ),
            )
            .metadata_order_id()
        };
        let id = "5d9e7c1a-0000-4000-8000-000000000001";
        let ours = OrderId::parse(id).ok();
        assert_eq!(with(json!(id)), ours);
        assert_eq!(
            with(json!("5D9E7C1A-0000-4000-8000-000000000001")),
            ours,
            "read as the key we write"
        );
        assert_eq!(
            with(json!("A-17")),
            None,
            "another integration's order number"
        );
        assert_eq!(with(json!(17)), None);
        let no_metadata = event("charge.dispute.created", dispute("needs_response"));
        assert_eq!(no_metadata.metadata_order_id(), None);
    }

    #[test]
    fn charges_and_disputes_reach_the_intent_without_our_metadata() {
        let full = event("charge.refunded", charge(2999, 2999));
        assert_eq!(full.metadata_store_id(), None);
        assert_eq!(full.payment_intent_id(), Some("pi_1"));
        assert!(matches!(
            full.effect().unwrap(),
            Effect::Transition(EventTransition {
                status: OrderStatus::Refunded,
                amount_refunded: Some(2999),
                ..
            })
        ));
        let partial = event("charge.refunded", charge(2999, 1000));
        assert!(matches!(
            partial.effect().unwrap(),
            Effect::Transition(EventTransition {
                status: OrderStatus::PartiallyRefunded,
                ..
            })
        ));

        assert!(matches!(
            event("charge.dispute.created", dispute("needs_response"))
                .effect()
                .unwrap(),
            Effect::Transition(EventTransition {
                status: OrderStatus::Disputed,
                ..
            })
        ));
        assert!(matches!(
            event("charge.dispute.closed", dispute("won"))
                .effect()
                .unwrap(),
            Effect::Transition(EventTransition {
                status: OrderStatus::Paid,
                ..
            })
        ));
        assert!(matches!(
            event("charge.dispute.closed", dispute("lost"))
                .effect()
                .unwrap(),
            Effect::Transition(EventTransition {
                status: OrderStatus::Lost,
                ..
            })
        ));
    }

    #[test]
    fn refunds_and_disputes_name_what_they_follow() {
        assert_eq!(
            event("charge.refunded", charge(1, 1)).prerequisite(),
            Some(OrderStatus::Paid)
        );
        assert_eq!(
            event("charge.dispute.created", dispute("won")).prerequisite(),
            Some(OrderStatus::Paid)
        );
        assert_eq!(
            event("charge.dispute.closed", dispute("won")).prerequisite(),
            Some(OrderStatus::Disputed)
        );
        assert_eq!(
            event("payment_intent.succeeded", intent(1)).prerequisite(),
            None
        );
    }

    #[test]
    fn only_intent_events_date_the_state_they_report() {
        let dated = |kind: &str, object: serde_json::Value| {
            let mut event = samples::event(kind, object);
            event["created"] = json!(1_700_000_123);
            Envelope::parse(event.to_string().as_bytes()).unwrap()
        };
        assert_eq!(
            dated("payment_intent.processing", intent(1)).status_as_of(),
            Some(1_700_000_123)
        );
        assert_eq!(dated("charge.refunded", charge(1, 1)).status_as_of(), None);
        // Stripe sends `created` on every event; one without it (not
        // Stripe's shape) is read, and not dated.
        let mut undated = samples::event("payment_intent.processing", intent(1));
        undated.as_object_mut().unwrap().remove("created");
        assert_eq!(
            Envelope::parse(undated.to_string().as_bytes())
                .unwrap()
                .status_as_of(),
            None,
            "an event without `created` is not dated"
        );
    }

    #[test]
    fn fields_we_do_not_need_never_make_an_event_unreadable() {
        // Another object type may use our field names for other things.
        let odd = event(
            "invoice.paid",
            json!({"id": 7, "object": "invoice", "amount": "12", "status": {"x": 1},
                   "metadata": [], "payment_intent": {"id": "pi_1"}, "lines": {"data": [{"amount": 1}]}}),
        );
        assert_eq!(odd.effect().unwrap(), Effect::Ignore);
        assert_eq!(odd.metadata_store_id(), None);
        assert_eq!(odd.payment_intent_id(), None);
        // An intent from a newer API version, with fields we have never seen.
        let mut newer = intent(2999);
        newer["payment_method_options"] = json!({"card": {"request_three_d_secure": "automatic"}});
        newer["a_field_from_a_newer_api_version"] = json!({"nested": [1, "two"]});
        let newer = event("payment_intent.succeeded", newer);
        assert_eq!(
            newer.effect().unwrap(),
            Effect::Succeeded {
                payment_intent: "pi_1".into()
            }
        );
    }

    #[test]
    fn other_events_are_ignored_and_broken_ones_are_errors() {
        assert_eq!(
            event("customer.created", sample("customer"))
                .effect()
                .unwrap(),
            Effect::Ignore
        );
        // Stripe always sends an intent's amount and currency.
        let mut without_amount = intent(2999);
        let fields = without_amount.as_object_mut().unwrap();
        fields.remove("amount");
        fields.remove("currency");
        assert!(
            event("payment_intent.succeeded", without_amount)
                .effect()
                .is_err()
        );
        let mut odd_intent = dispute("x");
        odd_intent["payment_intent"] = json!(7);
        assert!(
            event("charge.dispute.created", odd_intent)
                .effect()
                .is_err()
        );
        assert!(Envelope::parse(b"{}").is_err());
    }

    #[test]
    fn charges_without_an_intent_are_not_ours() {
        // Another integration's charge on the merchant's account (Charges
        // API, a dashboard payment): acknowledged, never an error. Stripe's
        // samples are such payments (`payment_intent: null`).
        for (kind, object) in [
            (
                "charge.refunded",
                object("charge", json!({"amount_refunded": 100, "refunded": true})),
            ),
            ("charge.dispute.created", sample("dispute")),
            (
                "charge.dispute.closed",
                object("dispute", json!({"status": "lost"})),
            ),
            (
                "charge.refund.updated",
                object("refund", json!({"status": "failed"})),
            ),
        ] {
            assert_eq!(
                event(kind, object).effect().unwrap(),
                Effect::NotOurs,
                "{kind}"
            );
        }
    }

    #[test]
    fn a_failed_refund_gives_its_amount_back_and_other_updates_do_nothing() {
        let refund = |status: &str| {
            object(
                "refund",
                json!({"id": "re_1", "amount": 400, "charge": "ch_1", "currency": "eur",
                       "payment_intent": "pi_1", "status": status}),
            )
        };
        let failed = event("charge.refund.updated", refund("failed"));
        assert_eq!(failed.payment_intent_id(), Some("pi_1"));
        assert_eq!(failed.prerequisite(), None);
        assert!(matches!(
            failed.effect().unwrap(),
            Effect::Transition(EventTransition {
                why: Move::RefundFailed,
                refund_failed: Some(400),
                ..
            })
        ));
        for status in ["succeeded", "pending", "canceled"] {
            assert_eq!(
                event("charge.refund.updated", refund(status))
                    .effect()
                    .unwrap(),
                Effect::Ignore,
                "{status}"
            );
        }
    }

    #[test]
    fn only_a_disputes_closure_is_news_that_ends_it() {
        for status in ["won", "warning_closed", "lost"] {
            assert!(
                matches!(
                    event("charge.dispute.closed", dispute(status))
                        .effect()
                        .unwrap(),
                    Effect::Transition(EventTransition {
                        why: Move::DisputeClosed,
                        ..
                    })
                ),
                "{status}"
            );
        }
        assert!(matches!(
            event("charge.dispute.created", dispute("needs_response"))
                .effect()
                .unwrap(),
            Effect::Transition(EventTransition {
                why: Move::Course,
                status: OrderStatus::Disputed,
                ..
            })
        ));
    }

    /// Found by schemathesis: `"data": {"object": [null, null]}` (and an
    /// event or `data` sent as an array) was read field by position and
    /// acknowledged as an event we do not act on.
    #[test]
    fn arrays_are_not_events() {
        let good = samples::event("customer.created", sample("customer"));
        assert!(Envelope::parse(good.to_string().as_bytes()).is_ok());
        let mut object_as_array = good.clone();
        object_as_array["data"]["object"] = json!([null, null]);
        let mut data_as_array = good.clone();
        data_as_array["data"] = json!([{}]);
        for bad in [
            object_as_array,
            data_as_array,
            json!(["evt_1", "customer.created", false, null, {"object": {}}]),
        ] {
            assert!(
                Envelope::parse(bad.to_string().as_bytes()).is_err(),
                "{bad}"
            );
        }
    }
}
