//! Fetching a checked URL: connect only to the addresses that were checked (the client's name
//! resolution is replaced by those addresses, and any other lookup fails), follow no redirects
//! (a redirect could point anywhere), no proxy, bounded time and size, no decompression.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::Host;

use crate::safety::ssrf::CheckedUrl;
use baatcheet_shared::error::{ApiError, FieldError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLimits {
    pub max_bytes: usize,
    /// The whole exchange, connect to last byte.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self { max_bytes: 4 * 1024 * 1024, timeout: Duration::from_secs(10), connect_timeout: Duration::from_secs(3) }
    }
}

#[derive(Debug, Clone)]
pub struct Fetched {
    /// As the server declared it; uploads are checked against their bytes anyway.
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    #[error("request timed out")]
    Timeout,
    #[error("answered with status {0}")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

impl FetchError {
    /// The client-facing problem for a fetch of the URL at `pointer`: 413 when too large, a 422
    /// naming the field otherwise, without the cause (which goes to the debug log).
    pub fn at(&self, pointer: &str) -> ApiError {
        tracing::debug!(error = %baatcheet_shared::error::error_chain(self), pointer, "fetch of a user URL failed");
        match self {
            Self::TooLarge(n) => ApiError::PayloadTooLarge(format!("{pointer}: the resource exceeds {n} bytes.")),
            Self::Client(e) => ApiError::internal(std::io::Error::other(e.to_string())),
            _ => ApiError::Validation(vec![FieldError::new(pointer, "could not be fetched")]),
        }
    }
}

/// Refuses every lookup: a name the checked addresses do not cover is never resolved.
struct NoResolution;

impl reqwest::dns::Resolve for NoResolution {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move { Err(format!("resolution of {name} refused: only checked addresses are used").into()) })
    }
}

pub async fn fetch(checked: &CheckedUrl, limits: &FetchLimits) -> Result<Fetched, FetchError> {
    let url = checked.url();
    let mut builder = baatcheet_shared::tls::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .referer(false)
        .timeout(limits.timeout)
        .connect_timeout(limits.connect_timeout)
        .https_only(url.scheme() == "https")
        .user_agent(concat!("BaatCheet/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(NoResolution));
    if let Some(Host::Domain(domain)) = url.host() {
        // Port 0: the URL's port (or the scheme default) is used, as reqwest documents.
        let addrs: Vec<SocketAddr> = checked.addresses().iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
        builder = builder.resolve_to_addrs(domain, &addrs);
    }
    let client = builder.build().map_err(FetchError::Client)?;
    let map = |e: reqwest::Error| if e.is_timeout() { FetchError::Timeout } else { FetchError::Request(e) };

    let mut res = client.get(url.clone()).send().await.map_err(map)?;
    if !res.status().is_success() {
        return Err(FetchError::Status(res.status().as_u16()));
    }
    if res.content_length().is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(FetchError::TooLarge(limits.max_bytes));
    }
    let content_type = res.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = BytesMut::new();
    while let Some(chunk) = res.chunk().await.map_err(map)? {
        if body.len() + chunk.len() > limits.max_bytes {
            return Err(FetchError::TooLarge(limits.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { content_type, bytes: body.freeze() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, body::Body, response::Redirect, routing::get};
    use std::net::IpAddr;

    async fn server() -> u16 {
        let app = Router::new()
            .route("/ok", get(|| async { ([("content-type", "image/png")], "hello") }))
            .route("/redirect", get(|| async { Redirect::temporary("/ok") }))
            .route("/big", get(|| async { vec![b'x'; 2048] }))
            .route(
                "/chunked",
                get(|| async {
                    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 64])));
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/missing", get(|| async { (http::StatusCode::NOT_FOUND, "no") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    /// `pinned.invalid` exists in no DNS (RFC 6761): reaching the server proves the checked
    /// address was used and nothing was resolved.
    fn pinned(port: u16, path: &str) -> CheckedUrl {
        let url = url::Url::parse(&format!("http://pinned.invalid:{port}{path}")).unwrap();
        CheckedUrl::unchecked_for_test(url, vec![IpAddr::from([127, 0, 0, 1])])
    }

    fn limits() -> FetchLimits {
        FetchLimits {
            max_bytes: 1024,
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
        }
    }

    #[tokio::test]
    async fn connects_to_the_checked_address_without_resolving() {
        let port = server().await;
        let got = fetch(&pinned(port, "/ok"), &limits()).await.unwrap();
        assert_eq!(&got.bytes[..], b"hello");
        assert_eq!(got.content_type.as_deref(), Some("image/png"));
        // A name without a pinned address is never looked up.
        let other = CheckedUrl::unchecked_for_test(
            url::Url::parse(&format!("http://localhost:{port}/ok")).unwrap(),
            Vec::new(),
        );
        assert!(matches!(fetch(&other, &limits()).await, Err(FetchError::Request(_))));
    }

    #[tokio::test]
    async fn does_not_follow_redirects() {
        let port = server().await;
        assert!(matches!(fetch(&pinned(port, "/redirect"), &limits()).await, Err(FetchError::Status(307))));
        assert!(matches!(fetch(&pinned(port, "/missing"), &limits()).await, Err(FetchError::Status(404))));
    }

    #[tokio::test]
    async fn bounds_size_and_time() {
        let port = server().await;
        assert!(matches!(fetch(&pinned(port, "/big"), &limits()).await, Err(FetchError::TooLarge(1024))));
        assert!(matches!(fetch(&pinned(port, "/chunked"), &limits()).await, Err(FetchError::TooLarge(1024))));
        assert!(matches!(fetch(&pinned(port, "/slow"), &limits()).await, Err(FetchError::Timeout)));
        let e = FetchError::TooLarge(1024).at("/images/0/url");
        assert_eq!(e.status(), 413);
        assert_eq!(FetchError::Timeout.at("/images/0/url").status(), 422);
    }
}
