//! Values that are valid by construction: a handler holding a `StoreId` or a
//! `SecretKey` never re-checks it.

mod return_url;
mod store_id;
mod stripe_keys;

pub use return_url::{ReturnUrl, ReturnUrlPolicy};
pub use store_id::StoreId;
pub use stripe_keys::{KeyKind, KeyPair, Mode, PublishableKey, SecretKey, WebhookSecret};
