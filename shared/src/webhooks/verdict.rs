//! Why a verified event's change did not apply to its order. The webhook
//! writes first, with every rule below as the write's condition; only when
//! that write is refused does it look at the order DynamoDB returned and
//! decide here what the event deserves. Kept apart from the I/O so each
//! rule can be read and tested on its own.

use super::no_change;
use crate::domain::OrderStatus;
use crate::store::{Order, TransitionDetails};

/// The change an event asks of its order.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub payment_intent: &'a str,
    pub to: OrderStatus,
    /// For `paid`: the money Stripe says arrived.
    pub amount: Option<(u64, &'a str)>,
    pub amount_refunded: Option<u64>,
    /// See `Envelope::status_as_of`.
    pub status_as_of: Option<u64>,
    /// See `Envelope::prerequisite`.
    pub prerequisite: Option<OrderStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The order has another intent now (this one was canceled and
    /// replaced): its news is no longer the order's.
    IntentReplaced,
    /// Stripe's amount or currency is not the order's: flag, do not pay.
    AmountMismatch { reason: String },
    /// Arrived before the event it follows: park it on the order until the
    /// order is `until`.
    TooEarly { until: OrderStatus },
    /// Acknowledge and record without changing the order.
    NoChange { reason: &'static str },
    /// The order as returned allows the change: it moved between the write
    /// and its check; write again.
    Allowed,
}

impl Change<'_> {
    /// The guarded write that applies this change: the same rules, as the
    /// write's condition (so `judge` only explains what the write refused).
    pub fn details(&self, payment_error: Option<String>) -> TransitionDetails {
        TransitionDetails {
            payment_intent_id: Some(self.payment_intent.to_owned()),
            payment_error,
            amount_refunded: self.amount_refunded,
            expected_amount: self
                .amount
                .map(|(amount, currency)| (amount, currency.to_owned())),
            status_as_of: self.status_as_of,
            requires: self.prerequisite,
            ..TransitionDetails::default()
        }
    }

    /// Checked in the order a person would ask: is this still the order's
    /// payment, is the money right, can the order take it yet, and is it
    /// still news.
    pub fn judge(&self, order: &Order) -> Verdict {
        if order.payment_intent_id.as_deref() != Some(self.payment_intent) {
            return Verdict::IntentReplaced;
        }
        if let Some((amount, currency)) = self.amount
            && !order.costs(amount, currency)
        {
            return Verdict::AmountMismatch {
                reason: order.mismatch_reason(self.payment_intent, amount, currency),
            };
        }
        if let Some(until) = self.prerequisite
            && !order.status.has_reached(until)
        {
            return Verdict::TooEarly { until };
        }
        if !order.status.can_become(self.to) {
            return Verdict::NoChange {
                reason: no_change::NOT_ALLOWED,
            };
        }
        if let (Some(new), Some(old)) = (self.amount_refunded, order.amount_refunded)
            && new <= old
        {
            return Verdict::NoChange {
                reason: no_change::OLDER_REFUND,
            };
        }
        if matches!(self.to, OrderStatus::Processing | OrderStatus::Failed)
            && let (Some(new), Some(old)) = (self.status_as_of, order.status_as_of)
            && new <= old
        {
            return Verdict::NoChange {
                reason: no_change::OLDER_STATE,
            };
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    /// A EUR 10.00 order with intent `pi_1`, in `status`.
    fn order(status: OrderStatus) -> Order {
        Order {
            status,
            amount: 1000,
            ..Order::sample()
        }
    }

    fn change(to: OrderStatus) -> Change<'static> {
        Change {
            payment_intent: "pi_1",
            to,
            amount: None,
            amount_refunded: None,
            status_as_of: None,
            prerequisite: None,
        }
    }

    #[test]
    fn the_write_carries_every_rule_judge_explains() {
        let refund = Change {
            amount: Some((1000, "eur")),
            amount_refunded: Some(400),
            status_as_of: Some(7),
            prerequisite: Some(Paid),
            ..change(PartiallyRefunded)
        };
        let details = refund.details(Some("declined".into()));
        assert_eq!(details.payment_intent_id.as_deref(), Some("pi_1"));
        assert_eq!(details.expected_amount, Some((1000, "eur".to_owned())));
        assert_eq!(
            (
                details.amount_refunded,
                details.status_as_of,
                details.requires
            ),
            (Some(400), Some(7), Some(Paid))
        );
        assert_eq!(details.payment_error.as_deref(), Some("declined"));
    }

    #[test]
    fn another_intents_news_is_not_the_orders() {
        let mut replaced = order(Pending);
        replaced.payment_intent_id = Some("pi_2".into());
        assert_eq!(change(Paid).judge(&replaced), Verdict::IntentReplaced);
    }

    #[test]
    fn wrong_money_is_flagged_whatever_the_status() {
        for status in [Pending, Paid] {
            let wrong = Change {
                amount: Some((999, "eur")),
                ..change(Paid)
            };
            assert!(matches!(
                wrong.judge(&order(status)),
                Verdict::AmountMismatch { reason } if reason.contains("999 eur") && reason.contains("1000 eur")
            ));
            let currency = Change {
                amount: Some((1000, "usd")),
                ..change(Paid)
            };
            assert!(matches!(
                currency.judge(&order(status)),
                Verdict::AmountMismatch { .. }
            ));
        }
        let right = Change {
            amount: Some((1000, "EUR")),
            ..change(Paid)
        };
        assert_eq!(right.judge(&order(Pending)), Verdict::Allowed);
    }

    #[test]
    fn refunds_and_closures_before_what_they_follow_wait() {
        let refund = Change {
            amount_refunded: Some(1000),
            prerequisite: Some(Paid),
            ..change(Refunded)
        };
        for status in [Pending, Processing, Failed] {
            assert_eq!(
                refund.judge(&order(status)),
                Verdict::TooEarly { until: Paid },
                "{status}"
            );
        }
        let closed = Change {
            prerequisite: Some(Disputed),
            ..change(Paid)
        };
        assert_eq!(
            closed.judge(&order(Paid)),
            Verdict::TooEarly { until: Disputed }
        );
        // An order that ended another way never reaches it: acknowledged.
        assert!(matches!(
            refund.judge(&order(Canceled)),
            Verdict::NoChange { .. }
        ));
    }

    #[test]
    fn moves_the_state_machine_forbids_are_acknowledged() {
        assert_eq!(
            change(Failed).judge(&order(Paid)),
            Verdict::NoChange {
                reason: "order does not allow this change"
            }
        );
        assert_eq!(change(Failed).judge(&order(Pending)), Verdict::Allowed);
    }

    #[test]
    fn an_older_refund_total_does_not_overwrite_a_newer_one() {
        let mut refunded = order(PartiallyRefunded);
        refunded.amount_refunded = Some(600);
        for older in [300, 600] {
            let refund = Change {
                amount_refunded: Some(older),
                prerequisite: Some(Paid),
                ..change(PartiallyRefunded)
            };
            assert_eq!(
                refund.judge(&refunded),
                Verdict::NoChange {
                    reason: "an older refund total"
                }
            );
        }
        let newer = Change {
            amount_refunded: Some(900),
            prerequisite: Some(Paid),
            ..change(PartiallyRefunded)
        };
        assert_eq!(newer.judge(&refunded), Verdict::Allowed);
    }

    #[test]
    fn an_earlier_attempts_news_does_not_override_a_later_ones() {
        let mut failed = order(Failed);
        failed.status_as_of = Some(200);
        let stale_processing = Change {
            status_as_of: Some(150),
            ..change(Processing)
        };
        assert!(matches!(
            stale_processing.judge(&failed),
            Verdict::NoChange { .. }
        ));
        let same_second = Change {
            status_as_of: Some(200),
            ..change(Failed)
        };
        assert!(matches!(
            same_second.judge(&failed),
            Verdict::NoChange { .. }
        ));
        let retry = Change {
            status_as_of: Some(201),
            ..change(Processing)
        };
        assert_eq!(retry.judge(&failed), Verdict::Allowed);
        // Outcomes are never stale: a success after a later-dated failure
        // still pays (failures do not follow success at Stripe).
        let paid = Change {
            status_as_of: Some(100),
            ..change(Paid)
        };
        assert_eq!(paid.judge(&failed), Verdict::Allowed);
    }
}
