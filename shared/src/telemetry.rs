//! Logging for every function: JSON lines to stdout (CloudWatch). We log
//! request route, status and timing, never headers or bodies: those carry
//! `Stripe-Signature`, `X-Internal-*` and keys. Every line logged while
//! serving an invocation carries the Lambda request id (`span.requestId`,
//! from the runtime's "Lambda runtime invoke" span), so one customer's
//! request can be followed through its log lines.

use tracing_subscriber::EnvFilter;

/// The AWS SDK and the HTTP stacks are chatty at `info`.
const QUIET_DEPENDENCIES: &str =
    "aws_config=warn,aws_smithy_runtime=warn,hyper=warn,h2=warn,rustls=warn";

pub fn init() {
    let filter = EnvFilter::new(directives(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    ));
    // A second init (tests) keeps the first subscriber, which is what we want.
    if tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .try_init()
        .is_err()
    {
        tracing::debug!("tracing already initialised");
    }
}

/// `RUST_LOG` when set (full directive syntax, for a developer); else the
/// level Lambda's `LoggingConfig.ApplicationLogLevel` passes as
/// `AWS_LAMBDA_LOG_LEVEL`; else `info`. Dependencies stay at `warn` unless
/// `RUST_LOG` says otherwise.
fn directives(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(directives) = rust_log.filter(|d| !d.trim().is_empty())
        && EnvFilter::try_new(directives).is_ok()
    {
        return directives.to_owned();
    }
    let level = match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    };
    format!("{level},{QUIET_DEPENDENCIES}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_lambdas_level_then_info() {
        assert_eq!(directives(Some("debug"), Some("ERROR")), "debug");
        assert!(directives(None, Some("ERROR")).starts_with("error,"));
        assert!(directives(None, Some("fatal")).starts_with("error,"));
        assert!(directives(Some(""), Some("DEBUG")).starts_with("debug,"));
        assert!(directives(Some("=[bad"), Some("WARN")).starts_with("warn,"));
        assert!(directives(None, None).starts_with("info,"));
        assert!(directives(None, Some("nonsense")).starts_with("info,"));
    }

    #[test]
    fn dependencies_stay_quiet_at_lambdas_level() {
        let f = directives(None, Some("DEBUG"));
        for quiet in ["aws_config=warn", "aws_smithy_runtime=warn", "hyper=warn"] {
            assert!(f.contains(quiet), "{f}");
        }
    }
}
