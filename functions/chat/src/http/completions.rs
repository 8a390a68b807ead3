//! `POST /api/v1/chat/completions` and `/regenerate`: an answer streamed (SSE) or whole, and the
//! open-stream lease it holds while it is generated.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use baatcheet_shared::ApiError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::openapi::{
    BadGateway, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, TooManyRequests,
    Unauthorized, UnsupportedMediaType, ValidationFailed,
};
use baatcheet_shared::validation::ValidJson;

use crate::api::{CompletionRequest, CompletionResponse, RegenerateRequest};
use crate::service::{Answer, ChatError, Idempotent};
use crate::sse::StreamEvent;
use crate::store::idempotency::Claim;
use crate::streams::StreamLease;

use super::ChatState;
use super::sse_response;

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
pub(super) const SSE_EXAMPLE: &str = "id: 0\n\
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
    Ok(Some(state.service.open_stream(user).await?))
}

/// An answer with its open-stream lease: a stream's generation holds it until it ends, which may
/// be after its client went away (the answer goes on, to be resumed); a whole answer or a refusal
/// has ended, so it is released before answering.
async fn leased(
    state: &ChatState,
    answer: Result<Answer, ChatError>,
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
            other.map(|a| answer_response(state, a)).map_err(ApiError::from)
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
