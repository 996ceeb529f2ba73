//! `POST /webhook/stripe` and `POST /webhook/stripe/{store_id}`: Stripe's deliveries.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(webhook::handler::handle).await
}
