//! Request ids: accept a well-formed incoming `X-Request-Id`, else generate one; echo it on the
//! response; open the request's tracing span so every log line of the request carries it.

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
    incoming
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_well_formed(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Outermost middleware of every function.
pub async fn request_id_layer(mut req: Request, next: Next) -> Response {
    let id = pick_request_id(req.headers().get(&X_REQUEST_ID));
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(id.clone()));
    // Whatever reads the header downstream sees the id this request is logged under.
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(X_REQUEST_ID, v);
    }
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let info = RequestInfo { id: id.clone(), path };
    let started = Instant::now();
    let mut res = CURRENT.scope(info, next.run(req).instrument(span.clone())).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    span.in_scope(|| {
        tracing::info!(
            status = res.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request completed"
        );
    });
    res
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
    }
}
