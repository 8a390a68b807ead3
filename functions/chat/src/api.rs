//! The chat API's request and response bodies. Requests deserialize strictly (unknown fields are
//! rejected) and implement the shared `Validate`, so the validated extractors (`ValidJson`,
//! `ValidQuery`) report every failing field as one 422 with JSON pointers. These impls are the
//! one place the rules live: the service re-runs the same impls on input built in code, so a
//! caller that skipped the extractors still cannot store bad data.

use baatcheet_shared::validation::chars::{
    CONTENT_PATTERN, IDENTIFIER_PATTERN, OPTIONAL_CONTENT_PATTERN, TRIMMED_TEXT_PATTERN, is_blank,
};
use baatcheet_shared::validation::{ModelId, Report, Validate, text, validate};
use baatcheet_shared::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AttachmentInput {
    #[schema(value_type = AttachmentUrl)]
    Url(String),
    Object {
        #[schema(value_type = AttachmentUrl)]
        url: String,
    },
}

/// Documentation only: the URL of an attachment, as `check_attachment_url` checks its form.
pub struct AttachmentUrl;

impl PartialSchema for AttachmentUrl {
    fn schema() -> RefOr<Schema> {
        let web = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An image on the web: an `http(s)://` URL (the scheme in any case). It is fetched only when it \
                 resolves to a public address, and the file must be an image by its magic number.",
            ))
            .pattern(Some("^[Hh][Tt][Tt][Pp][Ss]?://"))
            .max_length(Some(MAX_URL_CHARS))
            .examples(["https://example.com/photo.png"]);
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An inline image: a `data:image/...;base64,` URL (PNG, JPEG, GIF or WebP, verified by its magic \
                 number; bounded by the image size limit and the request body limit).",
            ))
            .pattern(Some("^[Dd][Aa][Tt][Aa]:"))
            .examples(["data:image/png;base64,iVBORw0KGgo="]);
        OneOfBuilder::new()
            .item(web)
            .item(data)
            .description(Some("An image URL: `https://...` or `data:image/...;base64,...`."))
            .into()
    }
}

impl ToSchema for AttachmentUrl {}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// By hand rather than `#[serde(untagged)]`: untagged buffers the value and would take an array
/// (`["https://..."]`) for the object form and ignore unknown keys in it. Exactly a string, or an
/// object with `url` and nothing else.
impl<'de> Deserialize<'de> for AttachmentInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AttachmentInput;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL string or an object {\"url\": ...}")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttachmentInput::Url(v.to_string()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AttachmentInput::Url(v))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut url = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "url" if url.is_some() => return Err(serde::de::Error::duplicate_field("url")),
                        "url" => url = Some(map.next_value::<String>()?),
                        other => return Err(serde::de::Error::unknown_field(other, &["url"])),
                    }
                }
                url.map(|url| AttachmentInput::Object { url }).ok_or_else(|| serde::de::Error::missing_field("url"))
            }
        }
        d.deserialize_any(Visit)
    }
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

// The text fields' schemas, documentation only: each states its field's limits and the shared
// text rule as a pattern (`baatcheet_shared::validation::chars`: the character classes the
// validation code uses, in one place; the tests below check pattern and validation agree).

/// A string schema: `pattern`, lengths, example, and `description` when the field's own doc
/// comment cannot carry it (a struct field with a `value_type` schema; a parameter keeps its own).
fn text_schema(
    description: Option<&str>,
    pattern: &str,
    min_length: Option<usize>,
    max_length: usize,
    example: Option<&str>,
    nullable: bool,
) -> RefOr<Schema> {
    let schema_type =
        if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) };
    #[allow(deprecated)] // `example`, like every derived schema of the API
    ObjectBuilder::new()
        .schema_type(schema_type)
        .description(description)
        .example(example.map(serde_json::Value::from))
        .min_length(min_length)
        .max_length(Some(max_length))
        .pattern(Some(pattern))
        .into()
}

/// Documentation only: `CompletionRequest::message`.
pub struct MessageText;

impl PartialSchema for MessageText {
    fn schema() -> RefOr<Schema> {
        text_schema(
            Some(
                "The user's message, kept byte-exact: 1-32,000 characters, not blank (one visible character at \
                 least: whitespace and invisible characters such as ZWSP, ZWNJ or BOM alone are blank), no \
                 control characters other than tab, line feed and carriage return.",
            ),
            CONTENT_PATTERN,
            Some(1),
            MAX_MESSAGE_CHARS,
            Some("Assalam-o-alaikum! Chai kaise banate hain?"),
            false,
        )
    }
}

impl ToSchema for MessageText {}

/// Documentation only: `CompletionRequest::system_prompt`.
pub struct SystemPromptText;

impl PartialSchema for SystemPromptText {
    fn schema() -> RefOr<Schema> {
        text_schema(
            Some(
                "Extra instructions for a new conversation: at most 4,000 characters, no control characters \
                 other than tab, line feed and carriage return. A blank one (only whitespace and invisible \
                 characters) means none.",
            ),
            OPTIONAL_CONTENT_PATTERN,
            None,
            MAX_SYSTEM_PROMPT_CHARS,
            Some("Answer in Roman Urdu."),
            true,
        )
    }
}

impl ToSchema for SystemPromptText {}

/// Documentation only: `RenameRequest::title`.
pub struct TitleText;

impl PartialSchema for TitleText {
    fn schema() -> RefOr<Schema> {
        text_schema(
            Some(
                "The new title: NFC-normalised and trimmed, then 1-80 characters on one line, not blank, \
                 without control or bidirectional-override characters.",
            ),
            IDENTIFIER_PATTERN,
            Some(1),
            title::MAX_TITLE,
            Some("Chai recipes"),
            false,
        )
    }
}

impl ToSchema for TitleText {}

/// Documentation only: `SearchQuery::q` (the parameter carries the description).
pub struct SearchText;

impl PartialSchema for SearchText {
    fn schema() -> RefOr<Schema> {
        text_schema(None, TRIMMED_TEXT_PATTERN, Some(1), MAX_QUERY_CHARS, None, false)
    }
}

impl ToSchema for SearchText {}

/// A message to answer (`POST /api/v1/chat/completions`), in a new conversation or one of the
/// caller's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "Assalam-o-alaikum! Chai kaise banate hain?", "mode": "chat", "stream": false}))]
pub struct CompletionRequest {
    // The user's message (schema and description: `MessageText`).
    #[schema(value_type = MessageText, inline)]
    pub message: String,
    /// The caller's conversation to continue; absent, a new conversation is created.
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    /// One of the ids `GET /api/v1/chat/models` lists (chat-capable); absent, the conversation's
    /// model or the default one.
    #[serde(default)]
    #[schema(value_type = Option<ModelId>)]
    pub model: Option<String>,
    /// The assistant's mode (absent: the conversation's, `chat` for a new one).
    #[serde(default)]
    pub mode: Option<Mode>,
    // Extra instructions for a new conversation (schema and description: `SystemPromptText`).
    #[serde(default)]
    #[schema(value_type = SystemPromptText, inline)]
    pub system_prompt: Option<String>,
    /// Sampling temperature, 0-2 (absent: the mode's default).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2, example = 0.7)]
    pub temperature: Option<f64>,
    /// Most tokens to generate, 1-8,192.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8192, example = 1024)]
    pub max_tokens: Option<u32>,
    /// `true` (the default): the answer as server-sent events; `false`: one JSON object.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub stream: bool,
    /// Images for a vision-capable model: at most 5 (`MAX_IMAGES_PER_MESSAGE`; more is a 413).
    #[serde(default)]
    #[schema(max_items = 5)]
    pub attachments: Vec<AttachmentInput>,
}

impl Validate for CompletionRequest {
    fn validate(&mut self, r: &mut Report) {
        // Message content is kept byte-exact: only blank text, control characters and length fail.
        text::content(r, "message", &self.message, MAX_MESSAGE_CHARS);
        // A blank system prompt means none.
        if self.system_prompt.as_deref().is_some_and(is_blank) {
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
            system_prompt: self.system_prompt.filter(|p| !is_blank(p)),
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

/// Answer a conversation's last message again (`POST /api/v1/chat/regenerate`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    /// The caller's conversation whose last answer is replaced (or whose unanswered last message
    /// is answered).
    pub conversation_id: ConversationId,
    /// `true` (the default): the answer as server-sent events; `false`: one JSON object.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub stream: bool,
    /// One of the ids `GET /api/v1/chat/models` lists (chat-capable); absent, the conversation's
    /// model or the default one.
    #[serde(default)]
    #[schema(value_type = Option<ModelId>)]
    pub model: Option<String>,
    /// The assistant's mode for this answer (absent: the conversation's).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Sampling temperature, 0-2 (absent: the mode's default).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2, example = 0.7)]
    pub temperature: Option<f64>,
    /// Most tokens to generate, 1-8,192.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8192, example = 1024)]
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

/// A conversation's new title (`PATCH /api/v1/conversations/{id}`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    // The new title (schema and description: `TitleText`).
    #[schema(value_type = TitleText, inline)]
    pub title: String,
}

impl Validate for RenameRequest {
    /// A title is a short identifier: NFC, trimmed, one line, no control or bidi-override characters.
    fn validate(&mut self, r: &mut Report) {
        text::identifier(r, "title", &mut self.title, 1, title::MAX_TITLE);
    }
}

/// Query of the list endpoints (`?limit=&cursor=`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1-100 (default: 20 conversations, 50 messages).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque).
    #[serde(default)]
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9_-]+$")]
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
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The text to find in titles, then in messages: trimmed, then 1-200 characters, not blank,
    /// without control characters other than tab, line feed and carriage return. Matched in
    /// folded form (docs/chat.md, "Search"): Urdu letter variants (Arabic keyboard ك ي ه), diacritics,
    /// tatweel, joiners and digits of any script are folded; Latin is case- and accent-folded,
    /// with Roman Urdu spellings met (`salaam` = `salam`, `kese` = `kaise`).
    #[param(value_type = SearchText, inline, example = "chai")]
    pub q: String,
    /// Results per page, 1-50 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 50, example = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous search page (opaque).
    #[serde(default)]
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<Cursor>,
}

/// The rules of a search, shared by the query's `Validate` and the service's own check.
pub fn check_search(r: &mut Report, q: &str, cursor: Option<&Cursor>) {
    let chars = q.chars().count();
    if is_blank(q) {
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
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TranscribeQuery {
    /// The language of the audio: an ISO 639-1 (or 639-2) code, lowercase.
    #[serde(default)]
    #[param(min_length = 2, max_length = 3, pattern = "^[a-z]{2,3}$", example = "ur")]
    pub language: Option<String>,
    /// A transcription model `GET /api/v1/chat/models` lists with the `audio` capability (absent:
    /// the first one).
    #[serde(default)]
    #[param(value_type = Option<ModelId>)]
    pub model: Option<String>,
}

// Documentation only: the shared `AudioUpload` extractor reads the body.
/// The multipart body of `POST /api/v1/chat/transcribe`: exactly one field, `file`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TranscribeUpload {
    /// The audio file (MP3, MP4/M4A, OGG/Opus, WAV, FLAC or WebM, verified by its magic number;
    /// at most `MAX_AUDIO_BYTES`, 4 MiB by default).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
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

/// The models this deployment offers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelsResponse {
    pub models: Vec<ModelInfo>,
    /// The model a completion uses when it names none (absent when no model can chat).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "llama-3.1-8b-instant")]
    pub default_model: Option<String>,
}

/// A page of the caller's conversations, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A conversation and a page of its messages.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    /// One page, oldest first within the page; `next_cursor` leads to older messages.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the page of older messages; `null` when there are none.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page of search results: title matches first, then message matches, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    /// Pass as `cursor` to search on (older data, or the rest of a page cut short by the work
    /// bound); `null` when everything was searched.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Items read for this page (the work per request is bounded).
    #[schema(minimum = 0)]
    pub scanned: usize,
}

/// The stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AnswerMessage {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
}

/// The non-streamed completion.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CompletionResponse {
    /// The conversation (new or continued) the answer was stored in.
    pub conversation_id: ConversationId,
    pub message: AnswerMessage,
    /// The model that answered.
    #[schema(example = "llama-3.1-8b-instant")]
    pub model: String,
    /// The provider that served it.
    #[schema(example = "groq")]
    pub provider: String,
    pub usage: Usage,
}

/// `event: conversation`, first on every stream.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StreamStart {
    pub conversation_id: ConversationId,
    /// The user message being answered.
    pub user_message_id: MessageId,
    /// The id the answer will be stored under (also in `done`).
    pub message_id: MessageId,
    /// The conversation's title.
    #[schema(max_length = 80)]
    pub title: String,
    /// A new conversation was created for this request.
    pub created: bool,
    /// Regenerate: the answer this one replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub replaces: Option<MessageId>,
}

/// `event: done`, last on a stream that completed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StreamDone {
    pub message_id: MessageId,
    pub model: String,
    pub provider: String,
    pub usage: Usage,
    /// The upstream's reason to stop (`stop`, `length`, ...), when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "stop")]
    pub finish_reason: Option<String>,
}

/// The text of an audio file.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Transcription {
    #[schema(example = "Aap kaise hain?")]
    pub text: String,
    /// The language the provider detected or was told, when known.
    #[schema(required = true, example = "ur")]
    pub language: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use baatcheet_shared::validation::parse_query;
    use proptest::prelude::*;
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

    // ---- the documented schemas say what the validation enforces ----

    fn schema_json<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    fn params_json<T: IntoParams>() -> serde_json::Value {
        serde_json::to_value(T::into_params(|| None)).unwrap()
    }

    fn param<'a>(params: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        let p = params.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}"));
        &p["schema"]
    }

    /// Whether `s` meets a string schema: its pattern and its lengths (in characters).
    fn meets(schema: &serde_json::Value, s: &str) -> bool {
        let re = regex::Regex::new(schema["pattern"].as_str().expect("a pattern")).expect("the pattern compiles");
        let n = s.chars().count() as u64;
        re.is_match(s)
            && schema["minLength"].as_u64().is_none_or(|min| n >= min)
            && schema["maxLength"].as_u64().is_none_or(|max| n <= max)
    }

    #[test]
    fn schemas_state_the_limits_the_validation_enforces() {
        let c = schema_json::<CompletionRequest>();
        let p = &c["properties"];
        assert_eq!(c["additionalProperties"], false, "deny_unknown_fields");
        assert_eq!(c["required"], json!(["message"]));
        assert_eq!(p["message"]["maxLength"], MAX_MESSAGE_CHARS);
        assert_eq!(p["message"]["minLength"], 1);
        assert_eq!(p["system_prompt"]["maxLength"], MAX_SYSTEM_PROMPT_CHARS);
        assert_eq!(
            (p["temperature"]["minimum"].as_f64(), p["temperature"]["maximum"].as_f64()),
            (Some(0.0), Some(2.0))
        );
        assert_eq!((&p["max_tokens"]["minimum"], &p["max_tokens"]["maximum"]), (&json!(1), &json!(MAX_TOKENS)));
        let images = crate::safety::upload::UploadLimits::default().max_images_per_message;
        assert_eq!(p["attachments"]["maxItems"], images);
        assert_eq!(p["stream"]["default"], true);
        let r = schema_json::<RegenerateRequest>();
        assert_eq!(r["additionalProperties"], false);
        assert_eq!(r["required"], json!(["conversation_id"]));
        assert_eq!(r["properties"]["max_tokens"]["maximum"], MAX_TOKENS);
        assert_eq!(r["properties"]["temperature"]["maximum"].as_f64(), Some(2.0));
        let t = schema_json::<RenameRequest>();
        assert_eq!(t["additionalProperties"], false);
        assert_eq!(t["properties"]["title"]["maxLength"], title::MAX_TITLE);
        let page = params_json::<PageQuery>();
        assert_eq!(param(&page, "limit")["maximum"], MAX_PAGE);
        assert_eq!(param(&page, "cursor")["maxLength"], crate::store::cursor::MAX_CURSOR_LEN);
        let search = params_json::<SearchQuery>();
        assert_eq!(param(&search, "limit")["maximum"], MAX_SEARCH_PAGE);
        assert_eq!(param(&search, "q")["maxLength"], MAX_QUERY_CHARS);
        assert_eq!(param(&search, "cursor")["maxLength"], crate::store::cursor::MAX_CURSOR_LEN);
        let web = &schema_json::<AttachmentUrl>()["oneOf"][0];
        assert_eq!(web["maxLength"], MAX_URL_CHARS);
        let modes: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(schema_json::<Mode>()["enum"], json!(modes));
        // A real cursor meets the documented form.
        let cursor = crate::store::cursor::Cursor::SearchContent(ConversationId::new(), MessageId::new()).encode();
        assert!(meets(param(&search, "cursor"), &cursor), "{cursor}");
    }

    /// Characters the text rules treat specially, and ordinary ones.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\0', '\u{7}', '\u{1c}', '\u{1f}', '\u{7f}', '\u{85}',
                '\u{9f}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{200a}', '\u{200b}', '\u{200f}', '\u{2028}', '\u{2029}',
                '\u{202a}', '\u{202e}', '\u{202f}', '\u{205f}', '\u{2066}', '\u{2069}', '\u{3000}', '\u{feff}', 'a',
                'Z', '5', '<', '\u{628}', '\u{301}', '\u{200c}', '\u{200d}', '\u{61c}', '\u{ad}', '\u{fe0f}',
                '\u{2060}', '\u{640}', '\u{64e}',
            ]),
            any::<char>(),
        ]
    }

    fn tricky_string() -> impl Strategy<Value = String> {
        prop::collection::vec(tricky_char(), 0..12).prop_map(|v| v.into_iter().collect())
    }

    /// What the schema of each text field accepts, the field's validation accepts, and the other
    /// way round (so generated requests are valid, and the document refuses nothing valid).
    fn text_rules_agree(s: &str) {
        let c = schema_json::<CompletionRequest>();
        let message = validate(CompletionRequest { message: s.into(), ..req(json!({"message": "x"})).unwrap() }, "");
        assert_eq!(meets(&c["properties"]["message"], s), message.is_ok(), "message {s:?}");
        let prompt = req(json!({"message": "x", "system_prompt": s})).unwrap();
        assert_eq!(meets(&c["properties"]["system_prompt"], s), validate(prompt, "").is_ok(), "system_prompt {s:?}");
        let t = schema_json::<RenameRequest>();
        let title = validate(RenameRequest { title: s.into() }, "");
        assert_eq!(meets(&t["properties"]["title"], s), title.is_ok(), "title {s:?}");
        let search = params_json::<SearchQuery>();
        let q = validate(SearchQuery { q: s.into(), limit: None, cursor: None }, "/query");
        assert_eq!(meets(param(&search, "q"), s), q.is_ok(), "q {s:?}");
        let transcribe = params_json::<TranscribeQuery>();
        assert_eq!(meets(param(&transcribe, "language"), s), valid_language(s), "language {s:?}");
    }

    #[test]
    fn text_schemas_state_the_text_rules() {
        for s in [
            "",
            " ",
            "a",
            " a ",
            "\ta\n",
            "a\u{7}",
            "\u{85}",
            "a\u{85}",
            "\u{a0}x\u{a0}",
            "\u{202e}",
            "a\u{202e}b",
            "a\nb",
            "a\tb",
            "\u{200f}\u{628}",
            "\u{feff}",
            "\u{200b}",
            "\u{200c}\u{200d}",
            " \u{200f}\u{200c} ",
            "\u{200b}a",
            "a\u{200c}",
            " \u{feff}a\u{200b} ",
            "\u{640}",
            "\u{3000}",
            "<script>alert(1)</script>",
            "ur",
            "urd",
            "urdu",
            "UR",
            "chai  pani",
            "\r\n",
            "Cafe\u{301}",
        ] {
            text_rules_agree(s);
        }
        // The length bounds, at and past them.
        let c = schema_json::<CompletionRequest>();
        for n in [MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS + 1] {
            let s = "\u{628}".repeat(n);
            let ok = validate(req(json!({ "message": s })).unwrap(), "").is_ok();
            assert_eq!(meets(&c["properties"]["message"], &s), ok, "{n}");
        }
        for n in [MAX_SYSTEM_PROMPT_CHARS, MAX_SYSTEM_PROMPT_CHARS + 1] {
            let s = "p".repeat(n);
            let ok = validate(req(json!({"message": "x", "system_prompt": s})).unwrap(), "").is_ok();
            assert_eq!(meets(&c["properties"]["system_prompt"], &s), ok, "{n}");
        }
        for n in [title::MAX_TITLE, title::MAX_TITLE + 1] {
            text_rules_agree(&"y".repeat(n));
        }
        for n in [MAX_QUERY_CHARS, MAX_QUERY_CHARS + 1] {
            text_rules_agree(&"q".repeat(n));
        }
    }

    proptest::proptest! {
        #[test]
        fn text_schemas_agree_with_the_validation(s in tricky_string()) {
            text_rules_agree(&s);
        }
    }
}
