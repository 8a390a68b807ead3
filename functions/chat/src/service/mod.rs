//! The chat domain, apart from HTTP: every operation takes the authenticated caller (`&AuthUser`)
//! and typed, validated input, and returns domain values or a [`ChatError`] (`error`: mapped to a
//! problem at the HTTP edge). The HTTP adapters in
//! `http` only extract, call and render.

pub mod attachments;
pub mod completion;
pub mod conversations;
pub mod error;
pub mod follow;
pub mod idempotent;
pub mod transcribe;

use crate::safety::ssrf::{Resolver, SystemResolver};
use baatcheet_shared::AppContext;
use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::rate_limit::Limiter;
use std::sync::Arc;

use crate::api::ModelsResponse;
use crate::config::{ChatConfig, ChatTables};
use crate::providers::Providers;
use crate::store::ConversationStore;
use crate::streams::{OpenStreams, StreamLease};
use attachments::Attachments;

pub use completion::ChatStream;
pub use error::ChatError;
pub use idempotent::{Answer, Idempotent};
pub use transcribe::TranscriptionInput;

pub struct ChatService {
    store: ConversationStore,
    providers: Arc<Providers>,
    config: Arc<ChatConfig>,
    /// Per-user limits the service applies itself (images: their number is known only here).
    limiter: Arc<Limiter>,
    attachments: Attachments,
    streams: OpenStreams,
}

impl ChatService {
    /// Built once per cold start from the shared context (DynamoDB client, secrets cache, limiter).
    pub fn new(ctx: &AppContext, tables: &ChatTables, config: ChatConfig) -> Result<Self, reqwest::Error> {
        Self::with_resolver(ctx, tables, config, Arc::new(SystemResolver))
    }

    /// As [`Self::new`], with the resolver image URLs are checked with (tests use a fixed table).
    pub fn with_resolver(
        ctx: &AppContext,
        tables: &ChatTables,
        config: ChatConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, reqwest::Error> {
        let providers = Providers::new(ctx.secrets.clone(), &config)?;
        Ok(Self {
            store: ConversationStore::new(ctx.dynamo.clone(), tables.conversations.clone()),
            providers: Arc::new(providers),
            attachments: Attachments::new(&config, resolver),
            streams: OpenStreams::new(ctx.dynamo.clone(), tables.stream_leases.clone(), config.streams.clone()),
            config: Arc::new(config),
            limiter: ctx.limiter.clone(),
        })
    }

    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// A place for one more open completion of `user` (refused when their tier's are all taken):
    /// held from before the completion starts until it ends.
    pub async fn open_stream(&self, user: &AuthUser) -> Result<StreamLease, ChatError> {
        Ok(self.streams.open(user).await?)
    }

    /// The open-stream leases (erasure deletes a user's).
    pub fn streams(&self) -> &OpenStreams {
        &self.streams
    }

    /// The conversation store (tests seed and inspect through it).
    pub fn store(&self) -> &ConversationStore {
        &self.store
    }

    /// `GET /api/v1/chat/models`: the configured models (no caller needed: the route is public).
    pub async fn models(&self) -> Result<ModelsResponse, ChatError> {
        let catalog = self.providers.catalog().await?;
        Ok(ModelsResponse {
            models: catalog.models(),
            default_model: catalog.default_chat_model().map(|m| m.id.clone()),
        })
    }
}

/// The caller's id as the store keys it.
fn owner(user: &AuthUser) -> &str {
    &user.user_id
}
