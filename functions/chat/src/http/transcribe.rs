//! `POST /api/v1/chat/transcribe`: an audio file to text, and the replay of a repeated
//! Idempotency-Key.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use baatcheet_shared::ApiError;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::openapi::{
    BadGateway, BadRequest, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized, UnsupportedMediaType,
    ValidationFailed,
};
use baatcheet_shared::validation::ValidQuery;

use crate::api::{TranscribeQuery, TranscribeUpload, Transcription};
use crate::providers::client::AudioFile;
use crate::safety::upload::AudioUpload;
use crate::service::{Idempotent, TranscriptionInput};
use crate::store::idempotency::{self, Claim, IdempotencyStore, KeyRef};

use super::ChatState;

/// How long a repeat of a transcription waits for the first one's text.
const IDEMPOTENT_WAIT: std::time::Duration = std::time::Duration::from_secs(110);

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
