//! `GET /api/v1/chat/models`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::providers::catalog::ModelInfo;

/// The models this deployment offers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelsResponse {
    pub models: Vec<ModelInfo>,
    /// The model a completion uses when it names none (absent when no model can chat).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "llama-3.1-8b-instant")]
    pub default_model: Option<String>,
}
