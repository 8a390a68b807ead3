//! What the store keeps, and how each maps to a DynamoDB item: each item's stored layout is a
//! struct here, mapped by serde_dynamo. A missing or malformed attribute is an error naming it
//! (`StoreError::Corrupt`, a 500), never a default. An absent optional field is left out, of API
//! answers and stored items alike (`skip_serializing_none`), never written as null.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::HashMap;
use utoipa::ToSchema;

use super::StoreError;
use super::ids::{ConversationId, MessageId};
use super::keys;
use crate::modes::Mode;

pub type Item = HashMap<String, AttributeValue>;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MessageRole)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// `incomplete`: the answer stopped early (upstream failure or its time budget); `streaming`: the
/// answer is being written (follow it with `GET /api/v1/chat/messages/{message_id}/stream`);
/// `failed`: a user message no provider could answer (a retry with the same Idempotency-Key, or a
/// regenerate, answers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Complete,
    /// The answer stopped early (upstream failure or the answer's time budget ran out).
    Incomplete,
    /// The answer is still being generated and stored progressively.
    Streaming,
    /// A user message no provider could answer.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Incomplete => "incomplete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Failed => "failed",
        }
    }
}

/// Token counts of one answer; `estimated` when the upstream did not report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Usage {
    #[schema(minimum = 0, example = 42)]
    pub prompt_tokens: u64,
    #[schema(minimum = 0, example = 128)]
    pub completion_tokens: u64,
    #[schema(minimum = 0, example = 170)]
    pub total_tokens: u64,
    /// Present (and `true`) only when the counts are estimates.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

/// An image a user message carried. Inline (data URL) images are not stored, only noted.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttachmentRef {
    /// The image's URL (web images only).
    #[schema(nullable = false, example = "https://example.com/photo.png")]
    pub url: Option<String>,
    /// The image was sent inline (a data URL, not stored).
    pub inline: bool,
}

/// A message of a conversation.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    /// When it was written (RFC 3339).
    #[schema(format = DateTime, example = "2026-01-15T09:30:00.123Z")]
    pub created_at: String,
    /// The model that wrote an answer.
    #[schema(nullable = false, example = "llama-3.1-8b-instant")]
    pub model: Option<String>,
    /// The provider that served an answer.
    #[schema(nullable = false, example = "groq")]
    pub provider: Option<String>,
    /// Token counts of an answer.
    #[schema(nullable = false)]
    pub usage: Option<Usage>,
    /// Images a user message carried (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
}

/// A conversation of the caller's.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Conversation {
    pub id: ConversationId,
    #[serde(skip)]
    pub user_id: String,
    /// Made from the first message, or set by a rename: at most 80 characters.
    #[schema(max_length = 80, example = "Chai recipes")]
    pub title: String,
    pub mode: Mode,
    /// The model it last used.
    #[schema(nullable = false, example = "llama-3.1-8b-instant")]
    pub model: Option<String>,
    /// The system prompt it was started with.
    #[schema(nullable = false)]
    pub system_prompt: Option<String>,
    /// When it was created (RFC 3339).
    #[schema(format = DateTime, example = "2026-01-15T09:30:00.123Z")]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[schema(format = DateTime, example = "2026-01-15T09:31:02.456Z")]
    pub updated_at: String,
    #[schema(minimum = 0, example = 4)]
    pub message_count: u64,
    #[serde(skip)]
    pub deleted: bool,
}

/// What an answer's item keeps besides the message, so its stream can be replayed exactly as it
/// was sent (the `conversation` event) and ended (`done`), by any instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerMeta {
    pub user_message_id: MessageId,
    pub replaces: Option<MessageId>,
    pub created: bool,
    pub title: String,
    pub finish_reason: Option<String>,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `item` read as `T`. A missing or malformed attribute is `Corrupt`, naming the attribute but not
/// its value ([`baatcheet_shared::dynamo::from_item`]).
pub(crate) fn from_item<T: DeserializeOwned>(what: &str, item: &Item) -> Result<T, StoreError> {
    baatcheet_shared::dynamo::from_item(item).map_err(|e| {
        let at = e.attribute.map(|a| format!(", attribute `{a}`")).unwrap_or_default();
        StoreError::Corrupt(format!("{what} item{at}: {}", e.why))
    })
}

/// `value` as an item.
pub(crate) fn to_item(what: &str, value: &impl Serialize) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|_| StoreError::Corrupt(format!("{what} item could not be written")))
}

/// Declares an item of the conversations table: its key attributes (`keys` has the design), the
/// item's kind and owner, then its own attributes. A macro, not `#[serde(flatten)]`: flatten reads
/// through serde's buffer, which loses the name of a corrupt attribute.
macro_rules! conversations_item {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[skip_serializing_none]
        #[derive(Serialize, Deserialize)]
        struct $name {
            pk: String,
            sk: String,
            gsi1pk: String,
            gsi1sk: String,
            kind: String,
            user_id: String,
            $($(#[$fmeta])* $field: $ty,)*
        }
    };
}

conversations_item! {
    /// A conversation's item as stored. The names and types of its attributes are those of the items
    /// already in the table: change them only with a migration.
    struct ConversationItem {
        title: String,
        mode: Mode,
        created_at: String,
        updated_at: String,
        message_count: u64,
        model: Option<String>,
        system_prompt: Option<String>,
        /// Set by a delete (only its presence counts), never written here.
        #[serde(default, skip_serializing)]
        deleted_at: Option<IgnoredAny>,
    }
}

conversations_item! {
    /// A message's item as stored, with an answer's replay fields ([`AnswerMeta`]; absent on user
    /// messages and on answers written before they existed). Same rule as [`ConversationItem`].
    struct MessageItem {
        conversation_id: ConversationId,
        role: Role,
        content: String,
        status: MessageStatus,
        created_at: String,
        model: Option<String>,
        provider: Option<String>,
        usage: Option<UsageItem>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentItem>,
        answers: Option<MessageId>,
        created_conversation: Option<bool>,
        stream_title: Option<String>,
        replaces: Option<MessageId>,
        finish_reason: Option<String>,
    }
}

/// [`Usage`] as stored (a map); `estimated` only when true.
#[derive(Serialize, Deserialize)]
struct UsageItem {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    estimated: bool,
}

/// [`AttachmentRef`] as stored (a map in a list).
#[skip_serializing_none]
#[derive(Serialize, Deserialize)]
struct AttachmentItem {
    inline: bool,
    url: Option<String>,
}

impl Conversation {
    pub fn to_item(&self) -> Result<Item, StoreError> {
        to_item(
            "conversation",
            &ConversationItem {
                pk: keys::conv_pk(self.id),
                sk: keys::META_SK.into(),
                gsi1pk: keys::user_conversations(&self.user_id),
                gsi1sk: keys::conv_gsi_sk(self.id),
                kind: "conversation".into(),
                user_id: self.user_id.clone(),
                title: self.title.clone(),
                mode: self.mode,
                created_at: self.created_at.clone(),
                updated_at: self.updated_at.clone(),
                message_count: self.message_count,
                model: self.model.clone(),
                system_prompt: self.system_prompt.clone(),
                deleted_at: None,
            },
        )
    }

    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        let c: ConversationItem = from_item("conversation", item)?;
        let id = keys::parse_conv_pk(&c.pk)
            .ok_or_else(|| StoreError::Corrupt("conversation item, attribute `pk`: malformed".into()))?;
        Ok(Self {
            id,
            user_id: c.user_id,
            title: c.title,
            mode: c.mode,
            model: c.model,
            system_prompt: c.system_prompt,
            created_at: c.created_at,
            updated_at: c.updated_at,
            message_count: c.message_count,
            deleted: c.deleted_at.is_some(),
        })
    }
}

/// A message item read whole: the message, whose it is and where, and an answer's replay fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub conversation: ConversationId,
    pub user_id: String,
    pub message: Message,
    /// `None` for user messages and answers written before answers kept it.
    pub meta: Option<AnswerMeta>,
}

impl StoredMessage {
    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        let m: MessageItem = from_item("message", item)?;
        let corrupt = |attr: &str| StoreError::Corrupt(format!("message item, attribute `{attr}`: malformed"));
        let id = keys::parse_msg_sk(&m.sk).ok_or_else(|| corrupt("sk"))?;
        let conversation = keys::parse_conv_pk(&m.pk).ok_or_else(|| corrupt("pk"))?;
        let meta = match m.answers {
            None => None,
            Some(user_message_id) => Some(AnswerMeta {
                user_message_id,
                replaces: m.replaces,
                // Written with `answers`, always.
                created: m.created_conversation.ok_or_else(|| corrupt("created_conversation"))?,
                title: m.stream_title.ok_or_else(|| corrupt("stream_title"))?,
                finish_reason: m.finish_reason,
            }),
        };
        let message = Message {
            id,
            role: m.role,
            content: m.content,
            status: m.status,
            created_at: m.created_at,
            model: m.model,
            provider: m.provider,
            usage: m.usage.map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.total_tokens,
                estimated: u.estimated,
            }),
            attachments: m.attachments.into_iter().map(|a| AttachmentRef { url: a.url, inline: a.inline }).collect(),
        };
        Ok(Self { conversation, user_id: m.user_id, message, meta })
    }
}

impl Message {
    /// The item of this message in `conversation`, owned by `user_id`; an answer's with `meta`.
    pub fn to_item(
        &self,
        conversation: ConversationId,
        user_id: &str,
        meta: Option<&AnswerMeta>,
    ) -> Result<Item, StoreError> {
        to_item(
            "message",
            &MessageItem {
                pk: keys::conv_pk(conversation),
                sk: keys::msg_sk(self.id),
                gsi1pk: keys::user_messages(user_id),
                gsi1sk: keys::msg_sk(self.id),
                kind: "message".into(),
                user_id: user_id.into(),
                conversation_id: conversation,
                role: self.role,
                content: self.content.clone(),
                status: self.status,
                created_at: self.created_at.clone(),
                model: self.model.clone(),
                provider: self.provider.clone(),
                usage: self.usage.map(|u| UsageItem {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    total_tokens: u.total_tokens,
                    estimated: u.estimated,
                }),
                attachments: self
                    .attachments
                    .iter()
                    .map(|a| AttachmentItem { inline: a.inline, url: a.url.clone() })
                    .collect(),
                answers: meta.map(|m| m.user_message_id),
                created_conversation: meta.map(|m| m.created),
                stream_title: meta.map(|m| m.title.clone()),
                replaces: meta.and_then(|m| m.replaces),
                finish_reason: meta.and_then(|m| m.finish_reason.clone()),
            },
        )
    }

    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        StoredMessage::from_item(item).map(|m| m.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Conversation {
        Conversation {
            id: ConversationId::new(),
            user_id: "u1".into(),
            title: "Salaam".into(),
            mode: Mode::Code,
            model: Some("m".into()),
            system_prompt: None,
            created_at: now_rfc3339(),
            updated_at: now_rfc3339(),
            message_count: 3,
            deleted: false,
        }
    }

    fn answer() -> (Message, AnswerMeta) {
        let m = Message {
            id: MessageId::new(),
            role: Role::Assistant,
            content: "<script>alert(1)</script> آپ".into(),
            status: MessageStatus::Incomplete,
            created_at: now_rfc3339(),
            model: Some("m".into()),
            provider: Some("p".into()),
            usage: Some(Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, estimated: true }),
            attachments: vec![
                AttachmentRef { url: Some("https://x.example/a.png".into()), inline: false },
                AttachmentRef { url: None, inline: true },
            ],
        };
        let meta = AnswerMeta {
            user_message_id: MessageId::new(),
            replaces: Some(MessageId::new()),
            created: true,
            title: "t".into(),
            finish_reason: Some("stop".into()),
        };
        (m, meta)
    }

    fn m(pairs: &[(&str, AttributeValue)]) -> AttributeValue {
        AttributeValue::M(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// The items exactly as the hand-written mapping before serde_dynamo wrote them: existing
    /// data must read, and new items must look the same to anything else reading the table.
    #[test]
    fn items_keep_their_stored_layout() {
        let c = conversation();
        let want = item(&[
            ("pk", s(format!("CONV#{}", c.id))),
            ("sk", s("META")),
            ("gsi1pk", s("USER#u1")),
            ("gsi1sk", s(format!("CONV#{}", c.id))),
            ("kind", s("conversation")),
            ("user_id", s("u1")),
            ("title", s("Salaam")),
            ("mode", s("code")),
            ("created_at", s(&c.created_at)),
            ("updated_at", s(&c.updated_at)),
            ("message_count", AttributeValue::N("3".into())),
            ("model", s("m")),
        ]);
        assert_eq!(c.to_item().unwrap(), want);
        assert_eq!(Conversation::from_item(&want).unwrap(), c);

        let (a, meta) = answer();
        let want = item(&[
            ("pk", s(format!("CONV#{}", c.id))),
            ("sk", s(format!("M#{}", a.id))),
            ("gsi1pk", s("UMSG#u1")),
            ("gsi1sk", s(format!("M#{}", a.id))),
            ("kind", s("message")),
            ("user_id", s("u1")),
            ("conversation_id", s(c.id.to_string())),
            ("role", s("assistant")),
            ("content", s(&a.content)),
            ("status", s("incomplete")),
            ("created_at", s(&a.created_at)),
            ("model", s("m")),
            ("provider", s("p")),
            (
                "usage",
                m(&[
                    ("prompt_tokens", n(1)),
                    ("completion_tokens", n(2)),
                    ("total_tokens", n(3)),
                    ("estimated", AttributeValue::Bool(true)),
                ]),
            ),
            (
                "attachments",
                AttributeValue::L(vec![
                    m(&[("inline", AttributeValue::Bool(false)), ("url", s("https://x.example/a.png"))]),
                    m(&[("inline", AttributeValue::Bool(true))]),
                ]),
            ),
            ("answers", s(meta.user_message_id.to_string())),
            ("created_conversation", AttributeValue::Bool(true)),
            ("stream_title", s("t")),
            ("replaces", s(meta.replaces.unwrap().to_string())),
            ("finish_reason", s("stop")),
        ]);
        assert_eq!(a.to_item(c.id, "u1", Some(&meta)).unwrap(), want);
        let read = StoredMessage::from_item(&want).unwrap();
        assert_eq!(read, StoredMessage { conversation: c.id, user_id: "u1".into(), message: a, meta: Some(meta) });
    }

    #[test]
    fn items_round_trip() {
        let mut c = conversation();
        c.system_prompt = Some("Be brief.".into());
        c.model = None;
        assert_eq!(Conversation::from_item(&c.to_item().unwrap()).unwrap(), c);
        let mut deleting = c.to_item().unwrap();
        deleting.insert("deleted_at".into(), s(now_rfc3339()));
        assert!(Conversation::from_item(&deleting).unwrap().deleted);

        let (a, meta) = answer();
        let bare = AnswerMeta { replaces: None, finish_reason: None, ..meta.clone() };
        for meta in [None, Some(&meta), Some(&bare)] {
            let read = StoredMessage::from_item(&a.to_item(c.id, "u1", meta).unwrap()).unwrap();
            assert_eq!((read.message, read.meta.as_ref()), (a.clone(), meta));
        }
        for status in
            [MessageStatus::Complete, MessageStatus::Incomplete, MessageStatus::Streaming, MessageStatus::Failed]
        {
            let user = Message {
                role: Role::User,
                status,
                model: None,
                provider: None,
                usage: None,
                attachments: Vec::new(),
                ..a.clone()
            };
            let item = user.to_item(c.id, "u1", None).unwrap();
            assert_eq!(item["status"], s(status.as_str()));
            assert!(!item.contains_key("usage") && !item.contains_key("attachments") && !item.contains_key("answers"));
            assert_eq!(Message::from_item(&item).unwrap(), user);
        }
    }

    /// What each case reports; `Corrupt`, never a default and never a panic.
    fn corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
        match r {
            Err(StoreError::Corrupt(why)) => why,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// `item` with attribute `k` set to `v`, or removed.
    fn altered(item: &Item, k: &str, v: Option<AttributeValue>) -> Item {
        let mut item = item.clone();
        match v {
            Some(v) => item.insert(k.into(), v),
            None => item.remove(k),
        };
        item
    }

    #[test]
    fn a_missing_or_garbled_attribute_is_an_error_naming_it() {
        let c = conversation();
        let good = c.to_item().unwrap();
        let with = |k: &str, v: Option<AttributeValue>| Conversation::from_item(&altered(&good, k, v));
        let why = corrupt(with("message_count", Some(AttributeValue::N("12secret".into()))));
        assert!(why.contains("`message_count`") && !why.contains("secret"), "{why}");
        assert!(corrupt(with("message_count", None)).contains("missing field `message_count`"));
        assert!(corrupt(with("message_count", Some(s("3")))).contains("`message_count`"));
        assert!(corrupt(with("message_count", Some(AttributeValue::N("-1".into())))).contains("`message_count`"));
        assert!(corrupt(with("mode", Some(s("secret-mode")))).contains("`mode`"));
        assert!(corrupt(with("user_id", None)).contains("user_id"));
        assert!(corrupt(with("pk", Some(s("CONV#not-an-id")))).contains("`pk`"));
        // Named too: why the key attributes are not one `#[serde(flatten)]` struct shared by both
        // items (a flattened field's error loses its attribute name).
        assert!(corrupt(with("gsi1pk", Some(n(7)))).contains("`gsi1pk`"));
        assert!(corrupt(with("kind", None)).contains("missing field `kind`"));

        let (a, meta) = answer();
        let good = a.to_item(c.id, "u1", Some(&meta)).unwrap();
        let with = |k: &str, v: Option<AttributeValue>| StoredMessage::from_item(&altered(&good, k, v));
        let garbled_usage =
            m(&[("prompt_tokens", AttributeValue::N("x".into())), ("completion_tokens", n(2)), ("total_tokens", n(3))]);
        assert!(corrupt(with("usage", Some(garbled_usage))).contains("`usage.prompt_tokens`"));
        assert!(corrupt(with("usage", Some(m(&[("prompt_tokens", n(1))])))).contains("completion_tokens"));
        assert!(corrupt(with("role", Some(s("system")))).contains("`role`"));
        assert!(corrupt(with("status", Some(s("done")))).contains("`status`"));
        assert!(corrupt(with("status", None)).contains("status"));
        assert!(corrupt(with("content", Some(n(1)))).contains("`content`"));
        assert!(corrupt(with("attachments", Some(AttributeValue::L(vec![s("x")])))).contains("attachments"));
        assert!(corrupt(with("answers", Some(s("not-an-id")))).contains("`answers`"));
        assert!(corrupt(with("stream_title", None)).contains("stream_title"));
        assert!(corrupt(with("sk", Some(s("META")))).contains("`sk`"));
        assert!(corrupt(with("conversation_id", None)).contains("conversation_id"));
    }
}
