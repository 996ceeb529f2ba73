//! Everything the checkout.best functions share: configuration, the app
//! context built once per cold start, errors mapped to HTTP, domain types,
//! storage, the vault, the Stripe adapter, authentication and pages.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod vault;
