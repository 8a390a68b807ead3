//! `GET /api/v1/chat/models`: the models this deployment offers.

use axum::Json;
use axum::extract::State;
use baatcheet_shared::ApiError;
use baatcheet_shared::openapi::{ServiceUnavailable, TooManyRequests};

use crate::api::ModelsResponse;

use super::ChatState;

/// The models this deployment offers (public)
#[utoipa::path(get, path = "/api/v1/chat/models", tag = "chat", operation_id = "listModels",
    responses(
        (status = 200, description = "The models and the default one.", body = ModelsResponse),
        TooManyRequests, ServiceUnavailable,
    ))]
pub async fn models(State(state): State<ChatState>) -> Result<Json<ModelsResponse>, ApiError> {
    Ok(Json(state.service.models().await?))
}
