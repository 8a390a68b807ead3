//! The per-instance authenticator: picks the verification key (PEM or cached JWKS), verifies the
//! token, and resolves the caller through the users table (cached for a short TTL).

use jsonwebtoken::DecodingKey;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::config::ClerkConfig;
use super::error::AuthError;
use super::jwks::{JwksCache, PemCache};
use super::token::{self, Claims, Rules};
use super::user::AuthUser;
use crate::secrets::SecretsCache;
use crate::users::{UserRecord, UsersStore};

/// Bound on cached users per instance; past it, expired entries go, then everything.
const MAX_CACHED_USERS: usize = 10_000;

struct UserCache {
    ttl: Duration,
    map: RwLock<HashMap<String, (Instant, Arc<UserRecord>)>>,
}

impl UserCache {
    fn get(&self, clerk_id: &str) -> Option<Arc<UserRecord>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(clerk_id).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, r)| r.clone())
    }

    fn put(&self, record: Arc<UserRecord>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_USERS {
            map.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if map.len() >= MAX_CACHED_USERS {
                map.clear();
            }
        }
        map.insert(record.clerk_id.clone(), (Instant::now(), record));
    }

    fn remove(&self, clerk_id: &str) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(clerk_id);
    }
}

pub struct Authenticator {
    config: ClerkConfig,
    rules: Option<Rules>,
    secrets: Arc<SecretsCache>,
    pem: PemCache,
    jwks: JwksCache,
    users: UsersStore,
    cache: UserCache,
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Authenticator {
    pub fn new(config: &ClerkConfig, users: UsersStore, secrets: Arc<SecretsCache>) -> Self {
        let rules = config.issuer.as_ref().map(|issuer| Rules {
            issuer: issuer.clone(),
            authorized_parties: config.authorized_parties.clone(),
            clock_skew_secs: config.clock_skew.as_secs() as i64,
        });
        Self {
            rules,
            secrets,
            pem: PemCache::default(),
            jwks: JwksCache::new(config.jwks),
            users,
            cache: UserCache { ttl: config.user_cache_ttl, map: RwLock::new(HashMap::new()) },
            config: config.clone(),
        }
    }

    /// The key that must have signed a token naming `kid`: the PEM from the environment, else
    /// the PEM from the secret, else the JWKS (`CLERK_JWKS_URL`, else the Backend API with
    /// `CLERK_SECRET_KEY`). With none configured, authentication fails closed.
    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(pem) = &self.config.jwt_key {
            return self.pem.key(pem);
        }
        let secrets = self.secrets.get().await?;
        if let Some(pem) = secrets.string("CLERK_JWT_KEY") {
            return self.pem.key(pem.expose_secret());
        }
        // Without a kid a JWKS cannot say which key applies; Clerk always sets one.
        let kid = kid.ok_or(AuthError::UnknownKey)?;
        if let Some(url) = &self.config.jwks_url {
            return self.jwks.key_for(kid, url, None).await;
        }
        let secret_key = secrets
            .string("CLERK_SECRET_KEY")
            .ok_or(AuthError::NotConfigured("no CLERK_JWT_KEY, CLERK_JWKS_URL or CLERK_SECRET_KEY"))?;
        self.jwks.key_for(kid, &self.config.backend_jwks_url(), Some(&secret_key)).await
    }

    /// Verifies a session token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, now_secs()).await
    }

    /// [`Self::verify`] at `now` (seconds since the epoch): the clock is the one input a
    /// comparison with another verifier (tests/clerk_differential.rs) must pin on both sides.
    pub async fn verify_at(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let parsed = token::parse(token)?;
        let rules = self.rules.as_ref().ok_or(AuthError::NotConfigured("CLERK_ISSUER is not set"))?;
        let key = self.key_for(parsed.kid.as_deref()).await?;
        parsed.verify(&key, rules, now)
    }

    /// Verifies the token and resolves its user: from the cache, else the users table, else
    /// created from the claims (role user, tier free). Deleted users are refused.
    pub async fn authenticate_token(&self, token: &str) -> Result<AuthUser, AuthError> {
        let claims = self.verify(token).await?;
        let record = match self.cache.get(&claims.sub) {
            Some(r) => r,
            None => {
                let record = match self.users.get(&claims.sub).await? {
                    Some(r) => r,
                    None => {
                        tracing::info!(clerk_id = %claims.sub, "first request of a user the webhook has not synced; creating");
                        self.users.create_from_token(&claims.sub, claims.email.as_deref()).await?
                    }
                };
                let record = Arc::new(record);
                self.cache.put(record.clone());
                record
            }
        };
        if record.deleted {
            return Err(AuthError::UserDeleted);
        }
        Ok(record.auth_user())
    }

    /// Drops a user from this instance's cache only: a write made here (the admin API) applies
    /// to this instance's next request at once. Other instances (every other Lambda instance, of
    /// this function or another) keep their copy until it is `user_cache_ttl` old, the
    /// revocation bound.
    pub fn forget_user(&self, clerk_id: &str) {
        self.cache.remove(clerk_id);
    }

    /// JWKS fetch attempts made by this instance.
    pub fn jwks_fetches(&self) -> u64 {
        self.jwks.fetches()
    }

    pub fn config(&self) -> &ClerkConfig {
        &self.config
    }
}
