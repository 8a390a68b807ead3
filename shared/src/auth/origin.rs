//! Cross-site request forgery guard for cookie-borne sessions. A browser attaches the
//! `__session` cookie to any request to this API, whichever site started it, so a request that
//! changes state and is authenticated by that cookie must show it comes from an allowed page:
//! its `Origin` is one of the configured origins (the CORS list), or, without such an `Origin`,
//! the browser marks it `Sec-Fetch-Site: same-origin` (a header page scripts cannot set). Safe
//! methods (GET, HEAD, OPTIONS) and Bearer tokens (which a browser never attaches on its own)
//! are not checked.

use http::{HeaderMap, HeaderValue, Method, header};

use super::token::TokenSource;
use crate::error::ApiError;

/// Ok when the request may use its token; 403 problem+json for a cookie-authenticated,
/// state-changing request from elsewhere.
pub fn check_request_origin(
    method: &Method,
    headers: &HeaderMap,
    source: TokenSource,
    allowed_origins: &[HeaderValue],
) -> Result<(), ApiError> {
    if source == TokenSource::Bearer || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (Some(o), None) => Some(o),
        (None, _) => None,
        // Browsers send one Origin; two cannot be judged.
        (Some(_), Some(_)) => return Err(refused()),
    };
    if origin.is_some_and(|o| allowed_origins.contains(o)) {
        return Ok(());
    }
    let same_origin = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    if same_origin {
        return Ok(());
    }
    tracing::info!(method = %method, "cookie-authenticated request from a site not allowed");
    Err(refused())
}

fn refused() -> ApiError {
    ApiError::Forbidden(
        "A request that changes data with the session cookie must come from an allowed origin; \
         send the token as Authorization: Bearer from other clients."
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "https://app.baatcheet.test";

    fn check(method: Method, pairs: &[(&str, &str)], source: TokenSource) -> Result<(), u16> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let allowed = [HeaderValue::from_static(APP)];
        check_request_origin(&method, &h, source, &allowed).map_err(|e| e.status().as_u16())
    }

    #[test]
    fn cookie_writes_need_an_allowed_origin_or_same_origin() {
        use TokenSource::Cookie;
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(check(m.clone(), &[("origin", APP)], Cookie), Ok(()), "{m}");
            assert_eq!(check(m.clone(), &[("origin", "https://evil.example")], Cookie), Err(403), "{m}");
            assert_eq!(check(m.clone(), &[], Cookie), Err(403), "{m}: no evidence at all");
        }
        // Same-origin pages (the API's own docs) carry their own Origin, which CORS need not list.
        let own = [("origin", "https://api.baatcheet.test"), ("sec-fetch-site", "same-origin")];
        assert_eq!(check(Method::POST, &own, Cookie), Ok(()));
        assert_eq!(check(Method::POST, &[("sec-fetch-site", "same-origin")], Cookie), Ok(()));
        // A sibling subdomain is same-site, not same-origin; `null` (sandboxed, file://) is nowhere.
        let sibling = [("origin", "https://evil.baatcheet.test"), ("sec-fetch-site", "same-site")];
        assert_eq!(check(Method::POST, &sibling, Cookie), Err(403));
        assert_eq!(check(Method::POST, &[("origin", "null"), ("sec-fetch-site", "cross-site")], Cookie), Err(403));
        // Exact origins only: no prefix, case or trailing-slash tricks.
        for o in
            ["https://app.baatcheet.test.evil.example", "https://APP.baatcheet.test", "https://app.baatcheet.test/"]
        {
            assert_eq!(check(Method::POST, &[("origin", o)], Cookie), Err(403), "{o}");
        }
        assert_eq!(check(Method::POST, &[("origin", APP), ("origin", APP)], Cookie), Err(403));
    }

    #[test]
    fn safe_methods_and_bearer_tokens_are_not_checked() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(check(m, &[("origin", "https://evil.example")], TokenSource::Cookie), Ok(()));
        }
        let evil = [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")];
        assert_eq!(check(Method::POST, &evil, TokenSource::Bearer), Ok(()));
        assert_eq!(check(Method::DELETE, &[], TokenSource::Bearer), Ok(()));
    }
}
