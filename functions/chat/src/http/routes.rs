//! The chat function's route table: each route once, with how it is reached, the check it makes
//! itself (its per-user limit, or the admin role), its body limit and whether it waits on a
//! provider. The router, the OpenAPI document, the global limit's deferral and the template test
//! all read it; each handler's `#[utoipa::path]` holds its method and path.

use baatcheet_shared::lambda::ResponseMode;
use baatcheet_shared::routes::{Route, RouteTable};
use baatcheet_shared::validation::MIB;
use utoipa_axum::routes;

use super::{ChatState, admin, completions, conversations, messages, models, search, transcribe};

/// Streamed: completions are SSE, and a binary answers every route in one format, so every chat
/// route uses the response-streaming integration.
pub const RESPONSE_MODE: ResponseMode = ResponseMode::Streamed;

/// Completion bodies carry inline images; Lambda accepts at most 6 MB per request anyway.
pub const COMPLETION_BODY_LIMIT: usize = 6 * MIB;

/// What a chat route checks itself, after the request path authenticated the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Its per-user limit (with the Idempotency-Key of completions and transcriptions), before
    /// the body is read: the first thing the route does, so the user's global check joins it.
    Limit(RouteLimit),
    /// The admin role.
    Admin,
}

/// Which per-user limit a route applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLimit {
    /// Completions and regenerations, sized by the user's tier.
    Chat,
    /// Transcriptions: files, and seconds of audio by tier.
    Audio,
    Search,
}

/// Every route of the chat function. Every route but the models list is for a signed-in user.
pub fn table() -> RouteTable<ChatState, Guard> {
    use Guard::{Admin, Limit};
    RouteTable::new(RESPONSE_MODE)
        .route(routes!(models::models), Route::public())
        .route(
            routes!(completions::completions),
            Route::limited(Limit(RouteLimit::Chat)).body_limit(COMPLETION_BODY_LIMIT).long(),
        )
        .route(routes!(completions::regenerate), Route::limited(Limit(RouteLimit::Chat)).long())
        // Its body limit is the upload limit (MAX_AUDIO_BYTES), which the upload check applies.
        .route(routes!(transcribe::transcribe), Route::limited(Limit(RouteLimit::Audio)).long())
        // Following an answer costs no chat quota: the global limit only.
        .route(routes!(messages::message_stream), Route::signed_in().long())
        .route(routes!(conversations::list_conversations), Route::signed_in())
        .route(
            routes!(
                conversations::get_conversation,
                conversations::rename_conversation,
                conversations::delete_conversation
            ),
            Route::signed_in(),
        )
        .route(routes!(search::search), Route::limited(Limit(RouteLimit::Search)))
        .route(routes!(admin::admin_get_user, admin::admin_update_user), Route::guarded(Admin))
}
