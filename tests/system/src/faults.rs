//! A fault-injecting TCP proxy, put between the service and one of its
//! dependencies (DynamoDB Local, the KMS emulator, the Stripe emulator).
//! toxiproxy cannot be installed here, and what we need is small: it reads
//! each HTTP/1.1 request the service sends and, while faults are on, fails
//! some of them the ways the network and the dependency do:
//!
//! - `Reset`: half the request reaches the dependency, then the connection is
//!   reset (RST), so the service cannot know whether it was applied;
//! - `LostAnswer`: the whole request reaches the dependency and is answered,
//!   but the answer is dropped and the connection reset: the write happened,
//!   and the service's client retries it (the case idempotency is for);
//! - `Stall`: no answer for longer than the service's timeouts, then a reset;
//! - `ServerError`: the dependency's own 5xx body;
//! - `Throttle`: the dependency's own "slow down" answer (Stripe's 429,
//!   AWS's `ThrottlingException`);
//! - `Down`: every connection reset at once, as when the emulator's process
//!   is gone (the emulators keep their data in memory, so killing one for
//!   real would lose what the invariants are checked against).
//!
//! Faults come in bursts (a fault repeats for the next few requests), from a
//! seeded generator, so a run can be repeated.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which dependency a proxy stands in front of: it decides the shape of the
/// error answers, so the service's clients read them as the real thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    DynamoDb,
    Kms,
    Stripe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Reset,
    LostAnswer,
    Stall,
    ServerError,
    Throttle,
    Down,
}

pub const FAULTS: [Fault; 6] = [
    Fault::Reset,
    Fault::LostAnswer,
    Fault::Stall,
    Fault::ServerError,
    Fault::Throttle,
    Fault::Down,
];

struct State {
    dependency: Dependency,
    upstream: SocketAddr,
    /// Chance, per thousand requests, that a burst of faults starts.
    per_mille: AtomicU32,
    down: AtomicBool,
    stall: Duration,
    /// (generator state, the fault of the current burst, requests left in it)
    burst: Mutex<(u64, Option<Fault>, u32)>,
    requests: AtomicU64,
    injected: [AtomicU64; 6],
    /// A fault for the next request, whatever the rate (for targeted tests).
    next: Mutex<Option<Fault>>,
}

/// One proxy; it runs until the test process ends.
#[derive(Clone)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FaultProxy {
    pub async fn start(
        dependency: Dependency,
        upstream: SocketAddr,
        seed: u64,
        stall: Duration,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let state = Arc::new(State {
            dependency,
            upstream,
            per_mille: AtomicU32::new(0),
            down: AtomicBool::new(false),
            stall,
            burst: Mutex::new((seed | 1, None, 0)),
            requests: AtomicU64::new(0),
            injected: Default::default(),
            next: Mutex::new(None),
        });
        let proxy = FaultProxy {
            addr: listener.local_addr().expect("addr"),
            state: state.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, state.clone()));
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults start a burst in `per_mille` of requests (0: none).
    pub fn set_rate(&self, per_mille: u32) {
        self.state.per_mille.store(per_mille, Ordering::SeqCst);
        if per_mille == 0 {
            lock(&self.state.burst).1 = None;
        }
    }

    /// The next request meets `fault`.
    pub fn fail_next(&self, fault: Fault) {
        *lock(&self.state.next) = Some(fault);
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self, fault: Fault) -> u64 {
        self.state.injected[index(fault)].load(Ordering::SeqCst)
    }
}

fn index(fault: Fault) -> usize {
    FAULTS.iter().position(|f| *f == fault).expect("a fault")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn count(&self, fault: Fault) {
        self.injected[index(fault)].fetch_add(1, Ordering::SeqCst);
    }

    /// The fault for the next request, if any.
    fn next_fault(&self) -> Option<Fault> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Some(Fault::Down);
        }
        if let Some(fault) = lock(&self.next).take() {
            return Some(fault);
        }
        let per_mille = u64::from(self.per_mille.load(Ordering::SeqCst));
        let mut burst = lock(&self.burst);
        if burst.2 > 0 {
            burst.2 -= 1;
            return burst.1;
        }
        if per_mille == 0 {
            return None;
        }
        let roll = next(&mut burst.0);
        if roll % 1000 >= per_mille {
            return None;
        }
        let fault = [
            Fault::Reset,
            Fault::LostAnswer,
            Fault::Stall,
            Fault::ServerError,
            Fault::Throttle,
        ][usize::try_from((roll / 1000) % 5).unwrap_or(0)];
        // Bursts of 1 to 4 requests; stalls alone (each costs a timeout).
        let length = if fault == Fault::Stall {
            1
        } else {
            1 + u32::try_from((roll / 5000) % 4).unwrap_or(0)
        };
        *burst = (burst.0, Some(fault), length - 1);
        Some(fault)
    }
}

/// xorshift64*: enough to spread faults, and the same for the same seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

async fn serve(client: TcpStream, state: Arc<State>) {
    let mut upstream: Option<tokio::net::tcp::OwnedWriteHalf> = None;
    let (mut client_read, client_write) = client.into_split();
    let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut client_read, &mut buffer).await else {
            return;
        };
        let fault = state.next_fault();
        if let Some(fault) = fault {
            state.count(fault);
        }
        match fault {
            None => {
                if upstream.is_none() {
                    let Ok(stream) = TcpStream::connect(state.upstream).await else {
                        return;
                    };
                    let (mut up_read, up_write) = stream.into_split();
                    let to_client = client_write.clone();
                    // Answers go back as they come; HTTP/1.1 clients send
                    // the next request only after the answer.
                    tokio::spawn(async move {
                        let mut chunk = vec![0u8; 16 * 1024];
                        loop {
                            match up_read.read(&mut chunk).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if to_client.lock().await.write_all(&chunk[..n]).await.is_err()
                                    {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to_client.lock().await.shutdown().await;
                    });
                    upstream = Some(up_write);
                }
                let Some(up) = upstream.as_mut() else { return };
                if up.write_all(&request).await.is_err() {
                    return;
                }
            }
            Some(Fault::Reset) => {
                // Half the request reaches the dependency, then both
                // connections are dropped mid-request.
                if let Ok(mut stream) = TcpStream::connect(state.upstream).await {
                    let _ = stream.write_all(&request[..request.len() / 2]).await;
                }
                reset(client_read, &client_write).await;
                return;
            }
            Some(Fault::LostAnswer) => {
                // The dependency gets all of it and answers; the answer is
                // dropped.
                if let Ok(mut stream) = TcpStream::connect(state.upstream).await
                    && stream.write_all(&request).await.is_ok()
                {
                    let mut answer = [0u8; 1];
                    let _ = tokio::time::timeout(state.stall, stream.read(&mut answer)).await;
                }
                reset(client_read, &client_write).await;
                return;
            }
            Some(Fault::Down) => {
                reset(client_read, &client_write).await;
                return;
            }
            Some(Fault::Stall) => {
                tokio::time::sleep(state.stall).await;
                reset(client_read, &client_write).await;
                return;
            }
            Some(fault @ (Fault::ServerError | Fault::Throttle)) => {
                let answer = error_answer(state.dependency, fault);
                if client_write
                    .lock()
                    .await
                    .write_all(answer.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Closes the client's connection with a reset rather than a clean close.
async fn reset(
    read: tokio::net::tcp::OwnedReadHalf,
    write: &Arc<tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>>,
) {
    let write = write.lock().await;
    // Reuniting needs the write half by value; a linger of zero on the
    // socket makes the close an RST.
    let _ = read.as_ref().set_zero_linger();
    drop(write);
    drop(read);
}

/// One whole HTTP/1.1 request (headers and a `Content-Length` body) from
/// `read`, or None when the client closed the connection.
async fn read_request(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            assert!(
                !head.contains("transfer-encoding: chunked"),
                "the fault proxy frames requests by Content-Length only"
            );
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            if buffer.len() >= total {
                return Some(buffer.drain(..total).collect());
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The dependency's own answer for a server error or a throttle.
fn error_answer(dependency: Dependency, fault: Fault) -> String {
    let (status, content_type, body) = match (dependency, fault) {
        (Dependency::DynamoDb, Fault::Throttle) => (
            "400 Bad Request",
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ),
        (Dependency::DynamoDb, _) => (
            "500 Internal Server Error",
            "application/x-amz-json-1.0",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#,
        ),
        (Dependency::Kms, Fault::Throttle) => (
            "400 Bad Request",
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        (Dependency::Kms, _) => (
            "500 Internal Server Error",
            "application/x-amz-json-1.1",
            r#"{"__type":"KMSInternalException","message":"internal error"}"#,
        ),
        (Dependency::Stripe, Fault::Throttle) => (
            "429 Too Many Requests",
            "application/json",
            r#"{"error":{"code":"rate_limit","message":"Too many requests hit the API too quickly.","type":"invalid_request_error"}}"#,
        ),
        (Dependency::Stripe, _) => (
            "500 Internal Server Error",
            "application/json",
            r#"{"error":{"message":"An unknown error occurred","type":"api_error"}}"#,
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-amzn-requestid: fault-proxy\r\nrequest-id: req_faultproxy\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = |seed: u64| {
            let state = State {
                dependency: Dependency::Stripe,
                upstream: "127.0.0.1:1".parse().unwrap(),
                per_mille: AtomicU32::new(200),
                down: AtomicBool::new(false),
                stall: Duration::ZERO,
                burst: Mutex::new((seed | 1, None, 0)),
                requests: AtomicU64::new(0),
                injected: Default::default(),
                next: Mutex::new(None),
            };
            (0..500).map(|_| state.next_fault()).collect::<Vec<_>>()
        };
        assert_eq!(faults(7), faults(7));
        assert_ne!(faults(7), faults(8));
        let some = faults(7);
        let injected = some.iter().filter(|f| f.is_some()).count();
        // 20% of requests start a burst of 1-4 (stalls alone): 100 to 400.
        assert!((60..=450).contains(&injected), "{injected}");
        for fault in [
            Fault::Reset,
            Fault::LostAnswer,
            Fault::Stall,
            Fault::ServerError,
            Fault::Throttle,
        ] {
            assert!(some.contains(&Some(fault)), "{fault:?}");
        }
    }

    #[test]
    fn a_request_is_read_whole_by_its_length() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET";
        let end = find(raw, b"\r\n\r\n").unwrap();
        assert_eq!(end + 4 + 5, raw.len() - 3);
    }
}
