//! One reconciler run per EventBridge schedule tick; the event's content is
//! not needed (the clock decides what is stale).

use lambda_runtime::LambdaEvent;
use shared::reconcile::{self, Limits, Report};
use shared::{App, AppError, clock};

pub async fn handle(app: &App, _event: LambdaEvent<serde_json::Value>) -> Result<Report, AppError> {
    let limits = Limits {
        max_orders: app.config.reconcile_max_orders,
        ..Limits::default()
    };
    reconcile::run(app, clock::now(), limits).await
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
}
