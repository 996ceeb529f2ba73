//! What a delivery did: the one answer every path of the webhook gives,
//! which the handler maps to its response and its log line.

use super::no_change;
use crate::domain::OrderId;

/// What a delivery did, for the response and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        order_id: OrderId,
        to: &'static str,
    },
    Duplicate,
    /// Arrived before the event it follows (a refund or dispute before the
    /// payment, a dispute's closure before its creation): recorded and kept
    /// on the order, applied once the order is `until`.
    Parked {
        order_id: OrderId,
        until: &'static str,
    },
    /// Verified, but nothing to change (an event type we do not act on, an
    /// intent that is not ours, a move the order does not allow, such as
    /// `payment_failed` after `succeeded`, or news older than what the
    /// order already shows). Recorded on its order when it has one.
    NoChange {
        reason: &'static str,
    },
    /// Money Stripe confirms that the order cannot take as it is: flagged
    /// for review, not paid. `why` is one of the `FLAGGED_*` texts.
    Flagged {
        order_id: OrderId,
        why: &'static str,
    },
}

/// Stripe's amount or currency is not the order's.
pub const FLAGGED_AMOUNT: &str = "amount does not match the order";
/// Stripe confirms a payment on an intent the order replaced: the money
/// was taken, but the order waits on its new intent (refund or accept it).
pub const FLAGGED_REPLACED: &str = "paid on an intent the order no longer uses";

pub(super) fn not_ours() -> Outcome {
    Outcome::NoChange {
        reason: no_change::NOT_OURS,
    }
}

/// Verified with this store's secret, about another store's payment: two
/// stores on one Stripe account both receive every event of the account,
/// so this is not a forgery to refuse (a 400 would have Stripe retry for
/// days and disable the endpoint), only not this store's to apply.
pub(super) fn other_store() -> Outcome {
    Outcome::NoChange {
        reason: no_change::OTHER_STORE,
    }
}
