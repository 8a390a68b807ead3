//! The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "global";q=1000;w=3600` (quota units per window, in seconds) and
//! `RateLimit: "global";r=42;t=36` (units remaining now; seconds until the next unit is back, 0
//! when the bucket is full, or on a denial until the request fits, like `Retry-After`).
//!
//! A request may pass several limits (global, then a per-user one); the response describes the
//! tightest: a refusal first, else the policy with the fewest units left.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use std::cmp::Reverse;

use super::LimitError;

pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Where a decision came from (for tests, metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A conditional update in DynamoDB.
    Store,
    /// This instance already knew the bucket was empty: no DynamoDB call.
    DenyCache,
    /// DynamoDB was unreachable: this instance's in-memory bucket decided.
    Fallback,
}

/// One policy's verdict on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitStatus {
    pub policy: &'static str,
    /// Capacity (units per window).
    pub quota: u64,
    pub window_secs: u64,
    /// Whole units left after this request.
    pub remaining: u64,
    /// Seconds until one more unit is back (0 when full); on a denial, the Retry-After.
    pub reset_secs: u64,
    /// Set when the request was refused: whole seconds until it would be admitted.
    pub retry_after_secs: Option<u64>,
    pub source: Source,
}

impl RateLimitStatus {
    pub fn is_allowed(&self) -> bool {
        self.retry_after_secs.is_none()
    }

    /// The `RateLimit-Policy` field value.
    pub fn policy_field(&self) -> String {
        format!("\"{}\";q={};w={}", self.policy, self.quota, self.window_secs)
    }

    /// The `RateLimit` field value.
    pub fn field(&self) -> String {
        format!("\"{}\";r={};t={}", self.policy, self.remaining, self.reset_secs)
    }

    /// Writes both fields, replacing earlier values.
    pub fn apply(&self, headers: &mut HeaderMap) {
        // Policy names are fixed ASCII and the rest are numbers: the values are always valid.
        if let (Ok(p), Ok(r)) = (HeaderValue::from_str(&self.policy_field()), HeaderValue::from_str(&self.field())) {
            headers.insert(RATELIMIT_POLICY, p);
            headers.insert(RATELIMIT, r);
        }
    }

    /// The 429 of a refusal (None if the request was admitted).
    pub fn error(&self) -> Option<LimitError> {
        self.retry_after_secs.map(|retry_after_secs| LimitError::Exceeded { policy: self.policy, retry_after_secs })
    }
}

/// Sorts refusals first (longest wait first), then fewest units left, then longest reset.
fn tightness(s: &RateLimitStatus) -> (bool, u64, Reverse<u64>, u64) {
    (!s.is_allowed(), s.retry_after_secs.unwrap_or(0), Reverse(s.remaining), s.reset_secs)
}

/// The status the response should describe.
pub fn tightest<'a>(statuses: impl IntoIterator<Item = &'a RateLimitStatus>) -> Option<&'a RateLimitStatus> {
    statuses.into_iter().max_by_key(|s| tightness(s))
}

/// Writes the fields of `status` onto any response (for code outside the shared request path,
/// which writes them itself for every check made while serving a request).
pub fn with_rate_limit(status: &RateLimitStatus, response: impl IntoResponse) -> Response {
    let mut res = response.into_response();
    status.apply(res.headers_mut());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(policy: &'static str, remaining: u64, retry: Option<u64>) -> RateLimitStatus {
        RateLimitStatus {
            policy,
            quota: 100,
            window_secs: 3600,
            remaining,
            reset_secs: retry.unwrap_or(36),
            retry_after_secs: retry,
            source: Source::Store,
        }
    }

    #[test]
    fn fields_follow_the_ietf_syntax() {
        let s = status("chat", 42, None);
        let mut h = HeaderMap::new();
        s.apply(&mut h);
        assert_eq!(h["ratelimit-policy"], "\"chat\";q=100;w=3600");
        assert_eq!(h["ratelimit"], "\"chat\";r=42;t=36");
        assert!(s.error().is_none());
    }

    #[test]
    fn the_tightest_policy_is_described() {
        let global = status("global", 998, None);
        let chat = status("chat", 3, None);
        assert_eq!(tightest([&global, &chat]).unwrap().policy, "chat");
        let denied = status("global", 0, Some(5));
        assert_eq!(tightest([&chat, &denied]).unwrap().policy, "global");
        let longer = status("auth", 0, Some(600));
        assert_eq!(tightest([&denied, &longer, &chat]).unwrap().policy, "auth");
        assert!(tightest([]).is_none());
    }

    #[test]
    fn a_refusal_is_a_quota_problem() {
        let err = status("images", 0, Some(72)).error().unwrap();
        assert_eq!(err, LimitError::Exceeded { policy: "images", retry_after_secs: 72 });
    }
}
