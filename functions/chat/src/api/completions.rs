//! `POST /api/v1/chat/completions` and `POST /api/v1/chat/regenerate`: the requests, what the
//! service takes from them, and the whole (non-streamed) answer.

use baatcheet_shared::FieldError;
use baatcheet_shared::validation::chars::{CONTENT_PATTERN, OPTIONAL_CONTENT_PATTERN, is_blank};
use baatcheet_shared::validation::{ModelId, Report, Validate, check, text};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use super::attachments::AttachmentInput;
use super::common::{check_model, text_schema};
use super::messages::AnswerMessage;
use crate::modes::Mode;
use crate::store::ids::ConversationId;
use crate::store::model::Usage;

pub const MAX_MESSAGE_CHARS: usize = 32_000;
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 4_000;
pub const MAX_TOKENS: u32 = 8_192;

fn yes() -> bool {
    true
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

/// How to generate an answer: the settings a completion and a regeneration share, as the service
/// takes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    pub model: Option<String>,
    pub mode: Option<Mode>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// Declares a request body that takes [`Generation`]'s fields besides its own, so their
/// documentation and conversions are written once. A macro, not `#[serde(flatten)]`: flatten
/// routes the body through serde's buffer, which `deny_unknown_fields` does not support and which
/// loses the JSON pointer of a 422.
macro_rules! with_generation {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// One of the ids `GET /api/v1/chat/models` lists (chat-capable); absent, the conversation's
            /// model or the default one.
            #[serde(default)]
            #[schema(value_type = Option<ModelId>)]
            pub model: Option<String>,
            /// The assistant's mode for this answer (absent: the conversation's; `chat` for a new one).
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

        impl $name {
            /// The request from its own fields and `generation` (input built in code, validated by
            /// the request's rules).
            fn from_parts($($field: $ty,)* generation: &Generation) -> Self {
                Self {
                    $($field,)*
                    model: generation.model.clone(),
                    mode: generation.mode,
                    temperature: generation.temperature.map(f64::from),
                    max_tokens: generation.max_tokens,
                }
            }

            /// The generation settings (checked already by the request's `Validate`).
            fn generation(&self) -> Generation {
                Generation {
                    model: self.model.clone(),
                    mode: self.mode,
                    temperature: self.temperature.map(|t| t as f32),
                    max_tokens: self.max_tokens,
                }
            }

            /// The rules of the generation settings.
            fn check_generation(&self, r: &mut Report) {
                check_model(r, self.model.as_deref());
                check_sampling(r, self.temperature, self.max_tokens);
            }
        }
    };
}

with_generation! {
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
        // Extra instructions for a new conversation (schema and description: `SystemPromptText`).
        #[serde(default)]
        #[schema(value_type = SystemPromptText, inline)]
        pub system_prompt: Option<String>,
        /// `true` (the default): the answer as server-sent events; `false`: one JSON object.
        #[serde(default = "yes")]
        #[schema(default = true)]
        pub stream: bool,
        /// Images for a vision-capable model: at most 5 (`MAX_IMAGES_PER_MESSAGE`; more is a 413).
        #[serde(default)]
        #[schema(max_items = 5)]
        pub attachments: Vec<AttachmentInput>,
    }
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
        self.check_generation(r);
        r.each("attachments", &mut self.attachments);
    }
}

/// What the completion service takes: a validated request without the transport choice.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionInput {
    pub message: String,
    pub conversation_id: Option<ConversationId>,
    pub system_prompt: Option<String>,
    pub attachments: Vec<AttachmentInput>,
    pub generation: Generation,
}

impl CompletionRequest {
    /// Splits off `stream` (the request was validated by its extractor).
    pub fn into_input(self) -> (CompletionInput, bool) {
        let generation = self.generation();
        let input = CompletionInput {
            message: self.message,
            conversation_id: self.conversation_id,
            system_prompt: self.system_prompt.filter(|p| !is_blank(p)),
            attachments: self.attachments,
            generation,
        };
        (input, self.stream)
    }
}

impl CompletionInput {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            conversation_id: None,
            system_prompt: None,
            attachments: Vec::new(),
            generation: Generation::default(),
        }
    }

    /// The request's rules (the same `Validate` impl), for input built in code.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let request = CompletionRequest::from_parts(
            self.message.clone(),
            self.conversation_id,
            self.system_prompt.clone(),
            true,
            self.attachments.clone(),
            &self.generation,
        );
        check(request, "").map(|_| ())
    }
}

with_generation! {
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
    }
}

impl Validate for RegenerateRequest {
    fn validate(&mut self, r: &mut Report) {
        self.check_generation(r);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegenerateInput {
    pub conversation_id: ConversationId,
    pub generation: Generation,
}

impl RegenerateInput {
    pub fn new(conversation_id: ConversationId) -> Self {
        Self { conversation_id, generation: Generation::default() }
    }

    /// The request's rules, for input built in code.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        check(RegenerateRequest::from_parts(self.conversation_id, true, &self.generation), "").map(|_| ())
    }
}

impl RegenerateRequest {
    pub fn into_input(self) -> (RegenerateInput, bool) {
        (RegenerateInput { conversation_id: self.conversation_id, generation: self.generation() }, self.stream)
    }
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
