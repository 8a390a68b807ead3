//! The client's source IP: from the API Gateway request context in Lambda, from the socket in the
//! local gateway. Never from X-Forwarded-For, which any client can write.

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use lambda_http::request::RequestContext;
use std::net::{IpAddr, SocketAddr};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn from_parts(parts: &http::request::Parts) -> Option<Self> {
        Self::from_extensions(&parts.extensions)
    }

    pub fn from_extensions(ext: &http::Extensions) -> Option<Self> {
        if let Some(ctx) = ext.get::<RequestContext>() {
            let ip = match ctx {
                RequestContext::ApiGatewayV1(c) => c.identity.source_ip.as_deref(),
                RequestContext::ApiGatewayV2(c) => Some(c.http.source_ip.as_deref().unwrap_or_default()),
                #[allow(unreachable_patterns)]
                _ => None,
            };
            return ip.and_then(|s| s.parse().ok()).map(ClientIp);
        }
        ext.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| ClientIp(addr.ip()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Fail closed: a request whose origin cannot be told is not served by IP-keyed code.
        Self::from_parts(parts).ok_or_else(|| ApiError::BadRequest("The client address is unknown.".into()))
    }
}
