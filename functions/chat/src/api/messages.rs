//! An answer as the client gets it: stored whole, or the first and last events of its stream
//! (`POST /api/v1/chat/completions` and `GET /api/v1/chat/messages/{message_id}/stream`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{Role, Usage};

/// The stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AnswerMessage {
    pub id: MessageId,
    pub role: Role,
    pub content: String,
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
