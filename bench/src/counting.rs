//! Counters around the two AWS dependencies: a `DataKeys` decorator for KMS
//! and an SDK interceptor for DynamoDB. Both count calls as they are made,
//! so a benchmark reports what happened rather than what the code suggests.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError as SdkBoxError;
use shared::vault::{BoxFuture, DataKey, DataKeys, EncryptionContext, NewDataKey, VaultError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// KMS calls made through a key service, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmsCounts {
    pub generate: u64,
    pub decrypt: u64,
}

impl KmsCounts {
    pub fn total(&self) -> u64 {
        self.generate + self.decrypt
    }

    pub fn since(&self, earlier: &KmsCounts) -> KmsCounts {
        KmsCounts {
            generate: self.generate - earlier.generate,
            decrypt: self.decrypt - earlier.decrypt,
        }
    }
}

/// Wraps a key service (the real `KmsDataKeys` here) and counts every call
/// that reaches it, failed ones included.
pub struct CountingKeys {
    inner: Arc<dyn DataKeys>,
    generate: AtomicU64,
    decrypt: AtomicU64,
}

impl CountingKeys {
    pub fn new(inner: Arc<dyn DataKeys>) -> Self {
        CountingKeys {
            inner,
            generate: AtomicU64::new(0),
            decrypt: AtomicU64::new(0),
        }
    }

    pub fn counts(&self) -> KmsCounts {
        KmsCounts {
            generate: self.generate.load(Ordering::SeqCst),
            decrypt: self.decrypt.load(Ordering::SeqCst),
        }
    }
}

impl DataKeys for CountingKeys {
    fn generate<'a>(
        &'a self,
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<NewDataKey, VaultError>> {
        self.generate.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(ctx)
    }

    fn decrypt<'a>(
        &'a self,
        wrapped: &'a [u8],
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, VaultError>> {
        self.decrypt.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt(wrapped, ctx)
    }
}

/// DynamoDB traffic seen by one client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamoCounts {
    /// Operations started (`send()` calls), whatever their retries.
    pub operations: u64,
    /// HTTP requests sent, by operation (`X-Amz-Target`); retries included.
    pub requests_by_operation: BTreeMap<String, u64>,
}

impl DynamoCounts {
    pub fn requests(&self) -> u64 {
        self.requests_by_operation.values().sum()
    }

    pub fn since(&self, earlier: &DynamoCounts) -> DynamoCounts {
        let requests_by_operation = self
            .requests_by_operation
            .iter()
            .map(|(op, n)| {
                let before = earlier.requests_by_operation.get(op).copied().unwrap_or(0);
                (op.clone(), n - before)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        DynamoCounts {
            operations: self.operations - earlier.operations,
            requests_by_operation,
        }
    }
}

/// An SDK interceptor counting operations (once per execution) and HTTP
/// requests (once per attempt, named by the `X-Amz-Target` header).
#[derive(Clone, Debug, Default)]
pub struct DynamoCounter {
    operations: Arc<AtomicU64>,
    requests: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl DynamoCounter {
    pub fn counts(&self) -> DynamoCounts {
        DynamoCounts {
            operations: self.operations.load(Ordering::SeqCst),
            requests_by_operation: self
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}

impl Intercept for DynamoCounter {
    fn name(&self) -> &'static str {
        "bench::DynamoCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), SdkBoxError> {
        self.operations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), SdkBoxError> {
        // `DynamoDB_20120810.GetItem` -> `GetItem`.
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .map(|target| target.rsplit('.').next().unwrap_or(target))
            .unwrap_or("(no X-Amz-Target)");
        *self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(operation.to_owned())
            .or_insert(0) += 1;
        Ok(())
    }
}
