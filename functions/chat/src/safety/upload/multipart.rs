//! One file sent as `multipart/form-data` (e.g. audio to transcribe). Lambda hands the body over
//! fully buffered, so it is read whole (bounded) and parsed with `multer` from memory.
//! Exactly one part, named `file`, is accepted; its declared Content-Type must match its bytes;
//! the client's file name is ignored.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::HeaderMap;

use crate::safety::upload::{MediaClass, UploadLimits, VerifiedFile, verify};
use baatcheet_shared::error::{ApiError, FieldError};
use baatcheet_shared::validation::{KIB, body};

/// The form field holding the file.
pub const FIELD: &str = "file";
const POINTER: &str = "/file";
/// Room for boundaries and part headers around the file.
const ENVELOPE: usize = 16 * KIB;

/// Reads the single `file` part of a multipart body: its declared Content-Type and bytes.
/// 415 if the body is not multipart, 413 if the part exceeds `max_file`, 422 for a missing,
/// repeated or unknown field.
pub async fn read_single_file(
    headers: &HeaderMap,
    body: Bytes,
    max_file: usize,
) -> Result<(Option<String>, Bytes), ApiError> {
    let unsupported = || ApiError::UnsupportedMediaType("The request body must be multipart/form-data.".into());
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    match body::parse_media_type(content_type) {
        Some((essence, _)) if essence == "multipart/form-data" => {}
        _ => return Err(unsupported()),
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| ApiError::BadRequest("The multipart body has no boundary.".into()))?;
    let constraints = multer::Constraints::new()
        .allowed_fields(vec![FIELD])
        .size_limit(multer::SizeLimit::new().per_field(max_file as u64).whole_stream((max_file + ENVELOPE) as u64));
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);

    let field = form.next_field().await.map_err(|e| multer_error(e, max_file))?;
    let Some(field) = field else {
        return Err(ApiError::Validation(vec![FieldError::new(POINTER, "is required")]));
    };
    let declared = field.content_type().map(|m| m.to_string());
    let bytes = field.bytes().await.map_err(|e| multer_error(e, max_file))?;
    match form.next_field().await {
        Ok(None) => Ok((declared, bytes)),
        Ok(Some(_)) => Err(ApiError::Validation(vec![FieldError::new(POINTER, "only one file may be sent")])),
        Err(e) => Err(multer_error(e, max_file)),
    }
}

fn multer_error(e: multer::Error, max_file: usize) -> ApiError {
    match e {
        multer::Error::UnknownField { field_name } => ApiError::Validation(vec![FieldError::new(
            baatcheet_shared::validation::pointer::join("", field_name.as_deref().unwrap_or("")),
            "is not a known field",
        )]),
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            ApiError::PayloadTooLarge(format!("{POINTER}: the file exceeds {max_file} bytes."))
        }
        other => ApiError::BadRequest(format!("The multipart body is malformed: {other}.")),
    }
}

/// Extractor: one audio file, verified. Limits come from an `Extension<UploadLimits>` on the
/// route, else the defaults.
#[derive(Debug, Clone)]
pub struct AudioUpload(pub VerifiedFile);

impl<S: Send + Sync> FromRequest<S> for AudioUpload {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let limits = req.extensions().get::<UploadLimits>().copied().unwrap_or_default();
        let max = limits.max_audio_bytes;
        let (parts, body) = req.into_parts();
        let bytes = body::read_limited(&parts.headers, body, max + ENVELOPE).await?;
        let (declared, file) = read_single_file(&parts.headers, bytes, max).await?;
        verify(MediaClass::Audio, declared.as_deref(), file, &limits).map(AudioUpload).map_err(|e| e.at(POINTER))
    }
}
