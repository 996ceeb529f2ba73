//! Deliveries of one `payment_intent.succeeded` that overlap in a warm
//! container take turns, so only the first asks Stripe: the others then
//! find the event recorded on the order and answer Duplicate. Stripe's own
//! redeliveries come minutes apart, so across containers an overlap (and a
//! second Stripe read) is rare; within one it is what a burst looks like.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

#[derive(Default)]
pub struct InFlight {
    events: Mutex<HashMap<String, Arc<TurnLock<()>>>>,
}

/// This delivery's turn with its event; the next waits until it is dropped.
pub struct Turn<'a> {
    guard: Option<OwnedMutexGuard<()>>,
    event_id: String,
    in_flight: &'a InFlight,
}

impl InFlight {
    pub async fn turn(&self, event_id: &str) -> Turn<'_> {
        let lock = {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            events
                .entry(event_id.to_owned())
                .or_insert_with(|| Arc::new(TurnLock::new(())))
                .clone()
        };
        Turn {
            guard: Some(lock.lock_owned().await),
            event_id: event_id.to_owned(),
            in_flight: self,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard = None;
        let mut events = self
            .in_flight
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: nobody is waiting, so the entry goes (the
        // map holds only events in flight).
        if events
            .get(&self.event_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            events.remove(&self.event_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn overlapping_deliveries_of_one_event_take_turns_and_leave_nothing_behind() {
        let in_flight = Arc::new(InFlight::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (in_flight, inside, most) = (in_flight.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _turn = in_flight.turn("evt_1").await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        // Another event is not held up by them.
        let other = in_flight.turn("evt_2").await;
        drop(other);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "one at a time");
        assert_eq!(in_flight.len(), 0, "nothing left once none is in flight");
    }
}
