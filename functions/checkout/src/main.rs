//! The customer's pages: `GET /checkout/{token}` and `GET /checkout/{token}/complete`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(checkout::handler::handle).await
}
