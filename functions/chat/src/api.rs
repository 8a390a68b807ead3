//! The chat API's request and response bodies. Requests deserialize strictly (unknown fields are
//! rejected) and implement the shared `Validate`, so the validated extractors (`ValidJson`,
//! `ValidQuery`) report every failing field as one 422 with JSON pointers. These impls are the
//! one place the rules live: the service re-runs the same impls on input built in code, so a
//! caller that skipped the extractors still cannot store bad data.

use baatcheet_shared::validation::{ModelId, Report, Validate, text, validate};
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
pub const MAX_PAGE: usize = 100;
pub const MAX_SEARCH_PAGE: usize = 50;
pub const MAX_QUERY_CHARS: usize = 200;
/// Longest attachment URL accepted (data URLs are bounded by the body limit and the image size).
pub const MAX_URL_CHARS: usize = 2_048;

fn yes() -> bool {
    true
}

/// An image given with a message: an `https://` URL or a `data:image/...;base64,` URL, as a string
/// or as `{ "url": ... }`. Here only its form is checked; the attachment pipeline checks the URL
/// (SSRF guard), fetches it, and verifies every file by its magic number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttachmentInput {
    Url(String),
    Object { url: String },
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

impl AttachmentInput {
    pub fn url(&self) -> &str {
        match self {
            AttachmentInput::Url(u) | AttachmentInput::Object { url: u } => u,
        }
    }

    pub fn is_inline(&self) -> bool {
        starts_with_ci(self.url(), "data:")
    }

    /// The JSON pointer of this attachment's URL in a request (`/attachments/0` or `/attachments/0/url`).
    pub fn pointer(&self, index: usize) -> String {
        match self {
            AttachmentInput::Url(_) => format!("/attachments/{index}"),
            AttachmentInput::Object { .. } => format!("/attachments/{index}/url"),
        }
    }
}

fn check_attachment_url(r: &mut Report, url: &str) {
    let web = starts_with_ci(url, "https://") || starts_with_ci(url, "http://");
    if !(web || starts_with_ci(url, "data:")) {
        r.fail("must be an https URL or an image data URL");
    } else if web && url.chars().count() > MAX_URL_CHARS {
        r.fail(format!("must be at most {MAX_URL_CHARS} characters"));
    }
}

impl Validate for AttachmentInput {
    fn validate(&mut self, r: &mut Report) {
        match self {
            AttachmentInput::Url(u) => check_attachment_url(r, u),
            AttachmentInput::Object { url } => r.at("url", |r| check_attachment_url(r, url)),
        }
    }
}

/// `model`: a model id in the form providers spell them (the shared `ModelId` rule).
fn check_model(r: &mut Report, model: Option<&str>) {
    if let Some(m) = model
        && let Err(e) = m.parse::<ModelId>()
    {
        r.fail_at("model", e.to_string());
    }
}

/// `temperature` 0-2 (0 is a value, not "unset"); `max_tokens` 1-8192.
fn check_sampling(r: &mut Report, temperature: Option<f64>, max_tokens: Option<u32>) {
    if let Some(t) = temperature
        && !(t.is_finite() && (0.0..=2.0).contains(&t))
    {
        r.fail_at("temperature", "must be between 0 and 2");
    }
    if let Some(t) = max_tokens {
        text::range(r, "max_tokens", t, 1, MAX_TOKENS);
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

impl Validate for CompletionRequest {
    fn validate(&mut self, r: &mut Report) {
        // Message content is kept byte-exact: only blank text, control characters and length fail.
        text::content(r, "message", &self.message, MAX_MESSAGE_CHARS);
        // A blank system prompt means none.
        if self.system_prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
            self.system_prompt = None;
        }
        if let Some(p) = &self.system_prompt
            && let Err(e) = text::check_content(p, MAX_SYSTEM_PROMPT_CHARS)
        {
            r.fail_at("system_prompt", e.to_string());
        }
        check_model(r, self.model.as_deref());
        check_sampling(r, self.temperature, self.max_tokens);
        r.each("attachments", &mut self.attachments);
    }
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

impl CompletionRequest {
    /// Splits off `stream` (the request was validated by its extractor).
    pub fn into_input(self) -> (CompletionInput, bool) {
        let input = CompletionInput {
            message: self.message,
            conversation_id: self.conversation_id,
            model: self.model,
            mode: self.mode,
            system_prompt: self.system_prompt.filter(|p| !p.trim().is_empty()),
            temperature: self.temperature.map(|t| t as f32),
            max_tokens: self.max_tokens,
            attachments: self.attachments,
        };
        (input, self.stream)
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

    /// The request's rules (the same `Validate` impl), for input built in code.
    pub fn validate(&self) -> Result<(), ApiError> {
        let request = CompletionRequest {
            message: self.message.clone(),
            conversation_id: self.conversation_id,
            model: self.model.clone(),
            mode: self.mode,
            system_prompt: self.system_prompt.clone(),
            temperature: self.temperature.map(f64::from),
            max_tokens: self.max_tokens,
            stream: true,
            attachments: self.attachments.clone(),
        };
        validate(request, "").map(|_| ())
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

impl Validate for RegenerateRequest {
    fn validate(&mut self, r: &mut Report) {
        check_model(r, self.model.as_deref());
        check_sampling(r, self.temperature, self.max_tokens);
    }
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

    /// The request's rules, for input built in code.
    pub fn validate(&self) -> Result<(), ApiError> {
        let request = RegenerateRequest {
            conversation_id: self.conversation_id,
            stream: true,
            model: self.model.clone(),
            mode: self.mode,
            temperature: self.temperature.map(f64::from),
            max_tokens: self.max_tokens,
        };
        validate(request, "").map(|_| ())
    }
}

impl RegenerateRequest {
    pub fn into_input(self) -> (RegenerateInput, bool) {
        (
            RegenerateInput {
                conversation_id: self.conversation_id,
                model: self.model,
                mode: self.mode,
                temperature: self.temperature.map(|t| t as f32),
                max_tokens: self.max_tokens,
            },
            self.stream,
        )
    }
}

/// `PATCH /api/v1/conversations/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub title: String,
}

impl Validate for RenameRequest {
    /// A title is a short identifier: NFC, trimmed, one line, no control or bidi-override characters.
    fn validate(&mut self, r: &mut Report) {
        text::identifier(r, "title", &mut self.title, 1, title::MAX_TITLE);
    }
}

/// Query of the list endpoints (`?limit=&cursor=`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<Cursor>,
}

impl Validate for PageQuery {
    fn validate(&mut self, r: &mut Report) {
        if let Some(l) = self.limit {
            text::range(r, "limit", l, 1, MAX_PAGE as u32);
        }
    }
}

impl PageQuery {
    /// `default` items when no limit is given.
    pub fn page(&self, default: usize) -> PageRequest {
        PageRequest { limit: self.limit.map_or(default, |l| l as usize), cursor: self.cursor }
    }
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

/// `GET /api/v1/conversations/search?q=&limit=&cursor=`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<Cursor>,
}

/// The rules of a search, shared by the query's `Validate` and the service's own check.
pub fn check_search(r: &mut Report, q: &str, cursor: Option<&Cursor>) {
    let chars = q.chars().count();
    if q.trim().is_empty() {
        r.fail_at("q", "must not be empty");
    } else if q.trim() != q || chars > MAX_QUERY_CHARS {
        r.fail_at("q", format!("must be 1-{MAX_QUERY_CHARS} characters"));
    } else if let Err(e) = text::check_free_text(q) {
        r.fail_at("q", e.to_string());
    }
    if cursor.is_some_and(|c| !c.is_search()) {
        r.fail_at("cursor", "is not a valid cursor");
    }
}

impl Validate for SearchQuery {
    fn validate(&mut self, r: &mut Report) {
        let trimmed = self.q.trim();
        if trimmed.len() != self.q.len() {
            self.q = trimmed.to_string();
        }
        check_search(r, &self.q, self.cursor.as_ref());
        if let Some(l) = self.limit {
            text::range(r, "limit", l, 1, MAX_SEARCH_PAGE as u32);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Trimmed, 1-200 characters.
    pub q: String,
    pub page: PageRequest,
}

impl SearchQuery {
    pub fn into_request(self) -> SearchRequest {
        SearchRequest {
            q: self.q,
            page: PageRequest { limit: self.limit.map_or(20, |l| l as usize), cursor: self.cursor },
        }
    }
}

/// `POST /api/v1/chat/transcribe?language=&model=` (the audio is the multipart body's `file`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscribeQuery {
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// An ISO 639-1 (or 639-2) code such as `ur` or `en`, lowercase.
pub fn valid_language(l: &str) -> bool {
    (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase())
}

impl Validate for TranscribeQuery {
    fn validate(&mut self, r: &mut Report) {
        if let Some(l) = &self.language
            && !valid_language(l)
        {
            r.fail_at("language", "must be an ISO 639-1 code such as ur or en");
        }
        check_model(r, self.model.as_deref());
    }
}

/// A single field failure as the 422 the extractors would give.
pub fn field_error(pointer: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(pointer, detail)])
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
    use baatcheet_shared::validation::parse_query;
    use serde_json::json;

    fn req(v: serde_json::Value) -> Result<CompletionRequest, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn pointers<T: Validate>(v: T, base: &str) -> Vec<String> {
        match validate(v, base) {
            Err(ApiError::Validation(e)) => e.into_iter().map(|f| f.pointer).collect(),
            Err(other) => panic!("{other:?}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn defaults() {
        let r = validate(req(json!({"message": "salaam"})).unwrap(), "").unwrap();
        let (input, stream) = r.into_input();
        assert!(stream);
        assert_eq!(input, CompletionInput::new("salaam"));
        let r = validate(req(json!({"message": "x", "temperature": 0, "stream": false})).unwrap(), "").unwrap();
        let (input, stream) = r.into_input();
        assert!(!stream);
        assert_eq!(input.temperature, Some(0.0));
        let r = validate(req(json!({"message": "x", "system_prompt": "  "})).unwrap(), "").unwrap();
        assert_eq!(r.system_prompt, None, "a blank system prompt is none");
    }

    #[test]
    fn every_bad_field_is_named() {
        let r = req(json!({
            "message": "   ",
            "system_prompt": "p".repeat(4001),
            "temperature": 2.5,
            "max_tokens": 0,
            "model": "",
            "attachments": ["ftp://plain.example/a.png", {"url": "javascript:alert(1)"}, "https://ok.example/a.png",
                            "data:image/png;base64,AAAA", format!("https://a.example/{}", "x".repeat(3000))]
        }))
        .unwrap();
        let p = pointers(r, "");
        assert_eq!(
            p,
            [
                "/message",
                "/system_prompt",
                "/model",
                "/temperature",
                "/max_tokens",
                "/attachments/0",
                "/attachments/1/url",
                "/attachments/4"
            ]
        );
    }

    #[test]
    fn message_length_is_counted_in_characters_and_content_is_kept() {
        let urdu = "ب".repeat(MAX_MESSAGE_CHARS); // 2 bytes each: over 32,000 bytes, exactly 32,000 chars
        assert!(validate(req(json!({ "message": urdu })).unwrap(), "").is_ok());
        let long = "a".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(validate(req(json!({ "message": long })).unwrap(), "").is_err());
        let code = "  <script>alert(1)</script>\n\t";
        assert_eq!(validate(req(json!({ "message": code })).unwrap(), "").unwrap().message, code);
        assert_eq!(pointers(req(json!({"message": "bell\u{7}"})).unwrap(), ""), ["/message"]);
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
        assert_eq!(parse_query::<PageQuery>("cursor=junk").unwrap_err().status(), 422);
        assert_eq!(pointers(parse_query::<PageQuery>("limit=101").unwrap(), "/query"), ["/query/limit"]);
        assert_eq!(parse_query::<PageQuery>("").unwrap().page(20), PageRequest::first(20));
        let c = Cursor::Conversations(ConversationId::new());
        let q = parse_query::<PageQuery>(&format!("limit=100&cursor={}", c.encode())).unwrap();
        assert_eq!(q.page(20), PageRequest { limit: 100, cursor: Some(c) });
        let s = validate(parse_query::<SearchQuery>("q=%20%20chai%20%20").unwrap(), "/query").unwrap().into_request();
        assert_eq!((s.q.as_str(), s.page.limit), ("chai", 20));
        assert_eq!(pointers(parse_query::<SearchQuery>("q=+").unwrap(), "/query"), ["/query/q"]);
        assert_eq!(pointers(parse_query::<SearchQuery>("q=x&limit=51").unwrap(), "/query"), ["/query/limit"]);
        let q = format!("q=x&cursor={}", c.encode());
        assert_eq!(pointers(parse_query::<SearchQuery>(&q).unwrap(), "/query"), ["/query/cursor"]);
    }

    #[test]
    fn rename_and_transcribe_rules() {
        let r = validate(RenameRequest { title: " New  name ".into() }, "").unwrap();
        assert_eq!(r.title, "New  name");
        assert_eq!(pointers(RenameRequest { title: "".into() }, ""), ["/title"]);
        assert_eq!(pointers(RenameRequest { title: "a\u{202E}b".into() }, ""), ["/title"]);
        assert_eq!(pointers(RenameRequest { title: "y".repeat(81) }, ""), ["/title"]);
        let q = TranscribeQuery { language: Some("urdu".into()), model: Some("a b".into()) };
        assert_eq!(pointers(q, "/query"), ["/query/language", "/query/model"]);
        assert!(valid_language("ur") && valid_language("en") && valid_language("urd"));
        for bad in ["", "u", "UR", "urdu", "e n", "ü"] {
            assert!(!valid_language(bad), "{bad}");
        }
    }
}
