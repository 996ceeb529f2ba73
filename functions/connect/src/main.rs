//! The merchant's connect flow: `GET`/`POST /stripe/connect` and
//! `GET /stripe/success/{store_id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::serve(connect::handler::handle).await
}
