//! Values that are valid by construction: a handler holding a `StoreId` or a
//! `SecretKey` never re-checks it.

mod cart;
mod idempotency_key;
mod money;
mod order;
mod order_id;
mod order_status;
mod return_url;
mod review;
mod secret;
mod store_id;
mod stripe_account;
mod stripe_keys;
pub mod whole_number;

pub use cart::{Cart, CartRequest, LineItem, redirect_url};
pub use idempotency_key::IdempotencyKey;
pub use money::{Currency, MAX_AMOUNT, Money};
pub use order::{LONGEST_SESSION_SECS, Order, PAYING_GRACE_SECS, ParkedEvent};
pub use order_id::OrderId;
pub use order_status::{Move, OrderStatus, status_for_intent};
pub use return_url::{ReturnUrl, ReturnUrlPolicy};
pub use review::{Resolution, ReviewResolution};
pub use secret::{Redact, Secret, Strategy};
pub use store_id::StoreId;
pub use stripe_account::StripeAccountId;
pub use stripe_keys::{
    KeyKind, KeyPair, Mode, PublishableKey, SecretKey, WebhookSecret, looks_like_secret,
};
