//! Orders and their state machine. Every change of status goes through
//! `OrderStatus::can_become`, and the store writes it with a condition on
//! the status it read, so no delivery order or repetition can move an order
//! backwards or apply a transition twice.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Processing,
    Paid,
    Failed,
    Canceled,
    Refunded,
    PartiallyRefunded,
    Disputed,
    Lost,
    /// The checkout session ran out with nothing left to cancel in Stripe.
    Expired,
    /// Money Stripe took that the order cannot simply accept (e.g. a
    /// replaced intent that succeeded): a person decides.
    NeedsReview,
}

/// What kind of news moves an order: the payment's course (most events),
/// or one of the two pieces of news that alone may make their moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Move {
    #[default]
    Course,
    /// `charge.dispute.closed`: the only way out of `disputed`.
    DisputeClosed,
    /// A refund Stripe could not pay out: its amount is the merchant's again.
    RefundFailed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 11] = [
        OrderStatus::Pending,
        OrderStatus::Processing,
        OrderStatus::Paid,
        OrderStatus::Failed,
        OrderStatus::Canceled,
        OrderStatus::Refunded,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Disputed,
        OrderStatus::Lost,
        OrderStatus::Expired,
        OrderStatus::NeedsReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Processing => "processing",
            OrderStatus::Paid => "paid",
            OrderStatus::Failed => "failed",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Disputed => "disputed",
            OrderStatus::Lost => "lost",
            OrderStatus::Expired => "expired",
            OrderStatus::NeedsReview => "needs_review",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The moves news of the payment's course may make:
    /// `pending → processing → paid`, `pending/processing → failed → paid`
    /// (a retry can still succeed), `paid → refunded | partially_refunded`,
    /// `partially_refunded → partially_refunded | refunded`,
    /// `paid | partially_refunded → disputed`, `pending/processing/failed → canceled`,
    /// `pending/failed → expired` (the session ran out; nothing is in flight),
    /// and to `needs_review` from any status that did not take the money
    /// (a replaced intent succeeded: money arrived the order cannot take).
    /// Nothing here leaves `disputed`: only the dispute's closure ends it
    /// (`Move::DisputeClosed`), so a late `succeeded` cannot undo it.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Processing | Paid | Failed | Canceled | Expired | NeedsReview)
                // Stripe may cancel what it was processing (the cancellation
                // can also overtake the attempt's failure).
                | (Processing, Paid | Failed | Canceled | NeedsReview)
                | (Failed, Processing | Paid | Failed | Canceled | Expired | NeedsReview)
                | (Canceled | Expired, NeedsReview)
                | (Paid, Refunded | PartiallyRefunded | Disputed)
                | (PartiallyRefunded, PartiallyRefunded | Refunded | Disputed)
        )
    }

    /// Whether `why` may move an order from this status to `next`.
    pub fn allows(self, next: OrderStatus, why: Move) -> bool {
        use OrderStatus::*;
        match why {
            Move::Course => self.can_become(next),
            // Won: back where the refunds left it (`after_dispute_won`); lost: lost.
            Move::DisputeClosed => {
                self == Disputed && matches!(next, Paid | PartiallyRefunded | Refunded | Lost)
            }
            // The refunded money came back (`after_refund_failed`).
            Move::RefundFailed => {
                matches!(self, Refunded | PartiallyRefunded)
                    && matches!(next, Paid | PartiallyRefunded)
            }
        }
    }

    /// Where a won dispute leaves an order of `amount` of which
    /// `amount_refunded` had been refunded before it.
    pub fn after_dispute_won(amount_refunded: Option<u64>, amount: u64) -> OrderStatus {
        match amount_refunded.unwrap_or(0) {
            0 => OrderStatus::Paid,
            r if r >= amount => OrderStatus::Refunded,
            _ => OrderStatus::PartiallyRefunded,
        }
    }

    /// Where a failed refund leaves an order whose refunded total falls to
    /// `amount_refunded`.
    pub fn after_refund_failed(amount_refunded: u64) -> OrderStatus {
        if amount_refunded == 0 {
            OrderStatus::Paid
        } else {
            OrderStatus::PartiallyRefunded
        }
    }

    /// The statuses an event can wait for (`Envelope::prerequisite`): a
    /// move to one of them is what can make a parked event ready to apply.
    pub const PREREQUISITES: [OrderStatus; 2] = [OrderStatus::Paid, OrderStatus::Disputed];

    /// Whether the order has got as far as `requirement` (see
    /// `Envelope::prerequisite`): `paid` once it is no longer waiting for a
    /// payment outcome, `disputed` once paid and no dispute can still come
    /// (a partly refunded order can still be disputed). Orders that ended
    /// another way (canceled, refunded) count as past it, so an event that
    /// can never apply is dropped instead of waiting forever.
    pub fn has_reached(self, requirement: OrderStatus) -> bool {
        match requirement {
            OrderStatus::Paid => !self.awaits_payment(),
            OrderStatus::Disputed => {
                !self.awaits_payment() && !self.can_become(OrderStatus::Disputed)
            }
            _ => true,
        }
    }

    /// Every status `next` may be reached from by `why`, having got as far
    /// as `requires`: the condition a write uses.
    pub fn sources_of(
        next: OrderStatus,
        why: Move,
        requires: Option<OrderStatus>,
    ) -> Vec<OrderStatus> {
        Self::ALL
            .into_iter()
            .filter(|s| s.allows(next, why) && requires.is_none_or(|r| s.has_reached(r)))
            .collect()
    }

    /// Still waiting for a payment outcome (the reconciler looks at these).
    pub fn awaits_payment(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::Processing | OrderStatus::Failed
        )
    }

    /// Money has been received (whatever happened after).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid
                | OrderStatus::Refunded
                | OrderStatus::PartiallyRefunded
                | OrderStatus::Disputed
                | OrderStatus::Lost
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn the_happy_paths_are_allowed() {
        for (from, to) in [
            (Pending, Processing),
            (Processing, Paid),
            (Pending, Paid),
            (Pending, Failed),
            (Processing, Failed),
            (Failed, Paid),
            (Paid, Refunded),
            (Paid, PartiallyRefunded),
            (PartiallyRefunded, Refunded),
            (Paid, Disputed),
            (PartiallyRefunded, Disputed),
            (Pending, Canceled),
        ] {
            assert!(from.can_become(to), "{from} -> {to}");
        }
    }

    #[test]
    fn nothing_moves_backwards() {
        for (from, to) in [
            (Paid, Failed),
            (Paid, Pending),
            (Paid, Processing),
            (Paid, Canceled),
            (Paid, Paid),
            (Refunded, Paid),
            (Refunded, Refunded),
            (Lost, Paid),
            (Canceled, Paid),
            (Canceled, Pending),
            (Processing, Pending),
            (Disputed, Refunded),
            // A late or replayed `succeeded` must not undo a dispute.
            (Disputed, Paid),
            (Disputed, Lost),
            (Refunded, PartiallyRefunded),
            (PartiallyRefunded, Paid),
        ] {
            assert!(!from.can_become(to), "{from} -> {to} must be refused");
            assert!(
                !from.allows(to, Move::Course),
                "{from} -> {to} must be refused"
            );
        }
    }

    #[test]
    fn only_a_disputes_closure_ends_it() {
        for next in [Paid, PartiallyRefunded, Refunded, Lost] {
            assert!(Disputed.allows(next, Move::DisputeClosed), "{next}");
            assert!(!Disputed.allows(next, Move::Course), "{next}");
            assert!(!Disputed.allows(next, Move::RefundFailed), "{next}");
        }
        // A closure moves nothing that is not disputed.
        for from in OrderStatus::ALL.into_iter().filter(|s| *s != Disputed) {
            for next in OrderStatus::ALL {
                assert!(!from.allows(next, Move::DisputeClosed), "{from} -> {next}");
            }
        }
        assert_eq!(
            OrderStatus::sources_of(Paid, Move::DisputeClosed, Some(Disputed)),
            vec![Disputed]
        );
    }

    #[test]
    fn a_won_dispute_returns_the_order_to_where_its_refunds_left_it() {
        assert_eq!(OrderStatus::after_dispute_won(None, 2999), Paid);
        assert_eq!(OrderStatus::after_dispute_won(Some(0), 2999), Paid);
        assert_eq!(
            OrderStatus::after_dispute_won(Some(1000), 2999),
            PartiallyRefunded
        );
        assert_eq!(OrderStatus::after_dispute_won(Some(2999), 2999), Refunded);
    }

    #[test]
    fn a_failed_refund_gives_its_amount_back() {
        assert_eq!(OrderStatus::after_refund_failed(0), Paid);
        assert_eq!(OrderStatus::after_refund_failed(500), PartiallyRefunded);
        for from in [Refunded, PartiallyRefunded] {
            assert!(from.allows(Paid, Move::RefundFailed), "{from}");
            assert!(from.allows(PartiallyRefunded, Move::RefundFailed), "{from}");
        }
        for from in [Pending, Paid, Disputed, Lost, Canceled] {
            assert!(!from.allows(Paid, Move::RefundFailed), "{from}");
        }
    }

    #[test]
    fn only_the_prerequisites_are_ever_waited_for() {
        for requirement in OrderStatus::ALL {
            let someone_waits = OrderStatus::ALL
                .into_iter()
                .any(|status| !status.has_reached(requirement));
            assert_eq!(
                someone_waits,
                OrderStatus::PREREQUISITES.contains(&requirement),
                "{requirement}"
            );
        }
    }

    #[test]
    fn early_events_wait_for_what_they_follow() {
        for status in [Pending, Processing, Failed] {
            assert!(!status.has_reached(Paid), "{status}");
            assert!(!status.has_reached(Disputed), "{status}");
        }
        assert!(Paid.has_reached(Paid));
        for status in [Paid, PartiallyRefunded] {
            assert!(
                !status.has_reached(Disputed),
                "{status}: a closure before its dispute waits"
            );
        }
        assert!(PartiallyRefunded.has_reached(Paid));
        for status in [Disputed, Lost, Refunded, Canceled] {
            assert!(
                status.has_reached(Paid) && status.has_reached(Disputed),
                "{status}"
            );
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for terminal in [Refunded, Lost, NeedsReview] {
            for next in OrderStatus::ALL {
                assert!(!terminal.can_become(next), "{terminal} -> {next}");
            }
        }
        // An order that ended unpaid takes no payment, but money that
        // arrives anyway is never ignored: a person looks at it.
        for ended in [Canceled, Expired] {
            for next in OrderStatus::ALL {
                assert_eq!(
                    ended.can_become(next),
                    next == NeedsReview,
                    "{ended} -> {next}"
                );
            }
        }
    }

    #[test]
    fn only_an_order_with_nothing_in_flight_expires() {
        assert_eq!(
            OrderStatus::sources_of(Expired, Move::Course, None),
            vec![Pending, Failed]
        );
        assert!(!Processing.can_become(Expired), "money may still arrive");
        for status in [Expired, NeedsReview] {
            assert!(!status.awaits_payment() && !status.is_paid(), "{status}");
        }
        // Money that arrived and cannot be taken goes to a person from any
        // status that has not taken money, never from one that has.
        for status in OrderStatus::ALL {
            assert_eq!(
                status.can_become(NeedsReview),
                !status.is_paid() && status != NeedsReview,
                "{status}"
            );
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
        assert_eq!(
            OrderStatus::sources_of(Paid, Move::Course, None),
            vec![Pending, Processing, Failed]
        );
    }
}

/// What a PaymentIntent's state means for its order, given whether the
/// intent matches the order (amount, currency, order id) and whether its
/// last attempt failed. `None`: nothing to record (the customer is still
/// paying, the intent was replaced, or the money does not match).
pub fn status_for_intent(
    intent_status: &str,
    attempt_failed: bool,
    matches_order: bool,
) -> Option<OrderStatus> {
    if !matches_order {
        return None;
    }
    match intent_status {
        "succeeded" => Some(OrderStatus::Paid),
        "processing" => Some(OrderStatus::Processing),
        "requires_payment_method" if attempt_failed => Some(OrderStatus::Failed),
        _ => None,
    }
}

#[cfg(test)]
mod intent_tests {
    use super::*;

    #[test]
    fn only_matching_money_pays() {
        assert_eq!(
            status_for_intent("succeeded", false, true),
            Some(OrderStatus::Paid)
        );
        assert_eq!(status_for_intent("succeeded", false, false), None);
        assert_eq!(
            status_for_intent("processing", false, true),
            Some(OrderStatus::Processing)
        );
        assert_eq!(
            status_for_intent("requires_payment_method", true, true),
            Some(OrderStatus::Failed)
        );
        assert_eq!(
            status_for_intent("requires_payment_method", false, true),
            None
        );
        assert_eq!(status_for_intent("requires_action", false, true), None);
        assert_eq!(status_for_intent("canceled", false, true), None);
    }
}
