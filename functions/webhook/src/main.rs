//! `POST /webhook/stripe` and `POST /webhook/stripe/{store_id}`: Stripe's deliveries.

use shared::webhooks::WebhookMemory;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Kept between deliveries by the warm container, like the app context.
    let memory: &'static WebhookMemory = Box::leak(Box::default());
    shared::serve(move |app, req| webhook::handler::handle(app, memory, req)).await
}
