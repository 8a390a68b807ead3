//! `/api/v1/admin/users/{id}`: a user's role and tier (admins).

use axum::Json;
use axum::extract::State;
use baatcheet_shared::ApiError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::openapi::{
    BadGateway, BadRequest, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized,
    UnsupportedMediaType, ValidationFailed,
};
use baatcheet_shared::validation::{ClerkUserId, ValidJson, ValidPath};

use crate::admin::{AdminUser, UserPatch};

use super::ChatState;

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
