//! One wrapper for every secret value: `Secret<T>` prints as `[redacted]` in
//! `Debug` and `Display`, gives its value only through an explicit
//! `expose()`, and wipes it when dropped.
//!
//! How a secret prints is its strategy, a type parameter (the shape of
//! hyperswitch's `masking` crate): `Redact`, the default, prints nothing of
//! the value. A secret type is a newtype around `Secret<...>` with a derived
//! `Debug`, so `WebhookSecret(Secret<String>)` prints
//! `WebhookSecret([redacted])` without a hand-written impl.
//!
//! Deliberately absent: `Deref`, `PartialEq`, `Serialize` and `From`. Each
//! would let a secret's value reach a comparison, a body or a log line without
//! anyone writing `expose()` at the place where it happens.

use std::fmt;
use std::marker::PhantomData;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// How a secret of type `T` shows in `Debug` and `Display`. A strategy must
/// not write the value or anything derived from it that could identify it.
pub trait Strategy<T: ?Sized> {
    fn fmt(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// Prints `[redacted]`, whatever the value.
pub enum Redact {}

impl<T: ?Sized> Strategy<T> for Redact {
    fn fmt(_: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret value, printed by `S` and wiped (`Zeroize`) when dropped.
pub struct Secret<T: Zeroize, S: Strategy<T> = Redact> {
    value: T,
    strategy: PhantomData<fn() -> S>,
}

impl<T: Zeroize, S: Strategy<T>> Secret<T, S> {
    pub fn new(value: T) -> Self {
        Secret {
            value,
            strategy: PhantomData,
        }
    }

    /// The value itself. Call it only where the value leaves for the one
    /// place it is meant for (a MAC, Stripe, a cipher, the customer's page).
    pub fn expose(&self) -> &T {
        &self.value
    }
}

impl<T: Zeroize + Clone, S: Strategy<T>> Clone for Secret<T, S> {
    fn clone(&self) -> Self {
        Secret::new(self.value.clone())
    }
}

impl<T: Zeroize, S: Strategy<T>> fmt::Debug for Secret<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        S::fmt(&self.value, f)
    }
}

impl<T: Zeroize, S: Strategy<T>> fmt::Display for Secret<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        S::fmt(&self.value, f)
    }
}

impl<T: Zeroize, S: Strategy<T>> Drop for Secret<T, S> {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl<T: Zeroize, S: Strategy<T>> ZeroizeOnDrop for Secret<T, S> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const VALUE: &str = "sk_live_51HqLyjWDarjtT1zdp7dcXYZ";

    #[test]
    fn prints_redacted_in_every_format() {
        let secret: Secret<String> = Secret::new(VALUE.into());
        for printed in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secret}"),
            format!("{secret:>40}"),
            format!("{:?}", Some(secret.clone())),
        ] {
            assert!(!printed.contains(VALUE), "{printed}");
            assert!(printed.contains("[redacted]"), "{printed}");
        }
    }

    #[test]
    fn a_newtype_with_derived_debug_prints_its_name_and_nothing_else() {
        #[derive(Debug)]
        struct Token(#[allow(dead_code)] Secret<String>);
        let token = Token(Secret::new(VALUE.into()));
        assert_eq!(format!("{token:?}"), "Token([redacted])");
    }

    #[test]
    fn expose_gives_the_value_and_clones_keep_it() {
        let secret: Secret<Vec<u8>> = Secret::new(VALUE.as_bytes().to_vec());
        let copy = secret.clone();
        drop(secret);
        assert_eq!(copy.expose(), VALUE.as_bytes());
    }

    /// Counts its wipes, to see that dropping a secret wipes it.
    #[derive(Clone)]
    struct Probe(Arc<AtomicUsize>);

    impl Zeroize for Probe {
        fn zeroize(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_a_secret_wipes_it_and_each_clone_wipes_its_own_copy() {
        let wipes = Arc::new(AtomicUsize::new(0));
        let secret: Secret<Probe> = Secret::new(Probe(wipes.clone()));
        let copy = secret.clone();
        assert_eq!(wipes.load(Ordering::SeqCst), 0);
        drop(secret);
        assert_eq!(wipes.load(Ordering::SeqCst), 1);
        drop(copy);
        assert_eq!(wipes.load(Ordering::SeqCst), 2);
    }

    /// Another strategy, to show the parameter is what decides the output.
    enum Length {}

    impl Strategy<String> for Length {
        fn fmt(value: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "[{} characters]", value.len())
        }
    }

    #[test]
    fn the_strategy_decides_how_a_secret_prints() {
        let secret: Secret<String, Length> = Secret::new(VALUE.into());
        assert_eq!(
            format!("{secret:?}"),
            format!("[{} characters]", VALUE.len())
        );
        assert_eq!(format!("{secret}"), format!("[{} characters]", VALUE.len()));
    }
}
