//! Stripe's webhooks for many orders, duplicated and shuffled (or in
//! Stripe's order per order), from concurrent senders, in process against
//! the local stack; then every order's end against production's decisions.

pub mod end_state;
pub mod lifecycle;
pub mod payload;
pub mod report;
pub mod send;
pub mod workload;
