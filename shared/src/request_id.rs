//! Request ids and log correlation. Every request runs in one `request` span whose fields are on
//! every log line of the request, named as in the API's access log (template.yaml) so the two
//! join: `requestId` (API Gateway's `$context.requestId`), `integrationRequestId` (Lambda's
//! request id), `xrayTraceId` (the X-Ray trace's root, `$context.xrayTraceId`), plus
//! `clientRequestId` (the `X-Request-Id` echoed to the client) and, once the caller is
//! authenticated, `userHash` (never the user id itself, see [`record_user`]).
//!
//! `X-Request-Id`: a well-formed incoming one is kept, else API Gateway's request id is used (the
//! id its own `x-amzn-RequestId` header and gateway responses carry), else a fresh UUID.

use axum::{extract::Request, middleware::Next, response::Response};
use http::{HeaderName, HeaderValue};
use std::time::Instant;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What error rendering needs to know about the request being served.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub id: String,
    pub path: String,
}

tokio::task_local! {
    static CURRENT: RequestInfo;
    /// The request's span, for fields known only later (the user).
    static SPAN: tracing::Span;
}

/// The ids AWS gives one request: API Gateway's (from the proxy event's request context),
/// Lambda's and the X-Ray trace (from the invocation's context). All absent outside Lambda.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsIds {
    pub api_request_id: Option<String>,
    pub lambda_request_id: Option<String>,
    /// The trace's `Root` (`1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`), as the access log writes it.
    pub xray_trace_id: Option<String>,
    /// API Gateway's resource path, the route template (`/widgets/{id}`).
    pub resource_path: Option<String>,
}

impl AwsIds {
    pub fn of<B>(req: &http::Request<B>) -> Self {
        use lambda_http::request::RequestContext;
        let (api_request_id, resource_path) = match req.extensions().get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(c)) => (c.request_id.clone(), c.resource_path.clone()),
            Some(RequestContext::ApiGatewayV2(c)) => (c.request_id.clone(), c.route_key.clone()),
            _ => (None, None),
        };
        let lambda = req.extensions().get::<lambda_http::Context>();
        Self {
            api_request_id: api_request_id.filter(|id| is_well_formed(id)),
            lambda_request_id: lambda.map(|c| c.request_id.clone()).filter(|id| !id.is_empty()),
            xray_trace_id: lambda.and_then(|c| c.xray_trace_id.as_deref()).and_then(trace_root),
            resource_path,
        }
    }
}

/// The `Root=` part of an X-Ray trace header (`Root=1-...;Parent=...;Sampled=1`).
pub fn trace_root(header: &str) -> Option<String> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .filter(|root| is_well_formed(root))
        .map(str::to_owned)
}

/// A stable, non-reversible tag for a user id in logs: the first 16 hex digits of its SHA-256.
/// Enough to follow one user across log lines, and to find them given their id; the id (and so
/// the person) cannot be read back from it.
pub fn user_hash(user_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(user_id.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Puts the authenticated caller's [`user_hash`] on the request's span (every later log line of
/// the request). A no-op outside a request.
pub fn record_user(user_id: &str) {
    let _ = SPAN.try_with(|span| {
        span.record("userHash", user_hash(user_id).as_str());
    });
}

impl RequestInfo {
    /// The request this task is serving, if any (None outside the request path, e.g. in tests).
    pub fn current() -> Option<RequestInfo> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

/// The request id as a request extension, for handlers that want it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Incoming ids are echoed into headers and logs, so only a short, plain token is trusted.
pub fn is_well_formed(id: &str) -> bool {
    (8..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub fn pick_request_id(incoming: Option<&HeaderValue>) -> String {
    pick(incoming, None)
}

/// The client's well-formed id, else API Gateway's, else a fresh UUID.
fn pick(incoming: Option<&HeaderValue>, api_request_id: Option<&str>) -> String {
    incoming
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_well_formed(v))
        .or(api_request_id)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Outermost middleware of every function.
pub async fn request_id_layer(mut req: Request, next: Next) -> Response {
    let aws = AwsIds::of(&req);
    let id = pick(req.headers().get(&X_REQUEST_ID), aws.api_request_id.as_deref());
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));
    // Whatever reads the header downstream sees the id this request is logged under.
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(X_REQUEST_ID, v);
    }
    let span = tracing::info_span!(
        "request",
        requestId = aws.api_request_id.as_deref(),
        integrationRequestId = aws.lambda_request_id.as_deref(),
        xrayTraceId = aws.xray_trace_id.as_deref(),
        clientRequestId = %id,
        userHash = tracing::field::Empty,
        method = %method,
        path = %path,
    );
    let info = RequestInfo { id: id.clone(), path };
    // The invocation's own trace (not the process-wide `_X_AMZN_TRACE_ID`): its downstream calls
    // become subsegments of it when it is sampled.
    let trace = req
        .extensions()
        .get::<lambda_http::Context>()
        .and_then(|c| c.xray_trace_id.as_deref())
        .and_then(crate::xray::TraceContext::sampled)
        .map(std::sync::Arc::new);
    let started = Instant::now();
    let run = SPAN.scope(span.clone(), next.run(req).instrument(span.clone()));
    let mut res = CURRENT.scope(info, crate::xray::scope(trace, run)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    let latency = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status = res.status().as_u16(), latency_us = latency.as_micros() as u64, "request completed");
    });
    // Outside API Gateway there is no route template, and a raw path is no bounded dimension.
    crate::metrics::record_request(aws.resource_path.as_deref().unwrap_or("-"), res.status().as_u16(), latency);
    // Metrics recorded while a streamed body is produced belong to this invocation too.
    res.map(|body| axum::body::Body::new(FlushOnEnd(body)))
}

/// A response body that flushes the invocation's metrics when it is dropped: after its last
/// byte was sent (or the client went away).
struct FlushOnEnd(axum::body::Body);

impl Drop for FlushOnEnd {
    fn drop(&mut self) {
        crate::metrics::flush();
    }
}

impl axum::body::HttpBody for FlushOnEnd {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids_and_rejects_hostile_ones() {
        assert!(is_well_formed("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(is_well_formed("req_12345678"));
        for bad in ["", "short", "has space in it", "new\nline-injected", "<script>alert(1)</script>"] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
        assert!(!is_well_formed(&"a".repeat(129)));
    }

    #[test]
    fn generates_when_absent_or_bad() {
        let generated = pick_request_id(None);
        assert!(uuid::Uuid::parse_str(&generated).is_ok());
        let bad = HeaderValue::from_static("x y");
        assert_ne!(pick_request_id(Some(&bad)), "x y");
        let good = HeaderValue::from_static("abc-12345678");
        assert_eq!(pick_request_id(Some(&good)), "abc-12345678");
        // Without a usable client id, API Gateway's id is the one echoed.
        assert_eq!(
            pick(Some(&bad), Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")),
            "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
        );
        assert_eq!(pick(Some(&good), Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")), "abc-12345678");
    }

    #[test]
    fn trace_root_is_the_root_part_only() {
        assert_eq!(
            trace_root("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").as_deref(),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(trace_root("Parent=53995c3f42cd8ad8"), None);
        assert_eq!(trace_root("Root=bad root"), None);
    }

    #[test]
    fn user_hash_is_stable_short_and_not_the_id() {
        let h = user_hash("user_2abcDEF");
        assert_eq!(h, user_hash("user_2abcDEF"));
        assert_ne!(h, user_hash("user_2abcDEG"));
        assert_eq!(h.len(), 16);
        assert!(!h.contains("user"));
    }
}
