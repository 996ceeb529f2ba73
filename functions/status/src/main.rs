//! `GET /stripe/status/{store_id}`: can this store take payments?

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(status::handler::handle).await
}
