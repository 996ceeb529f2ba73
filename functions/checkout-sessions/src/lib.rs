pub mod handler;
pub mod idempotency;
pub mod session_response;
