//! HTTP adapters: turn extracted, validated requests into service calls and service results into
//! responses. The authenticated routes take an `AuthUser` the auth layer extracts; until that layer
//! is wired they are plain functions (`completions`, `regenerate`, ...) the router registers behind
//! the auth, rate-limit and validation extractors. The public models route is mounted here.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::{ApiError, AppContext, request_path};
use http::StatusCode;
use std::sync::Arc;

use crate::api::{
    CompletionRequest, ConversationDetail, ConversationList, ModelsResponse, PageQuery, RegenerateRequest,
    RenameRequest, SearchQuery, SearchResults, Transcription,
};
use crate::config::ChatConfig;
use crate::service::{ChatService, ChatStream, TranscriptionInput};
use crate::sse;
use crate::store::ids::ConversationId;
use crate::store::model::Conversation;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("chat configuration is invalid")]
    Config(#[from] baatcheet_shared::config::ConfigError),
    #[error("the upstream HTTP client could not be built")]
    Client(#[from] reqwest::Error),
}

#[derive(Clone)]
pub struct ChatState {
    pub service: Arc<ChatService>,
}

impl ChatState {
    pub fn new(ctx: &AppContext, config: ChatConfig) -> Result<Self, StartupError> {
        Ok(Self { service: Arc::new(ChatService::new(ctx, config)?) })
    }
}

/// The function's router, chat settings from the environment.
pub fn router(ctx: AppContext) -> Result<Router, StartupError> {
    let state = ChatState::new(&ctx, ChatConfig::from_env()?)?;
    Ok(router_with(state, &ctx))
}

/// The routes that need no caller, with the shared request path around them. The authenticated
/// routes are added when the auth, rate-limit and validation extractors are available.
pub fn router_with(state: ChatState, ctx: &AppContext) -> Router {
    let routes = Router::new().route("/api/v1/chat/models", get(models)).with_state(state);
    request_path::wrap(routes, ctx)
}

/// `GET /api/v1/chat/models` (public).
pub async fn models(State(state): State<ChatState>) -> Result<Json<ModelsResponse>, ApiError> {
    Ok(Json(state.service.models().await?))
}

fn sse_response(state: &ChatState, stream: ChatStream) -> Response {
    sse::response(stream.events, state.service.config().heartbeat)
}

/// `POST /api/v1/chat/completions`: SSE when `stream` (the default), else JSON.
pub async fn completions(state: &ChatState, user: &AuthUser, req: CompletionRequest) -> Response {
    let run = async {
        let (input, stream) = req.into_input()?;
        if stream {
            Ok(sse_response(state, state.service.stream_completion(user, input).await?))
        } else {
            Ok(Json(state.service.complete(user, input).await?).into_response())
        }
    };
    run.await.unwrap_or_else(|e: ApiError| e.into_response())
}

/// `POST /api/v1/chat/regenerate`: the same contract as completions.
pub async fn regenerate(state: &ChatState, user: &AuthUser, req: RegenerateRequest) -> Response {
    let run = async {
        let (input, stream) = req.into_input()?;
        if stream {
            Ok(sse_response(state, state.service.stream_regenerate(user, input).await?))
        } else {
            Ok(Json(state.service.regenerate(user, input).await?).into_response())
        }
    };
    run.await.unwrap_or_else(|e: ApiError| e.into_response())
}

/// `GET /api/v1/conversations`.
pub async fn list_conversations(
    state: &ChatState,
    user: &AuthUser,
    query: PageQuery,
) -> Result<Json<ConversationList>, ApiError> {
    let page = query.validate(20).map_err(ApiError::Validation)?;
    Ok(Json(state.service.list_conversations(user, page).await?))
}

/// `GET /api/v1/conversations/{id}`.
pub async fn get_conversation(
    state: &ChatState,
    user: &AuthUser,
    id: ConversationId,
    query: PageQuery,
) -> Result<Json<ConversationDetail>, ApiError> {
    let page = query.validate(50).map_err(ApiError::Validation)?;
    Ok(Json(state.service.get_conversation(user, id, page).await?))
}

/// `PATCH /api/v1/conversations/{id}`.
pub async fn rename_conversation(
    state: &ChatState,
    user: &AuthUser,
    id: ConversationId,
    req: RenameRequest,
) -> Result<Json<Conversation>, ApiError> {
    let title = req.validate().map_err(ApiError::Validation)?;
    Ok(Json(state.service.rename_conversation(user, id, &title).await?))
}

/// `DELETE /api/v1/conversations/{id}`: 204.
pub async fn delete_conversation(
    state: &ChatState,
    user: &AuthUser,
    id: ConversationId,
) -> Result<StatusCode, ApiError> {
    state.service.delete_conversation(user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/conversations/search`.
pub async fn search(state: &ChatState, user: &AuthUser, query: SearchQuery) -> Result<Json<SearchResults>, ApiError> {
    let req = query.validate().map_err(ApiError::Validation)?;
    Ok(Json(state.service.search(user, &req).await?))
}

/// `POST /api/v1/chat/transcribe` (the audio already extracted and checked by the upload layer).
pub async fn transcribe(
    state: &ChatState,
    user: &AuthUser,
    input: TranscriptionInput,
) -> Result<Json<Transcription>, ApiError> {
    Ok(Json(state.service.transcribe(user, input).await?))
}
