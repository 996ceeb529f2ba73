//! create-intent, measured: one call per checkout, one at a time (as one
//! Lambda sandbox serves them), through `create_intent::handler::handle` on
//! a counted app. The KMS calls and DynamoDB requests of one call are also
//! asserted by the system test `payment_costs`; here they are totals at
//! volume, with the CPU.

use crate::BoxError;
use crate::cpu::{self, CpuTime};
use lambda_http::{Body, RequestExt};
use shared::testing::counting::{CountedApp, Counts};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Pass {
    pub name: &'static str,
    pub calls: usize,
    pub counts: Counts,
    pub cpu: CpuTime,
    pub wall: Duration,
    /// The client secret each call returned, in checkout order.
    pub client_secrets: Vec<String>,
}

/// `POST /checkout/{token}/payment-intent` as API Gateway hands it over.
fn request(token: &str) -> Result<lambda_http::Request, BoxError> {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!(
            "https://pay.checkout.best/checkout/{token}/payment-intent"
        ))
        .header("content-type", "application/json")
        .body(Body::from("{}"))?;
    Ok(req.with_path_parameters(HashMap::from([("token".to_owned(), token.to_owned())])))
}

/// Calls create-intent once per token, in order; fails on the first answer
/// that is not a 200 with a client secret. Requests are built before the
/// clock starts.
pub async fn pass(
    name: &'static str,
    counted: &CountedApp,
    tokens: &[String],
    ticks: u64,
) -> Result<Pass, BoxError> {
    let requests = tokens
        .iter()
        .map(|t| request(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client_secrets = Vec::with_capacity(requests.len());
    let counts_before = counted.counts();
    let cpu_before = cpu::process_cpu(ticks)?;
    let started = Instant::now();
    for (i, req) in requests.into_iter().enumerate() {
        let response = create_intent::handler::handle(&counted.app, req)
            .await
            .map_err(|err| format!("{name}: call {i}: {} {}", err.status().as_u16(), err.code()))?;
        let json: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
        match json["client_secret"].as_str() {
            Some(secret) if response.status() == 200 && secret.contains("_secret_") => {
                client_secrets.push(secret.to_owned());
            }
            _ => return Err(format!("{name}: call {i} answered {}", response.status()).into()),
        }
    }
    let wall = started.elapsed();
    Ok(Pass {
        name,
        calls: tokens.len(),
        cpu: cpu::process_cpu(ticks)?.since(&cpu_before),
        counts: counted.counts().since(&counts_before),
        wall,
        client_secrets,
    })
}
