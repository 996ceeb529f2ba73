//! `GET /api/internal/orders/{order_id}`: an order and its status, for BMOS.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(orders::handler::handle).await
}
