//! `POST /checkout/{token}/payment-intent`: the PaymentIntent for a checkout.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(create_intent::handler::handle).await
}
