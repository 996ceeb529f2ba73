//! One reconciler run per EventBridge schedule tick; the event's content is
//! not needed (the clock decides what is due).

use lambda_runtime::LambdaEvent;
use shared::reconcile::{self, Limits, Report};
use shared::{App, AppError, clock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Left of the function's timeout when a run stops starting orders: the
/// orders under way finish and the report is written.
const MARGIN: Duration = Duration::from_secs(30);

pub async fn handle(app: &App, event: LambdaEvent<serde_json::Value>) -> Result<Report, AppError> {
    let defaults = Limits::default();
    let limits = Limits {
        max_orders: app
            .config
            .reconcile_max_orders
            .unwrap_or(defaults.max_orders),
        time_budget: time_budget(event.context.deadline, SystemTime::now()),
        ..defaults
    };
    reconcile::run(app, clock::now(), limits).await
}

/// The time until the invocation's deadline (epoch milliseconds) less the
/// margin; the default budget when Lambda gave no deadline.
fn time_budget(deadline_ms: u64, now: SystemTime) -> Duration {
    if deadline_ms == 0 {
        return Limits::default().time_budget;
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_ms)
        .saturating_sub(now)
        .saturating_sub(MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn the_schedule_event_parses_and_an_unreachable_table_fails_the_run() {
        let payload: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/reconciler.json")).unwrap();
        assert_eq!(payload["detail-type"], "Scheduled Event");
        let event = LambdaEvent::new(payload, lambda_runtime::Context::default());
        let err = handle(offline_app(), event).await.unwrap_err();
        assert_eq!(err.status(), 502, "{err:?}");
    }

    #[test]
    fn a_run_stops_starting_orders_well_before_the_timeout() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let deadline = 1_800_000_000_000 + 300_000;
        assert_eq!(time_budget(deadline, now), Duration::from_secs(270));
        assert_eq!(time_budget(1_800_000_000_000 + 10_000, now), Duration::ZERO);
        assert_eq!(time_budget(0, now), Limits::default().time_budget);
    }
}
