//! Routes the checkout pages. A customer's browser is on the other end, so
//! every failure is shown as a page.

use crate::{complete, page};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use shared::pages;
use shared::{App, AppError, http};

pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, AppError> {
    let token = http::path_param(&req, "token").unwrap_or_default();
    let result = match (req.method(), req.uri().path().ends_with("/complete")) {
        (&Method::GET, false) => page::handle(app, &req, &token).await,
        (&Method::GET, true) => complete::handle(app, &token).await,
        _ => Err(AppError::not_found("not_found", "There is no page here.")),
    };
    Ok(result.unwrap_or_else(|err| pages::error_page(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testing::offline_app;

    #[tokio::test]
    async fn malformed_tokens_get_a_404_page_without_touching_the_table() {
        for event in [include_str!("../../../events/checkout-page-bad-token.json")] {
            let req = lambda_http::request::from_str(event).unwrap();
            let response = handle(offline_app(), req).await.unwrap();
            assert_eq!(response.status(), 404);
            let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
            assert!(body.contains("not valid"), "{body}");
        }
    }

    #[tokio::test]
    async fn a_well_formed_token_reaches_the_table() {
        let req =
            lambda_http::request::from_str(include_str!("../../../events/checkout-page.json"))
                .unwrap();
        assert_eq!(handle(offline_app(), req).await.unwrap().status(), 502);
    }
}
