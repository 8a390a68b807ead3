//! Conversations and messages in the conversations table (key design in `keys`). Every operation
//! takes the caller's user id and is a key or index operation (GetItem, Query, TransactWriteItems,
//! BatchWriteItem, BatchGetItem; never a Scan). Expressions are constant strings with attribute
//! name and value placeholders; no input ever becomes part of an expression.
//!
//! Ownership: a conversation belongs to the `user_id` on its `META` item. Any operation on another
//! user's conversation (or one being deleted) reports `NotFound`, exactly like a missing one.

pub mod cursor;
pub mod erase;
pub mod fold;
pub mod idempotency;
pub mod ids;
pub mod keys;
pub mod model;
pub mod search;
mod table;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use baatcheet_shared::error::error_chain;
use std::collections::HashMap;
use std::time::Duration;

use cursor::Cursor;
use ids::{ConversationId, MessageId};
use model::{AnswerMeta, Conversation, Item, Message, MessageStatus, StoredMessage, from_item, n, now_rfc3339, s};
use table::{Table, build, key};

use crate::modes::Mode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conversation not found")]
    NotFound,
    #[error("DynamoDB {op} failed")]
    Dynamo {
        op: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("a stored item is malformed: {0}")]
    Corrupt(String),
}

impl StoreError {
    fn dynamo(op: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Dynamo { op, source: source.into() }
    }
}

/// One page and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// Settings a conversation keeps between requests (a request may change them).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub mode: Mode,
    pub model: String,
    pub system_prompt: Option<String>,
}

/// Why a regenerate could not start.
#[derive(Debug)]
pub enum RegenerateRefused {
    /// Another regenerate of this conversation is writing this answer.
    Running(MessageId),
    Store(StoreError),
}

/// The longest a regenerate lock holds: an answer's budget with its first-token wait and a margin
/// (a lock whose instance died frees itself then).
pub const REGENERATE_LOCK: Duration = Duration::from_secs(150);

/// Message keys read per page while deleting a conversation.
const DELETE_PAGE: i32 = 100;

fn condition_failed(err: &SdkError<TransactWriteItemsError>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            e.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

/// Owner check on the conversation item, shared by every write to an existing conversation.
const OWNED_LIVE: &str = "#user_id = :uid AND attribute_not_exists(#deleted_at)";

#[derive(Clone)]
pub struct ConversationStore {
    table: Table,
}

impl ConversationStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { table: Table::new(client, table) }
    }

    /// A Query of one partition of the by-user index (`keys`).
    fn index_query(&self, partition: String) -> QueryFluentBuilder {
        self.table
            .query()
            .index_name(keys::INDEX)
            .key_condition_expression("#gpk = :gpk")
            .expression_attribute_names("#gpk", "gsi1pk")
            .expression_attribute_values(":gpk", s(partition))
    }

    /// Up to `limit` items of an index partition, newest first, after `start`.
    async fn newest_first(
        &self,
        op: &'static str,
        partition: String,
        limit: usize,
        start: Option<Item>,
    ) -> Result<QueryOutput, StoreError> {
        self.index_query(partition)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo(op, e))
    }

    /// A Query of one conversation's messages (oldest first unless reversed), read consistently.
    fn messages_query(&self, id: ConversationId) -> QueryFluentBuilder {
        self.table
            .query()
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :m)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(keys::conv_pk(id)))
            .expression_attribute_values(":m", s(keys::MSG_PREFIX))
            .consistent_read(true)
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = build(
            Put::builder()
                .table_name(self.table.name())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The conversation item update that goes with every message write: owner and liveness
    /// checked, `updated_at` and the message count moved, settings kept current.
    fn touch(
        &self,
        user_id: &str,
        id: ConversationId,
        added: u64,
        settings: Option<&Settings>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = HashMap::from([
            ("#user_id".to_string(), "user_id".to_string()),
            ("#deleted_at".to_string(), "deleted_at".to_string()),
            ("#updated_at".to_string(), "updated_at".to_string()),
            ("#message_count".to_string(), "message_count".to_string()),
        ]);
        let mut values = HashMap::from([
            (":uid".to_string(), s(user_id)),
            (":now".to_string(), s(now_rfc3339())),
            (":zero".to_string(), n(0)),
            (":added".to_string(), n(added)),
        ]);
        let mut shape = TouchShape::Counters;
        if let Some(st) = settings {
            names.insert("#mode".into(), "mode".into());
            names.insert("#model".into(), "model".into());
            names.insert("#system_prompt".into(), "system_prompt".into());
            values.insert(":mode".into(), s(st.mode.as_str()));
            values.insert(":model".into(), s(&st.model));
            shape = match &st.system_prompt {
                Some(p) => {
                    values.insert(":system_prompt".into(), s(p));
                    TouchShape::SettingsWithPrompt
                }
                None => TouchShape::SettingsWithoutPrompt,
            };
        }
        let b = Update::builder().table_name(self.table.name()).set_key(Some(key(keys::conv_pk(id), keys::META_SK)));
        // One constant expression per shape (tests/expressions.rs checks none is built at run time).
        let b = match shape {
            TouchShape::Counters => b.update_expression(TOUCH),
            TouchShape::SettingsWithPrompt => b.update_expression(TOUCH_SETTINGS_PROMPT),
            TouchShape::SettingsWithoutPrompt => b.update_expression(TOUCH_SETTINGS_NO_PROMPT),
        };
        let update = build(
            b.condition_expression(OWNED_LIVE)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(&self, op: &'static str, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.table
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| if condition_failed(&e) { StoreError::NotFound } else { StoreError::dynamo(op, e) })
    }

    /// A new conversation with its first message, in one transaction.
    pub async fn create(&self, conversation: &Conversation, first: &Message) -> Result<(), StoreError> {
        let items = vec![
            self.put(conversation.to_item()?)?,
            self.put(first.to_item(conversation.id, &conversation.user_id, None)?)?,
        ];
        match self.transact("create conversation", items).await {
            // Both ids are fresh UUID v7s: a collision is a bug, not a missing conversation.
            Err(StoreError::NotFound) => Err(StoreError::Corrupt("conversation or message id already exists".into())),
            other => other,
        }
    }

    /// The conversation and its newest `messages` messages (oldest first), in one Query: `META`
    /// sorts after every message, so reading the partition newest-first returns it first.
    pub async fn load_recent(
        &self,
        user_id: &str,
        id: ConversationId,
        messages: usize,
    ) -> Result<(Conversation, Vec<Message>), StoreError> {
        let out = self
            .table
            .query()
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":pk", s(keys::conv_pk(id)))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(i32::try_from(messages + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("load conversation", e))?;
        let items = out.items();
        let Some(first) =
            items.first().filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == keys::META_SK))
        else {
            return Err(StoreError::NotFound);
        };
        let conversation = Conversation::from_item(first)?;
        if conversation.user_id != user_id || conversation.deleted {
            return Err(StoreError::NotFound);
        }
        let mut recent = items[1..].iter().map(Message::from_item).collect::<Result<Vec<_>, _>>()?;
        recent.reverse();
        Ok((conversation, recent))
    }

    /// Adds a message to an existing conversation of this user (the user's prompt, before the
    /// upstream call), updating the conversation's settings, in one transaction.
    pub async fn append(
        &self,
        user_id: &str,
        id: ConversationId,
        message: &Message,
        settings: &Settings,
    ) -> Result<(), StoreError> {
        let items = vec![self.put(message.to_item(id, user_id, None)?)?, self.touch(user_id, id, 1, Some(settings))?];
        self.transact("append message", items).await
    }

    /// Stores an assistant answer (complete or partial); with `replaces`, the answer it regenerates
    /// is removed in the same transaction, so the conversation never shows both or neither.
    pub async fn finish(
        &self,
        user_id: &str,
        id: ConversationId,
        answer: &Message,
        replaces: Option<MessageId>,
    ) -> Result<(), StoreError> {
        let items = vec![self.put(answer.to_item(id, user_id, None)?)?];
        self.finish_items(user_id, id, items, replaces).await
    }

    /// As [`Self::finish`], for an answer begun with [`Self::begin_answer`] (its streaming item is
    /// overwritten) or never begun, keeping what replays its stream. With `revive`, the user
    /// message it answers (marked failed by an earlier attempt) is complete again.
    pub async fn finish_answer(
        &self,
        user_id: &str,
        id: ConversationId,
        answer: &Message,
        meta: &AnswerMeta,
        revive: bool,
    ) -> Result<(), StoreError> {
        let put = build(
            Put::builder()
                .table_name(self.table.name())
                .set_item(Some(answer.to_item(id, user_id, Some(meta))?))
                .condition_expression("attribute_not_exists(#pk) OR #status = :streaming")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":streaming", s(MessageStatus::Streaming.as_str()))
                .build(),
        )?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if revive {
            let update = build(
                Update::builder()
                    .table_name(self.table.name())
                    .set_key(Some(key(keys::conv_pk(id), keys::msg_sk(meta.user_message_id))))
                    .update_expression("SET #status = :complete")
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", "pk")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":complete", s(MessageStatus::Complete.as_str()))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.finish_items(user_id, id, items, meta.replaces).await
    }

    async fn finish_items(
        &self,
        user_id: &str,
        id: ConversationId,
        mut items: Vec<TransactWriteItem>,
        replaces: Option<MessageId>,
    ) -> Result<(), StoreError> {
        items.push(self.touch(user_id, id, if replaces.is_some() { 0 } else { 1 }, None)?);
        if let Some(old) = replaces {
            let delete = build(
                Delete::builder()
                    .table_name(self.table.name())
                    .set_key(Some(key(keys::conv_pk(id), keys::msg_sk(old))))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.transact("store answer", items).await
    }

    /// The item of an answer about to stream (status `streaming`, no text yet), written before the
    /// upstream is asked so that a follower (the stream route, a repeat with the same
    /// Idempotency-Key, a refused concurrent regenerate) finds it from the start. The conversation
    /// item moves only when the answer is finished.
    pub async fn begin_answer(
        &self,
        user_id: &str,
        id: ConversationId,
        answer: &Message,
        meta: &AnswerMeta,
    ) -> Result<(), StoreError> {
        self.table
            .put(answer.to_item(id, user_id, Some(meta))?)
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::dynamo("begin answer", e))
    }

    /// The text generated so far of a streaming answer (one UpdateItem; the caller bounds how often).
    pub async fn progress(&self, id: ConversationId, answer: MessageId, content: &str) -> Result<(), StoreError> {
        self.table
            .update(key(keys::conv_pk(id), keys::msg_sk(answer)))
            .update_expression("SET #content = :content")
            .condition_expression("#status = :streaming")
            .expression_attribute_names("#content", "content")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":content", s(content))
            .expression_attribute_values(":streaming", s(MessageStatus::Streaming.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::dynamo("store answer progress", e))
    }

    /// Removes an answer that never got a token (every provider failed), if still streaming.
    pub async fn drop_answer(&self, id: ConversationId, answer: MessageId) -> Result<(), StoreError> {
        let out = self
            .table
            .delete(key(keys::conv_pk(id), keys::msg_sk(answer)))
            .condition_expression("#status = :streaming")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":streaming", s(MessageStatus::Streaming.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(StoreError::dynamo("drop answer", e)),
        }
    }

    /// Sets a message's status (a user message no provider answered becomes `failed`).
    pub async fn set_status(
        &self,
        id: ConversationId,
        message: MessageId,
        status: MessageStatus,
    ) -> Result<(), StoreError> {
        self.table
            .update(key(keys::conv_pk(id), keys::msg_sk(message)))
            .update_expression("SET #status = :status")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::dynamo("set message status", e))
    }

    /// The conversation a message of this user's belongs to, through the by-user index (the
    /// message id alone names it in the stream route); `NotFound` for anyone else's.
    pub async fn message_conversation(&self, user_id: &str, message: MessageId) -> Result<ConversationId, StoreError> {
        /// What the Query projects of the message's item.
        #[derive(serde::Deserialize)]
        struct Found {
            conversation_id: ConversationId,
        }
        let out = self
            .table
            .query()
            .index_name(keys::INDEX)
            .key_condition_expression("#gpk = :gpk AND #gsk = :gsk")
            .expression_attribute_names("#gpk", "gsi1pk")
            .expression_attribute_names("#gsk", "gsi1sk")
            .expression_attribute_values(":gpk", s(keys::user_messages(user_id)))
            .expression_attribute_values(":gsk", s(keys::msg_sk(message)))
            .projection_expression("#cid")
            .expression_attribute_names("#cid", "conversation_id")
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("find message", e))?;
        let found = out.items().first().ok_or(StoreError::NotFound)?;
        Ok(from_item::<Found>("message", found)?.conversation_id)
    }

    /// One message of this user's conversation, read consistently (a follower sees every write
    /// made before), with what replays an answer's stream; `NotFound` if absent or not theirs.
    pub async fn message(
        &self,
        user_id: &str,
        id: ConversationId,
        message: MessageId,
    ) -> Result<(Message, Option<AnswerMeta>), StoreError> {
        let out = self
            .table
            .get(key(keys::conv_pk(id), keys::msg_sk(message)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("get message", e))?;
        let stored = StoredMessage::from_item(out.item().ok_or(StoreError::NotFound)?)?;
        if stored.user_id != user_id {
            return Err(StoreError::NotFound);
        }
        Ok((stored.message, stored.meta))
    }

    /// Takes the conversation's regenerate lock for answer `answer` (one regenerate at a time), on
    /// the conversation item: free, or held past [`REGENERATE_LOCK`] by an instance that died.
    /// Held: `Running` with the answer being written; not this user's: `NotFound`.
    pub async fn claim_regenerate(
        &self,
        user_id: &str,
        id: ConversationId,
        answer: MessageId,
    ) -> Result<(), RegenerateRefused> {
        /// What a refused claim reads of the conversation item.
        #[derive(serde::Deserialize)]
        struct Holder {
            user_id: String,
            #[serde(default)]
            deleted_at: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            answering: Option<MessageId>,
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let until = now + i64::try_from(REGENERATE_LOCK.as_secs()).unwrap_or(i64::MAX);
        let out = self
            .table
            .update(key(keys::conv_pk(id), keys::META_SK))
            .update_expression("SET #answering = :mid, #answering_until = :until")
            .condition_expression(
                "#user_id = :uid AND attribute_not_exists(#deleted_at) AND \
                 (attribute_not_exists(#answering) OR #answering_until < :now)",
            )
            .expression_attribute_names("#answering", "answering")
            .expression_attribute_names("#answering_until", "answering_until")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_names("#deleted_at", "deleted_at")
            .expression_attribute_values(":mid", s(answer.to_string()))
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":uid", s(user_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    // No item: no such conversation.
                    let Some(old) = c.item() else { return Err(RegenerateRefused::Store(StoreError::NotFound)) };
                    let holder: Holder = from_item("conversation", old).map_err(RegenerateRefused::Store)?;
                    match holder.answering {
                        Some(running) if holder.user_id == user_id && holder.deleted_at.is_none() => {
                            Err(RegenerateRefused::Running(running))
                        }
                        _ => Err(RegenerateRefused::Store(StoreError::NotFound)),
                    }
                }
                _ => Err(RegenerateRefused::Store(StoreError::dynamo("claim regenerate", e))),
            },
        }
    }

    /// Releases the regenerate lock `answer` holds (if it still does). Best effort: a lock left
    /// behind expires after [`REGENERATE_LOCK`].
    pub async fn release_regenerate(&self, id: ConversationId, answer: MessageId) {
        let out = self
            .table
            .update(key(keys::conv_pk(id), keys::META_SK))
            .update_expression("REMOVE #answering, #answering_until")
            .condition_expression("#answering = :mid")
            .expression_attribute_names("#answering", "answering")
            .expression_attribute_names("#answering_until", "answering_until")
            .expression_attribute_values(":mid", s(answer.to_string()))
            .send()
            .await;
        if let Err(e) = out
            && !e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception())
        {
            tracing::warn!(cause = %error_chain(&e), "releasing a regenerate lock failed; it expires by itself");
        }
    }

    /// The conversation item, if it is this user's and not being deleted.
    pub async fn get(&self, user_id: &str, id: ConversationId) -> Result<Conversation, StoreError> {
        let out = self
            .table
            .get(key(keys::conv_pk(id), keys::META_SK))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("get conversation", e))?;
        let c = out.item().map(Conversation::from_item).transpose()?.ok_or(StoreError::NotFound)?;
        if c.user_id != user_id || c.deleted {
            return Err(StoreError::NotFound);
        }
        Ok(c)
    }

    /// The user's conversations, newest first.
    pub async fn list(
        &self,
        user_id: &str,
        limit: usize,
        after: Option<ConversationId>,
    ) -> Result<Page<Conversation>, StoreError> {
        let start = after.map(|c| keys::conv_index_key(user_id, c));
        let out = self.newest_first("list conversations", keys::user_conversations(user_id), limit + 1, start).await?;
        let mut items = Vec::with_capacity(limit);
        for i in out.items() {
            let c = Conversation::from_item(i)?;
            // The index holds only this user's live conversations; re-checked anyway.
            if c.user_id == user_id && !c.deleted {
                items.push(c);
            }
        }
        let more = items.len() > limit || out.last_evaluated_key().is_some();
        items.truncate(limit);
        let next = if more { items.last().map(|c| Cursor::Conversations(c.id)) } else { None };
        Ok(Page { items, next })
    }

    /// A page of a conversation's messages, newest page first (each page oldest first).
    pub async fn messages(
        &self,
        user_id: &str,
        id: ConversationId,
        limit: usize,
        before: Option<MessageId>,
    ) -> Result<(Conversation, Page<Message>), StoreError> {
        let query = self
            .messages_query(id)
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(before.map(|m| key(keys::conv_pk(id), keys::msg_sk(m))))
            .send();
        let (conversation, out) = tokio::join!(self.get(user_id, id), query);
        let conversation = conversation?;
        let out = out.map_err(|e| StoreError::dynamo("list messages", e))?;
        let mut items = out.items().iter().map(Message::from_item).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit || out.last_evaluated_key().is_some();
        items.truncate(limit);
        let next = if more { items.last().map(|m| Cursor::Messages(id, m.id)) } else { None };
        items.reverse();
        Ok((conversation, Page { items, next }))
    }

    pub async fn rename(&self, user_id: &str, id: ConversationId, title: &str) -> Result<Conversation, StoreError> {
        let out = self
            .table
            .update(key(keys::conv_pk(id), keys::META_SK))
            .update_expression("SET #title = :title, #updated_at = :now")
            .condition_expression(OWNED_LIVE)
            .expression_attribute_names("#title", "title")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_names("#deleted_at", "deleted_at")
            .expression_attribute_values(":title", s(title))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":uid", s(user_id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(o) => o.attributes().map(Conversation::from_item).transpose()?.ok_or(StoreError::NotFound),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(StoreError::dynamo("rename conversation", e)),
        }
    }

    /// Deletes a conversation and all its messages. First the conversation is marked deleted and
    /// leaves the user's list for the `UDEL#` index partition (one conditional update): from then on nothing of it is reachable,
    /// even if what follows is interrupted. Then its messages go in batches, the conversation item
    /// last. Deleting a conversation already marked resumes the removal.
    /// Returns how many messages were removed.
    pub async fn delete(&self, user_id: &str, id: ConversationId) -> Result<usize, StoreError> {
        let marked = self
            .table
            .update(key(keys::conv_pk(id), keys::META_SK))
            .update_expression("SET #deleted_at = if_not_exists(#deleted_at, :now), #gpk = :deleting")
            .condition_expression("#user_id = :uid")
            .expression_attribute_names("#deleted_at", "deleted_at")
            .expression_attribute_names("#gpk", "gsi1pk")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":uid", s(user_id))
            .expression_attribute_values(":deleting", s(keys::user_deleting(user_id)))
            .send()
            .await;
        match marked {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                return Err(StoreError::NotFound);
            }
            Err(e) => return Err(StoreError::dynamo("mark conversation deleted", e)),
        }
        let mut removed = 0;
        loop {
            let page = self
                .messages_query(id)
                .projection_expression("#pk, #sk")
                .limit(DELETE_PAGE)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("list messages to delete", e))?;
            if page.items().is_empty() {
                break;
            }
            self.table.delete_found("delete messages", page.items()).await?;
            removed += page.items().len();
        }
        self.table
            .delete(key(keys::conv_pk(id), keys::META_SK))
            .condition_expression("attribute_exists(#deleted_at)")
            .expression_attribute_names("#deleted_at", "deleted_at")
            .send()
            .await
            .map_err(|e| StoreError::dynamo("delete conversation", e))?;
        Ok(removed)
    }
}

/// Which conversation fields a message write moves along with the counters.
enum TouchShape {
    Counters,
    SettingsWithPrompt,
    SettingsWithoutPrompt,
}

const TOUCH: &str = "SET #updated_at = :now, #message_count = if_not_exists(#message_count, :zero) + :added";
const TOUCH_SETTINGS_PROMPT: &str = "SET #updated_at = :now, \
     #message_count = if_not_exists(#message_count, :zero) + :added, #mode = :mode, #model = :model, \
     #system_prompt = :system_prompt";
const TOUCH_SETTINGS_NO_PROMPT: &str = "SET #updated_at = :now, \
     #message_count = if_not_exists(#message_count, :zero) + :added, #mode = :mode, #model = :model \
     REMOVE #system_prompt";
