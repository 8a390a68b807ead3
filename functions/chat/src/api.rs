//! The chat API's request and response bodies. Requests deserialize strictly (unknown fields are
//! rejected) and each has a `validate` that returns every failing field as a JSON pointer, so the
//! validated extractors of the request path can report them as one 422. The service re-checks the
//! invariants it relies on, so a route wired without validation still cannot store bad data.

use baatcheet_shared::{ApiError, FieldError};
use serde::{Deserialize, Serialize};

use crate::modes::Mode;
use crate::providers::catalog::ModelInfo;
use crate::store::cursor::Cursor;
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{Conversation, Message, Role, Usage};
use crate::store::search::SearchHit;
use crate::title;

pub const MAX_MESSAGE_CHARS: usize = 32_000;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 4_000;
pub const MAX_TOKENS: u32 = 8_192;
pub const MAX_ATTACHMENTS: usize = 5;
pub const MAX_MODEL_ID: usize = 100;
pub const MAX_PAGE: usize = 100;
pub const MAX_SEARCH_PAGE: usize = 50;
pub const MAX_QUERY_CHARS: usize = 200;

fn yes() -> bool {
    true
}

/// An image given with a message: a `https://` URL or a `data:image/...` URL, as a string or as
/// `{ "url": ... }`. Deeper checks (SSRF, magic numbers, size) belong to the input-hardening layer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttachmentInput {
    Url(String),
    Object { url: String },
}

impl AttachmentInput {
    pub fn url(&self) -> &str {
        match self {
            AttachmentInput::Url(u) | AttachmentInput::Object { url: u } => u,
        }
    }

    pub fn is_inline(&self) -> bool {
        self.url().starts_with("data:")
    }
}

/// `POST /api/v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionRequest {
    pub message: String,
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default = "yes")]
    pub stream: bool,
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
}

/// What the completion service takes: a validated request without the transport choice.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionInput {
    pub message: String,
    pub conversation_id: Option<ConversationId>,
    pub model: Option<String>,
    pub mode: Option<Mode>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub attachments: Vec<AttachmentInput>,
}

fn check_temperature(t: Option<f64>, errors: &mut Vec<FieldError>) {
    if let Some(t) = t
        && !(t.is_finite() && (0.0..=2.0).contains(&t))
    {
        errors.push(FieldError::new("/temperature", "must be between 0 and 2"));
    }
}

fn check_max_tokens(t: Option<u32>, errors: &mut Vec<FieldError>) {
    if let Some(t) = t
        && !(1..=MAX_TOKENS).contains(&t)
    {
        errors.push(FieldError::new("/max_tokens", format!("must be between 1 and {MAX_TOKENS}")));
    }
}

fn check_model(m: Option<&str>, errors: &mut Vec<FieldError>) {
    if let Some(m) = m
        && (m.trim().is_empty() || m.chars().count() > MAX_MODEL_ID)
    {
        errors.push(FieldError::new("/model", format!("must be 1-{MAX_MODEL_ID} characters")));
    }
}

impl CompletionRequest {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let chars = self.message.chars().count();
        if chars == 0 || self.message.trim().is_empty() {
            errors.push(FieldError::new("/message", "must not be empty"));
        } else if chars > MAX_MESSAGE_CHARS {
            errors.push(FieldError::new("/message", format!("must be at most {MAX_MESSAGE_CHARS} characters")));
        }
        if let Some(p) = &self.system_prompt
            && p.chars().count() > MAX_SYSTEM_PROMPT_CHARS
        {
            errors.push(FieldError::new(
                "/system_prompt",
                format!("must be at most {MAX_SYSTEM_PROMPT_CHARS} characters"),
            ));
        }
        check_model(self.model.as_deref(), &mut errors);
        check_temperature(self.temperature, &mut errors);
        check_max_tokens(self.max_tokens, &mut errors);
        if self.attachments.len() > MAX_ATTACHMENTS {
            errors.push(FieldError::new("/attachments", format!("at most {MAX_ATTACHMENTS} images")));
        }
        for (i, a) in self.attachments.iter().enumerate() {
            let u = a.url();
            if !(u.starts_with("https://") || u.starts_with("data:image/")) {
                errors.push(FieldError::new(format!("/attachments/{i}"), "must be an https URL or an image data URL"));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Validates and splits off `stream`.
    pub fn into_input(self) -> Result<(CompletionInput, bool), ApiError> {
        self.validate().map_err(ApiError::Validation)?;
        let input = CompletionInput {
            message: self.message,
            conversation_id: self.conversation_id,
            model: self.model.map(|m| m.trim().to_string()),
            mode: self.mode,
            system_prompt: self.system_prompt.filter(|p| !p.trim().is_empty()),
            temperature: self.temperature.map(|t| t as f32),
            max_tokens: self.max_tokens,
            attachments: self.attachments,
        };
        Ok((input, self.stream))
    }
}

impl CompletionInput {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            conversation_id: None,
            model: None,
            mode: None,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
            attachments: Vec::new(),
        }
    }

    /// The same rules as the request's, for inputs built in code.
    pub fn validate(&self) -> Result<(), ApiError> {
        CompletionRequest {
            message: self.message.clone(),
            conversation_id: self.conversation_id,
            model: self.model.clone(),
            mode: self.mode,
            system_prompt: self.system_prompt.clone(),
            temperature: self.temperature.map(f64::from),
            max_tokens: self.max_tokens,
            stream: true,
            attachments: self.attachments.clone(),
        }
        .validate()
        .map_err(ApiError::Validation)
    }
}

/// `POST /api/v1/chat/regenerate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    pub conversation_id: ConversationId,
    #[serde(default = "yes")]
    pub stream: bool,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegenerateInput {
    pub conversation_id: ConversationId,
    pub model: Option<String>,
    pub mode: Option<Mode>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

impl RegenerateInput {
    pub fn new(conversation_id: ConversationId) -> Self {
        Self { conversation_id, model: None, mode: None, temperature: None, max_tokens: None }
    }
}

impl RegenerateRequest {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_model(self.model.as_deref(), &mut errors);
        check_temperature(self.temperature, &mut errors);
        check_max_tokens(self.max_tokens, &mut errors);
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    pub fn into_input(self) -> Result<(RegenerateInput, bool), ApiError> {
        self.validate().map_err(ApiError::Validation)?;
        Ok((
            RegenerateInput {
                conversation_id: self.conversation_id,
                model: self.model.map(|m| m.trim().to_string()),
                mode: self.mode,
                temperature: self.temperature.map(|t| t as f32),
                max_tokens: self.max_tokens,
            },
            self.stream,
        ))
    }
}

/// `PATCH /api/v1/conversations/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub title: String,
}

impl RenameRequest {
    /// The cleaned title, or the field error.
    pub fn validate(&self) -> Result<String, Vec<FieldError>> {
        title::normalise_user_title(&self.title).ok_or_else(|| {
            vec![FieldError::new("/title", format!("must be 1-{} characters of text", title::MAX_TITLE))]
        })
    }
}

/// Query of the list endpoints (`?limit=&cursor=`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        Self { limit, cursor: None }
    }
}

fn invalid_cursor() -> FieldError {
    FieldError::new("/query/cursor", "is not a valid cursor")
}

fn page_limit(limit: Option<u32>, default: usize, max: usize, errors: &mut Vec<FieldError>) -> usize {
    match limit {
        None => default,
        Some(l) if (1..=max as u32).contains(&l) => l as usize,
        Some(_) => {
            errors.push(FieldError::new("/query/limit", format!("must be between 1 and {max}")));
            default
        }
    }
}

fn decode_cursor(raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Cursor> {
    let c = raw.map(Cursor::decode).transpose();
    c.unwrap_or_else(|_| {
        errors.push(invalid_cursor());
        None
    })
}

impl PageQuery {
    /// `default` items when no limit is given; at most `MAX_PAGE`.
    pub fn validate(&self, default: usize) -> Result<PageRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = page_limit(self.limit, default, MAX_PAGE, &mut errors);
        let cursor = decode_cursor(self.cursor.as_deref(), &mut errors);
        if errors.is_empty() { Ok(PageRequest { limit, cursor }) } else { Err(errors) }
    }
}

/// `GET /api/v1/conversations/search?q=&limit=&cursor=`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Trimmed, 1-200 characters.
    pub q: String,
    pub page: PageRequest,
}

impl SearchQuery {
    pub fn validate(&self) -> Result<SearchRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let q = self.q.trim();
        if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
            errors.push(FieldError::new("/query/q", format!("must be 1-{MAX_QUERY_CHARS} characters")));
        }
        let limit = page_limit(self.limit, 20, MAX_SEARCH_PAGE, &mut errors);
        let cursor = decode_cursor(self.cursor.as_deref(), &mut errors);
        if cursor.is_some_and(|c| !c.is_search()) {
            errors.push(invalid_cursor());
        }
        if errors.is_empty() {
            Ok(SearchRequest { q: q.to_string(), page: PageRequest { limit, cursor } })
        } else {
            Err(errors)
        }
    }
}

// ---- responses ----

#[derive(Debug, Clone, Serialize)]
pub struct ModelsResponse {
    pub models: Vec<ModelInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    /// One page, oldest first within the page; `next_cursor` leads to older messages.
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    pub next_cursor: Option<String>,
    /// Items read for this page (the work per request is bounded).
    pub scanned: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerMessage {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
}

/// The non-streamed completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionResponse {
    pub conversation_id: ConversationId,
    pub message: AnswerMessage,
    pub model: String,
    pub provider: String,
    pub usage: Usage,
}

/// `event: conversation`, first on every stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStart {
    pub conversation_id: ConversationId,
    /// The user message being answered.
    pub user_message_id: MessageId,
    /// The id the answer will be stored under (also in `done`).
    pub message_id: MessageId,
    pub title: String,
    /// A new conversation was created for this request.
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<MessageId>,
}

/// `event: done`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamDone {
    pub message_id: MessageId,
    pub model: String,
    pub provider: String,
    pub usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcription {
    pub text: String,
    pub language: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: serde_json::Value) -> Result<CompletionRequest, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn pointers(e: Vec<FieldError>) -> Vec<String> {
        e.into_iter().map(|f| f.pointer).collect()
    }

    #[test]
    fn defaults() {
        let (input, stream) = req(json!({"message": "salaam"})).unwrap().into_input().unwrap();
        assert!(stream);
        assert_eq!(input, CompletionInput::new("salaam"));
        let (input, stream) =
            req(json!({"message": "x", "temperature": 0, "stream": false})).unwrap().into_input().unwrap();
        assert!(!stream);
        assert_eq!(input.temperature, Some(0.0));
    }

    #[test]
    fn every_bad_field_is_named() {
        let r = req(json!({
            "message": "   ",
            "system_prompt": "p".repeat(4001),
            "temperature": 2.5,
            "max_tokens": 0,
            "model": "",
            "attachments": ["http://plain.example/a.png", {"url": "javascript:alert(1)"}, "https://ok.example/a.png",
                            "data:image/png;base64,AAAA", "https://a", "https://b"]
        }))
        .unwrap();
        let p = pointers(r.validate().unwrap_err());
        for want in [
            "/message",
            "/system_prompt",
            "/temperature",
            "/max_tokens",
            "/model",
            "/attachments",
            "/attachments/0",
            "/attachments/1",
        ] {
            assert!(p.contains(&want.to_string()), "{want} missing from {p:?}");
        }
        assert!(!p.contains(&"/attachments/2".to_string()));
        assert!(!p.contains(&"/attachments/3".to_string()));
    }

    #[test]
    fn message_length_is_counted_in_characters() {
        let urdu = "ب".repeat(MAX_MESSAGE_CHARS); // 2 bytes each: over 32,000 bytes, exactly 32,000 chars
        assert!(req(json!({ "message": urdu })).unwrap().validate().is_ok());
        let long = "a".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(req(json!({ "message": long })).unwrap().validate().is_err());
    }

    #[test]
    fn strict_shapes() {
        assert!(req(json!({"message": "x", "extra": 1})).is_err());
        assert!(req(json!({"message": "x", "mode": "admin"})).is_err());
        assert!(req(json!({"message": "x", "conversation_id": "not-an-id"})).is_err());
        assert!(req(json!({"message": "x", "max_tokens": -1})).is_err());
        assert!(req(json!({"message": 5})).is_err());
    }

    #[test]
    fn page_and_search_queries() {
        let q = PageQuery { limit: Some(101), cursor: Some("junk".into()) };
        assert_eq!(pointers(q.validate(20).unwrap_err()), ["/query/limit", "/query/cursor"]);
        assert_eq!(PageQuery::default().validate(20).unwrap(), PageRequest::first(20));
        let c = Cursor::Conversations(ConversationId::new());
        let q = PageQuery { limit: Some(100), cursor: Some(c.encode()) };
        assert_eq!(q.validate(20).unwrap(), PageRequest { limit: 100, cursor: Some(c) });
        let s = SearchQuery { q: "  chai  ".into(), limit: None, cursor: None }.validate().unwrap();
        assert_eq!((s.q.as_str(), s.page.limit), ("chai", 20));
        assert!(SearchQuery { q: " ".into(), limit: None, cursor: None }.validate().is_err());
        assert!(SearchQuery { q: "x".into(), limit: Some(51), cursor: None }.validate().is_err());
        assert!(SearchQuery { q: "x".into(), limit: None, cursor: Some(c.encode()) }.validate().is_err());
    }

    #[test]
    fn rename_validation() {
        assert_eq!(RenameRequest { title: " New  name ".into() }.validate().unwrap(), "New name");
        assert!(RenameRequest { title: "".into() }.validate().is_err());
    }
}
