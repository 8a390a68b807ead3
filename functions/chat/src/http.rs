//! The chat function's routes and their adapters: each route is the shared request path (request id,
//! headers, CORS, global per-IP limit) -> authentication (`AuthUser`; the models route is public) ->
//! its per-user limit (chat by tier, audio, search) -> the validated extractors -> a service call.
//! The `RateLimit` fields of the tightest policy a request went through are written by the shared
//! request path, on a 200 (SSE streams included) as on a 429.

use crate::safety::ssrf::Resolver;
use crate::safety::upload::AudioUpload;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use baatcheet_shared::auth::{AuthUser, Role, require_role};
use baatcheet_shared::openapi::{
    BadGateway, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, TooManyRequests,
    Unauthorized, UnsupportedMediaType, ValidationFailed,
};
use baatcheet_shared::rate_limit::Policy;
use baatcheet_shared::validation::{ClerkUserId, MIB, ValidJson, ValidPath, ValidQuery};
use baatcheet_shared::{ApiError, AppContext, request_path};
use http::StatusCode;
use std::sync::Arc;

use crate::admin::{Admin, AdminUser, UserPatch};
use crate::api::{
    CompletionRequest, CompletionResponse, ConversationDetail, ConversationList, ModelsResponse, PageQuery,
    RegenerateRequest, RenameRequest, SearchQuery, SearchResults, TranscribeQuery, TranscribeUpload, Transcription,
};
use crate::config::ChatConfig;
use crate::providers::client::AudioFile;
use crate::service::{Answer, ChatService, ChatStream, Idempotent, TranscriptionInput};
use crate::sse::EventId;
use crate::sse::{self, StreamEvent};
use crate::store::idempotency::{self, Claim, IdempotencyStore, KeyRef};
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::Conversation;
use crate::streams::StreamLease;

pub mod routes;

use routes::{Guard, RouteLimit};

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
    let key = match parts.headers.get(IDEMPOTENCY_KEY) {
        Some(v) if matches!(limit, RouteLimit::Chat | RouteLimit::Audio) => {
            match idempotency::parse_key(v.as_bytes()) {
                Ok(k) => Some(k),
                Err(_) => return ApiError::BadRequest(BAD_KEY.into()).into_response(),
            }
        }
        _ => None,
    };
    let Some(key) = key else {
        if let Err(refused) = ctx.limiter.check(policy, &user.user_id, 1).await {
            return refused.into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    };
    // The same key, user and request within a day costs once: the body is read here to tell.
    let bytes = match axum::body::to_bytes(body, IDEMPOTENT_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge("The request body is too large.".into()).into_response(),
    };
    let route = parts.uri.path().rsplit('/').next().unwrap_or_default().to_string();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let fingerprint = idempotency::fingerprint(&route, parts.uri.query().unwrap_or_default(), content_type, &bytes);
    let store = IdempotencyStore::new(ctx.dynamo.clone(), ctx.config.tables.conversations.clone());
    let key = KeyRef::new(&user.user_id, &route, &key);
    let claim = match store.claim(&key, &user.user_id, &fingerprint).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let owner = match claim {
        Claim::Mismatch => {
            return ApiError::Validation(vec![baatcheet_shared::FieldError::new(
                "/headers/idempotency-key",
                "was already used with a different request; use a new key for a new request",
            )])
            .into_response();
        }
        Claim::Owner => {
            if let Err(refused) = ctx.limiter.check(policy, &user.user_id, 1).await {
                if let Err(e) = store.release(&key).await {
                    tracing::warn!(cause = %baatcheet_shared::error::error_chain(&e), "releasing a refused key");
                }
                return refused.into_response();
            }
            true
        }
        // A repeat costs nothing more than any request: the global limit only.
        Claim::Repeat(_) => {
            if let Err(refused) = ctx.limiter.check(Policy::Global, &user.user_id, 1).await {
                return refused.into_response();
            }
            false
        }
    };
    parts.extensions.insert(Idempotent { store: store.clone(), key: key.clone(), claim });
    let res = next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await;
    if owner && (res.status().is_client_error() || res.status().is_server_error()) {
        // An error that stored nothing frees the key (one whose user message is kept marks it failed).
        if let Err(e) = store.release(&key).await {
            tracing::warn!(cause = %baatcheet_shared::error::error_chain(&e), "releasing a key after an error");
        }
    }
    res
}

/// The header of the IETF httpapi draft.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const BAD_KEY: &str = "Idempotency-Key must be 1 to 128 characters from A-Z a-z 0-9 - _ . : ~ + / = (optionally in \
double quotes); a UUID is a good key.";
/// What a keyed request's body may be, read whole to compare repeats (API Gateway takes 10 MB).
const IDEMPOTENT_BODY_LIMIT: usize = 10 * MIB;
/// How long a repeat of a transcription waits for the first one's text.
const IDEMPOTENT_WAIT: std::time::Duration = std::time::Duration::from_secs(110);

/// The OpenAPI document of this function's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::table().openapi()
}

/// What completions and regenerate stream (`text/event-stream`), for the document.
const SSE_DESCRIPTION: &str = "The answer. With `stream` (the default): server-sent events, each `data` one line of \
JSON: first `event: conversation` (`StreamStart`: the conversation, the user message answered, the id the answer \
is stored under, `created`, and for regenerate `replaces`), then `event: delta` (`StreamDelta`: `{content}`, the \
next piece of the answer) any number of times, then either `event: done` (`StreamDone`: model, provider, usage, \
`finish_reason`) or `event: error` (a `ProblemDetails`; the answer is stored as `incomplete`); comment lines \
(`: keep-alive`) keep an idle connection open. The `text/event-stream` schema describes one event (`StreamEvent`); \
its example shows the wire format. Every event carries an `id`: `0` for `conversation`, the answer's length in \
UTF-8 bytes so far for `delta`, `end` for `done`/`error`. The answer is stored as it is generated and goes on when \
the client goes away: reconnect with `GET /api/v1/chat/messages/{message_id}/stream` and `Last-Event-ID` for the \
rest. With `\"stream\": false`: one JSON `CompletionResponse`.";

/// An example of the event stream.
const SSE_EXAMPLE: &str = "id: 0\n\
event: conversation\n\
data: {\"conversation_id\":\"0190b8a4-5b7e-7000-8000-000000000001\",\"user_message_id\":\"0190b8a4-5b7f-7000-8000-000000000002\",\"message_id\":\"0190b8a4-5b80-7000-8000-000000000003\",\"title\":\"Chai kaise banate hain?\",\"created\":true}\n\n\
id: 5\n\
event: delta\n\
data: {\"content\":\"Chai \"}\n\n\
id: 22\n\
event: delta\n\
data: {\"content\":\"banane ke liye...\"}\n\n\
id: end\n\
event: done\n\
data: {\"message_id\":\"0190b8a4-5b80-7000-8000-000000000003\",\"model\":\"llama-3.1-8b-instant\",\"provider\":\"groq\",\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":5,\"total_tokens\":47},\"finish_reason\":\"stop\"}\n\n";

/// Every route of the chat function (its [`routes::table`]), each behind its guard, with the
/// shared request path around them.
pub fn router_with(state: ChatState, ctx: &AppContext) -> Router {
    let limited = |limit| middleware::from_fn_with_state((ctx.clone(), limit), route_limit);
    // What the upload check of a transcription reads (MAX_AUDIO_BYTES and the rest).
    let uploads = state.service.config().uploads;
    let (routes, access) = routes::table().router(|r, guard| match guard {
        Guard::Limit(limit) => r.route_layer(limited(limit)),
        Guard::Admin => r.route_layer(require_role(ctx, &[Role::Admin])),
    });
    request_path::wrap(routes.layer(Extension(uploads)).with_state(state), ctx, access)
}

/// The models this deployment offers (public)
#[utoipa::path(get, path = "/api/v1/chat/models", tag = "chat", operation_id = "listModels",
    responses(
        (status = 200, description = "The models and the default one.", body = ModelsResponse),
        TooManyRequests, ServiceUnavailable,
    ))]
pub async fn models(State(state): State<ChatState>) -> Result<Json<ModelsResponse>, ApiError> {
    Ok(Json(state.service.models().await?))
}

fn sse_response(state: &ChatState, stream: ChatStream) -> Response {
    sse::response(stream.events, state.service.config().heartbeat)
}

fn answer_response(state: &ChatState, answer: Answer) -> Response {
    match answer {
        Answer::Stream(s) => sse_response(state, s),
        Answer::Whole(w) => Json(w).into_response(),
    }
}

/// A place among the caller's open streams for a request that starts a completion; a repeat of
/// an Idempotency-Key replays or follows the answer its first request started, and takes none.
async fn open_stream(
    state: &ChatState,
    user: &AuthUser,
    key: Option<&Idempotent>,
) -> Result<Option<StreamLease>, ApiError> {
    if key.is_some_and(|k| matches!(k.claim, Claim::Repeat(_))) {
        return Ok(None);
    }
    state.service.open_stream(user).await.map(Some)
}

/// An answer with its open-stream lease: a stream's generation holds it until it ends, which may
/// be after its client went away (the answer goes on, to be resumed); a whole answer or a refusal
/// has ended, so it is released before answering.
async fn leased(
    state: &ChatState,
    answer: Result<Answer, ApiError>,
    lease: Option<StreamLease>,
) -> Result<Response, ApiError> {
    match (answer, lease) {
        (Ok(Answer::Stream(mut s)), Some(lease)) => {
            match s.generated.take() {
                Some(end) => end.then_run(lease.release()),
                None => lease.release().await,
            }
            Ok(sse_response(state, s))
        }
        (other, lease) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            other.map(|a| answer_response(state, a))
        }
    }
}

/// Send a message
///
/// The reply as server-sent events when `stream` (the default), else as one JSON answer.
#[utoipa::path(post, path = "/api/v1/chat/completions", tag = "chat", operation_id = "createCompletion",
    security(("clerk" = [])),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = SSE_DESCRIPTION,
            content((StreamEvent = "text/event-stream", example = json!(SSE_EXAMPLE)), (CompletionResponse = "application/json"))),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed,
        TooManyRequests, BadGateway, ServiceUnavailable,
    ))]
pub async fn completions(
    State(state): State<ChatState>,
    user: AuthUser,
    key: Option<Extension<Idempotent>>,
    ValidJson(req): ValidJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let (input, stream) = req.into_input();
    let lease = open_stream(&state, &user, key.as_ref().map(|k| &k.0)).await?;
    let answer = state.service.completion(&user, input, stream, key.as_ref().map(|k| &k.0)).await;
    leased(&state, answer, lease).await
}

/// Regenerate the last answer
///
/// The same contract as completions: server-sent events when `stream` (the default), else JSON.
#[utoipa::path(post, path = "/api/v1/chat/regenerate", tag = "chat", operation_id = "regenerateCompletion",
    security(("clerk" = [])),
    request_body = RegenerateRequest,
    responses(
        (status = 200, description = SSE_DESCRIPTION,
            content((StreamEvent = "text/event-stream", example = json!(SSE_EXAMPLE)), (CompletionResponse = "application/json"))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
        ValidationFailed, TooManyRequests, BadGateway, ServiceUnavailable,
    ))]
pub async fn regenerate(
    State(state): State<ChatState>,
    user: AuthUser,
    key: Option<Extension<Idempotent>>,
    ValidJson(req): ValidJson<RegenerateRequest>,
) -> Result<Response, ApiError> {
    let (input, stream) = req.into_input();
    let lease = open_stream(&state, &user, key.as_ref().map(|k| &k.0)).await?;
    let answer = state.service.regeneration(&user, input, stream, key.as_ref().map(|k| &k.0)).await;
    leased(&state, answer, lease).await
}

/// What the stream route sends, for the document.
const FOLLOW_DESCRIPTION: &str = "The answer's events, with the same ids as the stream that generated it: \
without `Last-Event-ID`, all of them (`conversation`, the text so far as one `delta`, then the rest live); with \
it, only those after that id. It ends with `done` or `error` like the original stream; comment lines \
(`: keep-alive`) keep an idle connection open.";

/// Follow or resume an answer
///
/// The standard SSE reconnect: send back the `id` of the last event received as `Last-Event-ID` and
/// the stream goes on from there, with no gap and no repeat, while the answer is still being generated
/// (by any instance) or after it was stored. Only the answer's owner may read it. Under the global
/// limit only: following an answer costs no chat quota.
#[utoipa::path(get, path = "/api/v1/chat/messages/{message_id}/stream", tag = "chat", operation_id = "streamMessage",
    security(("clerk" = [])),
    params(
        ("message_id" = inline(MessageId), Path, description = "The answer's id (`message_id` of the `conversation` event)."),
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: `0`, a \
            decimal byte offset into the answer, or `end`.", example = "42"),
    ),
    responses(
        (status = 200, description = FOLLOW_DESCRIPTION,
            content((StreamEvent = "text/event-stream", example = json!(SSE_EXAMPLE)))),
        BadRequest, Unauthorized, NotFound, ValidationFailed, TooManyRequests, ServiceUnavailable,
    ))]
pub async fn message_stream(
    State(state): State<ChatState>,
    user: AuthUser,
    ValidPath(message_id): ValidPath<MessageId>,
    headers: http::HeaderMap,
) -> Result<Response, ApiError> {
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(EventId::parse)
                .ok_or_else(|| ApiError::BadRequest("Last-Event-ID is not an event id of this stream.".into()))?,
        ),
    };
    Ok(sse_response(&state, state.service.follow(&user, message_id, last).await?))
}

/// Transcribe an audio file
///
/// One audio file (multipart field `file`), verified by its magic number.
#[utoipa::path(post, path = "/api/v1/chat/transcribe", tag = "chat", operation_id = "transcribeAudio",
    security(("clerk" = [])),
    params(TranscribeQuery),
    request_body(
        content((TranscribeUpload = "multipart/form-data",
            encoding(("file" = (content_type = "audio/mpeg, audio/wav, audio/ogg, audio/flac, audio/webm, audio/mp4"))))),
        description = "Exactly one multipart field, `file`: the audio, its declared Content-Type matching its bytes."),
    responses(
        (status = 200, description = "The text.", body = Transcription),
        BadRequest, Unauthorized, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, TooManyRequests,
        BadGateway, ServiceUnavailable,
    ))]
pub async fn transcribe(
    State(state): State<ChatState>,
    user: AuthUser,
    key: Option<Extension<Idempotent>>,
    ValidQuery(query): ValidQuery<TranscribeQuery>,
    AudioUpload(file): AudioUpload,
) -> Result<Response, ApiError> {
    if let Some(Extension(Idempotent { store, key, claim: Claim::Repeat(record) })) = &key {
        return replay_transcription(store, key, record.clone()).await;
    }
    // Every verified audio file has a length (the upload check measured it).
    let seconds = file
        .audio_length()
        .map(|l| l.charged_seconds())
        .ok_or_else(|| ApiError::internal("a verified audio file without a measured length"))?;
    let audio = AudioFile {
        bytes: file.bytes().clone(),
        file_name: file.file_name(),
        content_type: file.media_type().to_string(),
    };
    let input = TranscriptionInput { audio, seconds, language: query.language, model: query.model };
    let text = state.service.transcribe(&user, input).await?;
    if let Some(Extension(k)) = &key {
        let json = serde_json::to_string(&text).map_err(ApiError::internal)?;
        k.store.done(&k.key, &json).await?;
    }
    Ok(Json(text).into_response())
}

/// A repeat of a transcription: the first one's JSON, once it is there.
async fn replay_transcription(
    store: &IdempotencyStore,
    key: &KeyRef,
    mut record: idempotency::KeyRecord,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    loop {
        if let Some(json) = record.response {
            let mut res = Response::new(axum::body::Body::from(json));
            res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            return Ok(res);
        }
        if started.elapsed() > IDEMPOTENT_WAIT {
            return Err(ApiError::Conflict(
                "The first request with this Idempotency-Key is still running; retry shortly.".into(),
            ));
        }
        tokio::time::sleep(crate::service::follow::FOLLOW_POLL).await;
        record = store.get(key).await?.ok_or_else(|| {
            ApiError::Conflict(
                "The first request with this Idempotency-Key ended without an answer; send the request again.".into(),
            )
        })?;
    }
}

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

/// A user's role and tier (admins)
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin", operation_id = "adminGetUser",
    security(("clerk" = [])),
    params(("id" = inline(ClerkUserId), Path, description = "The Clerk user id (`user_...`).")),
    responses(
        (status = 200, description = "The user.", body = AdminUser),
        Unauthorized, Forbidden, NotFound, ValidationFailed, TooManyRequests, BadGateway, ServiceUnavailable,
    ))]
pub async fn admin_get_user(
    State(state): State<ChatState>,
    ValidPath(id): ValidPath<ClerkUserId>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(state.admin.get(&id).await?))
}

/// Change a user's role or tier (admins)
///
/// `{role?, tier?}` through Clerk's Backend API, then the users table at once.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", operation_id = "adminUpdateUser",
    security(("clerk" = [])),
    params(("id" = inline(ClerkUserId), Path, description = "The Clerk user id (`user_...`).")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user as changed.", body = AdminUser),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed,
        TooManyRequests, BadGateway, ServiceUnavailable,
    ))]
pub async fn admin_update_user(
    State(state): State<ChatState>,
    admin: AuthUser,
    ValidPath(id): ValidPath<ClerkUserId>,
    ValidJson(patch): ValidJson<UserPatch>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(state.admin.update(&admin, &id, &patch).await?))
}
