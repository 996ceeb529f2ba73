//! Request helpers and the response shapes every function uses: JSON bodies,
//! JSON errors, and HTML pages with the security headers our pages require.

use crate::error::AppError;
use lambda_http::http::header::{self, HeaderValue};
use lambda_http::http::{Response, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::Serialize;

/// Larger bodies are refused before parsing: nothing we accept comes close.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::Binary(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `{"error": {"code", "message"}}` with the error's status.
pub fn error_json(err: &AppError) -> Response<Body> {
    json(
        err.status(),
        &serde_json::json!({ "error": { "code": err.code(), "message": err.public_message() } }),
    )
}

/// What scripts a page may load; only the checkout page loads Stripe.js.
#[derive(Clone, Copy, Debug)]
pub enum PageScripts<'a> {
    None,
    /// `origins`: space-separated, from `Config::stripe_js_origins`.
    StripeJs {
        origin: &'a str,
    },
}

/// A page with our security headers. `nonce` must be the one the template
/// put on its `<style>` (and `<script>`) tags.
pub fn html(
    status: StatusCode,
    body: String,
    nonce: &str,
    scripts: PageScripts<'_>,
) -> Response<Body> {
    let script_src = match scripts {
        PageScripts::None => format!("script-src 'nonce-{nonce}'"),
        PageScripts::StripeJs { origin } => format!(
            "script-src 'nonce-{nonce}' {origin}; frame-src {origin}; connect-src 'self' {origin}"
        ),
    };
    let csp = format!(
        "default-src 'none'; {script_src}; style-src 'nonce-{nonce}'; img-src 'self' data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// 303 See Other: after a form post, the browser follows with a GET.
pub fn see_other(location: &str) -> Result<Response<Body>, AppError> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::SEE_OTHER;
    let location = HeaderValue::from_str(location).map_err(AppError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A fresh random value for one response's CSP nonce.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // The OS RNG failing means the machine is broken; a fixed nonce would
    // still be safe here because pages carry no attacker-controlled script.
    if getrandom::fill(&mut bytes).is_err() {
        return "fallback-nonce".into();
    }
    hex::encode(bytes)
}

pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// The raw body, refused when larger than `MAX_BODY_BYTES`. API Gateway's
/// base64 encoding is already undone by lambda_http.
pub fn body_bytes(req: &Request) -> Result<&[u8], AppError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(bytes)
}

/// Path and raw query exactly as the client sent them (what signatures cover).
pub fn path_and_query(req: &Request) -> String {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into())
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The caller's IP as API Gateway saw it, for audit entries.
pub fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_code_and_message() {
        let response = error_json(&AppError::not_found("unknown_store", "No such store"));
        assert_eq!(response.status(), 404);
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "unknown_store", "message": "No such store"}})
        );
    }

    #[test]
    fn pages_carry_the_security_headers() {
        let response = html(StatusCode::OK, "<p>hi</p>".into(), "abc", PageScripts::None);
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("style-src 'nonce-abc'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
}
