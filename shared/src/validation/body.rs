//! Reading a request body with its size bounded before anything parses it, and checking the
//! declared media type.

use axum::body::Body;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * KIB;

/// The largest body a JSON extractor reads. Routes that take more (inline images) set their own
/// with `.layer(Extension(BodyLimit(..)))`; Lambda's request payload is 6 MB whatever is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl Default for BodyLimit {
    fn default() -> Self {
        Self(MIB)
    }
}

impl BodyLimit {
    pub fn from_extensions(ext: &http::Extensions) -> Self {
        ext.get::<Self>().copied().unwrap_or_default()
    }
}

/// The whole body, or 413 as soon as it is known to exceed `limit` (from `Content-Length` before
/// reading, or while reading for chunked bodies).
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(e) => Err(ApiError::BadRequest(format!("The request body could not be read: {e}"))),
    }
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("The request body exceeds the limit of {limit} bytes."))
}

/// The media type's essence (`type/subtype`, lowercased) and its parameters.
pub fn media_type(headers: &HeaderMap) -> Option<(String, Vec<(String, String)>)> {
    let raw = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    parse_media_type(raw)
}

pub fn parse_media_type(raw: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut parts = raw.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let (ty, sub) = essence.split_once('/')?;
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    if !token(ty) || !token(sub) {
        return None;
    }
    let params = parts
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string())
        })
        .collect();
    Some((essence, params))
}

/// `application/json` or any `+json` type, in UTF-8 (the only charset JSON allows, RFC 8259).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = || ApiError::UnsupportedMediaType("The request body must be sent as application/json.".into());
    let (essence, params) = media_type(headers).ok_or_else(unsupported)?;
    if essence != "application/json" && !(essence.starts_with("application/") && essence.ends_with("+json")) {
        return Err(unsupported());
    }
    match params.iter().find(|(k, _)| k == "charset") {
        Some((_, cs)) if !cs.eq_ignore_ascii_case("utf-8") => {
            Err(ApiError::UnsupportedMediaType("JSON request bodies must be UTF-8.".into()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn json_media_types() {
        for ok in ["application/json", "Application/JSON; charset=UTF-8", "application/merge-patch+json"] {
            assert!(require_json(&headers(ok)).is_ok(), "{ok}");
        }
        for bad in ["text/plain", "application/json; charset=latin1", "application/jsonx", "json", "text/json"] {
            assert!(require_json(&headers(bad)).is_err(), "{bad}");
        }
        assert!(require_json(&HeaderMap::new()).is_err());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let err = read_limited(&HeaderMap::new(), Body::from(vec![b'a'; 11]), 10).await.unwrap_err();
        assert_eq!(err.status(), 413);
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "1000".parse().unwrap());
        assert_eq!(read_limited(&h, Body::empty(), 10).await.unwrap_err().status(), 413);
        assert_eq!(read_limited(&HeaderMap::new(), Body::from("0123456789"), 10).await.unwrap().len(), 10);
    }
}
