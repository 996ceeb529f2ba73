//! A conditional write's three answers, told apart in one place: written,
//! refused by its condition (a fact about the item, for the caller to act
//! on), or DynamoDB failed (a 502/503 for the caller's caller).

use super::dependency_error;
use super::item::Item;
use crate::error::AppError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

pub(super) enum Written<O> {
    Done(O),
    /// The condition did not hold: nothing was written. Holds the item as
    /// it was when the write asked for it (`ReturnValuesOnConditionCheckFailure`)
    /// and there was one.
    Refused(Option<Item>),
}

impl<O> Written<O> {
    pub(super) fn done(&self) -> bool {
        matches!(self, Written::Done(_))
    }
}

/// The single-item writes whose condition can refuse them.
pub(super) trait ConditionRefusal {
    /// `Some` when the condition refused the write, with the old item if any.
    fn refused_item(&self) -> Option<Option<&Item>>;
}

impl ConditionRefusal for UpdateItemError {
    fn refused_item(&self) -> Option<Option<&Item>> {
        match self {
            UpdateItemError::ConditionalCheckFailedException(refused) => Some(refused.item()),
            _ => None,
        }
    }
}

impl ConditionRefusal for PutItemError {
    fn refused_item(&self) -> Option<Option<&Item>> {
        match self {
            PutItemError::ConditionalCheckFailedException(refused) => Some(refused.item()),
            _ => None,
        }
    }
}

/// Sorts a conditional write's result into `Written`, or the dependency
/// error that DynamoDB's own failure is.
pub(super) fn conditional<O, E, R>(
    result: Result<O, SdkError<E, R>>,
) -> Result<Written<O>, AppError>
where
    E: ConditionRefusal + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Written::Done(out)),
        Err(err) => match err
            .as_service_error()
            .and_then(ConditionRefusal::refused_item)
        {
            Some(old) => Ok(Written::Refused(old.cloned())),
            None => Err(dependency_error(err)),
        },
    }
}
