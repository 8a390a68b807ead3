//! The chat API's request and response bodies, one module per resource. Requests deserialize
//! strictly (unknown fields are rejected) and implement the shared `Validate`, so the validated
//! extractors (`ValidJson`, `ValidQuery`) report every failing field as one 422 with JSON
//! pointers. These impls are the one place the rules live: the service re-runs the same impls on
//! input built in code, so a caller that skipped the extractors still cannot store bad data.
//!
//! `common` holds what several resources share (pages, the `model` rule, the text-field schema);
//! the types are re-exported here, so callers name them `crate::api::X`.

mod attachments;
mod common;
mod completions;
mod conversations;
mod messages;
mod models;
mod search;
#[cfg(test)]
mod tests;
mod transcribe;

pub use attachments::{AttachmentInput, AttachmentUrl, MAX_URL_CHARS};
pub use common::{CursorText, MAX_PAGE, PageQuery, PageRequest};
pub use completions::{
    CompletionInput, CompletionRequest, CompletionResponse, Generation, MAX_MESSAGE_CHARS, MAX_SYSTEM_PROMPT_CHARS,
    MAX_TOKENS, MessageText, RegenerateInput, RegenerateRequest, SystemPromptText,
};
pub use conversations::{ConversationDetail, ConversationList, RenameRequest, TitleText};
pub use messages::{AnswerMessage, StreamDone, StreamStart};
pub use models::ModelsResponse;
pub use search::{
    MAX_QUERY_CHARS, MAX_SEARCH_PAGE, SearchQuery, SearchRequest, SearchResults, SearchText, check_search,
};
pub use transcribe::{TranscribeQuery, TranscribeUpload, Transcription, valid_language};
