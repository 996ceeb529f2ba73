//! Reading and writing DynamoDB attribute maps without ceremony.

use crate::domain::OrderId;
use crate::error::AppError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn b(value: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(value))
}

/// A stored item we cannot read is our bug (or corruption), not the caller's.
fn corrupt(name: &str) -> AppError {
    AppError::internal(format!(
        "stored item has a missing or malformed attribute `{name}`"
    ))
}

/// An order item we cannot read (a status, a move, a parked event).
pub(super) fn corrupt_order(what: &str) -> AppError {
    AppError::internal(format!("stored order has an invalid {what}"))
}

/// The `order_id` attribute: always written by us in canonical form.
pub(super) fn get_order_id(item: &Item) -> Result<OrderId, AppError> {
    OrderId::parse(get_s(item, "order_id")?).map_err(|_| corrupt_order("order_id"))
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, AppError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(name))
}

pub fn get_opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub fn get_n(item: &Item, name: &str) -> Result<u64, AppError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt(name))
}

pub fn get_opt_n(item: &Item, name: &str) -> Result<Option<u64>, AppError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => get_n(item, name).map(Some),
    }
}

pub fn get_b<'a>(item: &'a Item, name: &str) -> Result<&'a [u8], AppError> {
    item.get(name)
        .and_then(|v| v.as_b().ok())
        .map(Blob::as_ref)
        .ok_or_else(|| corrupt(name))
}
