//! Why a verified event's change did not apply to its order. The webhook
//! writes first, with every rule below as the write's condition; only when
//! that write is refused does it look at the order DynamoDB returned and
//! decide here what the event deserves. Kept apart from the I/O so each
//! rule can be read and tested on its own.

use super::no_change;
use crate::domain::{Mode, Move, Order, OrderStatus};
use crate::store::TransitionDetails;

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
    pub why: Move,
    /// For a failed refund: the amount that came back.
    pub refund_failed: Option<u64>,
    /// The refunded total the change was computed from (`fitted`).
    pub refunded_was: Option<u64>,
    /// The event's mode: the order must be of it.
    pub mode: Option<Mode>,
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
    /// The event belongs to the order's other mode (test vs live).
    OtherMode,
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
            why: self.why,
            refunded_was: self.refunded_was,
            mode: self.mode,
            ..TransitionDetails::default()
        }
    }

    /// The change made to fit the order as it is, for the news whose move
    /// depends on it: a won dispute returns the order to where its refunds
    /// left it, a failed refund takes its amount off the refunded total.
    /// Written with the total it was computed from as a condition.
    pub fn fitted(&self, order: &Order) -> Self {
        let mut fitted = self.clone();
        let refunded = order.amount_refunded.unwrap_or(0);
        match (self.why, self.refund_failed) {
            (Move::DisputeClosed, _) if self.to != OrderStatus::Lost => {
                fitted.to =
                    OrderStatus::after_dispute_won(order.amount_refunded, order.total.minor());
                fitted.refunded_was = Some(refunded);
            }
            (Move::RefundFailed, Some(failed)) if failed <= refunded => {
                let left = refunded - failed;
                fitted.to = OrderStatus::after_refund_failed(left);
                fitted.amount_refunded = Some(left);
                fitted.refunded_was = Some(refunded);
            }
            _ => {}
        }
        fitted
    }

    /// Checked in the order a person would ask: is this still the order's
    /// payment, is the money right, can the order take it yet, and is it
    /// still news.
    pub fn judge(&self, order: &Order) -> Verdict {
        if order.payment_intent_id.as_deref() != Some(self.payment_intent) {
            return Verdict::IntentReplaced;
        }
        if self.mode.is_some_and(|mode| mode != order.mode) {
            return Verdict::OtherMode;
        }
        if let Some((amount, currency)) = self.amount
            && !order.total.is(amount, currency)
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
        if !order.status.allows(self.to, self.why) {
            return Verdict::NoChange {
                reason: no_change::NOT_ALLOWED,
            };
        }
        if let Some(was) = self.refunded_was
            && order.amount_refunded.unwrap_or(0) != was
        {
            // Only a failed refund larger than what the order shows refunded
            // gets here (`fitted` computes from the order otherwise).
            return Verdict::NoChange {
                reason: no_change::REFUND_NOT_RECORDED,
            };
        }
        if let (Some(new), Some(old)) = (self.amount_refunded, order.amount_refunded)
            && self.refunded_was.is_none()
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
    use crate::domain::Money;
    use OrderStatus::*;

    /// A EUR 10.00 order with intent `pi_1`, in `status`.
    fn order(status: OrderStatus) -> Order {
        Order {
            status,
            total: Money::new(1000, Order::sample().total.currency()),
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
            why: Move::Course,
            refund_failed: None,
            refunded_was: None,
            mode: None,
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
    fn a_late_payment_leaves_a_dispute_as_it_is() {
        assert!(matches!(
            change(Paid).judge(&order(Disputed)),
            Verdict::NoChange { .. }
        ));
    }

    #[test]
    fn a_won_dispute_returns_the_order_to_where_its_refunds_left_it() {
        let won = Change {
            prerequisite: Some(Disputed),
            why: Move::DisputeClosed,
            refunded_was: Some(0),
            ..change(Paid)
        };
        let mut disputed = order(Disputed);
        assert_eq!(won.fitted(&disputed).judge(&disputed), Verdict::Allowed);
        assert_eq!(won.fitted(&disputed).to, Paid);
        disputed.amount_refunded = Some(400);
        let fitted = won.fitted(&disputed);
        assert_eq!(
            (fitted.to, fitted.refunded_was),
            (PartiallyRefunded, Some(400))
        );
        assert_eq!(fitted.judge(&disputed), Verdict::Allowed);
        // Lost is lost, refunds or not.
        let lost = Change {
            prerequisite: Some(Disputed),
            why: Move::DisputeClosed,
            ..change(Lost)
        };
        assert_eq!(lost.fitted(&disputed).to, Lost);
    }

    #[test]
    fn a_failed_refund_takes_its_amount_off_what_the_order_shows_refunded() {
        let failed = Change {
            why: Move::RefundFailed,
            refund_failed: Some(400),
            amount_refunded: Some(0),
            refunded_was: Some(400),
            ..change(Paid)
        };
        let mut refunded = order(PartiallyRefunded);
        refunded.amount_refunded = Some(1000);
        let fitted = failed.fitted(&refunded);
        assert_eq!(
            (fitted.to, fitted.amount_refunded, fitted.refunded_was),
            (PartiallyRefunded, Some(600), Some(1000))
        );
        assert_eq!(fitted.judge(&refunded), Verdict::Allowed);
        refunded.amount_refunded = Some(400);
        refunded.status = Refunded;
        assert_eq!(failed.fitted(&refunded).to, Paid);
        // More than the order shows refunded: nothing to give back.
        refunded.amount_refunded = Some(300);
        assert_eq!(
            failed.fitted(&refunded).judge(&refunded),
            Verdict::NoChange {
                reason: no_change::REFUND_NOT_RECORDED
            }
        );
        // Never on an order that was not refunded.
        assert!(matches!(
            failed.fitted(&order(Paid)).judge(&order(Paid)),
            Verdict::NoChange { .. }
        ));
    }

    #[test]
    fn news_of_the_other_mode_is_not_the_orders() {
        let live = Change {
            mode: Some(Mode::Live),
            ..change(Paid)
        };
        assert_eq!(live.judge(&order(Pending)), Verdict::OtherMode);
        let test = Change {
            mode: Some(Mode::Test),
            ..change(Paid)
        };
        assert_eq!(test.judge(&order(Pending)), Verdict::Allowed);
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
