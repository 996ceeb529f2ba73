//! Everything the checkout.best functions share: configuration, the app
//! context built once per cold start, errors mapped to HTTP, domain types,
//! storage, the vault, the Stripe adapter, authentication and pages.

pub mod abandoned;
pub mod app;
pub mod auth;
pub mod checkout;
pub mod clock;
pub mod config;
pub mod csp;
pub mod domain;
pub mod error;
pub mod http;
pub mod internal_api;
pub mod key_health;
pub mod metrics;
pub mod pages;
pub mod reconcile;
pub mod replaced;
pub mod secrets;
pub mod store;
pub mod stripe;
pub mod telemetry;
pub mod vault;
pub mod webhooks;

pub use app::{App, serve, serve_events};
pub use error::AppError;

// Every function links this crate, so this is every function's allocator.
// The AWS SDK allocates a great deal per request; against glibc's malloc,
// mimalloc cut the webhook's CPU per delivery by about a tenth
// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "testing")]
pub mod testing;
