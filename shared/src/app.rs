//! The application context, built once per cold start, and the bootstrap
//! every function's `main` calls.

use crate::config::{Config, ConfigError};
use crate::error::{AppError, BoxError};
use crate::http;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::stripe::StripeApi;
use crate::telemetry;
use crate::vault::{DataKeys, KmsDataKeys, Vault};
use crate::webhooks::WebhookMemory;
use lambda_http::{Body, Request, Response, service_fn};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub vault: Vault,
    pub stripe: StripeApi,
    /// Kept between deliveries by a warm webhook container.
    pub webhook_memory: WebhookMemory,
    pub metrics: Metrics,
}

/// The one AWS configuration every client is built from, once per cold
/// start. Endpoints come from the standard `AWS_ENDPOINT_URL*` variables,
/// which is how the local stack is reached.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    // Bounded so a stalled dependency becomes a 5xx well inside the Lambda
    // timeout (and Stripe retries), instead of a hung invocation.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(std::time::Duration::from_secs(2))
        .operation_timeout(std::time::Duration::from_secs(5))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        // It watches streaming bodies for stalls; ours are small JSON
        // documents already bounded by the timeouts above, and the watching
        // cost 2-3% of the CPU of a DynamoDB request (bench/src/bin/sdk_cpu.rs,
        // paired A/B medians).
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        )
        .load()
        .await
}

impl App {
    pub async fn from_env() -> Result<Self, BoxError> {
        Self::from_lookup(|name| std::env::var(name).ok()).await
    }

    /// Reads settings through `lookup`. In AWS the internal secret is not an
    /// environment variable but an SSM SecureString named by
    /// `INTERNAL_SECRET_PARAMETER`, read here once per cold start.
    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BoxError> {
        let aws = load_aws_config().await;
        let from_ssm = match (
            lookup("INTERNAL_SECRET_PARAMETER"),
            lookup("INTERNAL_SECRET"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "INTERNAL_SECRET_PARAMETER",
                    reason: "set it or INTERNAL_SECRET, not both",
                }
                .into());
            }
            (Some(parameter), None) => Some(read_parameter(&aws, &parameter).await?),
            _ => None,
        };
        let config = Config::from_lookup(|name| match (name, &from_ssm) {
            ("INTERNAL_SECRET", Some(secret)) => Some(secret.to_string()),
            _ => lookup(name),
        })?;
        let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(&aws), config.kms_key_id.clone());
        Ok(Self::with_parts(
            config,
            aws_sdk_dynamodb::Client::new(&aws),
            Arc::new(kms),
        ))
    }

    /// For tests and benchmarks that supply their own key service.
    pub fn with_parts(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        keys: Arc<dyn DataKeys>,
    ) -> Self {
        App {
            store: Store::new(dynamodb, config.table_name.clone()),
            vault: Vault::new(keys, config.data_key_cache_ttl),
            stripe: StripeApi::new(config.stripe_api_base.clone(), config.stripe_timeout),
            webhook_memory: WebhookMemory::default(),
            metrics: Metrics::new(config.metrics_namespace.clone()),
            config,
        }
    }
}

/// A SecureString parameter, decrypted; the value is wiped when dropped.
async fn read_parameter(
    aws: &aws_config::SdkConfig,
    name: &str,
) -> Result<zeroize::Zeroizing<String>, BoxError> {
    let out = aws_sdk_ssm::Client::new(aws)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not read SSM parameter {name}: {}",
                crate::error::cause_chain(&e)
            )
        })?;
    let value = out
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| format!("SSM parameter {name} has no value"))?;
    Ok(zeroize::Zeroizing::new(value))
}

/// Telemetry and the app context, once per cold start. A failure stops the
/// cold start with the reason in the log.
async fn cold_start() -> Result<&'static App, BoxError> {
    telemetry::init();
    let app = App::from_env().await.inspect_err(|err| {
        tracing::error!(cause = %crate::error::cause_chain(err.as_ref()), "cold start failed");
    })?;
    // The context lives as long as the process; leaking it once lets every
    // request borrow it without reference counting.
    Ok(Box::leak(Box::new(app)))
}

/// Runs an HTTP function: one handler call per request. Errors become JSON
/// error responses; page handlers render their own error pages.
pub async fn serve<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, AppError>> + Send + 'static,
{
    let app = cold_start().await?;
    lambda_http::run(service_fn(move |req: Request| {
        // The route template, never the raw path: it holds checkout tokens.
        let route = http::route(&req);
        let started = Instant::now();
        let response = handler(app, req);
        async move {
            let response = response.await.unwrap_or_else(|err| {
                err.log();
                http::error_json(&err)
            });
            tracing::info!(
                %route, status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64, "request"
            );
            Ok::<_, std::convert::Infallible>(response)
        }
    }))
    .await
}

/// Runs an event function (the scheduled reconciler): the handler's error
/// fails the invocation, so the platform records and retries it.
pub async fn serve_events<F, Fut, E, R>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(&'static App, lambda_runtime::LambdaEvent<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, AppError>> + Send + 'static,
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    let app = cold_start().await?;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| {
        let result = handler(app, event);
        async move {
            result.await.map_err(|err| {
                err.log();
                lambda_runtime::Error::from(err.public_message().into_owned())
            })
        }
    }))
    .await
}
