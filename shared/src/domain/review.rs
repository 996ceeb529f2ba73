//! A person's decision on an order flagged for review (`needs_review`: a
//! payment that did not match its order). BMOS records it through the
//! internal API; the order's status follows the decision, and the order
//! leaves the reconciler's queue for good.

use super::OrderStatus;
use crate::error::AppError;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The payment is good after all: the order counts as paid.
    Accepted,
    /// The money was handled outside checkout (refunded in the Stripe
    /// Dashboard, say): the order is closed as refunded.
    SettledOutside,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::Accepted, Resolution::SettledOutside];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Accepted => "accepted",
            Resolution::SettledOutside => "settled_outside",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, AppError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                AppError::unprocessable(
                    "invalid_field",
                    "resolution: must be \"accepted\" or \"settled_outside\"",
                )
            })
    }

    /// The status an order in `current` ends in. An order already counted
    /// as paid (refunded or disputed since, say) keeps what it records:
    /// accepting the payment does not undo what happened to it after.
    pub fn status_from(self, current: OrderStatus) -> OrderStatus {
        match self {
            Resolution::Accepted if current.is_paid() => current,
            Resolution::Accepted => OrderStatus::Paid,
            Resolution::SettledOutside => OrderStatus::Refunded,
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded decision: which, when, and who (as BMOS named them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewResolution {
    pub resolution: Resolution,
    pub at: u64,
    pub by: String,
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn resolutions_round_trip_and_nothing_else_parses() {
        for r in Resolution::ALL {
            assert_eq!(Resolution::parse(r.as_str()).unwrap(), r);
        }
        for bad in ["", "Accepted", "refunded", "accept"] {
            assert_eq!(Resolution::parse(bad).unwrap_err().status(), 422, "{bad}");
        }
    }

    #[test]
    fn an_accepted_payment_is_paid_and_one_settled_outside_is_refunded() {
        for waiting in [Pending, Processing, Failed, Canceled] {
            assert_eq!(Resolution::Accepted.status_from(waiting), Paid, "{waiting}");
            assert_eq!(
                Resolution::SettledOutside.status_from(waiting),
                Refunded,
                "{waiting}"
            );
        }
        for moved_on in [Paid, PartiallyRefunded, Disputed] {
            assert_eq!(Resolution::Accepted.status_from(moved_on), moved_on);
        }
    }
}
