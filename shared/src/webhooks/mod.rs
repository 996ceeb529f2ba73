//! Stripe webhooks: verifying deliveries and reading the events we act on.

mod apply;
mod bounded;
mod confirm;
pub mod event;
pub mod failures;
pub mod health;
mod in_flight;
mod landing;
mod lookup;
pub mod memory;
pub mod no_change;
pub mod outcome;
mod parked;
pub mod process;
#[cfg(test)]
mod properties;
pub mod setup;
pub mod signature;
pub mod verdict;

pub use apply::event_change;
pub use confirm::confirmed_change;
pub use event::{Effect, Envelope};
pub use health::{WebhookHealth, webhook_health};
pub use memory::WebhookMemory;
pub use outcome::Outcome;
pub use parked::release_parked;
pub use process::process;
pub use signature::{SignatureError, verify};
