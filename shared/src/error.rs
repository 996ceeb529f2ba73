//! The one error type every handler returns, and how it becomes an HTTP answer.
//!
//! Client errors carry a stable `code` and a message written for the caller.
//! Dependency and internal errors carry their cause for the log only: the body
//! says what the caller can do, never what went wrong inside.

use lambda_http::http::StatusCode;
use std::borrow::Cow;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (400).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// No or wrong credentials (401).
    #[error("{message}")]
    Unauthorized {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// Credentials are fine but this action is not allowed (403).
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: Cow<'static, str>,
    },
    #[error("{message}")]
    NotFound {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// The state changed under the caller (409); retrying may work.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// It existed but no longer does (410): an expired checkout link.
    #[error("{message}")]
    Gone {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// The caller used up a budget (429): e.g. the PaymentIntents one order
    /// may cause. Retrying the same request will not help.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: Cow<'static, str>,
    },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The customer's card was declined or failed (402), with Stripe's
    /// customer-facing message and its decline code.
    #[error("{message}")]
    PaymentFailed { code: String, message: String },
    /// Well-formed but not acceptable (422).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// A dependency (DynamoDB, KMS, Stripe) failed; nothing was changed and the
    /// caller may retry (502, or 503 when the dependency asked us to slow down).
    #[error("{dependency} failed")]
    Dependency {
        dependency: &'static str,
        throttled: bool,
        #[source]
        source: BoxError,
    },
    /// Our bug (500).
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// Shorthands so call sites read as the caller's problem, e.g.
/// `AppError::bad_request("invalid_store_id", "store_id must be a UUID")`.
macro_rules! client_error_constructors {
    ($($fn_name:ident => $variant:ident),* $(,)?) => {
        impl AppError {
            $(pub fn $fn_name(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
                AppError::$variant { code, message: message.into() }
            })*
        }
    };
}
client_error_constructors! {
    bad_request => BadRequest,
    unauthorized => Unauthorized,
    forbidden => Forbidden,
    not_found => NotFound,
    conflict => Conflict,
    unprocessable => Unprocessable,
    too_many_requests => TooManyRequests,
}

impl AppError {
    pub fn dependency(dependency: &'static str, source: impl Into<BoxError>) -> Self {
        AppError::Dependency {
            dependency,
            throttled: false,
            source: source.into(),
        }
    }

    pub fn internal(source: impl Into<BoxError>) -> Self {
        AppError::Internal(source.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Gone { .. } => StatusCode::GONE,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::PaymentFailed { .. } => StatusCode::PAYMENT_REQUIRED,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Dependency {
                throttled: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Dependency { .. } => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable, machine-readable code for the JSON body.
    pub fn code(&self) -> &str {
        match self {
            AppError::BadRequest { code, .. }
            | AppError::Unauthorized { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::Gone { code, .. }
            | AppError::Unprocessable { code, .. }
            | AppError::TooManyRequests { code, .. } => code,
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::PaymentFailed { code, .. } => code,
            AppError::Dependency {
                throttled: true, ..
            } => "dependency_throttled",
            AppError::Dependency { .. } => "dependency_failed",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// What the caller is told. For 5xx this never includes the cause.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            AppError::Dependency { dependency, .. } => {
                format!("{dependency} could not be reached; nothing was changed, please retry")
                    .into()
            }
            AppError::Internal(_) => "Something went wrong on our side; nothing was changed".into(),
            other => other.to_string().into(),
        }
    }

    /// Logs the error with its whole cause chain (server errors at error level).
    /// Causes are our own errors or SDK errors; none of them carries a secret
    /// because secrets only ever live in redacting types.
    pub fn log(&self) {
        let chain = cause_chain(self);
        if self.status().is_server_error() {
            tracing::error!(status = self.status().as_u16(), code = self.code(), cause = %chain, "request failed");
        } else {
            tracing::info!(status = self.status().as_u16(), code = self.code(), reason = %chain, "request rejected");
        }
    }
}

/// "outer: inner: innermost", for one log field.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("table gone")]
    struct Inner;

    #[test]
    fn client_errors_keep_their_message_and_status() {
        let err = AppError::unprocessable("mode_mismatch", "keys are from different modes");
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), "mode_mismatch");
        assert_eq!(err.public_message(), "keys are from different modes");
    }

    #[test]
    fn server_errors_hide_their_cause_from_the_caller() {
        let err = AppError::dependency("DynamoDB", Inner);
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(!err.public_message().contains("table gone"));
        assert!(cause_chain(&err).contains("table gone"));

        let err = AppError::internal(Inner);
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.public_message().contains("table gone"));
    }

    #[test]
    fn throttled_dependency_is_503() {
        let err = AppError::Dependency {
            dependency: "Stripe",
            throttled: true,
            source: Inner.into(),
        };
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
