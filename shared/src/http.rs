//! Request helpers and the response shapes every function uses: JSON bodies,
//! JSON errors, and HTML pages with the security headers our pages require.

use crate::config::Config;
use crate::error::AppError;
use lambda_http::http::header::{self, HeaderValue};
use lambda_http::http::{Response, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::Serialize;
use url::Url;

/// Browsers must only ever reach us over TLS, for two years, subdomains too.
const HSTS: &str = "max-age=63072000; includeSubDomains";

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
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
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
    /// From `Config::stripe_js_sources`.
    StripeJs {
        sources: &'a crate::csp::StripeSources,
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
        PageScripts::StripeJs { sources } => format!(
            "script-src 'nonce-{nonce}' {}; frame-src {}; connect-src 'self' {}",
            sources.script.join(" "),
            sources.frame.join(" "),
            sources.connect.join(" ")
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
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
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
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
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

/// Path and query exactly as the client sent them (what signatures cover):
/// API Gateway's `rawPath` and `rawQueryString`. Not `req.uri()`: lambda_http
/// builds that through a URL parser, which resolves `.` and `..` segments
/// (and would prefix a non-default stage), so two spellings of a path would
/// look the same there. An empty raw path (no API Gateway event) stays empty
/// and fails the canonical-path check instead of being guessed.
pub fn path_and_query(req: &Request) -> String {
    let mut out = req.raw_http_path().to_owned();
    if let Some(query) = req.uri().query().filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(query);
    }
    out
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Where our pages live, as seen from this request: the custom domain when
/// the stack has one, else the domain API Gateway received the request on.
/// (A function cannot be told the API's own URL: the template would then
/// hold a dependency cycle that CloudFormation refuses.) Links we hand out
/// and the origin form posts must come from are built from this.
pub fn public_base_url(config: &Config, req: &Request) -> Result<Url, AppError> {
    if let Some(base) = &config.public_base_url {
        return Ok(base.clone());
    }
    let domain = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.as_deref(),
        _ => None,
    };
    domain
        .filter(|d| is_host_name(d))
        .and_then(|d| Url::parse(&format!("https://{d}/")).ok())
        .ok_or_else(|| {
            AppError::internal(
                "no public origin: PUBLIC_BASE_URL is empty and the request names no domain",
            )
        })
}

/// `scheme://host[:port]`, as browsers send it in `Origin`.
pub fn origin_of(base: &Url) -> String {
    base.origin().ascii_serialization()
}

/// A DNS name as API Gateway reports it: nothing a URL could be bent with.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The route template API Gateway matched (`GET /checkout/{token}`), for
/// logs: the raw path holds the checkout token, a customer's only credential.
/// Without a route key (the local router sets none) the template is rebuilt
/// from the path by putting each path parameter's name in place of its value.
pub fn route(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(key) = ctx
            .route_key
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "$default")
    {
        return key.to_owned();
    }
    let params = req.path_parameters_ref();
    let template: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .map(|segment| {
            params
                .and_then(|p| p.iter().find(|(_, value)| *value == segment))
                .filter(|_| !segment.is_empty())
                .map(|(name, _)| format!("{{{name}}}"))
                .unwrap_or_else(|| segment.to_owned())
        })
        .collect();
    format!("{} {}", req.method(), template.join("/"))
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

    fn config(public_base_url: &str) -> Config {
        let mut vars = crate::config::tests::vars();
        vars.insert("PUBLIC_BASE_URL", public_base_url.into());
        Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
    }

    fn page_request(domain: Option<&str>) -> Request {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../events/checkout-page.json")).unwrap();
        match domain {
            Some(d) => event["requestContext"]["domainName"] = d.into(),
            None => {
                event["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("domainName");
            }
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn the_custom_domain_wins_over_the_request() {
        let config = config("https://secure.checkout.best/");
        let base = public_base_url(
            &config,
            &page_request(Some("abc.execute-api.eu-west-1.amazonaws.com")),
        )
        .unwrap();
        assert_eq!(base.as_str(), "https://secure.checkout.best/");
        assert_eq!(origin_of(&base), "https://secure.checkout.best");
    }

    #[test]
    fn without_a_custom_domain_the_request_domain_is_the_origin() {
        let config = config("");
        let req = page_request(Some("abc123.execute-api.eu-west-1.amazonaws.com"));
        let base = public_base_url(&config, &req).unwrap();
        assert_eq!(
            base.as_str(),
            "https://abc123.execute-api.eu-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn a_request_without_a_usable_domain_is_our_misconfiguration() {
        let config = config("");
        for domain in [
            None,
            Some(""),
            Some("evil.example/x"),
            Some("a@b.example"),
            Some("a:1"),
        ] {
            let err = public_base_url(&config, &page_request(domain)).unwrap_err();
            assert_eq!(err.status(), 500, "{domain:?}");
        }
    }

    #[test]
    fn logs_name_the_route_not_the_token() {
        let req = page_request(Some("pay.checkout.best"));
        assert_eq!(route(&req), "GET /checkout/{token}");
        assert!(
            !req.uri().path().ends_with("{token}"),
            "the sample has a real token"
        );
    }

    #[test]
    fn without_a_route_key_the_template_is_rebuilt_from_the_path_parameters() {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../events/checkout-complete.json")).unwrap();
        event.as_object_mut().unwrap().remove("routeKey");
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("routeKey");
        let token = event["pathParameters"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert!(req.uri().path().contains(&token));
        assert_eq!(route(&req), "GET /checkout/{token}/complete");
    }

    #[test]
    fn the_signed_path_is_the_raw_path_as_sent() {
        for raw in [
            "/api/internal/checkout-sessions",
            "/api/internal/./checkout-sessions",
            "/api/internal/x/../checkout-sessions",
            "/api/internal/%2e%2e/checkout-sessions",
            "/api/internal//checkout-sessions",
            "/api/internal/%63heckout-sessions",
        ] {
            let mut event: serde_json::Value =
                serde_json::from_str(include_str!("../../events/checkout-sessions.json")).unwrap();
            event["rawPath"] = raw.into();
            event["rawQueryString"] = "b=2&a=%2F".into();
            let req = lambda_http::request::from_str(&event.to_string()).unwrap();
            assert_eq!(path_and_query(&req), format!("{raw}?b=2&a=%2F"));
            event["rawQueryString"] = "".into();
            let req = lambda_http::request::from_str(&event.to_string()).unwrap();
            assert_eq!(path_and_query(&req), raw);
        }
    }

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

    /// Stripe's integration security guide, "Content security policy"
    /// (https://docs.stripe.com/security/guide#content-security-policy): what
    /// Stripe.js (the Payment Element, 3D Secure) needs, copied here by hand
    /// so the policy is held against the document, not against itself.
    const STRIPE_GUIDE: [(&str, &[&str]); 3] = [
        (
            "script-src",
            &[
                "https://js.stripe.com",
                "https://*.js.stripe.com",
                "https://maps.googleapis.com",
            ],
        ),
        (
            "frame-src",
            &[
                "https://js.stripe.com",
                "https://*.js.stripe.com",
                "https://hooks.stripe.com",
            ],
        ),
        (
            "connect-src",
            &["https://api.stripe.com", "https://maps.googleapis.com"],
        ),
    ];

    fn directives(
        csp: &str,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        csp.split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                let mut words = d.split_whitespace().map(str::to_owned);
                let name = words.next().unwrap();
                (name, words.collect())
            })
            .collect()
    }

    fn checkout_page_csp(config: &Config) -> String {
        let sources = config.stripe_js_sources();
        let page = html(
            StatusCode::OK,
            String::new(),
            "n0nce",
            PageScripts::StripeJs { sources: &sources },
        );
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn expected(
        stripe: &[(&str, &[&str])],
    ) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let mut expected = directives(
            "default-src 'none'; script-src 'nonce-n0nce'; frame-src; connect-src 'self'; \
             style-src 'nonce-n0nce'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        );
        for (directive, sources) in stripe {
            expected
                .get_mut(*directive)
                .unwrap()
                .extend(sources.iter().map(|s| (*s).to_owned()));
        }
        expected
    }

    #[test]
    fn the_checkout_page_allows_what_stripes_guide_lists_for_stripe_js_and_nothing_more() {
        let config = Config::from_lookup(|k| crate::config::tests::vars().get(k).cloned()).unwrap();
        let ours = directives(&checkout_page_csp(&config));
        let want = expected(&STRIPE_GUIDE);
        for directive in want.keys().chain(ours.keys()) {
            assert_eq!(
                ours.get(directive),
                want.get(directive),
                "{directive}: ours (left) against Stripe's guide (right)"
            );
        }
    }

    #[test]
    fn locally_the_checkout_page_allows_the_emulators_mock_and_no_real_stripe_origin() {
        let mut vars = crate::config::tests::vars();
        vars.insert(
            "STRIPE_JS_URL",
            "http://127.0.0.1:12111/js.stripe.com/v3/".into(),
        );
        vars.insert("STRIPE_API_BASE", "http://127.0.0.1:12111".into());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let mock: &[&str] = &["http://127.0.0.1:12111"];
        let want = expected(&[
            ("script-src", mock),
            ("frame-src", mock),
            ("connect-src", mock),
        ]);
        assert_eq!(directives(&checkout_page_csp(&config)), want);
    }

    #[test]
    fn every_answer_tells_browsers_to_use_tls_only() {
        let page = html(StatusCode::OK, String::new(), "n", PageScripts::None);
        let body = json(StatusCode::OK, &serde_json::json!({}));
        let redirect = see_other("/x").unwrap();
        for response in [page, body, redirect] {
            assert_eq!(
                response.headers()["strict-transport-security"],
                "max-age=63072000; includeSubDomains"
            );
        }
    }
}
