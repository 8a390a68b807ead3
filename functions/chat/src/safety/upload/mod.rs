//! Uploads checked by magic number. A file is accepted only if its bytes are a well-formed
//! file of an allowed type ([`sniff`]) of the expected class (image or audio), the declared
//! media type (Content-Type, data-URL type) names that same type, and it is within the size
//! limits; audio must also have a duration its packets tell ([`duration`]) within
//! `MAX_AUDIO_SECONDS`. Anything else: 415 (type, or audio whose duration cannot be told), 413
//! (size), 422 (empty, longer than allowed). An accepted [`VerifiedFile`] has
//! a server-made id, canonical media type and extension: nothing the client chose (name, type)
//! is kept.

pub mod data_url;
pub mod duration;
pub mod kind;
pub mod multipart;
pub mod sniff;

use bytes::Bytes;

use baatcheet_shared::config::ConfigError;
use baatcheet_shared::error::{ApiError, FieldError};
use baatcheet_shared::validation::{FileId, MIB, body};

pub use data_url::parse_data_url;
pub use duration::{AudioLength, DurationError};
pub use kind::{Kind, MediaClass};
pub use multipart::{AudioUpload, read_single_file};
pub use sniff::{SniffError, detect};

/// Sizes that fit Lambda's 6 MB request payload (a 4 MiB file is ~5.6 MB once base64-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub max_image_bytes: usize,
    pub max_audio_bytes: usize,
    pub max_images_per_message: usize,
    /// The longest audio file accepted, in seconds (`MAX_AUDIO_SECONDS`).
    pub max_audio_seconds: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        // 10 minutes: a long voice note or a short meeting; longer recordings are split.
        Self { max_image_bytes: 4 * MIB, max_audio_bytes: 4 * MIB, max_images_per_message: 5, max_audio_seconds: 600 }
    }
}

impl UploadLimits {
    /// `MAX_IMAGE_BYTES`, `MAX_AUDIO_BYTES`, `MAX_IMAGES_PER_MESSAGE`, `MAX_AUDIO_SECONDS`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let num = |name: &'static str, default: usize| match get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError::Invalid { name, reason: format!("'{v}' is not a positive number") }),
        };
        Ok(Self {
            max_image_bytes: num("MAX_IMAGE_BYTES", d.max_image_bytes)?,
            max_audio_bytes: num("MAX_AUDIO_BYTES", d.max_audio_bytes)?,
            max_images_per_message: num("MAX_IMAGES_PER_MESSAGE", d.max_images_per_message)?,
            max_audio_seconds: u32::try_from(num("MAX_AUDIO_SECONDS", d.max_audio_seconds as usize)?)
                .map_err(|_| ConfigError::Invalid { name: "MAX_AUDIO_SECONDS", reason: "too large".into() })?,
        })
    }

    pub fn max_bytes(&self, class: MediaClass) -> usize {
        match class {
            MediaClass::Image => self.max_image_bytes,
            MediaClass::Audio => self.max_audio_bytes,
        }
    }

    /// Refused when a message carries more images than allowed (a 413: [`TooManyImages::at`]).
    pub fn check_image_count(&self, n: usize) -> Result<(), TooManyImages> {
        if n > self.max_images_per_message {
            return Err(TooManyImages { max: self.max_images_per_message });
        }
        Ok(())
    }
}

/// A message with more images than it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most {max} images per message")]
pub struct TooManyImages {
    pub max: usize,
}

impl TooManyImages {
    /// The problem for the images at `pointer`: 413.
    pub fn at(&self, pointer: &str) -> ApiError {
        ApiError::PayloadTooLarge(format!("{pointer}: {self}."))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the file is empty")]
    Empty,
    #[error("the file exceeds {0} bytes")]
    TooLarge(usize),
    #[error("a media type must be declared")]
    Undeclared,
    #[error("the declared media type is not an allowed {0}")]
    DeclaredNotAllowed(&'static str),
    #[error("{0}")]
    Content(SniffError),
    #[error("the content is {detected}, not {class}")]
    WrongClass { detected: &'static str, class: &'static str },
    #[error("the declared media type {declared} does not match the content ({detected})")]
    Mismatch { declared: &'static str, detected: &'static str },
    #[error("must be a base64 data: URL")]
    NotDataUrl,
    #[error("the base64 data is invalid")]
    Base64,
    #[error("{0}")]
    Duration(DurationError),
    #[error("the audio lasts {seconds} s; at most {max} s is accepted")]
    TooLong { seconds: u32, max: u32 },
}

impl UploadError {
    /// The problem for this failure of the input at `pointer`.
    pub fn at(&self, pointer: &str) -> ApiError {
        let msg = if pointer.is_empty() { self.to_string() } else { format!("{pointer}: {self}") };
        match self {
            Self::Empty | Self::NotDataUrl | Self::Base64 | Self::TooLong { .. } => {
                ApiError::Validation(vec![FieldError::new(pointer, self.to_string())])
            }
            Self::TooLarge(_) => ApiError::PayloadTooLarge(format!("{msg}.")),
            _ => ApiError::UnsupportedMediaType(format!("{msg}.")),
        }
    }
}

fn class_name(c: MediaClass) -> &'static str {
    match c {
        MediaClass::Image => "an image (PNG, JPEG, GIF, WebP)",
        MediaClass::Audio => "audio (MP3, WAV, OGG, FLAC, WebM, M4A)",
    }
}

/// A file that passed every check, known by a server-made id.
#[derive(Debug, Clone)]
pub struct VerifiedFile {
    id: FileId,
    kind: Kind,
    bytes: Bytes,
    /// Audio only: how long it plays.
    length: Option<AudioLength>,
}

impl VerifiedFile {
    pub fn id(&self) -> FileId {
        self.id
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The canonical type to store and serve it as.
    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }
    /// `<id>.<ext>`: the only name it is stored or served under.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.id, self.kind.extension())
    }
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// How long an audio file plays (measured by its packets); `None` for an image.
    pub fn audio_length(&self) -> Option<AudioLength> {
        self.length
    }
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    /// `data:<canonical type>;base64,...`, e.g. to pass an image to an LLM provider.
    pub fn to_data_url(&self) -> String {
        use base64::Engine as _;
        format!("data:{};base64,{}", self.media_type(), base64::engine::general_purpose::STANDARD.encode(&self.bytes))
    }
}

/// Checks `bytes` against `class`, the limits, and the declared media type (a Content-Type
/// header value or a data-URL media type; parameters are ignored).
pub fn verify(
    class: MediaClass,
    declared: Option<&str>,
    bytes: Bytes,
    limits: &UploadLimits,
) -> Result<VerifiedFile, UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    let max = limits.max_bytes(class);
    if bytes.len() > max {
        return Err(UploadError::TooLarge(max));
    }
    let declared = declared.filter(|d| !d.trim().is_empty()).ok_or(UploadError::Undeclared)?;
    let declared_kind = body::parse_media_type(declared)
        .and_then(|(essence, _)| Kind::from_declared(&essence))
        .filter(|k| k.class() == class)
        .ok_or(UploadError::DeclaredNotAllowed(class_name(class)))?;
    let detected = sniff::detect(&bytes).map_err(UploadError::Content)?;
    if detected.class() != class {
        return Err(UploadError::WrongClass { detected: detected.media_type(), class: class_name(class) });
    }
    if detected != declared_kind {
        return Err(UploadError::Mismatch { declared: declared_kind.media_type(), detected: detected.media_type() });
    }
    let length = match class {
        MediaClass::Image => None,
        MediaClass::Audio => {
            let length = duration::measure(detected, &bytes).map_err(UploadError::Duration)?;
            let seconds = length.charged_seconds();
            if seconds > limits.max_audio_seconds {
                return Err(UploadError::TooLong { seconds, max: limits.max_audio_seconds });
            }
            Some(length)
        }
    };
    Ok(VerifiedFile { id: FileId::new(), kind: detected, bytes, length })
}
