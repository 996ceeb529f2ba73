//! `GET /api/internal/stores/{store_id}/stripe-status`: BMOS's view of a store.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(internal_status::handler::handle).await
}
