//! What the store keeps, and how each maps to a DynamoDB item.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

use super::StoreError;
use super::ids::{ConversationId, MessageId};
use super::keys;
use crate::modes::Mode;

pub type Item = HashMap<String, AttributeValue>;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
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

    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("incomplete") => MessageStatus::Incomplete,
            Some("streaming") => MessageStatus::Streaming,
            Some("failed") => MessageStatus::Failed,
            _ => MessageStatus::Complete,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttachmentRef {
    /// The image's URL (web images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "https://example.com/photo.png")]
    pub url: Option<String>,
    /// The image was sent inline (a data URL, not stored).
    pub inline: bool,
}

/// A message of a conversation.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "llama-3.1-8b-instant")]
    pub model: Option<String>,
    /// The provider that served an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "groq")]
    pub provider: Option<String>,
    /// Token counts of an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub usage: Option<Usage>,
    /// Images a user message carried (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
}

/// A conversation of the caller's.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "llama-3.1-8b-instant")]
    pub model: Option<String>,
    /// The system prompt it was started with.
    #[serde(skip_serializing_if = "Option::is_none")]
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

impl AnswerMeta {
    pub fn write(&self, item: &mut Item) {
        item.insert("answers".into(), s(self.user_message_id.to_string()));
        item.insert("created_conversation".into(), AttributeValue::Bool(self.created));
        item.insert("stream_title".into(), s(&self.title));
        if let Some(r) = self.replaces {
            item.insert("replaces".into(), s(r.to_string()));
        }
        if let Some(f) = &self.finish_reason {
            item.insert("finish_reason".into(), s(f));
        }
    }

    /// `None` for items written before answers kept it (and for user messages).
    pub fn read(item: &Item) -> Option<Self> {
        let id = |k: &str| opt_s(item, k).and_then(|v| v.parse::<MessageId>().ok());
        Some(Self {
            user_message_id: id("answers")?,
            replaces: id("replaces"),
            created: item.get("created_conversation").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
            title: opt_s(item, "stream_title").unwrap_or_default(),
            finish_reason: opt_s(item, "finish_reason"),
        })
    }
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

fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, StoreError> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| StoreError::Corrupt(format!("no {k}")))
}

fn opt_s(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, k: &str) -> u64 {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Conversation {
    pub fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("pk".into(), s(keys::conv_pk(self.id))),
            ("sk".into(), s(keys::META_SK)),
            ("gsi1pk".into(), s(keys::user_conversations(&self.user_id))),
            ("gsi1sk".into(), s(keys::conv_gsi_sk(self.id))),
            ("kind".into(), s("conversation")),
            ("user_id".into(), s(&self.user_id)),
            ("title".into(), s(&self.title)),
            ("mode".into(), s(self.mode.as_str())),
            ("created_at".into(), s(&self.created_at)),
            ("updated_at".into(), s(&self.updated_at)),
            ("message_count".into(), n(self.message_count)),
        ]);
        if let Some(m) = &self.model {
            item.insert("model".into(), s(m));
        }
        if let Some(p) = &self.system_prompt {
            item.insert("system_prompt".into(), s(p));
        }
        item
    }

    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        let id = keys::parse_conv_pk(get_s(item, "pk")?).ok_or_else(|| StoreError::Corrupt("bad pk".into()))?;
        Ok(Self {
            id,
            user_id: get_s(item, "user_id")?.to_string(),
            title: opt_s(item, "title").unwrap_or_default(),
            mode: opt_s(item, "mode").and_then(|m| Mode::parse(&m)).unwrap_or_default(),
            model: opt_s(item, "model"),
            system_prompt: opt_s(item, "system_prompt"),
            created_at: opt_s(item, "created_at").unwrap_or_default(),
            updated_at: opt_s(item, "updated_at").unwrap_or_default(),
            message_count: get_n(item, "message_count"),
            deleted: item.contains_key("deleted_at"),
        })
    }
}

impl Message {
    /// The item of this message in `conversation`, owned by `user_id`.
    pub fn to_item(&self, conversation: ConversationId, user_id: &str) -> Item {
        let mut item = Item::from([
            ("pk".into(), s(keys::conv_pk(conversation))),
            ("sk".into(), s(keys::msg_sk(self.id))),
            ("gsi1pk".into(), s(keys::user_messages(user_id))),
            ("gsi1sk".into(), s(keys::msg_sk(self.id))),
            ("kind".into(), s("message")),
            ("user_id".into(), s(user_id)),
            ("conversation_id".into(), s(conversation.to_string())),
            ("role".into(), s(self.role.as_str())),
            ("content".into(), s(&self.content)),
            ("status".into(), s(self.status.as_str())),
            ("created_at".into(), s(&self.created_at)),
        ]);
        if let Some(m) = &self.model {
            item.insert("model".into(), s(m));
        }
        if let Some(p) = &self.provider {
            item.insert("provider".into(), s(p));
        }
        if let Some(u) = &self.usage {
            let mut usage = HashMap::from([
                ("prompt_tokens".to_string(), n(u.prompt_tokens)),
                ("completion_tokens".to_string(), n(u.completion_tokens)),
                ("total_tokens".to_string(), n(u.total_tokens)),
            ]);
            if u.estimated {
                usage.insert("estimated".into(), AttributeValue::Bool(true));
            }
            item.insert("usage".into(), AttributeValue::M(usage));
        }
        if !self.attachments.is_empty() {
            let list = self
                .attachments
                .iter()
                .map(|a| {
                    let mut m = HashMap::from([("inline".to_string(), AttributeValue::Bool(a.inline))]);
                    if let Some(u) = &a.url {
                        m.insert("url".into(), s(u));
                    }
                    AttributeValue::M(m)
                })
                .collect();
            item.insert("attachments".into(), AttributeValue::L(list));
        }
        item
    }

    pub fn from_item(item: &Item) -> Result<Self, StoreError> {
        let id = keys::parse_msg_sk(get_s(item, "sk")?).ok_or_else(|| StoreError::Corrupt("bad message sk".into()))?;
        let role = match get_s(item, "role")? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(StoreError::Corrupt(format!("unknown role {other}"))),
        };
        let status = MessageStatus::parse(opt_s(item, "status").as_deref());
        let usage = item.get("usage").and_then(|v| v.as_m().ok()).map(|m| Usage {
            prompt_tokens: get_n(m, "prompt_tokens"),
            completion_tokens: get_n(m, "completion_tokens"),
            total_tokens: get_n(m, "total_tokens"),
            estimated: m.get("estimated").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        });
        let attachments = item
            .get("attachments")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_m().ok())
                    .map(|m| AttachmentRef {
                        url: opt_s(m, "url"),
                        inline: m.get("inline").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id,
            role,
            content: get_s(item, "content")?.to_string(),
            status,
            created_at: opt_s(item, "created_at").unwrap_or_default(),
            model: opt_s(item, "model"),
            provider: opt_s(item, "provider"),
            usage,
            attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let c = Conversation {
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
        };
        assert_eq!(Conversation::from_item(&c.to_item()).unwrap(), c);
        let m = Message {
            id: MessageId::new(),
            role: Role::Assistant,
            content: "<script>alert(1)</script> آپ".into(),
            status: MessageStatus::Incomplete,
            created_at: now_rfc3339(),
            model: Some("m".into()),
            provider: Some("p".into()),
            usage: Some(Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, estimated: true }),
            attachments: vec![AttachmentRef { url: Some("https://x.example/a.png".into()), inline: false }],
        };
        let item = m.to_item(c.id, "u1");
        assert_eq!(item["gsi1pk"].as_s().unwrap(), "UMSG#u1");
        assert_eq!(Message::from_item(&item).unwrap(), m);
        let meta = AnswerMeta {
            user_message_id: MessageId::new(),
            replaces: Some(MessageId::new()),
            created: true,
            title: "t".into(),
            finish_reason: Some("stop".into()),
        };
        let mut item = item;
        assert_eq!(AnswerMeta::read(&item), None);
        meta.write(&mut item);
        assert_eq!(AnswerMeta::read(&item), Some(meta));
        for st in [MessageStatus::Complete, MessageStatus::Incomplete, MessageStatus::Streaming, MessageStatus::Failed]
        {
            assert_eq!(MessageStatus::parse(Some(st.as_str())), st);
        }
    }
}
