//! The measured part: a fresh app whose KMS and DynamoDB clients count their
//! calls, and passes of create-intent handler calls over the checkouts.

use crate::BoxError;
use crate::counting::{CountingKeys, DynamoCounter, DynamoCounts, KmsCounts};
use crate::cpu::{self, CpuTime};
use crate::fixtures::Checkout;
use lambda_http::{Body, Request, RequestExt};
use shared::App;
use shared::config::Config;
use shared::vault::KmsDataKeys;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An app as a cold start builds it (fresh AWS config, connection pools and
/// data-key cache), with counters on KMS and DynamoDB.
pub struct CountedApp {
    pub app: App,
    pub kms: Arc<CountingKeys>,
    pub dynamodb: DynamoCounter,
}

impl CountedApp {
    pub async fn new(config: Config) -> Self {
        // Exactly the service's AWS configuration (timeouts included: each
        // operation arms timers, which is part of the CPU measured).
        let aws = shared::app::load_aws_config().await;
        let dynamodb = DynamoCounter::default();
        let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(&aws)
            .interceptor(dynamodb.clone())
            .build();
        let kms = Arc::new(CountingKeys::new(Arc::new(KmsDataKeys::new(
            aws_sdk_kms::Client::new(&aws),
            config.kms_key_id.clone(),
        ))));
        let app = App::with_parts(
            config,
            aws_sdk_dynamodb::Client::from_conf(dynamodb_config),
            kms.clone(),
        );
        CountedApp { app, kms, dynamodb }
    }
}

/// Requests the emulators logged, read from their access logs in
/// `$STACK_DIR` (only this benchmark uses that stack, so a difference
/// between two reads is exactly this process's traffic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmulatorCounts {
    pub stripe_create: u64,
    pub stripe_retrieve: u64,
    pub stripe_cancel: u64,
    pub stripe_other: u64,
    /// Every AWS request moto served; it serves only KMS here.
    pub moto: u64,
}

impl EmulatorCounts {
    pub fn stripe(&self) -> u64 {
        self.stripe_create + self.stripe_retrieve + self.stripe_cancel + self.stripe_other
    }

    pub fn since(&self, earlier: &EmulatorCounts) -> EmulatorCounts {
        EmulatorCounts {
            stripe_create: self.stripe_create - earlier.stripe_create,
            stripe_retrieve: self.stripe_retrieve - earlier.stripe_retrieve,
            stripe_cancel: self.stripe_cancel - earlier.stripe_cancel,
            stripe_other: self.stripe_other - earlier.stripe_other,
            moto: self.moto - earlier.moto,
        }
    }
}

pub struct StackLogs {
    localstripe: PathBuf,
    moto: PathBuf,
}

impl StackLogs {
    /// The logs of the stack in `$STACK_DIR`, when both are there.
    pub fn from_env() -> Option<Self> {
        let dir = PathBuf::from(std::env::var_os("STACK_DIR")?);
        let logs = StackLogs {
            localstripe: dir.join("localstripe.log"),
            moto: dir.join("moto.log"),
        };
        (logs.localstripe.is_file() && logs.moto.is_file()).then_some(logs)
    }

    pub fn counts(&self) -> std::io::Result<EmulatorCounts> {
        let mut counts = EmulatorCounts::default();
        // aiohttp access lines: ... "POST /v1/payment_intents HTTP/1.1" 200 ...
        for line in std::fs::read_to_string(&self.localstripe)?.lines() {
            let Some(request) = line.split('"').nth(1) else {
                continue;
            };
            let mut parts = request.split(' ');
            let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
                continue;
            };
            let path = path.split('?').next().unwrap_or(path);
            if !path.starts_with("/v1/") {
                continue;
            }
            let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
            match (method, segments.as_slice()) {
                ("POST", ["payment_intents"]) => counts.stripe_create += 1,
                ("GET", ["payment_intents", _]) => counts.stripe_retrieve += 1,
                ("POST", ["payment_intents", _, "cancel"]) => counts.stripe_cancel += 1,
                _ => counts.stripe_other += 1,
            }
        }
        // werkzeug access lines: 127.0.0.1 - - [...] "POST / HTTP/1.1" 200 -
        counts.moto = std::fs::read_to_string(&self.moto)?
            .lines()
            .filter(|line| line.contains("\"POST / HTTP/"))
            .count() as u64;
        Ok(counts)
    }
}

/// What one pass did.
pub struct Pass {
    pub name: &'static str,
    pub calls: usize,
    pub kms: KmsCounts,
    pub dynamodb: DynamoCounts,
    pub emulators: Option<EmulatorCounts>,
    pub cpu: CpuTime,
    pub wall: Duration,
    /// Wall time of each call, sorted.
    pub latencies: Vec<Duration>,
    /// The client secret each call returned, in checkout order.
    pub client_secrets: Vec<String>,
}

impl Pass {
    pub fn percentile(&self, p: f64) -> Duration {
        // Nearest rank.
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies
            .get(rank.clamp(1, self.latencies.len().max(1)) - 1)
            .copied()
            .unwrap_or_default()
    }
}

/// `POST /checkout/{token}/payment-intent` as API Gateway hands it over.
fn request(token: &str) -> Result<Request, BoxError> {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!(
            "https://pay.checkout.best/checkout/{token}/payment-intent"
        ))
        .header("content-type", "application/json")
        .body(Body::from("{}"))?;
    Ok(req.with_path_parameters(HashMap::from([("token".to_string(), token.to_string())])))
}

fn client_secret(body: &[u8]) -> Result<String, BoxError> {
    let json: serde_json::Value = serde_json::from_slice(body)?;
    match json["client_secret"].as_str() {
        Some(secret) if secret.starts_with("pi_") && secret.contains("_secret_") => {
            Ok(secret.to_owned())
        }
        _ => Err(format!("no client_secret in {json}").into()),
    }
}

/// Calls the create-intent handler once per checkout, in order, one at a
/// time (as one Lambda sandbox serves them). Fails on the first answer that
/// is not a 200 with a client secret. Requests are built before the clock
/// starts; the logs are read after it stops.
pub async fn run(
    name: &'static str,
    counted: &CountedApp,
    checkouts: &[Checkout],
    logs: Option<&StackLogs>,
    ticks_per_second: u64,
) -> Result<Pass, BoxError> {
    let requests = checkouts
        .iter()
        .map(|c| request(&c.token))
        .collect::<Result<Vec<_>, _>>()?;
    let mut latencies = Vec::with_capacity(requests.len());
    let mut client_secrets = Vec::with_capacity(requests.len());
    let emulators_before = logs.map(StackLogs::counts).transpose()?;
    let kms_before = counted.kms.counts();
    let dynamodb_before = counted.dynamodb.counts();
    let cpu_before = cpu::process_cpu(ticks_per_second)?;
    let started = Instant::now();

    for (i, (req, checkout)) in requests.into_iter().zip(checkouts).enumerate() {
        let call_started = Instant::now();
        let response = create_intent::handler::handle(&counted.app, req)
            .await
            .map_err(|err| {
                format!(
                    "{name}: call {i} (order {}) failed: {} {}: {err}",
                    checkout.order_id,
                    err.status().as_u16(),
                    err.code()
                )
            })?;
        latencies.push(call_started.elapsed());
        if response.status() != 200 {
            return Err(format!(
                "{name}: call {i} (order {}) answered {}",
                checkout.order_id,
                response.status()
            )
            .into());
        }
        client_secrets.push(
            client_secret(response.body().as_ref())
                .map_err(|err| format!("{name}: call {i}: {err}"))?,
        );
    }

    let wall = started.elapsed();
    let cpu = cpu::process_cpu(ticks_per_second)?.since(&cpu_before);
    let kms = counted.kms.counts().since(&kms_before);
    let dynamodb = counted.dynamodb.counts().since(&dynamodb_before);
    let emulators = match (logs, emulators_before) {
        (Some(logs), Some(before)) => {
            // The emulators write their access line after answering.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some(logs.counts()?.since(&before))
        }
        _ => None,
    };
    latencies.sort();
    Ok(Pass {
        name,
        calls: checkouts.len(),
        kms,
        dynamodb,
        emulators,
        cpu,
        wall,
        latencies,
        client_secrets,
    })
}
