//! The chat service's errors, in the domain's terms. Each one's HTTP status and problem text is
//! decided here, once, by `From<ChatError> for ApiError` (and the store's and the providers' own
//! errors' `From`s beside it), which the HTTP edge (and a stream's `error` event) applies; the
//! service itself never builds or inspects an HTTP error. The platform limiter's refusal
//! (`Limited`) maps through the platform's own `From<LimitError> for ApiError`.

use baatcheet_shared::error::error_chain;
use baatcheet_shared::rate_limit::LimitError;
use baatcheet_shared::request_id::RequestInfo;
use baatcheet_shared::{ApiError, FieldError, Problem};

use crate::providers::ProviderError;
use crate::providers::client::StreamError;
use crate::safety::ssrf::{FetchError, UrlError};
use crate::safety::upload::{TooManyImages, UploadError};
use crate::store::ids::MessageId;
use crate::store::{RegenerateRefused, StoreError};
use crate::streams::{self, StreamRefused};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Input that breaks the API's rules, field by field (422).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The request names a model this service does not offer for chat (422 at `/model`).
    #[error("the model is not offered")]
    ModelNotOffered,
    /// The model cannot take the message's images (422 at `/attachments`).
    #[error("model {0} does not accept images")]
    NoVision(String),
    /// No model can chat right now (503).
    #[error("no chat model is configured")]
    NoChatModel,
    /// A transcription names a model that does not transcribe (422 at `/query/model`).
    #[error("not a transcription model")]
    NotTranscriptionModel,
    /// No model can transcribe right now (503).
    #[error("no transcription model is configured")]
    NoAudioModel,
    /// Audio over the size limit (413).
    #[error("the audio exceeds {max} bytes")]
    AudioTooLarge { max: usize },
    /// An image the guards refused (SSRF guard, fetch, magic numbers, count): their problem, 413,
    /// 415 or 422 at the image's pointer.
    #[error("an image was refused")]
    ImageRefused(#[source] ImageRefusal),
    /// Regenerate: an image of the message being answered no longer passes the guards (422 at
    /// `/conversation_id`).
    #[error("an image of the message being answered can no longer be used")]
    ImageGone,
    /// Another request is answering this conversation (409 naming the answer to follow).
    #[error("message {0} is being answered")]
    Running(MessageId),
    /// A regenerate of a conversation without a user message to answer (409).
    #[error("the conversation has no message to answer")]
    NothingToAnswer,
    /// The answer asked for is not the caller's, or has no stream (404).
    #[error("no such answer")]
    MessageNotFound,
    /// `Last-Event-ID` is not an event of the answer (400).
    #[error("Last-Event-ID is not an event of this answer")]
    BadLastEventId,
    /// Idempotency: the key's first request ended without an answer (409).
    #[error("the key's first request ended without an answer")]
    KeyGone,
    /// Idempotency: the key's message is no longer the last of its conversation (409).
    #[error("the key's message is no longer the last of its conversation")]
    KeyMovedOn,
    /// Idempotency: the key's first request is still being prepared (409).
    #[error("the key's first request is still being prepared")]
    KeyPreparing,
    /// An answer removed because no provider could answer it (503).
    #[error("no provider answered")]
    NoProviderAnswered,
    /// No provider answered; the user's message is kept, marked failed: the cause's problem, with
    /// a note on how to answer it.
    #[error("message {message} was not answered")]
    Unanswered { message: MessageId, cause: Box<ChatError> },
    /// The upstream's answer broke off or ended incomplete (502).
    #[error("the upstream failed")]
    Upstream(#[source] StreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// No place among the user's open streams (429 `streams`, or 503 while they cannot be counted).
    #[error(transparent)]
    Streams(#[from] StreamRefused),
    /// The platform limiter's refusal of a per-user limit the service applies (images, audio
    /// seconds); its `RateLimit` fields are already recorded for the response.
    #[error(transparent)]
    Limited(#[from] LimitError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An image the guards refused, and the pointer of its field.
#[derive(Debug, thiserror::Error)]
#[error("{pointer}: {why}")]
pub struct ImageRefusal {
    pub pointer: String,
    #[source]
    pub why: ImageProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageProblem {
    #[error(transparent)]
    TooMany(TooManyImages),
    #[error(transparent)]
    Url(UrlError),
    #[error(transparent)]
    Fetch(FetchError),
    #[error(transparent)]
    Upload(UploadError),
}

impl ChatError {
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<RegenerateRefused> for ChatError {
    fn from(r: RegenerateRefused) -> Self {
        match r {
            RegenerateRefused::Running(m) => Self::Running(m),
            RegenerateRefused::Store(e) => Self::Store(e),
        }
    }
}

fn field(pointer: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(pointer, detail)])
}

fn conflict(detail: &str) -> ApiError {
    ApiError::Conflict(detail.into())
}

fn unavailable(detail: &str, retry_after_secs: u64) -> ApiError {
    ApiError::Unavailable { detail: detail.into(), retry_after_secs: Some(retry_after_secs) }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(fields) => ApiError::Validation(fields),
            ChatError::ModelNotOffered => field("/model", "is not a model this service offers"),
            ChatError::NoVision(model) => {
                field("/attachments", format!("model {model} does not accept images; choose a vision-capable model"))
            }
            ChatError::NoChatModel => unavailable("No AI model is configured right now.", 30),
            ChatError::NotTranscriptionModel => field("/query/model", "is not a transcription model"),
            ChatError::NoAudioModel => unavailable("No transcription model is configured right now.", 30),
            ChatError::AudioTooLarge { max } => {
                ApiError::PayloadTooLarge(format!("Audio files are limited to {max} bytes."))
            }
            // Each guard words its own refusal (the same problems as its direct uses at the edge).
            ChatError::ImageRefused(ImageRefusal { pointer, why }) => match why {
                ImageProblem::TooMany(e) => e.at(&pointer),
                ImageProblem::Url(e) => e.at(&pointer),
                ImageProblem::Fetch(e) => e.at(&pointer),
                ImageProblem::Upload(e) => e.at(&pointer),
            },
            ChatError::ImageGone => {
                field("/conversation_id", "an image of the message being answered can no longer be used")
            }
            ChatError::Running(running) => ApiError::Conflict(format!(
                "An answer to this conversation is already being generated: message {running}. Follow it with \
                 GET /api/v1/chat/messages/{running}/stream."
            )),
            ChatError::NothingToAnswer => conflict("This conversation has no message to answer."),
            ChatError::MessageNotFound => ApiError::NotFound("Message not found, or it has no stream.".into()),
            ChatError::BadLastEventId => {
                ApiError::BadRequest("Last-Event-ID is not an event id of this stream.".into())
            }
            ChatError::KeyGone => {
                conflict("The first request with this Idempotency-Key ended without an answer; send the request again.")
            }
            ChatError::KeyMovedOn => {
                conflict("The message of this Idempotency-Key is no longer the last of its conversation.")
            }
            ChatError::KeyPreparing => {
                conflict("The first request with this Idempotency-Key is still being prepared; retry shortly.")
            }
            ChatError::NoProviderAnswered => unavailable("No AI provider could answer this message; please retry.", 5),
            ChatError::Unanswered { message, cause } => match ApiError::from(*cause) {
                ApiError::Unavailable { detail, retry_after_secs } => ApiError::Unavailable {
                    detail: format!(
                        "{detail} Your message {message} is saved but was not answered (marked failed); retry \
                         with the same Idempotency-Key, or regenerate, to answer it."
                    ),
                    retry_after_secs,
                },
                other => other,
            },
            ChatError::Upstream(e) => ApiError::BadGateway(Box::new(e)),
            ChatError::Store(e) => e.into(),
            ChatError::Provider(e) => e.into(),
            ChatError::Streams(StreamRefused::Full { retry_after_secs }) => {
                ApiError::QuotaExceeded { policy: streams::POLICY.into(), retry_after_secs }
            }
            ChatError::Streams(StreamRefused::Store(_)) => {
                unavailable("Open streams cannot be counted right now; try again shortly.", 1)
            }
            ChatError::Limited(refusal) => refusal.into(),
            ChatError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// The store's failures, at the edge as through the service (the idempotency check meets them
/// before any service call).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("Conversation not found.".into()),
            StoreError::Dynamo { .. } => {
                tracing::error!(cause = %error_chain(&e), "conversation store failed");
                ApiError::Unavailable {
                    detail: "Storage is temporarily unavailable; please retry.".into(),
                    retry_after_secs: Some(2),
                }
            }
            StoreError::Corrupt(_) => ApiError::internal(e),
        }
    }
}

/// The providers' failures.
impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Exhausted { retry_after, last } => {
                if let Some(last) = &last {
                    tracing::warn!(cause = %error_chain(last), retry_after, "all providers failed");
                }
                ApiError::Unavailable {
                    detail: "The AI service is temporarily unavailable; please retry shortly.".into(),
                    retry_after_secs: Some(retry_after),
                }
            }
            ProviderError::NoRoute(_) => {
                tracing::error!(cause = %error_chain(&e), "model has no provider");
                ApiError::Unavailable {
                    detail: "No AI provider is configured for this model.".into(),
                    retry_after_secs: Some(crate::providers::FALLBACK_RETRY.as_secs()),
                }
            }
            // No secret (a new stack) or Secrets Manager down: the shared 503.
            ProviderError::Secrets(e) => e.into(),
            ProviderError::Config(_) => {
                tracing::error!(cause = %error_chain(&e), "provider configuration unusable");
                ApiError::Unavailable {
                    detail: "The AI service is not available right now.".into(),
                    retry_after_secs: Some(crate::providers::FALLBACK_RETRY.as_secs()),
                }
            }
            ProviderError::Rejected(_) => ApiError::BadGateway(Box::new(e)),
        }
    }
}

/// The problem document of a failure reported inside a stream (outside the request's task, so
/// the request's path and id are given).
pub fn stream_problem(err: ChatError, request: Option<&RequestInfo>) -> Problem {
    let mut p = ApiError::from(err).problem();
    if let Some(r) = request {
        p.instance = Some(r.path.clone());
        p.request_id = Some(r.id.clone());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_given_its_problem_here() {
        let status = |e: ChatError| ApiError::from(e).status().as_u16();
        let image = |why| ChatError::ImageRefused(ImageRefusal { pointer: "/attachments/0/url".into(), why });
        assert_eq!(status(image(ImageProblem::TooMany(TooManyImages { max: 5 }))), 413);
        assert_eq!(status(image(ImageProblem::Upload(UploadError::Base64))), 422);
        assert_eq!(status(image(ImageProblem::Fetch(FetchError::Status(404)))), 422);
        assert_eq!(status(ChatError::Streams(StreamRefused::Full { retry_after_secs: 3 })), 429);
        assert_eq!(status(ChatError::NoVision("text".into())), 422);
        assert_eq!(status(ChatError::Running(MessageId::new())), 409);
        assert_eq!(status(ChatError::BadLastEventId), 400);
        assert_eq!(status(ChatError::Upstream(StreamError::Dropped)), 502);
        let ApiError::Validation(fields) = ApiError::from(ChatError::ImageGone) else { panic!("not a 422") };
        assert_eq!(fields[0].pointer, "/conversation_id");
        // An unanswered message: a 503 says how to answer it; another problem stays as it is.
        let m = MessageId::new();
        let e = ApiError::from(ChatError::Unanswered { message: m, cause: Box::new(ChatError::NoChatModel) });
        let ApiError::Unavailable { detail, retry_after_secs: Some(30) } = e else { panic!("not a 503") };
        assert!(detail.starts_with(&format!("No AI model is configured right now. Your message {m} is saved")));
        let e = ApiError::from(ChatError::Unanswered { message: m, cause: Box::new(ChatError::NothingToAnswer) });
        assert!(matches!(e, ApiError::Conflict(d) if d == "This conversation has no message to answer."));
    }
}
