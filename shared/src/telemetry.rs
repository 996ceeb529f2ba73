//! Logging for every function: JSON lines to stdout (CloudWatch), level from
//! `RUST_LOG`. We log request method, route, status and timing, never
//! headers or bodies: those carry `Stripe-Signature`, `X-Internal-*` and keys.

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str =
    "info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn,h2=warn,rustls=warn";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second init (tests) keeps the first subscriber, which is what we want.
    if tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .try_init()
        .is_err()
    {
        tracing::debug!("tracing already initialised");
    }
}
