//! `POST /api/internal/orders/{order_id}/review`: BMOS resolves an order
//! flagged for review.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(order_review::handler::handle).await
}
