//! Answers given by handlers called in-process, recorded the way
//! `infra/recording_proxy.py` records the ones given over HTTP, so the secret
//! scan at the end of the test command (`infra/tests/test_responses.py`)
//! covers them too. Records go to `$RECORD_RESPONSES/<file>` as JSON lines;
//! without `RECORD_RESPONSES` (a test run by hand) nothing is written.

use lambda_http::{Body, Request, Response};
use std::io::Write as _;
use std::sync::Mutex;

/// What the caller sent, and so already held: the request line's target and
/// the body.
pub struct Sent {
    method: String,
    target: String,
    body: String,
}

impl Sent {
    pub fn of(request: &Request) -> Sent {
        Sent {
            method: request.method().to_string(),
            target: request.uri().path_and_query().map_or_else(
                || request.uri().path().to_owned(),
                |pq| pq.as_str().to_owned(),
            ),
            body: String::from_utf8_lossy(request.body().as_ref()).into_owned(),
        }
    }
}

static WRITE: Mutex<()> = Mutex::new(());

/// Appends one exchange to `$RECORD_RESPONSES/<file>`.
pub fn record(file: &str, sent: &Sent, response: &Response<Body>) {
    let Ok(dir) = std::env::var("RECORD_RESPONSES") else {
        return;
    };
    let headers: Vec<[String; 2]> = response
        .headers()
        .iter()
        .map(|(name, value)| {
            [
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let line = serde_json::json!({
        "method": sent.method,
        "target": sent.target,
        "request_body": sent.body,
        "status": response.status().as_u16(),
        "headers": headers,
        "body": String::from_utf8_lossy(response.body().as_ref()),
    });
    let _one_writer = WRITE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::path::Path::new(&dir).join(file))
        .unwrap_or_else(|err| panic!("RECORD_RESPONSES={dir}: {err}"));
    writeln!(out, "{line}").expect("record an answer");
}
