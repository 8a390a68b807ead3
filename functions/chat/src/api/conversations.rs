//! `/api/v1/conversations` and `/api/v1/conversations/{id}`: the list, one conversation with its
//! messages, and the rename.

use baatcheet_shared::validation::chars::IDENTIFIER_PATTERN;
use baatcheet_shared::validation::{Report, Validate, text};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use super::common::text_schema;
use crate::store::model::{Conversation, Message};
use crate::title;

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
