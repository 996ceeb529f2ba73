//! The application context, built once per cold start, and the bootstrap
//! every function's `main` calls.

use crate::config::{BMOS_AUTH_SECRET, Config, InternalSecret, LINK_SIGNING_SECRET, SecretSetting};
use crate::error::{AppError, BoxError};
use crate::http;
use crate::metrics::Metrics;
use crate::secrets::{RotatingSecret, SecretKeys, SecretsManagerSource};
use crate::store::Table;
use crate::stripe::StripeApi;
use crate::telemetry;
use crate::vault::{DataKeys, KmsDataKeys, Vault};
use lambda_http::{Body, Request, Response, service_fn};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub struct App {
    pub config: Config,
    /// The one DynamoDB table holding all state.
    pub table: Table,
    pub vault: Vault,
    pub stripe: StripeApi,
    pub metrics: Metrics,
    /// Only in the functions that verify BMOS's calls.
    pub bmos_auth: Option<RotatingSecret>,
    /// Only in the functions that sign or verify links and CSRF tokens.
    pub link_signing: Option<RotatingSecret>,
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
        // cost 2-3% of the CPU of a DynamoDB request (paired A/B medians;
        // BENCHMARKS.md, "Webhooks under load").
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

    /// Reads settings through `lookup`. In AWS each secret this function
    /// needs is a Secrets Manager ARN, read here once (the cold start fails
    /// if it cannot be) and then every `SECRET_CACHE_TTL_SECONDS`.
    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BoxError> {
        let aws = load_aws_config().await;
        let config = Config::from_lookup(lookup)?;
        let secrets = aws_sdk_secretsmanager::Client::new(&aws);
        let bmos_auth = load_secret(
            "bmos-auth",
            config.bmos_auth_secret.as_ref(),
            BMOS_AUTH_SECRET.1,
            &secrets,
            &config,
        )
        .await?;
        let link_signing = load_secret(
            "link-signing",
            config.link_signing_secret.as_ref(),
            LINK_SIGNING_SECRET.1,
            &secrets,
            &config,
        )
        .await?;
        let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(&aws), config.kms_key_id.clone());
        let mut app = Self::with_parts(config, aws_sdk_dynamodb::Client::new(&aws), Arc::new(kms));
        app.bmos_auth = bmos_auth;
        app.link_signing = link_signing;
        Ok(app)
    }

    /// For tests and benchmarks that supply their own key service. Secrets
    /// given as values are used as they are; one given as a Secrets Manager
    /// ARN needs `from_lookup` (this builds no AWS client).
    pub fn with_parts(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        keys: Arc<dyn DataKeys>,
    ) -> Self {
        let fixed = |purpose, setting: &Option<SecretSetting>| match setting {
            Some(SecretSetting::Value(value)) => Some(RotatingSecret::fixed(
                purpose,
                SecretKeys::single(value.clone()),
            )),
            _ => None,
        };
        App {
            table: Table::new(dynamodb, config.table_name.clone()),
            vault: Vault::new(keys, config.data_key_cache_ttl),
            stripe: StripeApi::new(config.stripe_api_base.clone(), config.stripe_timeout),
            metrics: Metrics::new(config.metrics_namespace.clone()),
            bmos_auth: fixed("bmos-auth", &config.bmos_auth_secret),
            link_signing: fixed("link-signing", &config.link_signing_secret),
            config,
        }
    }

    /// The BMOS authentication secret's valid values (cached; re-read when
    /// due). A function the template gave no such secret answers 500: it is
    /// a deployment error, not the caller's.
    pub async fn bmos_keys(&self) -> Result<Arc<SecretKeys>, AppError> {
        match &self.bmos_auth {
            Some(secret) => Ok(secret.keys().await),
            None => Err(AppError::internal(
                "this function has no BMOS authentication secret (BMOS_AUTH_SECRET_ARN)",
            )),
        }
    }

    /// The link signing secret's values as cached, for the page code that
    /// renders synchronously; the connect function calls `link_keys` first
    /// in every request, so these are as fresh as the TTL allows.
    pub fn cached_link_keys(&self) -> Result<Arc<SecretKeys>, AppError> {
        Ok(self.link_secret()?.cached())
    }

    /// The value that signs links and CSRF tokens now (see
    /// `RotatingSecret::signer`), from the cached values like
    /// `cached_link_keys`.
    pub fn link_signer(&self) -> Result<InternalSecret, AppError> {
        Ok(self.link_secret()?.signer(crate::clock::now()))
    }

    /// The link and CSRF signing secret's valid values; as `bmos_keys`.
    pub async fn link_keys(&self) -> Result<Arc<SecretKeys>, AppError> {
        Ok(self.link_secret()?.keys().await)
    }

    /// A function the template gave no link secret answers 500, as in
    /// `bmos_keys`.
    fn link_secret(&self) -> Result<&RotatingSecret, AppError> {
        self.link_signing.as_ref().ok_or_else(|| {
            AppError::internal("this function has no link signing secret (LINK_SIGNING_SECRET_ARN)")
        })
    }
}

/// One secret of the function, from its setting: a value is fixed, an ARN
/// is read now and re-read every TTL.
async fn load_secret(
    purpose: &'static str,
    setting: Option<&SecretSetting>,
    arn_variable: &'static str,
    client: &aws_sdk_secretsmanager::Client,
    config: &Config,
) -> Result<Option<RotatingSecret>, BoxError> {
    Ok(match setting {
        None => None,
        Some(SecretSetting::Value(value)) => Some(RotatingSecret::fixed(
            purpose,
            SecretKeys::single(value.clone()),
        )),
        Some(SecretSetting::SecretsManager(arn)) => {
            let source = SecretsManagerSource::new(client.clone(), arn.clone(), arn_variable);
            Some(RotatingSecret::load(purpose, Box::new(source), config.secret_cache_ttl).await?)
        }
    })
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
