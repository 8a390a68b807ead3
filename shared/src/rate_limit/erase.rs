//! A user's buckets go with the user: every policy's key for the user as subject (whether or not
//! it was ever used; deleting an absent item is a no-op), in one BatchWriteItem.

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use std::collections::HashMap;
use std::time::Duration;

use super::policy::{ALL, Subject};
use crate::erasure::{Budget, EraseFuture, Erased, UserData};

/// The per-user buckets of the rate-limits table.
pub struct UserBuckets {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl UserBuckets {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Every bucket key a user can have (each policy once: the chat tiers share a key).
    pub fn keys(user_id: &str) -> Vec<String> {
        let mut keys: Vec<String> = ALL.iter().map(|p| p.key(&Subject::User(user_id))).collect();
        keys.dedup();
        keys
    }

    async fn delete_all(&self, user_id: &str) -> Result<usize, crate::erasure::BoxError> {
        let keys = Self::keys(user_id);
        let mut requests = keys
            .iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(HashMap::from([("pk".to_string(), AttributeValue::S(k.clone()))])))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Unprocessed items (throttling) are retried a few times; still left, the caller retries.
        for attempt in 0..5u32 {
            let out = self.client.batch_write_item().request_items(&self.table, requests).send().await?;
            requests = out.unprocessed_items().and_then(|m| m.get(&self.table)).cloned().unwrap_or_default();
            if requests.is_empty() {
                return Ok(keys.len());
            }
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
        Err("rate-limit buckets left unprocessed after retries".into())
    }
}

impl UserData for UserBuckets {
    fn name(&self) -> &'static str {
        "rate-limit buckets"
    }

    fn erase<'a>(&'a self, user_id: &'a str, budget: &'a mut Budget) -> EraseFuture<'a> {
        Box::pin(async move {
            let n = self.delete_all(user_id).await?;
            budget.spend(n);
            Ok(Erased::Done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_per_user_policy_key_once() {
        let keys = UserBuckets::keys("usr_1");
        assert_eq!(
            keys,
            [
                "global#user#usr_1",
                "network#user#usr_1",
                "auth#user#usr_1",
                "chat#user#usr_1",
                "images#user#usr_1",
                "audio#user#usr_1",
                "audio_seconds#user#usr_1",
                "search#user#usr_1"
            ]
        );
    }
}
