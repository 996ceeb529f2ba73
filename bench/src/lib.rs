//! Payments under load against the local stack (DynamoDB Local, moto KMS,
//! localstripe): create-intent, then Stripe's webhooks. `src/bin/webhooks.rs`
//! drives it; see `bench/README.md`.

pub mod cpu;
pub mod fixtures;
pub mod intents;
pub mod rng;
pub mod webhooks;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
