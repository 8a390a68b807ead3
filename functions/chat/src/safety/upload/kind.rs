//! The file types BaatCheet accepts, their one canonical media type and extension, and which
//! declared media types name each of them.

/// Images a message may carry, or audio for transcription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaClass {
    Image,
    Audio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Png,
    Jpeg,
    Gif,
    Webp,
    Mp3,
    Wav,
    Ogg,
    Flac,
    Webm,
    /// M4A / MP4 audio (ISO base media file).
    Mp4,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Png,
        Kind::Jpeg,
        Kind::Gif,
        Kind::Webp,
        Kind::Mp3,
        Kind::Wav,
        Kind::Ogg,
        Kind::Flac,
        Kind::Webm,
        Kind::Mp4,
    ];

    pub fn class(self) -> MediaClass {
        match self {
            Kind::Png | Kind::Jpeg | Kind::Gif | Kind::Webp => MediaClass::Image,
            _ => MediaClass::Audio,
        }
    }

    /// The media type the file is stored and served as, whatever the client said.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
            Kind::Mp3 => "audio/mpeg",
            Kind::Wav => "audio/wav",
            Kind::Ogg => "audio/ogg",
            Kind::Flac => "audio/flac",
            Kind::Webm => "audio/webm",
            Kind::Mp4 => "audio/mp4",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Png => "png",
            Kind::Jpeg => "jpg",
            Kind::Gif => "gif",
            Kind::Webp => "webp",
            Kind::Mp3 => "mp3",
            Kind::Wav => "wav",
            Kind::Ogg => "ogg",
            Kind::Flac => "flac",
            Kind::Webm => "webm",
            Kind::Mp4 => "m4a",
        }
    }

    /// The kind a declared media type names (essence only, lowercase; parameters such as
    /// `codecs=opus` are ignored). Browsers and OSes label audio loosely, so common aliases
    /// count; `application/octet-stream` and anything else names nothing.
    pub fn from_declared(essence: &str) -> Option<Kind> {
        Some(match essence {
            "image/png" => Kind::Png,
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Kind::Jpeg,
            "image/gif" => Kind::Gif,
            "image/webp" => Kind::Webp,
            "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" | "audio/mpga" => Kind::Mp3,
            "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Kind::Wav,
            "audio/ogg" | "audio/opus" | "application/ogg" | "audio/x-ogg" => Kind::Ogg,
            "audio/flac" | "audio/x-flac" => Kind::Flac,
            "audio/webm" | "video/webm" => Kind::Webm,
            "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "video/mp4" => Kind::Mp4,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_types_name_their_own_kind() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_declared(k.media_type()), Some(k));
        }
        assert_eq!(Kind::from_declared("application/octet-stream"), None);
        assert_eq!(Kind::from_declared("image/svg+xml"), None);
        assert_eq!(Kind::from_declared("text/html"), None);
    }
}
