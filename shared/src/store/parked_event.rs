//! How an early event's change is kept on its order item
//! (`parked:{event id}`). The value is `domain::ParkedEvent`; what parking and
//! releasing do is in `parked.rs`.

use super::item::{Item, get_n, get_opt_n, get_s, n, s};
use crate::domain::{OrderStatus, ParkedEvent};
use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

const PREFIX: &str = "parked:";

impl ParkedEvent {
    pub(super) fn attribute(event_id: &str) -> String {
        format!("{PREFIX}{event_id}")
    }

    pub(super) fn to_attribute(&self) -> (String, AttributeValue) {
        let mut fields = HashMap::from([
            ("payment_intent".to_owned(), s(&self.payment_intent)),
            ("to".to_owned(), s(self.to.as_str())),
            ("requires".to_owned(), s(self.requires.as_str())),
            ("created".to_owned(), n(self.created)),
        ]);
        if let Some(refunded) = self.amount_refunded {
            fields.insert("amount_refunded".to_owned(), n(refunded));
        }
        (Self::attribute(&self.event_id), AttributeValue::M(fields))
    }

    /// Every parked event on an order item, oldest first.
    pub(super) fn all_in(item: &Item) -> Result<Vec<ParkedEvent>, AppError> {
        let corrupt = || AppError::internal("stored order has an invalid parked event");
        let status = |m: &Item, name: &str| {
            get_s(m, name)
                .ok()
                .and_then(OrderStatus::parse)
                .ok_or_else(corrupt)
        };
        let mut parked = item
            .iter()
            .filter_map(|(name, value)| Some((name.strip_prefix(PREFIX)?, value)))
            .map(|(event_id, value)| {
                let m = value.as_m().map_err(|_| corrupt())?;
                Ok(ParkedEvent {
                    event_id: event_id.to_owned(),
                    payment_intent: get_s(m, "payment_intent")?.to_owned(),
                    to: status(m, "to")?,
                    requires: status(m, "requires")?,
                    amount_refunded: get_opt_n(m, "amount_refunded")?,
                    created: get_n(m, "created")?,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        parked.sort_by(|a, b| (a.created, &a.event_id).cmp(&(b.created, &b.event_id)));
        Ok(parked)
    }

    pub(super) fn any_in(item: &Item) -> bool {
        item.keys().any(|name| name.starts_with(PREFIX))
    }
}
