//! Helmet v8's default header set, applied to every response (errors included), and removal of
//! banners that name the server software.

use axum::{extract::Request, middleware::Next, response::Response};
use http::{HeaderName, HeaderValue, header};

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests";

/// (name, value) pairs, in Helmet's order.
pub const SECURITY_HEADERS: [(&str, &str); 12] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// Sets the security headers on a response, replacing any value a handler set.
pub fn apply(headers: &mut http::HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    headers.remove(header::SERVER);
    headers.remove(X_POWERED_BY);
}

pub async fn security_headers_layer(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    apply(res.headers_mut());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_handler_values_and_strips_banners() {
        let mut h = http::HeaderMap::new();
        h.insert(header::SERVER, HeaderValue::from_static("nginx"));
        h.insert(X_POWERED_BY, HeaderValue::from_static("Express"));
        h.insert("x-frame-options", HeaderValue::from_static("ALLOWALL"));
        apply(&mut h);
        assert!(h.get(header::SERVER).is_none());
        assert!(h.get(X_POWERED_BY).is_none());
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(h.len(), SECURITY_HEADERS.len());
    }
}
