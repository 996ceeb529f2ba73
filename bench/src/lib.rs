//! Benchmarks of the checkout functions against the local stack (DynamoDB
//! Local, moto KMS, localstripe). The binaries in `src/bin/` drive them; see
//! `bench/README.md`.

pub mod counting;
pub mod cpu;
pub mod fixtures;
pub mod passes;
pub mod report;
pub mod rng;
pub mod webhooks;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
