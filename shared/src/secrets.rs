//! The one Secrets Manager secret (a JSON object), read at cold start and cached with a TTL.
//!
//! Values are only reachable as `SecretString`, whose Debug is redacted, so a stray `{:?}` cannot
//! put a key in a log. After the TTL the next caller refreshes; concurrent callers share that one
//! fetch, and if it fails the last good value keeps serving (logged), so a Secrets Manager blip
//! does not take the API down. With nothing cached (a new stack's secret has no value until an
//! operator puts one), a failed read is retried at most once per [`RETRY_INTERVAL`]: the requests
//! in between fail from the last failure, without calling Secrets Manager.

use crate::error::{ApiError, error_chain};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("could not read secret {secret_id}")]
    Fetch {
        secret_id: String,
        #[source]
        source: Box<
            aws_sdk_secretsmanager::error::SdkError<
                aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
            >,
        >,
    },
    #[error("secret {secret_id} has no string value")]
    NotAString { secret_id: String },
    #[error("secret {secret_id} is not a JSON object")]
    NotJson {
        secret_id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("secret field {field} has an unexpected shape")]
    Field {
        field: String,
        #[source]
        source: serde_json::Error,
    },
    /// The function has no secret (`SECRET_ID` unset): whatever needed one is not configured.
    #[error("this function has no secret (SECRET_ID is not set)")]
    NoSecret,
    /// The last read failed less than the retry interval ago (that failure was logged then).
    #[error("secret {secret_id} could not be read a moment ago; not retried yet")]
    RecentlyFailed { secret_id: String, not_configured: bool },
}

/// Least time between two reads of the secret after one failed.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl SecretsError {
    /// Whether the secret itself needs an operator: it does not exist, has no value yet, or its
    /// value is not the JSON expected. Otherwise Secrets Manager failed (retrying may help).
    pub fn is_not_configured(&self) -> bool {
        match self {
            Self::Fetch { source, .. } => {
                source.as_service_error().is_some_and(|e| e.is_resource_not_found_exception())
            }
            Self::NotAString { .. } | Self::NotJson { .. } | Self::Field { .. } | Self::NoSecret => true,
            Self::RecentlyFailed { not_configured, .. } => *not_configured,
        }
    }
}

/// A request that needs the secret fails closed: 503, the cause in the log, none in the body.
impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        if matches!(e, SecretsError::RecentlyFailed { .. }) {
            tracing::debug!(cause = %error_chain(&e), "secret unavailable");
        } else {
            tracing::error!(cause = %error_chain(&e), "secret unavailable");
        }
        let (detail, retry_after) = if e.is_not_configured() {
            ("The service is not configured yet.", 30)
        } else {
            ("The service is temporarily unavailable; please retry shortly.", 5)
        };
        ApiError::Unavailable { detail: detail.into(), retry_after_secs: Some(retry_after) }
    }
}

/// The parsed secret. Debug shows field names only.
pub struct Secrets {
    fields: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("fields", &self.fields.keys().collect::<Vec<_>>()).finish()
    }
}

impl Secrets {
    pub fn from_json(secret_id: &str, text: &str) -> Result<Self, SecretsError> {
        let fields = serde_json::from_str(text)
            .map_err(|source| SecretsError::NotJson { secret_id: secret_id.into(), source })?;
        Ok(Self { fields })
    }

    /// A string field, wrapped. Empty strings count as absent.
    pub fn string(&self, field: &str) -> Option<SecretString> {
        self.fields
            .get(field)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
    }

    /// A structured field (e.g. the provider list), deserialized on demand.
    pub fn parse<T: DeserializeOwned>(&self, field: &str) -> Result<Option<T>, SecretsError> {
        self.fields
            .get(field)
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .map_err(|source| SecretsError::Field { field: field.into(), source })
    }
}

struct Cached {
    value: Arc<Secrets>,
    fetched: Instant,
}

#[derive(Clone, Copy)]
struct Failure {
    at: Instant,
    not_configured: bool,
}

pub struct SecretsCache {
    client: aws_sdk_secretsmanager::Client,
    secret_id: Option<String>,
    ttl: Duration,
    state: RwLock<Option<Cached>>,
    /// The last read, if it failed.
    failed: RwLock<Option<Failure>>,
    retry_interval: Duration,
    fetching: tokio::sync::Mutex<()>,
}

impl SecretsCache {
    /// A cache of `secret_id`, or of no secret at all (every read is then [`SecretsError::NoSecret`],
    /// without a call).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: Option<String>, ttl: Duration) -> Self {
        Self {
            client,
            secret_id,
            ttl,
            state: RwLock::new(None),
            failed: RwLock::new(None),
            retry_interval: RETRY_INTERVAL,
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Another least time between reads after a failure than [`RETRY_INTERVAL`] (tests).
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    fn fresh(&self) -> Option<Arc<Secrets>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.as_ref().filter(|c| c.fetched.elapsed() < self.ttl).map(|c| c.value.clone())
    }

    fn stale(&self) -> Option<Arc<Secrets>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.as_ref().map(|c| c.value.clone())
    }

    /// Within the retry interval of a failed read: the last value, else that failure again.
    fn recently_failed(&self) -> Option<Result<Arc<Secrets>, SecretsError>> {
        let failure = (*self.failed.read().unwrap_or_else(|p| p.into_inner()))?;
        if failure.at.elapsed() >= self.retry_interval {
            return None;
        }
        Some(self.stale().ok_or_else(|| SecretsError::RecentlyFailed {
            secret_id: self.secret_id.clone().unwrap_or_default(),
            not_configured: failure.not_configured,
        }))
    }

    /// The cached secret, refreshed when older than the TTL; after a failed read, read again
    /// only once the retry interval has passed.
    pub async fn get(&self) -> Result<Arc<Secrets>, SecretsError> {
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        if let Some(r) = self.recently_failed() {
            return r;
        }
        let _guard = self.fetching.lock().await;
        // Another caller may have refreshed (or failed to) while this one waited for the lock.
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        if let Some(r) = self.recently_failed() {
            return r;
        }
        match self.fetch().await {
            Ok(v) => Ok(v),
            Err(e) => match self.stale() {
                Some(old) => {
                    tracing::warn!(error = %error_chain(&e), "secret refresh failed; serving the cached value");
                    Ok(old)
                }
                None => Err(e),
            },
        }
    }

    /// Reads the secret now and caches it (health checks use this to probe Secrets Manager).
    pub async fn fetch(&self) -> Result<Arc<Secrets>, SecretsError> {
        let result = self.read().await;
        *self.failed.write().unwrap_or_else(|p| p.into_inner()) =
            result.as_ref().err().map(|e| Failure { at: Instant::now(), not_configured: e.is_not_configured() });
        result
    }

    async fn read(&self) -> Result<Arc<Secrets>, SecretsError> {
        let id = self.secret_id.as_deref().ok_or(SecretsError::NoSecret)?;
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretsError::Fetch { secret_id: id.into(), source: Box::new(e) })?;
        let text = out.secret_string().ok_or_else(|| SecretsError::NotAString { secret_id: id.into() })?;
        let value = Arc::new(Secrets::from_json(id, text)?);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Cached { value: value.clone(), fetched: Instant::now() });
        Ok(value)
    }

    /// Whether this function has a secret at all.
    pub fn is_configured(&self) -> bool {
        self.secret_id.is_some()
    }

    /// Whether a value has been loaded at all (health: secrets down but cached is only degraded).
    pub fn has_value(&self) -> bool {
        self.stale().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::config::http::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use secrecy::ExposeSecret;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Secrets Manager as an in-process fake: answers every call with the set status and body,
    /// and counts the calls.
    #[derive(Debug, Clone, Default)]
    struct FakeSecretsManager {
        answer: Arc<Mutex<(u16, String)>>,
        calls: Arc<AtomicUsize>,
    }

    impl FakeSecretsManager {
        fn answer(&self, status: u16, body: serde_json::Value) {
            *self.answer.lock().unwrap() = (status, body.to_string());
        }
        fn not_found(&self) {
            self.answer(400, serde_json::json!({"__type": "ResourceNotFoundException", "message": "no such secret"}));
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
        fn cache(&self, interval: Duration) -> SecretsCache {
            let conf = aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
                .http_client(SharedHttpClient::new(self.clone()))
                .build();
            let client = aws_sdk_secretsmanager::Client::from_conf(conf);
            SecretsCache::new(client, Some("app".into()), Duration::from_secs(300)).with_retry_interval(interval)
        }
    }

    impl HttpConnector for FakeSecretsManager {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let (status, body) = self.answer.lock().unwrap().clone();
            let status = status.try_into().expect("a valid status");
            HttpConnectorFuture::ready(Ok(HttpResponse::new(status, body.into())))
        }
    }

    impl HttpClient for FakeSecretsManager {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    #[tokio::test]
    async fn a_failed_read_is_retried_at_most_once_per_interval() {
        let sm = FakeSecretsManager::default();
        sm.not_found();
        let cache = sm.cache(Duration::from_millis(200));
        let e = cache.get().await.unwrap_err();
        assert!(matches!(e, SecretsError::Fetch { .. }) && e.is_not_configured(), "{e:?}");
        assert_eq!(sm.calls(), 1);
        // A burst right after: answered from the failure, Secrets Manager left alone.
        for _ in 0..20 {
            let e = cache.get().await.unwrap_err();
            assert!(matches!(e, SecretsError::RecentlyFailed { not_configured: true, .. }), "{e:?}");
        }
        assert_eq!(sm.calls(), 1);

        // The operator puts a value: the next read after the interval finds it, then it is cached.
        sm.answer(200, serde_json::json!({"Name": "app", "SecretString": "{\"k\":\"v\"}"}));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = cache.get().await.unwrap();
        assert_eq!(s.string("k").unwrap().expose_secret(), "v");
        let _ = cache.get().await.unwrap();
        assert_eq!(sm.calls(), 2);
    }

    #[tokio::test]
    async fn a_value_after_a_failed_refresh_keeps_serving_without_rereading() {
        let sm = FakeSecretsManager::default();
        sm.answer(200, serde_json::json!({"Name": "app", "SecretString": "{\"k\":\"v\"}"}));
        let mut cache = sm.cache(Duration::from_secs(60));
        cache.ttl = Duration::ZERO;
        cache.get().await.unwrap();
        sm.answer(500, serde_json::json!({"__type": "InternalServiceError", "message": "down"}));
        let calls = sm.calls();
        for _ in 0..5 {
            assert!(cache.get().await.is_ok());
        }
        // One failed refresh; the rest served from the cache without a read.
        assert_eq!(sm.calls() - calls, 1);
        assert!(cache.fetch().await.is_err(), "fetch always reads (health probes)");
        assert_eq!(sm.calls() - calls, 2);
    }

    #[tokio::test]
    async fn a_secret_without_a_value_is_not_configured_and_a_503() {
        let sm = FakeSecretsManager::default();
        sm.answer(200, serde_json::json!({"Name": "app"}));
        let e = sm.cache(RETRY_INTERVAL).get().await.unwrap_err();
        assert!(matches!(e, SecretsError::NotAString { .. }) && e.is_not_configured(), "{e:?}");
        let p = ApiError::from(e).problem();
        assert_eq!((p.status, p.detail.as_str()), (503, "The service is not configured yet."));

        sm.answer(400, serde_json::json!({"__type": "AccessDeniedException", "message": "no"}));
        let e = sm.cache(RETRY_INTERVAL).get().await.unwrap_err();
        assert!(!e.is_not_configured(), "{e:?}");
        let p = ApiError::from(e).problem();
        assert_eq!(p.status, 503);
        assert!(!p.detail.contains("app") && !p.detail.contains("Access"), "no internals: {}", p.detail);
    }

    #[tokio::test]
    async fn no_secret_is_not_configured_without_a_call() {
        let sm = FakeSecretsManager::default();
        let mut cache = sm.cache(RETRY_INTERVAL);
        cache.secret_id = None;
        let e = cache.get().await.unwrap_err();
        assert!(matches!(e, SecretsError::NoSecret) && e.is_not_configured(), "{e:?}");
        assert_eq!(ApiError::from(e).problem().status, 503);
        assert_eq!(sm.calls(), 0);
        assert!(!cache.is_configured());
    }

    #[test]
    fn debug_never_shows_values() {
        let s = Secrets::from_json("id", r#"{"CLERK_SECRET_KEY":"sk_live_abc","providers":[]}"#).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("sk_live_abc"), "{dbg}");
        assert!(dbg.contains("CLERK_SECRET_KEY"));
        let key = s.string("CLERK_SECRET_KEY").unwrap();
        assert!(!format!("{key:?}").contains("sk_live_abc"));
        assert_eq!(key.expose_secret(), "sk_live_abc");
    }

    #[test]
    fn rejects_non_objects_and_reads_fields() {
        assert!(Secrets::from_json("id", "[1,2]").is_err());
        assert!(Secrets::from_json("id", "not json").is_err());
        let s = Secrets::from_json("id", r#"{"n":[1,2],"e":""}"#).unwrap();
        assert_eq!(s.parse::<Vec<u8>>("n").unwrap(), Some(vec![1, 2]));
        assert!(s.parse::<String>("n").is_err());
        assert!(s.string("e").is_none());
        assert!(s.string("missing").is_none());
    }
}
