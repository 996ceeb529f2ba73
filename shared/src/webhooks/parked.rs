//! Releasing the events parked on an order (`store/parked.rs`) once the
//! order has got as far as they need: oldest first, each judged by the same
//! rules as a delivery, and applied and removed in one guarded write.
//! Whoever moves an order to `paid` or `disputed` calls this: the delivery
//! that moved it, a redelivery that finds them still there, or the
//! checkout and reconciler when Stripe's API says the intent succeeded.

use super::verdict::{Change, Verdict};
use crate::app::App;
use crate::clock;
use crate::domain::{Move, Order, OrderStatus, ParkedEvent};
use crate::error::AppError;
use crate::store::{Release, TransitionDetails};

/// Applies (or drops, when they can no longer apply) the order's parked
/// events that it is ready for. Safe to run from several deliveries at
/// once: each event is removed by the write that applies it.
pub async fn release_parked(app: &App, mut order: Order) -> Result<(), AppError> {
    // Each write applies or drops one event, or finds that another delivery
    // moved the order; bound the loop all the same.
    let mut writes_left = 2 * order.parked.len() + 2;
    while let Some(next) = ready(&order) {
        if writes_left == 0 {
            return Err(AppError::Dependency {
                dependency: "DynamoDB",
                throttled: true,
                source: "order kept changing while releasing its parked events".into(),
            });
        }
        writes_left -= 1;
        let (to, details) = match release_decision(&order, &next) {
            Ok((to, details)) => (to, Some(details)),
            Err(verdict) => {
                tracing::info!(order_id = %order.order_id, event_id = %next.event_id, ?verdict, "parked event no longer applies; dropped");
                (next.to, None)
            }
        };
        let write = details.as_ref().map(|details| (to, details));
        order = match app
            .table
            .release_parked(
                &order.order_id,
                &next.event_id,
                write,
                order.status,
                clock::now(),
            )
            .await?
        {
            Release::Applied(now) => {
                tracing::info!(order_id = %now.order_id, to = %now.status, event_id = %next.event_id, source = "webhook (parked)", "order status changed");
                *now
            }
            Release::Dropped(now) | Release::Refused(now) => *now,
            Release::NoOrder => return Ok(()),
        };
    }
    Ok(())
}

/// What releasing `next` from `order` writes: the move and its guarded
/// write when the event still applies (judged by the same rules as a
/// delivery), else why it is dropped.
pub(super) fn release_decision(
    order: &Order,
    next: &ParkedEvent,
) -> Result<(OrderStatus, TransitionDetails), Verdict> {
    let change = Change {
        payment_intent: &next.payment_intent,
        to: next.to,
        amount: None,
        amount_refunded: next.amount_refunded,
        status_as_of: None,
        prerequisite: Some(next.requires),
        // Only a dispute's closure waits for `disputed`.
        why: if next.requires == OrderStatus::Disputed {
            Move::DisputeClosed
        } else {
            Move::Course
        },
        refund_failed: None,
        refunded_was: None,
        mode: None,
    }
    .fitted(order);
    match change.judge(order) {
        // The fitted move: a won dispute returns the order to where its
        // refunds left it, not to the `paid` the event was parked with.
        Verdict::Allowed => Ok((change.to, change.details(None))),
        verdict => Err(verdict),
    }
}

/// The oldest parked event the order has got far enough for.
pub(super) fn ready(order: &Order) -> Option<ParkedEvent> {
    order
        .parked
        .iter()
        .find(|parked| order.status.has_reached(parked.requires))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(event_id: &str, to: OrderStatus, requires: OrderStatus) -> ParkedEvent {
        ParkedEvent {
            event_id: event_id.into(),
            payment_intent: "pi_1".into(),
            to,
            requires,
            amount_refunded: None,
            created: 1,
        }
    }

    fn order(status: OrderStatus, parked: Vec<ParkedEvent>) -> Order {
        Order {
            status,
            parked,
            ..Order::sample()
        }
    }

    #[test]
    fn a_won_dispute_parked_before_it_was_opened_returns_the_order_to_its_refunds() {
        use OrderStatus::*;
        // Parked on a partly refunded order, before `charge.dispute.created`.
        let won = parked("evt_closed", Paid, Disputed);
        let mut disputed = order(Disputed, vec![won.clone()]);
        disputed.amount_refunded = Some(1000);
        let (to, details) = release_decision(&disputed, &won).expect("applies");
        assert_eq!(to, PartiallyRefunded);
        assert_eq!(details.refunded_was, Some(1000));
        disputed.amount_refunded = Some(disputed.total.minor());
        assert_eq!(
            release_decision(&disputed, &won).expect("applies").0,
            Refunded
        );
        // Lost is lost.
        let lost = parked("evt_lost", Lost, Disputed);
        assert_eq!(release_decision(&disputed, &lost).expect("applies").0, Lost);
    }

    #[test]
    fn the_oldest_event_the_order_is_ready_for_goes_first() {
        use OrderStatus::*;
        // Kept oldest first: a dispute's closure, then its creation.
        let events = vec![
            parked("evt_closed", Lost, Disputed),
            parked("evt_created", Disputed, Paid),
        ];
        assert_eq!(ready(&order(Pending, events.clone())), None);
        assert_eq!(ready(&order(Failed, events.clone())), None);
        assert_eq!(
            ready(&order(Paid, events.clone())).map(|p| p.event_id),
            Some("evt_created".into()),
            "the closure waits for the dispute"
        );
        assert_eq!(
            ready(&order(Disputed, events.clone())).map(|p| p.event_id),
            Some("evt_closed".into())
        );
        // Ended another way: ready, so that judging drops them.
        assert!(ready(&order(Canceled, events)).is_some());
        assert_eq!(ready(&order(Paid, Vec::new())), None);
    }
}
