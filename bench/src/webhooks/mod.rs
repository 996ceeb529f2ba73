//! Load on the Stripe webhook handling: many deliveries over many orders,
//! duplicated and shuffled (or in Stripe's order per order), from concurrent
//! senders, in process against the local stack; then a check of every order
//! against a correct implementation. `src/bin/webhooks.rs` drives it; see bench/README.md.

pub mod breakdown;
pub mod lifecycle;
pub mod payload;
pub mod report;
pub mod repro;
pub mod send;
pub mod verify;
pub mod workload;
