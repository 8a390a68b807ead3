//! The one Secrets Manager secret (a JSON object), read at cold start and cached with a TTL.
//!
//! Values are only reachable as `SecretString`, whose Debug is redacted, so a stray `{:?}` cannot
//! put a key in a log. After the TTL the next caller refreshes; concurrent callers share that one
//! fetch, and if it fails the last good value keeps serving (logged), so a Secrets Manager blip
//! does not take the API down.

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

pub struct SecretsCache {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    state: RwLock<Option<Cached>>,
    fetching: tokio::sync::Mutex<()>,
}

impl SecretsCache {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            ttl,
            state: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<Secrets>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.as_ref().filter(|c| c.fetched.elapsed() < self.ttl).map(|c| c.value.clone())
    }

    fn stale(&self) -> Option<Arc<Secrets>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.as_ref().map(|c| c.value.clone())
    }

    /// The cached secret, refreshed when older than the TTL.
    pub async fn get(&self) -> Result<Arc<Secrets>, SecretsError> {
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        let _guard = self.fetching.lock().await;
        // Another caller may have refreshed while this one waited for the lock.
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        match self.fetch().await {
            Ok(v) => Ok(v),
            Err(e) => match self.stale() {
                Some(old) => {
                    tracing::warn!(error = %crate::error::error_chain(&e), "secret refresh failed; serving the cached value");
                    Ok(old)
                }
                None => Err(e),
            },
        }
    }

    /// Reads the secret now and caches it (health checks use this to probe Secrets Manager).
    pub async fn fetch(&self) -> Result<Arc<Secrets>, SecretsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretsError::Fetch { secret_id: self.secret_id.clone(), source: Box::new(e) })?;
        let text = out.secret_string().ok_or_else(|| SecretsError::NotAString { secret_id: self.secret_id.clone() })?;
        let value = Arc::new(Secrets::from_json(&self.secret_id, text)?);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Cached { value: value.clone(), fetched: Instant::now() });
        Ok(value)
    }

    /// Whether a value has been loaded at all (health: secrets down but cached is only degraded).
    pub fn has_value(&self) -> bool {
        self.stale().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

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
