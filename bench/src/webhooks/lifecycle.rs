//! What happens to each order at Stripe, as the events our endpoint
//! subscribes to (`shared::stripe::webhook_endpoints::EVENTS`): declined
//! card or SEPA attempts, then paid (and refunded in 1–4 steps, or disputed
//! and won or lost) or canceled. Nothing here says what the service must do
//! with them: the end-state check (`end_state.rs`) asks production.

use crate::rng::Rng;

/// One Stripe event about an order's PaymentIntent (or its charge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeEvent {
    Processing,
    Succeeded,
    PaymentFailed {
        message: &'static str,
    },
    Canceled,
    /// `amount_refunded` is the charge's running total, as Stripe sends it.
    Refunded {
        amount_refunded: u64,
    },
    DisputeCreated,
    DisputeClosed {
        won: bool,
    },
}

impl StripeEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            StripeEvent::Processing => "payment_intent.processing",
            StripeEvent::Succeeded => "payment_intent.succeeded",
            StripeEvent::PaymentFailed { .. } => "payment_intent.payment_failed",
            StripeEvent::Canceled => "payment_intent.canceled",
            StripeEvent::Refunded { .. } => "charge.refunded",
            StripeEvent::DisputeCreated => "charge.dispute.created",
            StripeEvent::DisputeClosed { .. } => "charge.dispute.closed",
        }
    }
}

/// The orders' stories, by where they end at Stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Paid,
    Refunded,
    PartiallyRefunded,
    DisputeWon,
    DisputeLost,
    Canceled,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Paid,
        Category::Refunded,
        Category::PartiallyRefunded,
        Category::DisputeWon,
        Category::DisputeLost,
        Category::Canceled,
    ];

    /// Share of the orders, in percent.
    fn weight(self) -> usize {
        match self {
            Category::Paid => 25,
            Category::Refunded => 20,
            Category::PartiallyRefunded => 15,
            Category::DisputeWon => 10,
            Category::DisputeLost => 10,
            Category::Canceled => 20,
        }
    }
}

const MAX_DECLINES: usize = 3;
const MAX_REFUNDS: usize = 4;

/// Stripe's customer-facing messages for declined attempts.
const CARD_DECLINES: [&str; 3] = [
    "Your card was declined.",
    "Your card has insufficient funds.",
    "Your card's security code is incorrect.",
];
const SEPA_FAILURE: &str = "The customer's bank account could not be debited.";

/// One order's payment at Stripe: failed attempts (each by card, or by SEPA
/// debit which first goes through `processing`), then either a successful
/// attempt and what followed it, or a cancellation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub category: Category,
    pub amount: u64,
    /// One per failed attempt: was it a SEPA debit (processing, then failed)?
    pub declines: Vec<bool>,
    /// The successful attempt was a SEPA debit (ignored when canceled).
    pub sepa_success: bool,
    /// Refunds, for the refund categories.
    pub refunds: usize,
}

impl Lifecycle {
    fn base(category: Category, amount: u64) -> Self {
        let refunds = match category {
            Category::Refunded | Category::PartiallyRefunded => 1,
            _ => 0,
        };
        Lifecycle {
            category,
            amount,
            declines: Vec::new(),
            sepa_success: false,
            refunds,
        }
    }

    /// The events, in the order Stripe generates them.
    pub fn events(&self) -> Vec<StripeEvent> {
        let mut events = Vec::new();
        for (i, sepa) in self.declines.iter().enumerate() {
            if *sepa {
                events.push(StripeEvent::Processing);
                events.push(StripeEvent::PaymentFailed {
                    message: SEPA_FAILURE,
                });
            } else {
                events.push(StripeEvent::PaymentFailed {
                    message: CARD_DECLINES[i % CARD_DECLINES.len()],
                });
            }
        }
        if self.category == Category::Canceled {
            events.push(StripeEvent::Canceled);
            return events;
        }
        if self.sepa_success {
            events.push(StripeEvent::Processing);
        }
        events.push(StripeEvent::Succeeded);
        match self.category {
            Category::Refunded | Category::PartiallyRefunded => {
                let full = self.category == Category::Refunded;
                // Running totals, strictly increasing; the last is the whole
                // amount for a full refund.
                let parts = self.refunds as u64 + u64::from(!full);
                for i in 1..=self.refunds as u64 {
                    events.push(StripeEvent::Refunded {
                        amount_refunded: self.amount * i / parts,
                    });
                }
            }
            Category::DisputeWon | Category::DisputeLost => {
                events.push(StripeEvent::DisputeCreated);
                events.push(StripeEvent::DisputeClosed {
                    won: self.category == Category::DisputeWon,
                });
            }
            Category::Paid | Category::Canceled => {}
        }
        events
    }

    pub fn event_count(&self) -> usize {
        self.events().len()
    }

    /// Ways to make the story one event longer, still realistic.
    fn grow(&mut self, rng: &mut Rng) -> bool {
        let mut options: Vec<u8> = Vec::new();
        if self.declines.len() < MAX_DECLINES {
            options.push(0); // one more declined card
        }
        if self.declines.iter().any(|sepa| !sepa) {
            options.push(1); // a declined card was a failed SEPA debit
        }
        if self.category != Category::Canceled && !self.sepa_success {
            options.push(2); // paid by SEPA debit (processing first)
        }
        if matches!(
            self.category,
            Category::Refunded | Category::PartiallyRefunded
        ) && self.refunds < MAX_REFUNDS
        {
            options.push(3); // one more refund
        }
        if options.is_empty() {
            return false;
        }
        match options[rng.below(options.len())] {
            0 => self.declines.push(false),
            1 => {
                let cards: Vec<usize> = (0..self.declines.len())
                    .filter(|&i| !self.declines[i])
                    .collect();
                self.declines[cards[rng.below(cards.len())]] = true;
            }
            2 => self.sepa_success = true,
            _ => self.refunds += 1,
        }
        true
    }
}

/// `orders` lifecycles with `events` events in all: categories in fixed
/// shares, then stories lengthened one event at a time (orders picked at
/// random) until the total is reached.
pub fn plan(orders: usize, events: usize, rng: &mut Rng) -> Result<Vec<Lifecycle>, String> {
    let mut categories = Vec::with_capacity(orders);
    for category in Category::ALL {
        let n = orders * category.weight() / 100;
        categories.extend(std::iter::repeat_n(category, n));
    }
    while categories.len() < orders {
        categories.push(Category::Paid);
    }
    rng.shuffle(&mut categories);
    let mut lifecycles: Vec<Lifecycle> = categories
        .into_iter()
        .map(|category| Lifecycle::base(category, rng.between(500, 20_000)))
        .collect();
    let mut total: usize = lifecycles.iter().map(Lifecycle::event_count).sum();
    if total > events {
        return Err(format!(
            "{orders} orders need at least {total} events; asked for {events}"
        ));
    }
    let mut growable: Vec<usize> = (0..orders).collect();
    while total < events {
        if growable.is_empty() {
            return Err(format!(
                "{orders} orders cannot carry {events} events (at most {total})"
            ));
        }
        let pick = rng.below(growable.len());
        if lifecycles[growable[pick]].grow(rng) {
            total += 1;
        } else {
            growable.swap_remove(pick);
        }
    }
    Ok(lifecycles)
}

/// Stripe's `created` of event `index` of a lifecycle whose first event
/// was created at `first`: a minute apart, in Stripe's order.
pub fn created_at(first: u64, index: usize) -> u64 {
    first + index as u64 * 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_has_exactly_the_events_asked_for() {
        let mut rng = Rng::new(1);
        let plan = plan(1000, 7000, &mut rng).unwrap();
        assert_eq!(plan.len(), 1000);
        assert_eq!(plan.iter().map(|l| l.events().len()).sum::<usize>(), 7000);
        assert!(super::plan(10, 5, &mut rng).is_err());
    }
}
