//! Images given with a message (`CompletionRequest::attachments`): their two forms and the check of
//! their URL's form.

use baatcheet_shared::validation::{Report, Validate};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// Longest attachment URL accepted (data URLs are bounded by the body limit and the image size).
pub const MAX_URL_CHARS: usize = 2_048;

/// An image given with a message: an `https://` URL or a `data:image/...;base64,` URL, as a string
/// or as `{ "url": ... }`. Here only its form is checked; the attachment pipeline checks the URL
/// (SSRF guard), fetches it, and verifies every file by its magic number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AttachmentInput {
    #[schema(value_type = AttachmentUrl)]
    Url(String),
    Object {
        #[schema(value_type = AttachmentUrl)]
        url: String,
    },
}

/// Documentation only: the URL of an attachment, as `check_attachment_url` checks its form.
pub struct AttachmentUrl;

impl PartialSchema for AttachmentUrl {
    fn schema() -> RefOr<Schema> {
        let web = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An image on the web: an `http(s)://` URL (the scheme in any case). It is fetched only when it \
                 resolves to a public address, and the file must be an image by its magic number.",
            ))
            .pattern(Some("^[Hh][Tt][Tt][Pp][Ss]?://"))
            .max_length(Some(MAX_URL_CHARS))
            .examples(["https://example.com/photo.png"]);
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An inline image: a `data:image/...;base64,` URL (PNG, JPEG, GIF or WebP, verified by its magic \
                 number; bounded by the image size limit and the request body limit).",
            ))
            .pattern(Some("^[Dd][Aa][Tt][Aa]:"))
            .examples(["data:image/png;base64,iVBORw0KGgo="]);
        OneOfBuilder::new()
            .item(web)
            .item(data)
            .description(Some("An image URL: `https://...` or `data:image/...;base64,...`."))
            .into()
    }
}

impl ToSchema for AttachmentUrl {}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// By hand rather than `#[serde(untagged)]`: untagged buffers the value and would take an array
/// (`["https://..."]`) for the object form and ignore unknown keys in it. Exactly a string, or an
/// object with `url` and nothing else.
impl<'de> Deserialize<'de> for AttachmentInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AttachmentInput;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL string or an object {\"url\": ...}")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttachmentInput::Url(v.to_string()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(AttachmentInput::Url(v))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut url = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "url" if url.is_some() => return Err(serde::de::Error::duplicate_field("url")),
                        "url" => url = Some(map.next_value::<String>()?),
                        other => return Err(serde::de::Error::unknown_field(other, &["url"])),
                    }
                }
                url.map(|url| AttachmentInput::Object { url }).ok_or_else(|| serde::de::Error::missing_field("url"))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl AttachmentInput {
    pub fn url(&self) -> &str {
        match self {
            AttachmentInput::Url(u) | AttachmentInput::Object { url: u } => u,
        }
    }

    pub fn is_inline(&self) -> bool {
        starts_with_ci(self.url(), "data:")
    }

    /// The JSON pointer of this attachment's URL in a request (`/attachments/0` or `/attachments/0/url`).
    pub fn pointer(&self, index: usize) -> String {
        match self {
            AttachmentInput::Url(_) => format!("/attachments/{index}"),
            AttachmentInput::Object { .. } => format!("/attachments/{index}/url"),
        }
    }
}

fn check_attachment_url(r: &mut Report, url: &str) {
    let web = starts_with_ci(url, "https://") || starts_with_ci(url, "http://");
    if !(web || starts_with_ci(url, "data:")) {
        r.fail("must be an https URL or an image data URL");
    } else if web && url.chars().count() > MAX_URL_CHARS {
        r.fail(format!("must be at most {MAX_URL_CHARS} characters"));
    }
}

impl Validate for AttachmentInput {
    fn validate(&mut self, r: &mut Report) {
        match self {
            AttachmentInput::Url(u) => check_attachment_url(r, u),
            AttachmentInput::Object { url } => r.at("url", |r| check_attachment_url(r, url)),
        }
    }
}
