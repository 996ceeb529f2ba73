//! `PUT /api/internal/stores/{store_id}/webhook-secret`: BMOS saves a pasted signing secret.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(webhook_secret::handler::handle).await
}
