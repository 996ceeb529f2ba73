//! `POST /api/internal/checkout-sessions`: BMOS opens a checkout for a cart.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(checkout_sessions::handler::handle).await
}
