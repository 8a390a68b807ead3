//! Verification keys: the networkless PEM public key (`CLERK_JWT_KEY`), or a JWKS fetched over
//! HTTP(S) and cached in this instance.
//!
//! JWKS cache rules: keys are reused for `ttl` (5 min); a token naming an unknown `kid` causes a
//! refetch only when the last fetch is at least `unknown_kid_refetch` (1 min) old, so forged kids
//! cannot cause a fetch storm; concurrent misses wait for one shared fetch; after a failed fetch,
//! stale keys keep serving and no new attempt is made for `failure_backoff`.

use base64::Engine;
use jsonwebtoken::DecodingKey;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use super::config::JwksPolicy;
use super::error::AuthError;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A JWKS larger than this is refused (Clerk's has one or two keys, ~1 KB).
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Accepts the PEM as Clerk's dashboard shows it, with `\n` escapes as env files often carry
/// it, or as the bare base64 body.
pub fn normalize_pem(raw: &str) -> String {
    let s = raw.trim().replace("\\n", "\n");
    if s.contains("-----BEGIN") {
        return s;
    }
    let body: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

/// The parsed PEM key, reparsed only when the configured text changes (secret rotation).
#[derive(Default)]
pub struct PemCache {
    cached: RwLock<Option<(String, Arc<DecodingKey>)>>,
}

impl PemCache {
    pub fn key(&self, pem: &str) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some((text, key)) = self.cached.read().unwrap_or_else(|p| p.into_inner()).as_ref()
            && text == pem
        {
            return Ok(key.clone());
        }
        let key = DecodingKey::from_rsa_pem(normalize_pem(pem).as_bytes())
            .map_err(|e| AuthError::InvalidKeyConfig(Box::new(e)))?;
        let key = Arc::new(key);
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some((pem.to_string(), key.clone()));
        Ok(key)
    }
}

#[derive(Clone)]
enum Entry {
    Rs256(Arc<DecodingKey>),
    /// A key the JWKS lists that cannot verify RS256 (EC, or an `alg` other than RS256).
    Incompatible,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Entry>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_failed: bool,
    /// Bumped by every fetch attempt: a waiter seeing it changed knows a fetch happened.
    generation: u64,
}

enum Plan {
    Use(Entry),
    Fetch,
    Reject(AuthError),
}

pub struct JwksCache {
    policy: JwksPolicy,
    state: RwLock<State>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    http: OnceLock<reqwest::Client>,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("JWKS request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("JWKS endpoint {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("JWKS from {url} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { url: String },
    #[error("JWKS from {url} is not a key set")]
    Shape { url: String },
    #[error("JWKS from {url} has no usable keys")]
    Empty { url: String },
}

impl JwksCache {
    pub fn new(policy: JwksPolicy) -> Self {
        Self {
            policy,
            state: RwLock::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            http: OnceLock::new(),
        }
    }

    /// Fetch attempts made by this instance so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn plan(&self, s: &State, kid: &str, allow_fetch: bool) -> Plan {
        let now = Instant::now();
        let fresh = s.fetched_at.is_some_and(|t| now.duration_since(t) < self.policy.ttl);
        let since_attempt = s.last_attempt.map(|t| now.duration_since(t));
        let backing_off = s.last_failed && since_attempt.is_some_and(|d| d < self.policy.failure_backoff);
        let may_fetch = allow_fetch && !backing_off;
        match (s.keys.get(kid), fresh) {
            (Some(e), true) => Plan::Use(e.clone()),
            (Some(e), false) => {
                if may_fetch {
                    Plan::Fetch
                } else {
                    Plan::Use(e.clone())
                }
            }
            (None, _) if s.fetched_at.is_none() => {
                if may_fetch {
                    Plan::Fetch
                } else {
                    Plan::Reject(AuthError::KeysUnavailable("no JWKS has been fetched successfully yet".into()))
                }
            }
            (None, false) if may_fetch => Plan::Fetch,
            (None, true) if may_fetch && since_attempt.is_none_or(|d| d >= self.policy.unknown_kid_refetch) => {
                Plan::Fetch
            }
            (None, _) => Plan::Reject(AuthError::UnknownKey),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The RS256 key named `kid`, fetching the JWKS at `url` (with `bearer` as the
    /// Authorization) when the cache rules allow.
    pub async fn key_for(
        &self,
        kid: &str,
        url: &str,
        bearer: Option<&SecretString>,
    ) -> Result<Arc<DecodingKey>, AuthError> {
        let (plan, generation) = {
            let s = self.read();
            (self.plan(&s, kid, true), s.generation)
        };
        match plan {
            Plan::Use(e) => return entry_key(e),
            Plan::Reject(e) => return Err(e),
            Plan::Fetch => {}
        }
        let _guard = self.fetch_lock.lock().await;
        if self.read().generation != generation {
            // Another request fetched while this one waited: use its result, never fetch again.
            return match self.plan(&self.read(), kid, false) {
                Plan::Use(e) => entry_key(e),
                Plan::Reject(e) => Err(e),
                Plan::Fetch => Err(AuthError::UnknownKey),
            };
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch(url, bearer).await;
        let mut failure = None;
        {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            s.generation += 1;
            s.last_attempt = Some(now);
            match result {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "JWKS fetched");
                    s.keys = keys;
                    s.fetched_at = Some(now);
                    s.last_failed = false;
                }
                Err(e) => {
                    tracing::error!(error = %crate::error::error_chain(&e), "JWKS fetch failed");
                    s.last_failed = true;
                    failure = Some(e);
                }
            }
        }
        match self.plan(&self.read(), kid, false) {
            Plan::Use(e) => entry_key(e),
            Plan::Reject(AuthError::KeysUnavailable(why)) => {
                Err(AuthError::KeysUnavailable(failure.map(|f| Box::new(f) as BoxError).unwrap_or(why)))
            }
            Plan::Reject(e) => Err(e),
            Plan::Fetch => Err(AuthError::UnknownKey),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let client = crate::tls::client_builder()
            .timeout(self.policy.fetch_timeout)
            .connect_timeout(self.policy.fetch_timeout)
            // A redirect could carry the secret key elsewhere; a JWKS endpoint has no reason to.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| FetchError::Http { url: String::new(), source })?;
        Ok(self.http.get_or_init(|| client))
    }

    async fn fetch(&self, url: &str, bearer: Option<&SecretString>) -> Result<HashMap<String, Entry>, FetchError> {
        let http_err = |source| FetchError::Http { url: url.to_string(), source };
        let mut req = self.client()?.get(url).header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token.expose_secret());
        }
        let mut res = req.send().await.map_err(http_err)?;
        if !res.status().is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: res.status().as_u16() });
        }
        if res.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(FetchError::TooLarge { url: url.to_string() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(http_err)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge { url: url.to_string() });
            }
        }
        let keys = parse_jwks(&body).ok_or_else(|| FetchError::Shape { url: url.to_string() })?;
        if !keys.values().any(|e| matches!(e, Entry::Rs256(_))) {
            return Err(FetchError::Empty { url: url.to_string() });
        }
        Ok(keys)
    }
}

fn entry_key(e: Entry) -> Result<Arc<DecodingKey>, AuthError> {
    match e {
        Entry::Rs256(k) => Ok(k),
        Entry::Incompatible => Err(AuthError::UnsupportedAlgorithm),
    }
}

/// Reads a JWKS leniently: keys without a kid are skipped; a key that is not an RSA signing key
/// for RS256 is kept as incompatible, so a token naming it gets a precise reason.
fn parse_jwks(body: &[u8]) -> Option<HashMap<String, Entry>> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let keys = doc.get("keys")?.as_array()?;
    let mut out = HashMap::new();
    for k in keys {
        let Some(kid) = k.get("kid").and_then(Value::as_str) else { continue };
        let s = |f: &str| k.get(f).and_then(Value::as_str);
        let usable =
            s("kty") == Some("RSA") && s("alg").is_none_or(|a| a == "RS256") && s("use").is_none_or(|u| u == "sig");
        let entry = match (usable, s("n"), s("e")) {
            (true, Some(n), Some(e)) if decodes(n) && decodes(e) => match DecodingKey::from_rsa_components(n, e) {
                Ok(key) => Entry::Rs256(Arc::new(key)),
                Err(_) => Entry::Incompatible,
            },
            _ => Entry::Incompatible,
        };
        out.insert(kid.to_string(), entry);
    }
    Some(out)
}

fn decodes(b64: &str) -> bool {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).is_ok_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_is_normalised() {
        let body = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".repeat(3);
        let wrapped = normalize_pem(&body);
        assert!(wrapped.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(wrapped.lines().all(|l| l.len() <= 64));
        let escaped = "-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----";
        assert_eq!(normalize_pem(escaped), "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----");
    }

    #[test]
    fn pem_cache_reparses_only_on_change() {
        let keys = crate::auth::token::tests::keys();
        let cache = PemCache::default();
        let a = cache.key(&keys[0].public_pem).unwrap();
        let b = cache.key(&keys[0].public_pem).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.key(&keys[1].public_pem).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(matches!(cache.key("not a key"), Err(AuthError::InvalidKeyConfig(_))));
    }

    #[test]
    fn jwks_parsing_marks_incompatible_keys() {
        let body = br#"{"keys":[
            {"kid":"ok","kty":"RSA","alg":"RS256","use":"sig","n":"AQAB","e":"AQAB"},
            {"kid":"ps","kty":"RSA","alg":"PS256","n":"AQAB","e":"AQAB"},
            {"kid":"ec","kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB"},
            {"kid":"enc","kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","n":"AQAB","e":"AQAB"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.len(), 4);
        assert!(matches!(keys["ok"], Entry::Rs256(_)));
        for kid in ["ps", "ec", "enc"] {
            assert!(matches!(keys[kid], Entry::Incompatible), "{kid}");
        }
        assert!(parse_jwks(b"[]").is_none());
        assert!(parse_jwks(b"{\"keys\":{}}").is_none());
    }
}
