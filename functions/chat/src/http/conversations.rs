//! `/api/v1/conversations` and `/api/v1/conversations/{id}`: the caller's conversations.

use axum::Json;
use axum::extract::State;
use baatcheet_shared::ApiError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::openapi::{
    BadRequest, NotFound, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnsupportedMediaType,
    ValidationFailed,
};
use baatcheet_shared::validation::{ValidJson, ValidPath, ValidQuery};
use http::StatusCode;

use crate::api::{ConversationDetail, ConversationList, PageQuery, RenameRequest};
use crate::store::ids::ConversationId;
use crate::store::model::Conversation;

use super::ChatState;

/// The caller's conversations, newest first
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", operation_id = "listConversations",
    security(("clerk" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of conversations.", body = ConversationList),
        BadRequest, Unauthorized, ValidationFailed, TooManyRequests, ServiceUnavailable,
    ))]
pub async fn list_conversations(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    Ok(Json(state.service.list_conversations(&user, query.page(20)).await?))
}

/// One conversation with a page of its messages
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", operation_id = "getConversation",
    security(("clerk" = [])),
    params(("id" = inline(ConversationId), Path, description = "The conversation id."), PageQuery),
    responses(
        (status = 200, description = "The conversation and a page of messages.", body = ConversationDetail),
        BadRequest, Unauthorized, NotFound, ValidationFailed, TooManyRequests, ServiceUnavailable,
    ))]
pub async fn get_conversation(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(id): ValidPath<ConversationId>,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<ConversationDetail>, ApiError> {
    Ok(Json(state.service.get_conversation(&user, id, query.page(50)).await?))
}

/// Rename a conversation
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", operation_id = "renameConversation",
    security(("clerk" = [])),
    params(("id" = inline(ConversationId), Path, description = "The conversation id.")),
    request_body = RenameRequest,
    responses(
        (status = 200, description = "The renamed conversation.", body = Conversation),
        BadRequest, Unauthorized, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, TooManyRequests,
        ServiceUnavailable,
    ))]
pub async fn rename_conversation(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(id): ValidPath<ConversationId>,
    ValidJson(req): ValidJson<RenameRequest>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.service.rename_conversation(&user, id, &req.title).await?))
}

/// Delete a conversation and its messages
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations", operation_id = "deleteConversation",
    security(("clerk" = [])),
    params(("id" = inline(ConversationId), Path, description = "The conversation id.")),
    responses(
        (status = 204, description = "Deleted."),
        Unauthorized, NotFound, ValidationFailed, TooManyRequests, ServiceUnavailable,
    ))]
pub async fn delete_conversation(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(id): ValidPath<ConversationId>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_conversation(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
