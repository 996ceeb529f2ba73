//! `DELETE /api/internal/stores/{store_id}/stripe`: BMOS disconnects a store from Stripe.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(disconnect::handler::handle).await
}
