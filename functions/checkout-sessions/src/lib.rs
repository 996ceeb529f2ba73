pub mod handler;
pub mod idempotency;
