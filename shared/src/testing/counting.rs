//! Counters around the two AWS dependencies, for the system tests and the
//! bench: a `DataKeys` decorator for KMS and an SDK interceptor for
//! DynamoDB. They count calls as they are made, so a test asserts (and a
//! benchmark reports) what happened rather than what the code suggests.

use crate::app::App;
use crate::config::Config;
use crate::vault::{
    BoxFuture, DataKey, DataKeys, EncryptionContext, KmsDataKeys, NewDataKey, VaultError,
};
use crate::webhooks::WebhookMemory;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// KMS calls that reached the key service (failed ones included), and
/// DynamoDB HTTP requests by operation (`X-Amz-Target`; retries included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub kms: u64,
    pub dynamodb: BTreeMap<String, u64>,
}

impl Counts {
    pub fn dynamodb_requests(&self) -> u64 {
        self.dynamodb.values().sum()
    }

    /// Requests of one operation (`GetItem`, `UpdateItem`, ...).
    pub fn of(&self, operation: &str) -> u64 {
        self.dynamodb.get(operation).copied().unwrap_or(0)
    }

    /// What was counted after `earlier` (a reading of the same counters).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            kms: self.kms - earlier.kms,
            dynamodb: self
                .dynamodb
                .iter()
                .map(|(op, n)| (op.clone(), n - earlier.of(op)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    kms: AtomicU64,
    dynamodb: Mutex<BTreeMap<String, u64>>,
}

/// An app as a cold start builds it (the service's AWS configuration, new
/// connection pools, an empty data-key cache), with every KMS call and
/// DynamoDB request counted.
pub struct CountedApp {
    pub app: App,
    /// What the webhook container remembers between deliveries.
    pub webhook_memory: WebhookMemory,
    tally: Arc<Tally>,
}

impl CountedApp {
    pub async fn new(config: Config) -> Self {
        let aws = crate::app::load_aws_config().await;
        let tally = Arc::new(Tally::default());
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(&aws)
            .interceptor(DynamoCounter(tally.clone()))
            .build();
        let kms = KmsDataKeys::new(aws_sdk_kms::Client::new(&aws), config.kms_key_id.clone());
        let keys = Arc::new(CountingKeys {
            inner: kms,
            tally: tally.clone(),
        });
        let app = App::with_parts(config, aws_sdk_dynamodb::Client::from_conf(dynamodb), keys);
        CountedApp {
            app,
            webhook_memory: WebhookMemory::default(),
            tally,
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            kms: self.tally.kms.load(Ordering::SeqCst),
            dynamodb: self
                .tally
                .dynamodb
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}

struct CountingKeys {
    inner: KmsDataKeys,
    tally: Arc<Tally>,
}

impl DataKeys for CountingKeys {
    fn generate<'a>(
        &'a self,
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<NewDataKey, VaultError>> {
        self.tally.kms.fetch_add(1, Ordering::SeqCst);
        self.inner.generate(ctx)
    }

    fn decrypt<'a>(
        &'a self,
        wrapped: &'a [u8],
        ctx: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, VaultError>> {
        self.tally.kms.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt(wrapped, ctx)
    }
}

/// Counts each HTTP attempt, named by its `X-Amz-Target` header.
#[derive(Debug)]
struct DynamoCounter(Arc<Tally>);

impl Intercept for DynamoCounter {
    fn name(&self) -> &'static str {
        "testing::DynamoCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // `DynamoDB_20120810.GetItem` -> `GetItem`.
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .map_or("(no X-Amz-Target)", |target| {
                target.rsplit('.').next().unwrap_or(target)
            });
        *self
            .0
            .dynamodb
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(operation.to_owned())
            .or_insert(0) += 1;
        Ok(())
    }
}
