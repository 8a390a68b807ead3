//! Erasure of one user's conversations and messages (their search entries are the messages'
//! own index entries, so they go with them). Everything is found through the by-user index, never
//! a Scan: messages under `UMSG#{uid}`, conversations under `USER#{uid}`, and conversations whose
//! delete was interrupted under `UDEL#{uid}` (keys.rs); Idempotency-Key records by a Query of their
//! table partition `IDEM#{uid}`. Messages go first, conversation items
//! last, so an interrupted run leaves everything still findable for the next one. Stateless:
//! what was deleted is simply not found again.

use baatcheet_shared::erasure::{BoxError, Budget, EraseFuture, Erased, UserData};

use super::idempotency::IdempotencyStore;
use super::{ConversationStore, StoreError, keys};

impl ConversationStore {
    /// Deletes `user_id`'s messages, then their conversations (live or being deleted), at most
    /// `budget.left()` items. `Done` once none is left.
    pub async fn erase_user(&self, user_id: &str, budget: &mut Budget) -> Result<Erased, StoreError> {
        let partitions =
            [keys::user_messages(user_id), keys::user_conversations(user_id), keys::user_deleting(user_id)];
        for partition in partitions {
            let found = self.index_query(partition).projection_expression("#pk, #sk");
            let found = found.expression_attribute_names("#pk", "pk").expression_attribute_names("#sk", "sk");
            if self.table.erase_found("erase a user's conversations", found, budget).await? == Erased::More {
                return Ok(Erased::More);
            }
        }
        // Idempotency-Key records: a partition of the table per user (no index entry).
        IdempotencyStore::from_table(self.table.clone()).erase(user_id, budget).await
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
