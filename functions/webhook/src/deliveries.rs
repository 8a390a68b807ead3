//! Applying a delivery: the user write and the delivery record (idempotency by svix-id, with a
//! TTL) in one TransactWriteItems, so a failure leaves neither, and a duplicate or an older
//! event is refused by the conditions themselves, never by a read first.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use baatcheet_shared::users::{StoreError, UsersStore};
use serde::Serialize;
use std::time::Duration;

use crate::clerk::Action;

/// Delivery records outlive Svix's retry schedule (about 3 days) with room to spare.
const RECORD_TTL_SECS: i64 = 30 * 24 * 3600;
/// Retries of a transaction that collided with a concurrent one on the same items.
const CONFLICT_RETRIES: u32 = 4;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("users table")]
    Store(#[from] StoreError),
    #[error("webhook delivery transaction failed")]
    Dynamo(#[source] BoxError),
    #[error("webhook delivery transaction kept conflicting with concurrent writes")]
    Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The user write and the delivery record were stored together.
    Applied,
    /// This svix-id was applied before: nothing written.
    Duplicate,
    /// The stored user is newer (or deleted): only the delivery was recorded.
    Stale,
}

impl Outcome {
    /// The outcome's name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
        }
    }
}

pub struct Deliveries {
    client: aws_sdk_dynamodb::Client,
    table: String,
    users: UsersStore,
}

/// A delivery record's item (the table's key is the svix-id).
#[derive(Serialize)]
struct Record<'a> {
    pk: &'a str,
    event_type: &'a str,
    outcome: &'a str,
    /// Seconds since the epoch.
    received_at: i64,
    /// The table's TTL attribute (seconds since the epoch).
    expires_at: i64,
}

impl Deliveries {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, users: UsersStore) -> Self {
        Self { client, table: table.into(), users }
    }

    /// The conditional put of the delivery record: fails if this svix-id was recorded before.
    fn record(&self, svix_id: &str, event_type: &str, outcome: &str, now_s: i64) -> Result<Put, ApplyError> {
        let record =
            Record { pk: svix_id, event_type, outcome, received_at: now_s, expires_at: now_s + RECORD_TTL_SECS };
        let item = serde_dynamo::to_item(record).map_err(|e| ApplyError::Dynamo(Box::new(e)))?;
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(|e| ApplyError::Dynamo(Box::new(e)))
    }

    /// Applies `action` for delivery `svix_id` exactly once.
    pub async fn apply(&self, svix_id: &str, event_type: &str, action: &Action) -> Result<Outcome, ApplyError> {
        let now = time::OffsetDateTime::now_utc();
        let now_s = now.unix_timestamp();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let user_write = match action {
            Action::Upsert(profile) => self.users.upsert_from_clerk(profile, now_ms)?,
            Action::Delete { clerk_id } => self.users.mark_deleted(clerk_id, now_ms)?,
            Action::Ignore => return Ok(Outcome::Applied),
        };
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder().put(self.record(svix_id, event_type, "applied", now_s)?).build(),
                )
                .transact_items(TransactWriteItem::builder().update(user_write.clone()).build())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Outcome::Applied),
                Err(e) => e,
            };
            match cancellation_codes(&err) {
                Some(codes) if codes.first().map(String::as_str) == Some("ConditionalCheckFailed") => {
                    return Ok(Outcome::Duplicate);
                }
                Some(codes) if codes.get(1).map(String::as_str) == Some("ConditionalCheckFailed") => {
                    return self.record_stale(svix_id, event_type, now_s).await;
                }
                Some(codes) if codes.iter().any(|c| c == "TransactionConflict") && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                Some(codes) if codes.iter().any(|c| c == "TransactionConflict") => return Err(ApplyError::Conflict),
                _ => return Err(ApplyError::Dynamo(Box::new(err))),
            }
        }
    }

    /// An older event than the stored data: record that the delivery was seen, nothing else.
    async fn record_stale(&self, svix_id: &str, event_type: &str, now_s: i64) -> Result<Outcome, ApplyError> {
        let put = self.record(svix_id, event_type, "stale", now_s)?;
        let res = self
            .client
            .put_item()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match res {
            Ok(_) => Ok(Outcome::Stale),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(Outcome::Duplicate)
            }
            Err(e) => Err(ApplyError::Dynamo(Box::new(e))),
        }
    }
}

/// The per-item cancellation codes of a cancelled transaction ("None" for items that passed).
fn cancellation_codes(err: &SdkError<TransactWriteItemsError>) -> Option<Vec<String>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            Some(c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::collections::HashMap;

    /// The record's item exactly as the hand-written mapping before serde_dynamo wrote it.
    #[test]
    fn a_record_keeps_its_stored_layout() {
        let record =
            Record { pk: "msg_1", event_type: "user.created", outcome: "stale", received_at: 10, expires_at: 20 };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(record).unwrap();
        let s = |v: &str| AttributeValue::S(v.into());
        let n = |v: &str| AttributeValue::N(v.into());
        let want = HashMap::from([
            ("pk".to_string(), s("msg_1")),
            ("event_type".to_string(), s("user.created")),
            ("outcome".to_string(), s("stale")),
            ("received_at".to_string(), n("10")),
            ("expires_at".to_string(), n("20")),
        ]);
        assert_eq!(item, want);
    }
}
