//! An order: what BMOS's cart asked for, where its payment stands, and the
//! early Stripe news kept on it. How it is stored is `store/orders.rs`; how
//! its status may move is `order_status.rs`.

#[cfg(test)]
use super::Currency;
use super::{Cart, LineItem, Mode, Money, OrderId, OrderStatus, ReviewResolution, StoreId};
use std::collections::BTreeMap;

/// The longest checkout session a store can ask for (`expires_in`).
pub const LONGEST_SESSION_SECS: u64 = 24 * 60 * 60;

/// A customer who opened the payment form just before the session ended
/// can still pay with its intent for a while; the checkout counts as
/// abandoned this long after the session's end.
pub const PAYING_GRACE_SECS: u64 = 15 * 60;

#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub order_id: OrderId,
    pub store_id: StoreId,
    pub status: OrderStatus,
    /// What the customer pays: the sum of the line items.
    pub total: Money,
    pub line_items: Vec<LineItem>,
    pub mode: Mode,
    pub payment_intent_id: Option<String>,
    /// Bumped each time a new intent replaces a canceled one; part of the
    /// Stripe idempotency key.
    pub intent_attempt: u32,
    pub customer_email: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub store_name: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub paid_at: Option<u64>,
    /// Stripe's customer-facing message for the last failed attempt.
    pub last_payment_error: Option<String>,
    /// Set instead of paying when Stripe's amount or currency differs.
    pub review_reason: Option<String>,
    /// How a person settled the review (`store/reviews.rs`); the reason stays.
    pub review_resolution: Option<ReviewResolution>,
    /// The charge's refunded total from the newest `charge.refunded` applied.
    pub amount_refunded: Option<u64>,
    /// Stripe's time of the payment state the status reflects (see
    /// `store::TransitionDetails::status_as_of`).
    pub status_as_of: Option<u64>,
    /// Events that arrived before the one they follow, waiting here until
    /// the order gets that far (`webhooks/parked.rs`).
    pub parked: Vec<ParkedEvent>,
    /// When the checkout session ends. `None` on orders made before it was
    /// recorded: those are given the longest session a store can ask for.
    pub session_expires_at: Option<u64>,
    /// Replaced intents that may still be open in Stripe: cancelled when
    /// replaced, and by the reconciler if Stripe could not be reached then.
    pub intents_to_cancel: Vec<String>,
    /// Looks by the reconciler that found nothing to settle; the next look
    /// backs off with it.
    pub reconcile_checks: u32,
}

/// An early event's change, as kept on its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedEvent {
    pub event_id: String,
    pub payment_intent: String,
    /// The status the event moves the order to.
    pub to: OrderStatus,
    /// How far the order must have got first (`OrderStatus::has_reached`).
    pub requires: OrderStatus,
    pub amount_refunded: Option<u64>,
    /// Stripe's `created`, so that ready events apply oldest first.
    pub created: u64,
}

impl Order {
    /// A new order, waiting for its first payment attempt, with none of the
    /// optional details (set them with struct update syntax).
    pub fn pending(
        store_id: StoreId,
        mode: Mode,
        total: Money,
        line_items: Vec<LineItem>,
        now: u64,
    ) -> Order {
        Order {
            order_id: OrderId::new(),
            store_id,
            status: OrderStatus::Pending,
            total,
            line_items,
            mode,
            payment_intent_id: None,
            intent_attempt: 0,
            customer_email: None,
            success_url: None,
            cancel_url: None,
            metadata: BTreeMap::new(),
            store_name: None,
            created_at: now,
            updated_at: now,
            paid_at: None,
            last_payment_error: None,
            review_reason: None,
            review_resolution: None,
            amount_refunded: None,
            status_as_of: None,
            parked: Vec::new(),
            session_expires_at: None,
            intents_to_cancel: Vec::new(),
            reconcile_checks: 0,
        }
    }

    /// When the checkout counts as abandoned: its intents are cancelled and
    /// the order ends then if it has not been paid.
    pub fn abandoned_at(&self) -> u64 {
        self.session_expires_at
            .unwrap_or(self.created_at + LONGEST_SESSION_SECS)
            + PAYING_GRACE_SECS
    }

    /// The review reason for a payment Stripe reports that does not match.
    pub fn mismatch_reason(&self, payment_intent: &str, amount: u64, currency: &str) -> String {
        format!(
            "Stripe reports {amount} {currency} for intent {payment_intent}, the order expects {} {}",
            self.total.minor(),
            self.total.currency().code()
        )
    }

    /// The order for a validated cart, in the store's current mode.
    pub fn from_cart(cart: Cart, mode: Mode, now: u64) -> Order {
        Order {
            customer_email: cart.customer_email,
            success_url: cart.success_url.map(String::from),
            cancel_url: cart.cancel_url.map(String::from),
            metadata: cart.metadata,
            store_name: cart.store_name,
            ..Order::pending(cart.store_id, mode, cart.total, cart.line_items, now)
        }
    }
}

#[cfg(test)]
impl Order {
    /// A pending EUR 29.99 order with intent `pi_1`, for unit tests.
    pub(crate) fn sample() -> Order {
        Order {
            payment_intent_id: Some("pi_1".into()),
            ..Order::pending(
                StoreId::parse("0b7c5a4e-3f0e-4a53-9d0a-2f1a3d2b9c11").expect("store id"),
                Mode::Test,
                Money::new(2999, Currency::parse("eur").expect("currency")),
                vec![LineItem {
                    name: "Mug".into(),
                    unit_amount: 2999,
                    quantity: 1,
                }],
                1,
            )
        }
    }
}
