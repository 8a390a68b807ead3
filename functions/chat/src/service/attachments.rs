//! Images given with a message, made safe to pass on. Two steps, so a request that will be refused
//! costs as little as possible and nothing is stored for it:
//!
//! 1. [`Attachments::check`]: at most `MAX_IMAGES_PER_MESSAGE` (413); each data URL decoded and
//!    verified by its magic number (`upload::parse_data_url`); each web URL checked by the SSRF guard
//!    (scheme, port, userinfo, and every address its host resolves to must be public). Nothing is
//!    fetched yet.
//! 2. [`Attachments::load`]: each checked URL fetched with `ssrf::fetch` (only the checked addresses,
//!    no redirects, bounded time and size) and its bytes verified by magic number like an upload.
//!
//! The caller counts the images against the images limit between the two steps. What goes upstream
//! is always a `data:` URL of verified bytes (the canonical media type), never the user's URL: the
//! provider sees exactly the bytes that were checked.

use super::ChatError;
use super::error::{ImageProblem, ImageRefusal};
use crate::safety::ssrf::{self, CheckedUrl, FetchLimits, Resolver, UrlGuard};
use crate::safety::upload::{self, MediaClass, UploadLimits, VerifiedFile};
use std::sync::Arc;

use crate::api::AttachmentInput;
use crate::config::ChatConfig;
use crate::store::model::AttachmentRef;

/// An attachment that passed step 1.
pub enum Checked {
    Inline(VerifiedFile),
    Remote { pointer: String, url: CheckedUrl },
}

/// An image ready for the upstream, and what the message stores about it.
#[derive(Debug, Clone)]
pub struct Image {
    /// `data:<canonical type>;base64,...` of the verified bytes.
    pub data_url: String,
    /// Web URLs are kept (regenerate fetches and verifies them again); inline data is not stored.
    pub stored: AttachmentRef,
}

pub struct Attachments {
    guard: UrlGuard,
    limits: UploadLimits,
    fetch: FetchLimits,
}

impl Attachments {
    pub fn new(config: &ChatConfig, resolver: Arc<dyn Resolver>) -> Self {
        Self {
            guard: UrlGuard::with_resolver(config.urls.clone(), resolver),
            limits: config.uploads,
            fetch: config.image_fetch_limits(),
        }
    }

    /// Refused (413) when a message carries more images than allowed.
    pub fn check_count(&self, n: usize) -> Result<(), ChatError> {
        self.limits.check_image_count(n).map_err(|e| refused("/attachments", ImageProblem::TooMany(e)))
    }

    /// Step 1: count, data URLs verified, web URLs checked (no fetch).
    pub async fn check(&self, items: &[AttachmentInput]) -> Result<Vec<Checked>, ChatError> {
        self.check_count(items.len())?;
        let mut out = Vec::with_capacity(items.len());
        for (i, a) in items.iter().enumerate() {
            let pointer = a.pointer(i);
            if a.is_inline() {
                let file = upload::parse_data_url(a.url(), MediaClass::Image, &self.limits)
                    .map_err(|e| refused(&pointer, ImageProblem::Upload(e)))?;
                out.push(Checked::Inline(file));
            } else {
                let url = self.guard.check(a.url()).await.map_err(|e| refused(&pointer, ImageProblem::Url(e)))?;
                out.push(Checked::Remote { pointer, url });
            }
        }
        Ok(out)
    }

    /// Step 2: fetches the checked URLs (concurrently) and verifies what they returned.
    pub async fn load(&self, checked: Vec<Checked>) -> Result<Vec<Image>, ChatError> {
        let loads = checked.into_iter().map(|c| async move {
            match c {
                Checked::Inline(file) => {
                    Ok(Image { data_url: file.to_data_url(), stored: AttachmentRef { url: None, inline: true } })
                }
                Checked::Remote { pointer, url } => {
                    let fetched = ssrf::fetch(&url, &self.fetch).await.map_err(|e| match e {
                        // Not the image's fault: the fetch's HTTP client could not be built.
                        ssrf::FetchError::Client(_) => ChatError::internal(e),
                        e => refused(&pointer, ImageProblem::Fetch(e)),
                    })?;
                    let file =
                        upload::verify(MediaClass::Image, fetched.content_type.as_deref(), fetched.bytes, &self.limits)
                            .map_err(|e| refused(&pointer, ImageProblem::Upload(e)))?;
                    Ok(Image {
                        data_url: file.to_data_url(),
                        stored: AttachmentRef { url: Some(url.as_str().to_string()), inline: false },
                    })
                }
            }
        });
        futures::future::try_join_all(loads).await
    }
}

fn refused(pointer: &str, why: ImageProblem) -> ChatError {
    ChatError::ImageRefused(ImageRefusal { pointer: pointer.into(), why })
}
