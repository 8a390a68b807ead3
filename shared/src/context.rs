//! What every function's router is built from: configuration and clients made once per cold
//! start, cheap to clone into each request.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError};
use crate::error::error_chain;
use crate::rate_limit::Limiter;
use crate::secrets::SecretsCache;

/// Why a function could not start (its cold start fails, and API Gateway answers 502): the
/// platform's context or a function's router, which builds on it with the same error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration is invalid")]
    Config(#[from] ConfigError),
    #[error("an HTTP client could not be built")]
    Client(#[from] reqwest::Error),
}

#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub secrets: Arc<SecretsCache>,
    /// When this instance started (uptime in health and metrics).
    pub started: Instant,
    /// Rate limits (DynamoDB token buckets), shared by every request of this instance.
    pub limiter: Arc<Limiter>,
    /// Clerk session-token verification and the caller's user, cached per instance.
    pub auth: Arc<Authenticator>,
}

impl AppContext {
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        Self::with_clients(config, crate::aws::dynamodb(sdk), crate::aws::secrets_manager(sdk))
    }

    pub fn with_clients(
        config: Config,
        dynamo: aws_sdk_dynamodb::Client,
        secrets_client: aws_sdk_secretsmanager::Client,
    ) -> Self {
        let secrets = Arc::new(SecretsCache::new(secrets_client, config.secret_id.clone(), config.secret_ttl));
        let limiter =
            Arc::new(Limiter::new(dynamo.clone(), config.tables.rate_limits.clone(), config.rate_limits.clone()));
        let users = crate::users::UsersStore::new(dynamo.clone(), config.tables.users.clone());
        let auth = Arc::new(Authenticator::new(&config.clerk, users, secrets.clone()));
        Self { config: Arc::new(config), dynamo, secrets, started: Instant::now(), limiter, auth }
    }

    /// Cold start: config from the environment, SDK clients, and the secret read once, while
    /// `build` makes the function's router from the context: the request for the secret is in
    /// flight as the router is built (~1 ms of the chat function's cold start), and the function
    /// answers nothing before that read ends. The root certificates are read on a thread of their
    /// own from the start (`tls::preload`).
    ///
    /// A secret that cannot be read (a new stack's has no value until an operator puts one) does
    /// not fail the start: a failed init would make API Gateway answer 502 on every route, `/live`
    /// included. It is logged once here; each request that needs it reads it again (at most once
    /// per `secrets::RETRY_INTERVAL`) and fails closed with a 503 until then.
    pub async fn from_env_with<T>(build: impl FnOnce(AppContext) -> T) -> Result<T, StartupError> {
        crate::tls::preload();
        let config = Config::from_env()?;
        let sdk = crate::aws::sdk_config().await;
        let ctx = Self::new(config, &sdk);
        // A function without a secret (health, docs) reads none.
        let secrets = ctx.secrets.clone();
        let fetch =
            tokio::spawn(async move { if secrets.is_configured() { secrets.fetch().await.map(drop) } else { Ok(()) } });
        let built = build(ctx);
        match fetch.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                cause = %error_chain(&e),
                not_configured = e.is_not_configured(),
                "the secret could not be read at start; requests that need it answer 503 until it can"
            ),
            Err(e) => {
                tracing::error!(cause = %error_chain(&e), "reading the secret at start stopped before it finished")
            }
        }
        Ok(built)
    }
}
