//! The one error type of the request path, rendered as RFC 9457 `application/problem+json`.
//!
//! Handlers return `Result<_, ApiError>`; the variant decides the status and problem `type`.
//! 5xx bodies carry a generic detail only: the cause chain goes to the log, inside the request's
//! span, so it is joined to the request id there and never to the client.

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;
use std::error::Error as StdError;

use crate::request_id::RequestInfo;

/// Base of every problem `type` URI; the slug names the kind of failure.
pub const PROBLEM_BASE: &str = "https://baatcheet.app/problems/";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One failing input field: `pointer` is a JSON pointer (RFC 6901) into the request (body fields
/// as `/message`, query parameters as `/query/limit`, path parameters as `/path/id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), detail: detail.into() }
    }
}

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication failed: {reason}")]
    Unauthorized { reason: &'static str, detail: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("quota exceeded for policy {policy}")]
    QuotaExceeded { policy: String, retry_after_secs: u64 },
    #[error("service unavailable: {detail}")]
    Unavailable { detail: String, retry_after_secs: Option<u64> },
    #[error("upstream failure")]
    BadGateway(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn internal(err: impl Into<BoxError>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Validation(_) => "validation-error",
            Self::QuotaExceeded { .. } => "quota-exceeded",
            Self::Unavailable { .. } => "service-unavailable",
            Self::BadGateway(_) => "bad-gateway",
            Self::Internal(_) => "internal-error",
        }
    }

    /// The client-facing detail. Server-side failures say nothing about their cause.
    fn detail(&self) -> String {
        match self {
            Self::BadRequest(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::PayloadTooLarge(d)
            | Self::UnsupportedMediaType(d) => d.clone(),
            Self::Unauthorized { detail, .. } => detail.clone(),
            Self::MethodNotAllowed => "The method is not allowed for this resource.".into(),
            Self::Validation(errors) => {
                format!("The request has {} invalid field(s).", errors.len())
            }
            Self::QuotaExceeded { policy, retry_after_secs } => {
                format!("Rate limit '{policy}' exceeded; retry in {retry_after_secs} s.")
            }
            Self::Unavailable { detail, .. } => detail.clone(),
            Self::BadGateway(_) => "An upstream service failed to answer.".into(),
            Self::Internal(_) => "An unexpected error occurred.".into(),
        }
    }

    /// Builds the problem document for this error in the current request's context.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let mut p = Problem::new(status, self.slug(), self.detail());
        match self {
            Self::Validation(errors) => p.errors = Some(errors.clone()),
            Self::Unauthorized { reason, .. } => p.reason = Some(reason),
            Self::QuotaExceeded { policy, retry_after_secs } => {
                p.policy = Some(policy.clone());
                p.retry_after = Some(*retry_after_secs);
            }
            Self::Unavailable { retry_after_secs, .. } => p.retry_after = *retry_after_secs,
            _ => {}
        }
        p
    }

    fn log(&self) {
        match self {
            Self::Internal(e) | Self::BadGateway(e) => {
                tracing::error!(status = self.status().as_u16(), cause = %error_chain(e.as_ref()), "request failed");
            }
            Self::Unavailable { detail, .. } => {
                tracing::warn!(status = 503, detail = %detail, "dependency unavailable");
            }
            _ => tracing::debug!(status = self.status().as_u16(), error = %self, "request rejected"),
        }
    }
}

/// `a: b: c` for an error and its sources, for logs.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// An RFC 9457 problem details object. Extension members are optional fields.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Machine-readable reason of a 401 (expired, invalid_signature, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        let info = RequestInfo::current();
        Self {
            type_uri: format!("{PROBLEM_BASE}{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: info.as_ref().map(|i| i.path.clone()),
            request_id: info.map(|i| i.id),
            errors: None,
            reason: None,
            policy: None,
            retry_after: None,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3.1: a request without credentials gets the bare challenge.
            let value = match self.reason {
                Some(r) if r != "missing_token" => format!("Bearer error=\"invalid_token\", error_description=\"{r}\""),
                _ => "Bearer".to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        if let Self::QuotaExceeded { policy, .. } = &self {
            crate::metrics::record_rate_limited(policy);
        }
        let mut res = self.problem().into_response();
        if matches!(self, Self::MethodNotAllowed) {
            res.headers_mut().remove(HeaderName::from_static("allow"));
        }
        res
    }
}

/// Router fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("No resource exists at this path.".into())
}

/// Router fallback for known paths with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(res: Response) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn validation_problem_lists_fields() {
        let err = ApiError::Validation(vec![FieldError::new("/message", "must not be empty")]);
        let res = err.into_response();
        assert_eq!(res.status(), 422);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let v = body_json(res).await;
        assert_eq!(v["type"], format!("{PROBLEM_BASE}validation-error"));
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["pointer"], "/message");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let cause = std::io::Error::other("password=hunter2 at db-7.internal");
        let res = ApiError::internal(cause).into_response();
        assert_eq!(res.status(), 500);
        let text = serde_json::to_string(&body_json(res).await).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("internal:"), "{text}");
        assert!(text.contains("An unexpected error occurred."));
    }

    #[tokio::test]
    async fn quota_problem_sets_retry_after() {
        let res = ApiError::QuotaExceeded { policy: "chat".into(), retry_after_secs: 36 }.into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "36");
        let v = body_json(res).await;
        assert_eq!(v["policy"], "chat");
        assert_eq!(v["retry_after"], 36);
    }

    #[tokio::test]
    async fn unauthorized_carries_www_authenticate() {
        let res = ApiError::Unauthorized { reason: "expired", detail: "Token expired.".into() }.into_response();
        assert_eq!(res.status(), 401);
        assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
        assert_eq!(body_json(res).await["reason"], "expired");
    }

    #[test]
    fn error_chain_joins_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
