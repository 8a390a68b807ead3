//! Erasure of one user's conversations and messages (their search entries are the messages'
//! own index entries, so they go with them). Everything is found through the by-user index, never
//! a Scan: messages under `UMSG#{uid}`, conversations under `USER#{uid}`, and conversations whose
//! delete was interrupted under `UDEL#{uid}` (keys.rs); Idempotency-Key records by a Query of their
//! table partition `IDEM#{uid}`. Messages go first, conversation items
//! last, so an interrupted run leaves everything still findable for the next one. Stateless:
//! what was deleted is simply not found again.

use baatcheet_shared::erasure::{BoxError, Budget, EraseFuture, Erased, UserData};

use super::model::{Item, s};
use super::{BATCH_WRITE, ConversationStore, StoreError, keys};

/// Index items read per Query page.
const PAGE: usize = 100;

impl ConversationStore {
    /// Deletes `user_id`'s messages, then their conversations (live or being deleted), at most
    /// `budget.left()` items. `Done` once none is left.
    pub async fn erase_user(&self, user_id: &str, budget: &mut Budget) -> Result<Erased, StoreError> {
        let partitions =
            [keys::user_messages(user_id), keys::user_conversations(user_id), keys::user_deleting(user_id)];
        for partition in partitions {
            if self.erase_partition(&partition, budget).await? == Erased::More {
                return Ok(Erased::More);
            }
        }
        // Idempotency-Key records: a partition of the table per user (no index entry).
        super::idempotency::IdempotencyStore::new(self.client().clone(), self.table()).erase(user_id, budget).await
    }

    /// Deletes the table items of one index partition, page by page (each page's keys once:
    /// paging on, rather than querying again, never re-reads items the index still shows for a
    /// moment after their deletion).
    async fn erase_partition(&self, partition: &str, budget: &mut Budget) -> Result<Erased, StoreError> {
        let mut start: Option<Item> = None;
        loop {
            if budget.is_spent() {
                return Ok(Erased::More);
            }
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .index_name(keys::INDEX)
                .key_condition_expression("#gpk = :gpk")
                .expression_attribute_names("#gpk", "gsi1pk")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":gpk", s(partition))
                .projection_expression("#pk, #sk")
                .limit(i32::try_from(budget.left().min(PAGE)).unwrap_or(PAGE as i32))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("list a user's items to erase", e))?;
            for chunk in out.items().chunks(BATCH_WRITE) {
                self.delete_batch(chunk).await?;
                budget.spend(chunk.len());
            }
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(Erased::Done),
            }
        }
    }
}

impl UserData for ConversationStore {
    fn name(&self) -> &'static str {
        "conversations"
    }

    fn erase<'a>(&'a self, user_id: &'a str, budget: &'a mut Budget) -> EraseFuture<'a> {
        Box::pin(async move { self.erase_user(user_id, budget).await.map_err(BoxError::from) })
    }
}
