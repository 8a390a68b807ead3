//! `GET /api/v1/conversations/search`: search the caller's messages.

use axum::Json;
use axum::extract::State;
use baatcheet_shared::ApiError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::openapi::{BadRequest, ServiceUnavailable, TooManyRequests, Unauthorized, ValidationFailed};
use baatcheet_shared::validation::ValidQuery;

use crate::api::{SearchQuery, SearchResults};

use super::ChatState;

/// Search the caller's messages
#[utoipa::path(get, path = "/api/v1/conversations/search", tag = "conversations", operation_id = "searchConversations",
    security(("clerk" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of matching conversations and messages.", body = SearchResults),
        BadRequest, Unauthorized, ValidationFailed, TooManyRequests, ServiceUnavailable,
    ))]
pub async fn search(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidQuery(query): ValidQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    Ok(Json(state.service.search(&user, &query.into_request()).await?))
}
