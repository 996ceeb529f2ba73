//! DynamoDB: one table, string keys `pk`/`sk`. Every state change is a
//! conditional write or a transaction, so a request is applied whole or not
//! at all and concurrent writers cannot interleave.

mod conditional;
mod connections;
mod events;
mod idempotency;
mod item;
pub mod keys;
mod link_uses;
mod orders;
mod parked;
mod parked_event;
mod replays;
mod reviews;
mod transitions;

pub use connections::{
    AuditEntry, KeyRejection, KeyReplacement, StripeConnection, WebhookActivity, WebhookConfig,
    WebhookSource,
};
pub use events::{EventWrite, IntentLink};
pub use idempotency::{IDEMPOTENCY_WINDOW_SECS, IdempotentCheckout};
pub use keys::pending_partitions;
pub use link_uses::{LinkUse, link_used};
pub use orders::{
    CheckoutSession, CheckoutWrite, DueOrder, DuePage, FIRST_CHECK_AFTER_SECS, PENDING_INDEX,
};
pub use parked::Release;
pub use reviews::ReviewNote;
pub use transitions::{Transition, TransitionDetails};

use crate::error::{AppError, BoxError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;

#[derive(Clone)]
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Table {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Table { client, table }
    }

    /// A strongly consistent read of one item by its key (reads that can
    /// be eventually consistent say so), to be sent with `item_of`.
    fn get_one(&self, pk: String, sk: &str) -> GetItemFluentBuilder {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", item::s(pk))
            .key("sk", item::s(sk))
            .consistent_read(true)
    }
}

/// The item a `get_one` read found, if there is one.
async fn item_of(read: GetItemFluentBuilder) -> Result<Option<item::Item>, AppError> {
    Ok(read.send().await.map_err(dependency_error)?.item)
}

/// Maps an SDK failure to "DynamoDB failed" (502), or 503 when DynamoDB asked
/// us to slow down, keeping the cause for the log.
fn dependency_error<E, R>(err: SdkError<E, R>) -> AppError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let throttled = err
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| {
            matches!(
                code,
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
            )
        });
    let source: BoxError = Box::new(err);
    AppError::Dependency {
        dependency: "DynamoDB",
        throttled,
        source,
    }
}

type TransactError = SdkError<
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    aws_sdk_dynamodb::config::http::HttpResponse,
>;

fn cancellation_reasons(err: &TransactError) -> &[aws_sdk_dynamodb::types::CancellationReason] {
    match err.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
            cancel,
        )) => cancel.cancellation_reasons(),
        _ => &[],
    }
}

/// True when a transaction was cancelled because a condition did not hold
/// (as opposed to a failure of DynamoDB itself).
fn is_condition_failure(err: &TransactError) -> bool {
    cancellation_reasons(err)
        .iter()
        .any(|r| r.code() == Some("ConditionalCheckFailed"))
}

/// The code DynamoDB gave for the `index`th item of a cancelled transaction
/// (`ConditionalCheckFailed`, `TransactionConflict`, `None` for an item that
/// was fine), or `None` when the transaction failed otherwise.
fn cancellation_reason(err: &TransactError, index: usize) -> Option<&str> {
    cancellation_reasons(err).get(index)?.code()
}

/// True when the condition of the transaction's write number `index` failed.
fn condition_failed_at(err: &TransactError, index: usize) -> bool {
    cancellation_reason(err, index) == Some("ConditionalCheckFailed")
}
