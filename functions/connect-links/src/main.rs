//! `POST /api/internal/stores/{store_id}/connect-links`: a signed connect link for BMOS.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(connect_links::handler::handle).await
}
