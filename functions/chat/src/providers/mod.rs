//! LLM providers: the configured OpenAI-compatible upstreams (from the secret), the HTTP client,
//! and failover across keys and providers with per-key cooldowns and per-provider circuits.

pub mod catalog;
pub mod client;
pub mod failover;
pub mod health;
pub mod sse;
pub mod wire;

use baatcheet_shared::error::error_chain;
use baatcheet_shared::secrets::{Secrets, SecretsCache, SecretsError};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::ChatConfig;
use catalog::{Catalog, CatalogError, ProviderSpec};
use client::{Answer, AttemptError, AudioFile, ChunkStream, StreamEvent, Target, UpstreamClient};
use failover::{CooldownPolicy, Plan, decide};
use health::{HealthBoard, HealthPolicy};
use wire::{ChatCompletionRequest, StreamOptions, TranscriptionResponse, WireMessage};

/// The secret field holding the provider list.
pub const SECRET_FIELD: &str = "providers";

/// Retry-After when every candidate failed and none said when to come back.
pub(crate) const FALLBACK_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider serves model {0}")]
    NoRoute(String),
    #[error("the provider configuration could not be read")]
    Secrets(#[source] SecretsError),
    #[error("the provider configuration is invalid")]
    Config(#[source] CatalogError),
    #[error("every provider failed or is resting (retry in {retry_after} s)")]
    Exhausted {
        retry_after: u64,
        #[source]
        last: Option<AttemptError>,
    },
    #[error("the upstream refused the request")]
    Rejected(#[source] AttemptError),
}

/// Chat sampling parameters and context for one upstream call.
#[derive(Debug, Clone)]
pub struct ChatParams {
    pub messages: Vec<WireMessage>,
    pub temperature: f32,
    pub max_tokens: Option<u32>,
}

impl ChatParams {
    /// The upstream request for `model`; a streamed one asks for usage in its last chunk.
    fn request<'a>(&'a self, model: &'a str, stream: bool) -> ChatCompletionRequest<'a> {
        ChatCompletionRequest {
            model,
            messages: &self.messages,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        }
    }
}

/// One attempt, bounded: past `limit` it fails as `timed_out` (which failover counts as such).
async fn within<T>(
    limit: Duration,
    attempt: impl Future<Output = Result<T, AttemptError>>,
    timed_out: AttemptError,
) -> Result<T, AttemptError> {
    tokio::time::timeout(limit, attempt).await.unwrap_or(Err(timed_out))
}

/// A stream that produced its first token (or ended, empty): from here on there is no failover.
pub struct Opened {
    pub provider: String,
    pub stream: ChunkStream,
    /// Events read while waiting for the first token, that token included.
    pub first: Vec<StreamEvent>,
    /// The stream already ended (an empty answer).
    pub ended: bool,
}

pub struct Completed {
    pub provider: String,
    pub answer: Answer,
}

pub struct Transcribed {
    pub provider: String,
    pub response: TranscriptionResponse,
}

pub struct Providers {
    client: UpstreamClient,
    health: HealthBoard,
    secrets: Arc<SecretsCache>,
    cached: Mutex<Option<(Arc<Secrets>, Arc<Catalog>)>>,
    cooldown: CooldownPolicy,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    request_timeout: Duration,
}

impl Providers {
    pub fn new(secrets: Arc<SecretsCache>, config: &ChatConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: UpstreamClient::new(config.connect_timeout)?,
            health: HealthBoard::new(HealthPolicy {
                circuit_failures: config.circuit_failures,
                circuit_open: config.circuit_open,
            }),
            secrets,
            cached: Mutex::new(None),
            cooldown: CooldownPolicy { default: config.default_cooldown, max: config.max_cooldown },
            first_token_timeout: config.first_token_timeout,
            idle_timeout: config.idle_timeout,
            request_timeout: config.request_timeout,
        })
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The provider list of the current secret (parsed again only when the secret was refreshed).
    pub async fn catalog(&self) -> Result<Arc<Catalog>, ProviderError> {
        let secrets = self.secrets.get().await.map_err(ProviderError::Secrets)?;
        {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((s, c)) = cached.as_ref()
                && Arc::ptr_eq(s, &secrets)
            {
                return Ok(c.clone());
            }
        }
        let specs: Vec<ProviderSpec> = secrets.parse(SECRET_FIELD).map_err(ProviderError::Secrets)?.unwrap_or_default();
        let catalog = Arc::new(Catalog::from_specs(specs).map_err(ProviderError::Config)?);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((secrets, catalog.clone()));
        Ok(catalog)
    }

    /// Runs `attempt` against each candidate until one succeeds, the plan is exhausted, or an
    /// upstream refuses the request itself.
    async fn failover<'a, T>(
        &'a self,
        catalog: &'a Catalog,
        model: &str,
        mut attempt: impl FnMut(Target<'a>, &'a str) -> BoxFuture<'a, Result<T, AttemptError>>,
    ) -> Result<(T, &'a str), ProviderError> {
        let routes = catalog.routes(model);
        if routes.is_empty() {
            return Err(ProviderError::NoRoute(model.to_string()));
        }
        let mut plan = Plan::new(routes);
        let mut last = None;
        let mut failed = 0;
        while let Some(c) = plan.next(catalog, &self.health, Instant::now()) {
            let provider = &catalog.providers[c.provider];
            let Some(m) = provider.models.iter().find(|m| m.id == model) else { break };
            let target = Target {
                provider: &provider.name,
                base_url: &provider.base_url,
                key: c.key.map(|k| &provider.keys[k]),
            };
            match attempt(target, &m.upstream_id).await {
                Ok(v) => {
                    self.health.record_success(&provider.name);
                    baatcheet_shared::metrics::record_provider_success(&provider.name, model, failed);
                    return Ok((v, &provider.name));
                }
                Err(err) => {
                    let decision = decide(&err, self.cooldown);
                    failed += 1;
                    baatcheet_shared::metrics::record_provider_error(&provider.name, model);
                    tracing::warn!(
                        provider = %provider.name,
                        key = c.key.unwrap_or(0),
                        error = %error_chain(&err),
                        ?decision,
                        "upstream attempt failed"
                    );
                    if !plan.failed(c, decision, catalog, &self.health, Instant::now()) {
                        return Err(ProviderError::Rejected(err));
                    }
                    last = Some(err);
                }
            }
        }
        Err(ProviderError::Exhausted { retry_after: plan.retry_after(Instant::now(), FALLBACK_RETRY), last })
    }

    /// Opens a streamed answer, failing over until a first token arrives within the timeout.
    pub async fn open_stream(
        &self,
        catalog: &Catalog,
        model: &str,
        params: &ChatParams,
    ) -> Result<Opened, ProviderError> {
        let client = &self.client;
        let first_token_timeout = self.first_token_timeout;
        let asked = Instant::now();
        let ((stream, first, ended), provider) = self
            .failover(catalog, model, |target, upstream_model| {
                Box::pin(async move {
                    let req = params.request(upstream_model, true);
                    let started = async {
                        let mut stream = client.start_stream(&target, &req).await?;
                        let mut first = Vec::new();
                        loop {
                            match stream.next().await.map_err(AttemptError::Stream)? {
                                Some(StreamEvent::Delta(t)) => {
                                    first.push(StreamEvent::Delta(t));
                                    return Ok((stream, first, false));
                                }
                                Some(other) => first.push(other),
                                None => return Ok((stream, first, true)),
                            }
                        }
                    };
                    within(first_token_timeout, started, AttemptError::FirstTokenTimeout).await
                })
            })
            .await?;
        baatcheet_shared::metrics::record_completion_opened(provider, model, asked.elapsed());
        Ok(Opened { provider: provider.to_string(), stream, first, ended })
    }

    /// A whole answer (upstream `stream: false`), failing over on any failure.
    pub async fn complete(
        &self,
        catalog: &Catalog,
        model: &str,
        params: &ChatParams,
    ) -> Result<Completed, ProviderError> {
        let client = &self.client;
        let timeout = self.request_timeout;
        let (answer, provider) = self
            .failover(catalog, model, |target, upstream_model| {
                Box::pin(async move {
                    let req = params.request(upstream_model, false);
                    within(timeout, client.complete(&target, &req), AttemptError::Timeout).await
                })
            })
            .await?;
        Ok(Completed { provider: provider.to_string(), answer })
    }

    /// Transcribes audio with a model serving `/audio/transcriptions`, with the same failover.
    pub async fn transcribe(
        &self,
        catalog: &Catalog,
        model: &str,
        audio: &AudioFile,
        language: Option<&str>,
    ) -> Result<Transcribed, ProviderError> {
        let client = &self.client;
        let timeout = self.request_timeout;
        let (response, provider) = self
            .failover(catalog, model, |target, upstream_model| {
                Box::pin(async move {
                    within(timeout, client.transcribe(&target, upstream_model, audio, language), AttemptError::Timeout)
                        .await
                })
            })
            .await?;
        Ok(Transcribed { provider: provider.to_string(), response })
    }

    /// A stream that failed after its first token counts against its provider's circuit.
    pub fn report_stream_failure(&self, provider: &str) {
        self.health.record_failure(provider, Instant::now());
    }
}
