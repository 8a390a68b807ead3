//! A user's buckets go with the user: the key of every policy (the platform's and those the
//! erasing function names) for the user as subject (whether or not it was ever used; deleting an
//! absent item is a no-op), in one BatchWriteItem.

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use std::collections::HashMap;
use std::time::Duration;

use super::policy::{PLATFORM, PolicySpec, Subject};
use crate::erasure::{Budget, EraseFuture, Erased, UserData};

/// The per-user buckets of the rate-limits table.
pub struct UserBuckets {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The platform's policies, then the functions' (`policies` of [`Self::new`]).
    policies: Vec<PolicySpec>,
}

impl UserBuckets {
    /// The buckets of the platform's policies and of `policies` (every function's that counts
    /// per user).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, policies: &[&PolicySpec]) -> Self {
        let policies = PLATFORM.iter().chain(policies).map(|p| **p).collect();
        Self { client, table: table.into(), policies }
    }

    /// Every bucket key a user can have (each policy once: the tiers of a policy share a key).
    pub fn keys(&self, user_id: &str) -> Vec<String> {
        user_keys(&self.policies, user_id)
    }

    async fn delete_all(&self, user_id: &str) -> Result<usize, crate::erasure::BoxError> {
        let keys = self.keys(user_id);
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

fn user_keys(policies: &[PolicySpec], user_id: &str) -> Vec<String> {
    let mut keys: Vec<String> = policies.iter().map(|p| p.policy().key(&Subject::User(user_id))).collect();
    keys.dedup();
    keys
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
    use crate::rate_limit::policy::{FallbackMode, Setting, Sizing};

    #[test]
    fn every_per_user_policy_key_once() {
        let setting = Setting::new("TEST_A", 1, 60, "TEST_FALLBACK_A", FallbackMode::Refuse);
        let tiered = PolicySpec { name: "tiered", sizing: Sizing::ByTier([setting; 3]) };
        let flat = PolicySpec { name: "flat", sizing: Sizing::Flat(setting) };
        let policies: Vec<PolicySpec> = PLATFORM.iter().map(|p| **p).chain([tiered, flat]).collect();
        assert_eq!(
            user_keys(&policies, "usr_1"),
            ["global#user#usr_1", "network#user#usr_1", "auth#user#usr_1", "tiered#user#usr_1", "flat#user#usr_1"]
        );
    }
}
