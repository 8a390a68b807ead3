//! Speech to text through a Whisper-compatible `/audio/transcriptions` upstream, with the same
//! failover as chat. The audio's type and size are checked by the upload layer (`AudioUpload`:
//! magic numbers, `MAX_AUDIO_BYTES`, a duration within `MAX_AUDIO_SECONDS`); the bounds are
//! re-checked here. The route charged the file to the `audio` limit (one per file); the service
//! charges its seconds to `audio_seconds` (by tier) once the request is known to be valid, before
//! the upstream is called.

use baatcheet_shared::FieldError;
use baatcheet_shared::auth::AuthUser;

use super::{ChatError, ChatService};
use crate::api::{Transcription, valid_language};
use crate::providers::client::AudioFile;

#[derive(Debug, Clone)]
pub struct TranscriptionInput {
    pub audio: AudioFile,
    /// The audio's measured duration in whole seconds (its `audio_seconds` charge).
    pub seconds: u32,
    /// ISO 639-1 code (e.g. `ur`, `en`) to help the model; detected when absent.
    pub language: Option<String>,
    /// A model with the `audio` capability; the first configured one when absent.
    pub model: Option<String>,
}

impl ChatService {
    pub async fn transcribe(&self, user: &AuthUser, input: TranscriptionInput) -> Result<Transcription, ChatError> {
        if input.audio.bytes.is_empty() {
            return Err(ChatError::Invalid(vec![FieldError::new("/file", "must not be empty")]));
        }
        let max = self.config.uploads.max_audio_bytes;
        if input.audio.bytes.len() > max {
            return Err(ChatError::AudioTooLarge { max });
        }
        if let Some(l) = &input.language
            && !valid_language(l)
        {
            return Err(ChatError::Invalid(vec![FieldError::new(
                "/query/language",
                "must be an ISO 639-1 code such as ur or en",
            )]));
        }
        let catalog = self.providers.catalog().await?;
        let model = match input.model.as_deref() {
            Some(id) => match catalog.model(id) {
                Some(m) if m.audio => m.clone(),
                _ => return Err(ChatError::NotTranscriptionModel),
            },
            None => catalog.default_audio_model().cloned().ok_or(ChatError::NoAudioModel)?,
        };
        self.limiter.check(crate::limits::AUDIO_SECONDS.of(user.tier), &user.user_id, input.seconds.max(1)).await?;
        let done = self.providers.transcribe(&catalog, &model.id, &input.audio, input.language.as_deref()).await?;
        tracing::info!(provider = %done.provider, bytes = input.audio.bytes.len(), seconds = input.seconds, "transcribed");
        Ok(Transcription { text: done.response.text, language: done.response.language.or(input.language) })
    }
}
