//! `POST /api/v1/chat/transcribe`.

use baatcheet_shared::validation::{ModelId, Report, Validate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::common::check_model;

/// `POST /api/v1/chat/transcribe?language=&model=` (the audio is the multipart body's `file`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TranscribeQuery {
    /// The language of the audio: an ISO 639-1 (or 639-2) code, lowercase.
    #[serde(default)]
    #[param(min_length = 2, max_length = 3, pattern = "^[a-z]{2,3}$", example = "ur")]
    pub language: Option<String>,
    /// A transcription model `GET /api/v1/chat/models` lists with the `audio` capability (absent:
    /// the first one).
    #[serde(default)]
    #[param(value_type = Option<ModelId>)]
    pub model: Option<String>,
}

// Documentation only: the shared `AudioUpload` extractor reads the body.
/// The multipart body of `POST /api/v1/chat/transcribe`: exactly one field, `file`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TranscribeUpload {
    /// The audio file (MP3, MP4/M4A, OGG/Opus, WAV, FLAC or WebM, verified by its magic number;
    /// at most `MAX_AUDIO_BYTES`, 4 MiB by default).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// An ISO 639-1 (or 639-2) code such as `ur` or `en`, lowercase.
pub fn valid_language(l: &str) -> bool {
    (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase())
}

impl Validate for TranscribeQuery {
    fn validate(&mut self, r: &mut Report) {
        if let Some(l) = &self.language
            && !valid_language(l)
        {
            r.fail_at("language", "must be an ISO 639-1 code such as ur or en");
        }
        check_model(r, self.model.as_deref());
    }
}

/// The text of an audio file.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Transcription {
    #[schema(example = "Aap kaise hain?")]
    pub text: String,
    /// The language the provider detected or was told, when known.
    #[schema(required = true, example = "ur")]
    pub language: Option<String>,
}
