//! The chat function's routes and their adapters: each route is the shared request path (request id,
//! headers, CORS, global per-IP limit) -> authentication (`AuthUser`; the models route is public) ->
//! its per-user limit (chat by tier, audio, search) -> the validated extractors -> a service call.
//! The `RateLimit` fields of the tightest policy a request went through are written by the shared
//! request path, on a 200 (SSE streams included) as on a 429.

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use baatcheet_shared::auth::{AuthUser, Role, require_role};
use baatcheet_shared::rate_limit::Policy;
use baatcheet_shared::ssrf::Resolver;
use baatcheet_shared::upload::AudioUpload;
use baatcheet_shared::validation::{BodyLimit, ClerkUserId, MIB, ValidJson, ValidPath, ValidQuery};
use baatcheet_shared::{ApiError, AppContext, request_path};
use http::StatusCode;
use std::sync::Arc;

use crate::admin::{Admin, AdminUser, UserPatch};
use crate::api::{
    CompletionRequest, ConversationDetail, ConversationList, ModelsResponse, PageQuery, RegenerateRequest,
    RenameRequest, SearchQuery, SearchResults, TranscribeQuery, Transcription,
};
use crate::config::ChatConfig;
use crate::providers::client::AudioFile;
use crate::service::{ChatService, ChatStream, TranscriptionInput};
use crate::sse;
use crate::store::ids::ConversationId;
use crate::store::model::Conversation;

pub const MODELS: &str = "/api/v1/chat/models";
pub const COMPLETIONS: &str = "/api/v1/chat/completions";
pub const REGENERATE: &str = "/api/v1/chat/regenerate";
pub const TRANSCRIBE: &str = "/api/v1/chat/transcribe";
pub const CONVERSATIONS: &str = "/api/v1/conversations";
pub const SEARCH: &str = "/api/v1/conversations/search";
pub const CONVERSATION: &str = "/api/v1/conversations/{id}";
pub const ADMIN_USER: &str = "/api/v1/admin/users/{id}";

/// Completion bodies carry inline images; Lambda accepts at most 6 MB per request anyway.
pub const COMPLETION_BODY_LIMIT: usize = 6 * MIB;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("chat configuration is invalid")]
    Config(#[from] baatcheet_shared::config::ConfigError),
    #[error("an HTTP client could not be built")]
    Client(#[from] reqwest::Error),
}

#[derive(Clone)]
pub struct ChatState {
    pub service: Arc<ChatService>,
    pub admin: Arc<Admin>,
    pub ctx: AppContext,
}

/// The auth extractor and layer find the shared context in the state.
impl FromRef<ChatState> for AppContext {
    fn from_ref(state: &ChatState) -> AppContext {
        state.ctx.clone()
    }
}

impl ChatState {
    pub fn new(ctx: &AppContext, config: ChatConfig) -> Result<Self, StartupError> {
        Self::build(ctx, ChatService::new(ctx, config)?)
    }

    /// As [`Self::new`], with the resolver image URLs are checked with (tests use a fixed table).
    pub fn with_resolver(
        ctx: &AppContext,
        config: ChatConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, StartupError> {
        Self::build(ctx, ChatService::with_resolver(ctx, config, resolver)?)
    }

    fn build(ctx: &AppContext, service: ChatService) -> Result<Self, StartupError> {
        Ok(Self { service: Arc::new(service), admin: Arc::new(Admin::new(ctx)?), ctx: ctx.clone() })
    }
}

/// The function's router, chat settings from the environment.
pub fn router(ctx: AppContext) -> Result<Router, StartupError> {
    let state = ChatState::new(&ctx, ChatConfig::from_env()?)?;
    Ok(router_with(state, &ctx))
}

/// Which per-user limit a route applies after authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteLimit {
    /// Completions and regenerations, sized by the user's tier.
    Chat,
    Audio,
    Search,
}

/// Authenticates the caller (401/429 from the auth step) and applies the route's limit to them
/// (429 with `Retry-After`), before the body is read. The user stays in the request for the
/// handler's `AuthUser`.
async fn route_limit(State((ctx, limit)): State<(AppContext, RouteLimit)>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let user = match AuthUser::from_request_parts(&mut parts, &ctx).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let policy = match limit {
        RouteLimit::Chat => Policy::Chat(user.tier),
        RouteLimit::Audio => Policy::Audio,
        RouteLimit::Search => Policy::Search,
    };
    if let Err(refused) = ctx.limiter.check(policy, &user.user_id, 1).await {
        return refused.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Every route of the chat function, with the shared request path around them.
pub fn router_with(state: ChatState, ctx: &AppContext) -> Router {
    let limited = |limit| middleware::from_fn_with_state((ctx.clone(), limit), route_limit);
    let uploads = state.service.config().uploads;
    let routes = Router::new()
        .route(MODELS, get(models))
        .route(
            COMPLETIONS,
            post(completions).route_layer(limited(RouteLimit::Chat)).layer(Extension(BodyLimit(COMPLETION_BODY_LIMIT))),
        )
        .route(REGENERATE, post(regenerate).route_layer(limited(RouteLimit::Chat)))
        .route(TRANSCRIBE, post(transcribe).route_layer(limited(RouteLimit::Audio)).layer(Extension(uploads)))
        .route(CONVERSATIONS, get(list_conversations))
        .route(SEARCH, get(search).route_layer(limited(RouteLimit::Search)))
        .route(CONVERSATION, get(get_conversation).patch(rename_conversation).delete(delete_conversation))
        .route(ADMIN_USER, get(admin_get_user).patch(admin_update_user).route_layer(require_role(ctx, &[Role::Admin])))
        .with_state(state);
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
pub async fn completions(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidJson(req): ValidJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let (input, stream) = req.into_input();
    if stream {
        Ok(sse_response(&state, state.service.stream_completion(&user, input).await?))
    } else {
        Ok(Json(state.service.complete(&user, input).await?).into_response())
    }
}

/// `POST /api/v1/chat/regenerate`: the same contract as completions.
pub async fn regenerate(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidJson(req): ValidJson<RegenerateRequest>,
) -> Result<Response, ApiError> {
    let (input, stream) = req.into_input();
    if stream {
        Ok(sse_response(&state, state.service.stream_regenerate(&user, input).await?))
    } else {
        Ok(Json(state.service.regenerate(&user, input).await?).into_response())
    }
}

/// `POST /api/v1/chat/transcribe?language=&model=`: one audio file (multipart field `file`),
/// verified by its magic number.
pub async fn transcribe(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidQuery(query): ValidQuery<TranscribeQuery>,
    AudioUpload(file): AudioUpload,
) -> Result<Json<Transcription>, ApiError> {
    let audio = AudioFile {
        bytes: file.bytes().clone(),
        file_name: file.file_name(),
        content_type: file.media_type().to_string(),
    };
    let input = TranscriptionInput { audio, language: query.language, model: query.model };
    Ok(Json(state.service.transcribe(&user, input).await?))
}

/// `GET /api/v1/conversations`.
pub async fn list_conversations(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    Ok(Json(state.service.list_conversations(&user, query.page(20)).await?))
}

/// `GET /api/v1/conversations/{id}`.
pub async fn get_conversation(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(id): ValidPath<ConversationId>,
    ValidQuery(query): ValidQuery<PageQuery>,
) -> Result<Json<ConversationDetail>, ApiError> {
    Ok(Json(state.service.get_conversation(&user, id, query.page(50)).await?))
}

/// `PATCH /api/v1/conversations/{id}`.
pub async fn rename_conversation(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(id): ValidPath<ConversationId>,
    ValidJson(req): ValidJson<RenameRequest>,
) -> Result<Json<Conversation>, ApiError> {
    Ok(Json(state.service.rename_conversation(&user, id, &req.title).await?))
}

/// `DELETE /api/v1/conversations/{id}`: 204.
pub async fn delete_conversation(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(id): ValidPath<ConversationId>,
) -> Result<StatusCode, ApiError> {
    state.service.delete_conversation(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/conversations/search`.
pub async fn search(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidQuery(query): ValidQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    Ok(Json(state.service.search(&user, &query.into_request()).await?))
}

/// `GET /api/v1/admin/users/{id}` (admins).
pub async fn admin_get_user(
    State(state): State<ChatState>,
    ValidPath(id): ValidPath<ClerkUserId>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(state.admin.get(&id).await?))
}

/// `PATCH /api/v1/admin/users/{id}` (admins): `{role?, tier?}` through Clerk, then the table.
pub async fn admin_update_user(
    State(state): State<ChatState>,
    admin: AuthUser,
    ValidPath(id): ValidPath<ClerkUserId>,
    ValidJson(patch): ValidJson<UserPatch>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(state.admin.update(&admin, &id, &patch).await?))
}
