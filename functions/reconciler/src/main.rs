//! Scheduled every few minutes: settle orders whose payment outcome never reached us.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::serve_events(reconciler::handler::handle).await
}
