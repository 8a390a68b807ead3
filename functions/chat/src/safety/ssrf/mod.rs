//! SSRF-safe handling of URLs users give (e.g. image attachments).
//!
//! [`UrlGuard::check`] accepts a URL only if: it is `https` (`http` only if configured), has no
//! userinfo, its host is IDNA-normalised and not a local name, its port is the scheme's default
//! (others only if configured), and EVERY address its host resolves to (A and AAAA) is public
//! (see [`ranges`]). The result, a [`CheckedUrl`], carries the addresses that were checked;
//! [`fetch::fetch`] connects to exactly those (no second resolution), follows no redirects and
//! bounds time and size.
//!
//! Rejections become a 422 naming the field; they never say what a name resolved to.

pub mod fetch;
pub mod parse;
pub mod policy;
pub mod ranges;
pub mod resolve;

use std::net::IpAddr;
use std::sync::Arc;

use url::{Host, Url};

use baatcheet_shared::error::{ApiError, FieldError};

pub use fetch::{FetchError, FetchLimits, Fetched, fetch};
pub use policy::UrlPolicy;
pub use resolve::{Resolver, SystemResolver};

/// Why a URL was refused. The `Display` texts are client-facing and deliberately vague about
/// resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be a valid absolute URL")]
    Syntax,
    #[error("is too long")]
    TooLong,
    #[error("must use https")]
    Scheme,
    #[error("must not contain a user name or password")]
    Userinfo,
    #[error("must use the default port of its scheme")]
    Port,
    #[error("must point to a public internet host")]
    Forbidden,
    #[error("host could not be resolved")]
    Unresolvable,
}

impl UrlError {
    /// The 422 problem for this failure at `pointer`.
    pub fn at(self, pointer: &str) -> ApiError {
        ApiError::Validation(vec![FieldError::new(pointer, self.to_string())])
    }
}

/// A URL that passed every check, with the addresses its host resolved to (all public).
#[derive(Debug, Clone)]
pub struct CheckedUrl {
    url: Url,
    addrs: Vec<IpAddr>,
}

impl CheckedUrl {
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The checked addresses; for connecting, never for responses.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Test support: a pinned URL without checks, so fetch tests can reach a local server.
    #[cfg(test)]
    pub(crate) fn unchecked_for_test(url: Url, addrs: Vec<IpAddr>) -> Self {
        Self { url, addrs }
    }
}

#[derive(Clone)]
pub struct UrlGuard {
    policy: UrlPolicy,
    resolver: Arc<dyn Resolver>,
}

impl std::fmt::Debug for UrlGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlGuard").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl UrlGuard {
    /// Production: the system resolver.
    pub fn new(policy: UrlPolicy) -> Self {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    pub fn with_resolver(policy: UrlPolicy, resolver: Arc<dyn Resolver>) -> Self {
        Self { policy, resolver }
    }

    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
    }

    /// The checks without network access, for `Validate` implementations.
    pub fn parse(&self, raw: &str) -> Result<Url, UrlError> {
        parse::parse(raw, &self.policy)
    }

    /// Every check, resolution included.
    pub async fn check(&self, raw: &str) -> Result<CheckedUrl, UrlError> {
        let url = self.parse(raw)?;
        let addrs = match url.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(d)) => {
                let port = url.port_or_known_default().unwrap_or(443);
                let lookup = self.resolver.lookup(d, port);
                let mut addrs = match tokio::time::timeout(self.policy.resolve_timeout, lookup).await {
                    Ok(Ok(addrs)) => addrs,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "user URL host did not resolve");
                        return Err(UrlError::Unresolvable);
                    }
                    Err(_) => return Err(UrlError::Unresolvable),
                };
                addrs.sort();
                addrs.dedup();
                addrs
            }
            None => return Err(UrlError::Syntax),
        };
        if addrs.is_empty() {
            return Err(UrlError::Unresolvable);
        }
        if addrs.iter().any(|ip| ranges::is_forbidden(*ip)) {
            // Logged for operators (at debug: it is the client's doing), never returned.
            tracing::debug!(host = ?url.host_str(), "user URL resolves to an internal address");
            return Err(UrlError::Forbidden);
        }
        Ok(CheckedUrl { url, addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use std::collections::HashMap;

    struct Table(HashMap<&'static str, Vec<IpAddr>>);
    impl Resolver for Table {
        fn lookup<'a>(&'a self, host: &'a str, _: u16) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
            let r = self.0.get(host).cloned().ok_or_else(|| std::io::Error::other("NXDOMAIN"));
            Box::pin(async move { r })
        }
    }

    fn guard() -> UrlGuard {
        let t = Table(HashMap::from([
            (
                "public.example",
                vec!["93.184.215.14".parse().unwrap(), "2606:2800:21f:cb07:6820:80da:af6b:8b2c".parse().unwrap()],
            ),
            ("mixed.example", vec!["93.184.215.14".parse().unwrap(), "10.0.0.5".parse().unwrap()]),
            ("empty.example", vec![]),
        ]));
        UrlGuard::with_resolver(UrlPolicy::default(), Arc::new(t))
    }

    #[tokio::test]
    async fn any_internal_address_refuses_the_name() {
        let g = guard();
        let ok = g.check("https://public.example/a.png#frag").await.unwrap();
        assert_eq!(ok.as_str(), "https://public.example/a.png");
        assert_eq!(ok.addresses().len(), 2);
        assert_eq!(g.check("https://mixed.example/").await.unwrap_err(), UrlError::Forbidden);
        assert_eq!(g.check("https://empty.example/").await.unwrap_err(), UrlError::Unresolvable);
        assert_eq!(g.check("https://nx.example/").await.unwrap_err(), UrlError::Unresolvable);
    }

    #[tokio::test]
    async fn rejection_names_the_field_and_nothing_internal() {
        let err = guard().check("https://mixed.example/").await.unwrap_err().at("/images/0/url");
        let ApiError::Validation(e) = err else { panic!() };
        assert_eq!(e[0].pointer, "/images/0/url");
        assert!(!e[0].detail.contains("10.0.0.5"));
    }
}
