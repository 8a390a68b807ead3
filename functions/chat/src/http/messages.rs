//! `GET /api/v1/chat/messages/{message_id}/stream`: follow or resume an answer.

use axum::extract::State;
use axum::response::Response;
use baatcheet_shared::ApiError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::openapi::{
    BadRequest, NotFound, ServiceUnavailable, TooManyRequests, Unauthorized, ValidationFailed,
};
use baatcheet_shared::validation::ValidPath;

use crate::sse::{EventId, StreamEvent};
use crate::store::ids::MessageId;

use super::ChatState;
use super::completions::SSE_EXAMPLE;
use super::sse_response;

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
