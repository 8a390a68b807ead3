//! Completions and regeneration, streamed or whole.
//!
//! Order of work: validate (nothing written on bad input) -> read the conversation with its newest
//! messages (one Query) -> the model must take the images (vision) -> images checked, counted
//! against the images limit, fetched and verified -> store the user's message (one transaction) ->
//! open the upstream with
//! failover until its first token -> only then answer `200 text/event-stream`, so a request no
//! provider could serve is a real 503, and the user never sees text repeated by a failover. A
//! spawned task then forwards chunks as they arrive and stores the answer when it ends (complete,
//! or partial and `incomplete` when the upstream fails or the client goes away).

use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::error::error_chain;
use baatcheet_shared::rate_limit::Policy;
use baatcheet_shared::request_id::RequestInfo;
use baatcheet_shared::{ApiError, FieldError, Problem};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::attachments::Image;
use super::idempotent::{Answer, Idempotent};
use super::{ChatService, owner};
use crate::api::{
    AnswerMessage, AttachmentInput, CompletionInput, CompletionResponse, RegenerateInput, StreamDone, StreamStart,
    field_error,
};
use crate::context::{self, ContextLimits, estimate_tokens};
use crate::modes;
use crate::providers::catalog::{Catalog, Model};
use crate::providers::client::{StreamError, StreamEvent};
use crate::providers::{ChatParams, Completed, Opened, Providers, wire};
use crate::sse::{ChatEvent, EventId, SseEvent};
use crate::store::idempotency::Claim;
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{AnswerMeta, Conversation, Message, MessageStatus, Role, Usage, now_rfc3339};
use crate::store::{ConversationStore, Settings};
use crate::title;

/// Events buffered between the upstream reader and the client.
const EVENT_BUFFER: usize = 64;
/// An answer longer than this is cut (and stored as incomplete): DynamoDB items are at most 400 KB.
pub const MAX_ANSWER_BYTES: usize = 300_000;

/// A started stream: what the first event says, and the events to send.
pub struct ChatStream {
    pub start: StreamStart,
    pub events: mpsc::Receiver<SseEvent>,
    /// The end of the generation behind this stream, which may come after its client went away
    /// (the answer goes on, to be resumed); `None` when the stream follows another request's answer.
    pub generated: Option<GenerationEnd>,
}

/// Tells whoever holds something for a generation (its open-stream place) that it ended, before
/// the stream's last event goes out: a client that reads `done` and sends again finds it let go.
pub struct GenerationEnd(oneshot::Receiver<oneshot::Sender<()>>);

impl GenerationEnd {
    /// Runs `release` once the generation has ended; its last event waits for it.
    pub fn then_run(self, release: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(async move {
            let ack = self.0.await;
            release.await;
            if let Ok(ack) = ack {
                let _ = ack.send(());
            }
        });
    }
}

/// Everything needed to ask the upstream, after the user's message is stored.
pub(super) struct Prepared {
    catalog: Arc<Catalog>,
    pub(super) conversation_id: ConversationId,
    title: String,
    created: bool,
    pub(super) user_message_id: MessageId,
    pub(super) replaces: Option<MessageId>,
    /// The message answered was marked failed by an earlier attempt.
    revive: bool,
    /// A regenerate: holds the conversation's regenerate lock while it runs.
    regenerate: bool,
    model: String,
    params: ChatParams,
    prompt_estimate: u64,
}

fn unavailable_no_model() -> ApiError {
    ApiError::Unavailable { detail: "No AI model is configured right now.".into(), retry_after_secs: Some(30) }
}

/// The model to use: the request's (which must exist and chat), else the conversation's (if still
/// offered), else the default.
fn resolve_model(catalog: &Catalog, requested: Option<&str>, stored: Option<&str>) -> Result<Model, ApiError> {
    if let Some(id) = requested {
        return match catalog.model(id) {
            Some(m) if m.chat => Ok(m.clone()),
            _ => Err(ApiError::Validation(vec![FieldError::new("/model", "is not a model this service offers")])),
        };
    }
    stored
        .and_then(|id| catalog.model(id))
        .filter(|m| m.chat)
        .or_else(|| catalog.default_chat_model())
        .cloned()
        .ok_or_else(unavailable_no_model)
}

fn require_vision(model: &Model, images: usize) -> Result<(), ApiError> {
    if images > 0 && !model.vision {
        return Err(ApiError::Validation(vec![FieldError::new(
            "/attachments",
            format!("model {} does not accept images; choose a vision-capable model", model.id),
        )]));
    }
    Ok(())
}

/// Usage as the upstream reported it, else estimated (and marked so).
fn usage_or_estimate(reported: Option<wire::Usage>, prompt_estimate: u64, content: &str) -> Usage {
    match reported {
        Some(u) => Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: if u.total_tokens > 0 { u.total_tokens } else { u.prompt_tokens + u.completion_tokens },
            estimated: false,
        },
        None => {
            let completion = if content.is_empty() { 0 } else { estimate_tokens(content) as u64 };
            Usage {
                prompt_tokens: prompt_estimate,
                completion_tokens: completion,
                total_tokens: prompt_estimate + completion,
                estimated: true,
            }
        }
    }
}

/// A problem document for a failure reported inside a stream (outside the request's task).
fn problem_for(err: &ApiError, request: Option<&RequestInfo>) -> Problem {
    let mut p = err.problem();
    if let Some(r) = request {
        p.instance = Some(r.path.clone());
        p.request_id = Some(r.id.clone());
    }
    p
}

impl ChatService {
    /// Builds the upstream parameters from the conversation's messages (oldest first, the new
    /// prompt last), trimmed to the newest that fit.
    fn params(
        &self,
        settings: &Settings,
        model: &Model,
        history: &[Message],
        images: Vec<String>,
        temperature: Option<f32>,
        max_tokens: Option<u32>,
    ) -> (ChatParams, u64) {
        let system = modes::system_prompt(settings.mode, settings.system_prompt.as_deref());
        let system_tokens = estimate_tokens(&system);
        let limits = ContextLimits::for_model(
            self.config.context_messages,
            self.config.context_budget_tokens,
            model.context_length,
            max_tokens,
        );
        let start = context::context_start(history, limits, system_tokens);
        let sent = &history[start..];
        let estimate = (system_tokens + sent.iter().map(|m| estimate_tokens(&m.content)).sum::<usize>()) as u64;
        let messages = context::build(system, sent, &images);
        (
            ChatParams { messages, temperature: modes::effective_temperature(temperature, settings.mode), max_tokens },
            estimate,
        )
    }

    /// The images of a message, ready for the upstream: checked (count, data URLs verified, web
    /// URLs through the SSRF guard), then counted against the images limit (one per image), then
    /// fetched and verified. Nothing is stored before this succeeds.
    async fn images(&self, user: &AuthUser, items: &[AttachmentInput]) -> Result<Vec<Image>, ApiError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let checked = self.attachments.check(items).await?;
        let cost = u32::try_from(items.len()).unwrap_or(u32::MAX);
        self.limiter.check(Policy::Images, owner(user), cost).await?;
        self.attachments.load(checked).await
    }

    async fn prepare_completion(&self, user: &AuthUser, input: CompletionInput) -> Result<Prepared, ApiError> {
        input.validate()?;
        self.attachments.check_count(input.attachments.len())?;
        let catalog = self.providers.catalog().await?;
        let requested = input.model.as_deref();
        if let Some(id) = requested {
            // A model that cannot take the images is refused before any read.
            require_vision(&resolve_model(&catalog, Some(id), None)?, input.attachments.len())?;
        }
        let existing = match input.conversation_id {
            Some(id) => {
                let keep = self.config.context_messages.saturating_sub(1);
                let (conversation, mut recent) = self.store.load_recent(owner(user), id, keep).await?;
                // An answer still being written is no context yet.
                recent.retain(|m| m.status != MessageStatus::Streaming);
                Some((conversation, recent))
            }
            None => None,
        };
        let stored_model = existing.as_ref().and_then(|(c, _)| c.model.as_deref());
        let model = resolve_model(&catalog, requested, stored_model)?;
        require_vision(&model, input.attachments.len())?;
        let images = self.images(user, &input.attachments).await?;

        let now = now_rfc3339();
        let user_message = Message {
            id: MessageId::new(),
            role: Role::User,
            content: input.message.clone(),
            status: MessageStatus::Complete,
            created_at: now.clone(),
            model: None,
            provider: None,
            usage: None,
            attachments: images.iter().map(|i| i.stored.clone()).collect(),
        };
        let user_message_id = user_message.id;
        let (conversation_id, title, created, settings, history) = match existing {
            Some((conversation, mut recent)) => {
                let settings = Settings {
                    mode: input.mode.unwrap_or(conversation.mode),
                    model: model.id.clone(),
                    system_prompt: input.system_prompt.clone().or(conversation.system_prompt),
                };
                self.store.append(owner(user), conversation.id, &user_message, &settings).await?;
                recent.push(user_message);
                (conversation.id, conversation.title, false, settings, recent)
            }
            None => {
                let settings = Settings {
                    mode: input.mode.unwrap_or_default(),
                    model: model.id.clone(),
                    system_prompt: input.system_prompt.clone(),
                };
                let conversation = Conversation {
                    id: ConversationId::new(),
                    user_id: owner(user).to_string(),
                    title: title::from_message(&input.message),
                    mode: settings.mode,
                    model: Some(model.id.clone()),
                    system_prompt: settings.system_prompt.clone(),
                    created_at: now.clone(),
                    updated_at: now,
                    message_count: 1,
                    deleted: false,
                };
                self.store.create(&conversation, &user_message).await?;
                (conversation.id, conversation.title, true, settings, vec![user_message])
            }
        };
        let images = images.into_iter().map(|i| i.data_url).collect();
        let (params, prompt_estimate) =
            self.params(&settings, &model, &history, images, input.temperature, input.max_tokens);
        Ok(Prepared {
            catalog,
            conversation_id,
            title,
            created,
            user_message_id,
            replaces: None,
            revive: false,
            regenerate: false,
            model: model.id,
            params,
            prompt_estimate,
        })
    }

    pub(super) async fn prepare_regenerate(
        &self,
        user: &AuthUser,
        input: RegenerateInput,
    ) -> Result<Prepared, ApiError> {
        input.validate()?;
        let catalog = self.providers.catalog().await?;
        let keep = self.config.context_messages;
        // The newest `keep` messages before the answer being replaced, plus that answer.
        let (conversation, mut recent) = self.store.load_recent(owner(user), input.conversation_id, keep + 1).await?;
        let replaces = match recent.last() {
            // An answer still being written (by a completion, or a regenerate): follow it instead.
            Some(m) if m.status == MessageStatus::Streaming && !super::follow::abandoned(m) => {
                return Err(running_conflict(m.id));
            }
            Some(m) if m.role == Role::Assistant => recent.pop().map(|m| m.id),
            _ => None,
        };
        let Some(prompt) = recent.last().filter(|m| m.role == Role::User) else {
            return Err(ApiError::Conflict("This conversation has no message to answer.".into()));
        };
        let user_message_id = prompt.id;
        let revive = prompt.status == MessageStatus::Failed;
        if recent.len() > keep {
            recent.drain(..recent.len() - keep);
        }
        let model = resolve_model(&catalog, input.model.as_deref(), conversation.model.as_deref())?;
        let settings = Settings {
            mode: input.mode.unwrap_or(conversation.mode),
            model: model.id.clone(),
            system_prompt: conversation.system_prompt.clone(),
        };
        // Images stored by URL go with the prompt again, checked, fetched and verified again (and
        // counted again); inline ones were never stored.
        let stored: Vec<AttachmentInput> = match recent.last() {
            Some(m) if model.vision => {
                m.attachments.iter().filter_map(|a| a.url.clone()).map(AttachmentInput::Url).collect()
            }
            _ => Vec::new(),
        };
        let images = self.images(user, &stored).await.map_err(|e| match e.status().as_u16() {
            413 | 415 | 422 => {
                field_error("/conversation_id", "an image of the message being answered can no longer be used")
            }
            _ => e,
        })?;
        let images = images.into_iter().map(|i| i.data_url).collect();
        let (params, prompt_estimate) =
            self.params(&settings, &model, &recent, images, input.temperature, input.max_tokens);
        Ok(Prepared {
            catalog,
            conversation_id: conversation.id,
            title: conversation.title,
            created: false,
            user_message_id,
            replaces,
            revive,
            regenerate: true,
            model: model.id,
            params,
            prompt_estimate,
        })
    }

    /// A completion (`stream`: events from the first token on, else one JSON answer). Returns once
    /// the upstream produced its first token, or failed everywhere: then the error (e.g. 503 with
    /// Retry-After, the user's message marked failed) and no stream. With an Idempotency-Key
    /// already used, the first request's answer instead (followed or replayed, never generated twice).
    pub async fn completion(
        &self,
        user: &AuthUser,
        input: CompletionInput,
        stream: bool,
        key: Option<&Idempotent>,
    ) -> Result<Answer, ApiError> {
        if let Some(k) = key
            && let Claim::Repeat(record) = &k.claim
        {
            let retry = RegenerateInput {
                conversation_id: record.conversation_id.unwrap_or_else(ConversationId::new),
                model: input.model.clone(),
                mode: input.mode,
                temperature: input.temperature,
                max_tokens: input.max_tokens,
            };
            return self.repeat(user, k, record.clone(), stream, retry, true).await;
        }
        let prepared = self.prepare_completion(user, input).await?;
        self.answer(user, prepared, stream, key).await
    }

    /// Regenerates the last answer (or answers a user message left failed), streamed or whole. The
    /// user's message is neither stored again nor sent twice; the old answer is replaced when the
    /// new one is stored. One regenerate per conversation at a time: another is a 409 naming it.
    pub async fn regeneration(
        &self,
        user: &AuthUser,
        input: RegenerateInput,
        stream: bool,
        key: Option<&Idempotent>,
    ) -> Result<Answer, ApiError> {
        if let Some(k) = key
            && let Claim::Repeat(record) = &k.claim
        {
            return self.repeat(user, k, record.clone(), stream, input, false).await;
        }
        let prepared = self.prepare_regenerate(user, input).await?;
        self.answer(user, prepared, stream, key).await
    }

    /// Writes the answer's item (status `streaming`, so it can be followed from now on) after
    /// taking the conversation's regenerate lock when it replaces an answer, then asks the upstream.
    pub(super) async fn answer(
        &self,
        user: &AuthUser,
        p: Prepared,
        stream: bool,
        key: Option<&Idempotent>,
    ) -> Result<Answer, ApiError> {
        let start = StreamStart {
            conversation_id: p.conversation_id,
            user_message_id: p.user_message_id,
            message_id: MessageId::new(),
            title: p.title.clone(),
            created: p.created,
            replaces: p.replaces,
        };
        let meta = AnswerMeta {
            user_message_id: start.user_message_id,
            replaces: start.replaces,
            created: start.created,
            title: start.title.clone(),
            finish_reason: None,
        };
        if p.regenerate {
            self.store.claim_regenerate(owner(user), start.conversation_id, start.message_id).await?;
        }
        let streaming = answer_message(start.message_id, String::new(), MessageStatus::Streaming, &p.model, "", None);
        let begun = async {
            self.store.begin_answer(owner(user), start.conversation_id, &streaming, &meta).await?;
            if let Some(k) = key {
                k.store.started(&k.key, start.conversation_id, start.user_message_id, start.message_id).await?;
            }
            Ok::<_, ApiError>(())
        };
        if let Err(e) = begun.await {
            self.abandon(&start, p.regenerate).await;
            return Err(e);
        }
        let (replaces, regenerate) = (p.replaces, p.regenerate);
        let outcome = if stream {
            match self.providers.open_stream(&p.catalog, &p.model, &p.params).await {
                Ok(opened) => Ok(Answer::Stream(self.start_stream(user, p, start.clone(), meta, opened))),
                Err(e) => Err(e.into()),
            }
        } else {
            match self.providers.complete(&p.catalog, &p.model, &p.params).await {
                Ok(done) => return self.answer_whole(user, p, start, meta, done).await.map(Answer::Whole),
                Err(e) => Err(e.into()),
            }
        };
        match outcome {
            Ok(a) => Ok(a),
            Err(e) => {
                // No provider answered: nothing of this attempt stays but the user's message, marked.
                self.abandon(&start, regenerate).await;
                if let Some(k) = key
                    && let Err(f) = k.store.failed(&k.key, start.conversation_id, start.user_message_id).await
                {
                    tracing::error!(cause = %error_chain(&f), "recording a failed attempt on its key did not work");
                }
                Err(if replaces.is_none() {
                    self.unanswered(start.conversation_id, start.user_message_id, e).await
                } else {
                    e
                })
            }
        }
    }

    /// Removes an answer's item that never got a token, and the regenerate lock it held.
    async fn abandon(&self, start: &StreamStart, regenerate: bool) {
        if let Err(d) = self.store.drop_answer(start.conversation_id, start.message_id).await {
            tracing::error!(cause = %error_chain(&d), "removing an answer that never started failed");
        }
        if regenerate {
            self.store.release_regenerate(start.conversation_id, start.message_id).await;
        }
    }

    /// Starts the task that relays the opened upstream to the client and stores the answer.
    fn start_stream(
        &self,
        user: &AuthUser,
        p: Prepared,
        start: StreamStart,
        meta: AnswerMeta,
        opened: Opened,
    ) -> ChatStream {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let (ending, generated) = oneshot::channel();
        let pump = Pump {
            ending: Some(ending),
            store: self.store.clone(),
            providers: self.providers.clone(),
            user_id: owner(user).to_string(),
            start: start.clone(),
            meta,
            revive: p.revive,
            regenerate: p.regenerate,
            model: p.model,
            prompt_estimate: p.prompt_estimate,
            idle_timeout: self.providers.idle_timeout(),
            request: RequestInfo::current(),
        };
        // Spawned, so the answer goes on (and is stored) when the client goes away: it can come back
        // for the rest with the stream route.
        tokio::spawn(pump.run(opened, tx).instrument(tracing::Span::current()));
        ChatStream { start, events: rx, generated: Some(GenerationEnd(generated)) }
    }

    /// The user's message could not be answered by any provider: it is marked `failed` (kept, so a
    /// retry answers it rather than storing another), and the problem says so.
    async fn unanswered(&self, conversation: ConversationId, message: MessageId, err: ApiError) -> ApiError {
        if let Err(e) = self.store.set_status(conversation, message, MessageStatus::Failed).await {
            tracing::error!(cause = %error_chain(&e), "marking a message failed did not work");
            return err;
        }
        let note = format!(
            "Your message {message} is saved but was not answered (marked failed); retry with the same \
             Idempotency-Key, or regenerate, to answer it."
        );
        match err {
            ApiError::Unavailable { detail, retry_after_secs } => {
                ApiError::Unavailable { detail: format!("{detail} {note}"), retry_after_secs }
            }
            other => other,
        }
    }

    async fn answer_whole(
        &self,
        user: &AuthUser,
        p: Prepared,
        start: StreamStart,
        meta: AnswerMeta,
        done: Completed,
    ) -> Result<CompletionResponse, ApiError> {
        let store = self.store.clone();
        let user_id = owner(user).to_string();
        // Spawned, so a client that hangs up does not cancel the store of an answer being paid for.
        let task = async move {
            let usage = usage_or_estimate(done.answer.usage, p.prompt_estimate, &done.answer.content);
            baatcheet_shared::metrics::record_answer(
                &done.provider,
                &p.model,
                usage.prompt_tokens,
                usage.completion_tokens,
                None,
            );
            let message = answer_message(
                start.message_id,
                done.answer.content,
                MessageStatus::Complete,
                &p.model,
                &done.provider,
                Some(usage),
            );
            let meta = AnswerMeta { finish_reason: done.answer.finish_reason, ..meta };
            let stored = store.finish_answer(&user_id, p.conversation_id, &message, &meta, p.revive).await;
            if p.regenerate {
                store.release_regenerate(p.conversation_id, message.id).await;
            }
            stored?;
            Ok::<_, ApiError>(CompletionResponse {
                conversation_id: p.conversation_id,
                message: AnswerMessage { id: message.id, role: Role::Assistant, content: message.content },
                model: p.model,
                provider: done.provider,
                usage,
            })
        };
        tokio::spawn(task.instrument(tracing::Span::current())).await.map_err(ApiError::internal)?
    }
}

impl From<crate::store::RegenerateRefused> for ApiError {
    fn from(r: crate::store::RegenerateRefused) -> Self {
        match r {
            crate::store::RegenerateRefused::Running(m) => running_conflict(m),
            crate::store::RegenerateRefused::Store(e) => e.into(),
        }
    }
}

/// The 409 of a request that would answer what another request is answering.
pub fn running_conflict(running: MessageId) -> ApiError {
    ApiError::Conflict(format!(
        "An answer to this conversation is already being generated: message {running}. Follow it with \
         GET /api/v1/chat/messages/{running}/stream."
    ))
}

/// An assistant message as stored.
fn answer_message(
    id: MessageId,
    content: String,
    status: MessageStatus,
    model: &str,
    provider: &str,
    usage: Option<Usage>,
) -> Message {
    Message {
        id,
        role: Role::Assistant,
        content,
        status,
        created_at: now_rfc3339(),
        model: Some(model.to_string()),
        provider: (!provider.is_empty()).then(|| provider.to_string()),
        usage,
        attachments: Vec::new(),
    }
}

/// Moves one streamed answer from the upstream to the client and into the store.
struct Pump {
    /// Told (and awaited) before the last event: see [`GenerationEnd`].
    ending: Option<oneshot::Sender<oneshot::Sender<()>>>,
    store: ConversationStore,
    providers: Arc<Providers>,
    user_id: String,
    start: StreamStart,
    meta: AnswerMeta,
    /// The user message was marked failed by an earlier attempt: complete again once answered.
    revive: bool,
    regenerate: bool,
    model: String,
    prompt_estimate: u64,
    idle_timeout: Duration,
    request: Option<RequestInfo>,
}

/// How often a streaming answer's text is written while it grows: when at least
/// `PROGRESS_BYTES` were added and `PROGRESS_INTERVAL` passed since the last write, whichever comes
/// later. An answer of `b` bytes over `s` seconds costs at most `min(b / PROGRESS_BYTES, s)`
/// progress writes, besides its first item and its final transaction.
pub const PROGRESS_BYTES: usize = 512;
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The longest an answer may take, from its first token, inside the function's 120 s timeout
/// (template.yaml): past it the answer is stored as `incomplete`.
pub const ANSWER_BUDGET: Duration = Duration::from_secs(100);

/// The client's side of a stream: events go there until it goes away; the answer goes on anyway.
struct Client(Option<mpsc::Sender<SseEvent>>);

impl Client {
    async fn send(&mut self, id: EventId, event: ChatEvent) {
        if let Some(tx) = &self.0
            && tx.send(SseEvent::new(id, event)).await.is_err()
        {
            tracing::info!("client went away; the answer goes on and is stored");
            self.0 = None;
        }
    }
}

/// The bounded progressive writes of one answer.
struct Progress {
    stored: usize,
    at: tokio::time::Instant,
}

impl Progress {
    fn due(&self, len: usize) -> bool {
        len >= self.stored + PROGRESS_BYTES && self.at.elapsed() >= PROGRESS_INTERVAL
    }
}

impl Pump {
    async fn run(mut self, opened: Opened, tx: mpsc::Sender<SseEvent>) {
        let Opened { provider, mut stream, first, ended } = opened;
        let first_token_at = tokio::time::Instant::now();
        let deadline = tokio::time::Instant::now() + ANSWER_BUDGET;
        let mut client = Client(Some(tx));
        let mut content = String::new();
        let mut usage = None;
        let mut finish_reason = None;
        let mut failed: Option<StreamError> = None;
        let mut progress = Progress { stored: 0, at: tokio::time::Instant::now() };

        client.send(EventId::At(0), ChatEvent::Conversation(self.start.clone())).await;
        let mut pending: std::collections::VecDeque<StreamEvent> = first.into();
        let mut upstream_open = !ended;
        loop {
            let ev = match pending.pop_front() {
                Some(ev) => ev,
                None if !upstream_open => break,
                None => {
                    let next = tokio::select! {
                        n = tokio::time::timeout(self.idle_timeout, stream.next()) => n,
                        _ = tokio::time::sleep_until(deadline) => {
                            failed = Some(StreamError::Protocol("the answer's time budget ran out".into()));
                            break;
                        }
                    };
                    match next {
                        Err(_) => {
                            failed = Some(StreamError::Idle);
                            break;
                        }
                        Ok(Err(e)) => {
                            failed = Some(e);
                            break;
                        }
                        Ok(Ok(None)) => {
                            upstream_open = false;
                            continue;
                        }
                        Ok(Ok(Some(ev))) => ev,
                    }
                }
            };
            match ev {
                StreamEvent::Usage(u) => usage = Some(u),
                StreamEvent::Finish(r) => finish_reason = Some(r),
                StreamEvent::Delta(t) if t.is_empty() => {}
                StreamEvent::Delta(t) => {
                    if content.len() + t.len() > MAX_ANSWER_BYTES {
                        failed = Some(StreamError::Protocol("answer exceeds the stored size limit".into()));
                        break;
                    }
                    content.push_str(&t);
                    client.send(EventId::At(content.len()), ChatEvent::Delta(t)).await;
                    if progress.due(content.len()) {
                        match self.store.progress(self.start.conversation_id, self.start.message_id, &content).await {
                            Ok(()) => progress = Progress { stored: content.len(), at: tokio::time::Instant::now() },
                            Err(e) => tracing::warn!(cause = %error_chain(&e), "storing answer progress failed"),
                        }
                    }
                }
            }
        }
        drop(stream); // stop the upstream generating (and billing) as soon as we are done with it

        let status = if failed.is_none() { MessageStatus::Complete } else { MessageStatus::Incomplete };
        let usage = usage_or_estimate(usage, self.prompt_estimate, &content);
        baatcheet_shared::metrics::record_answer(
            &provider,
            &self.model,
            usage.prompt_tokens,
            usage.completion_tokens,
            Some(first_token_at.elapsed()),
        );
        let message = answer_message(self.start.message_id, content, status, &self.model, &provider, Some(usage));
        let meta = AnswerMeta { finish_reason: finish_reason.clone(), ..self.meta.clone() };
        let stored =
            self.store.finish_answer(&self.user_id, self.start.conversation_id, &message, &meta, self.revive).await;
        if let Err(e) = &stored {
            tracing::error!(cause = %error_chain(e), conversation = %self.start.conversation_id, "storing the answer failed");
        }
        if self.regenerate {
            self.store.release_regenerate(self.start.conversation_id, self.start.message_id).await;
        }
        let outcome = match failed {
            Some(e) => {
                self.providers.report_stream_failure(&provider);
                tracing::warn!(provider = %provider, cause = %error_chain(&e), "upstream failed mid-stream");
                ChatEvent::Error(Box::new(problem_for(&ApiError::BadGateway(Box::new(e)), self.request.as_ref())))
            }
            None => match stored {
                Ok(()) => ChatEvent::Done(StreamDone {
                    message_id: message.id,
                    model: self.model.clone(),
                    provider,
                    usage,
                    finish_reason,
                }),
                Err(e) => ChatEvent::Error(Box::new(problem_for(&ApiError::from(e), self.request.as_ref()))),
            },
        };
        if let Some(ending) = self.ending.take() {
            let (ack, acked) = oneshot::channel();
            if ending.send(ack).is_ok() {
                let _ = acked.await;
            }
        }
        client.send(EventId::End, outcome).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_reported_or_estimated() {
        let u = usage_or_estimate(
            Some(wire::Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 0 }),
            999,
            "ignored",
        );
        assert_eq!(u, Usage { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, estimated: false });
        let u = usage_or_estimate(None, 100, "abcdef");
        assert!(u.estimated);
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.total_tokens), (100, 6, 106));
        assert_eq!(usage_or_estimate(None, 7, "").completion_tokens, 0);
    }

    #[test]
    fn model_resolution() {
        let specs: Vec<crate::providers::catalog::ProviderSpec> = serde_json::from_value(serde_json::json!([
            {"name": "p", "base_url": "http://p.test", "models": [
                {"id": "whisper", "chat": false, "audio": true}, {"id": "text"}, {"id": "eyes", "vision": true}]}
        ]))
        .unwrap();
        let c = Catalog::from_specs(specs).unwrap();
        assert_eq!(resolve_model(&c, None, None).unwrap().id, "text");
        assert_eq!(resolve_model(&c, None, Some("eyes")).unwrap().id, "eyes");
        assert_eq!(resolve_model(&c, None, Some("retired")).unwrap().id, "text");
        assert_eq!(resolve_model(&c, Some("eyes"), Some("text")).unwrap().id, "eyes");
        assert!(matches!(resolve_model(&c, Some("whisper"), None), Err(ApiError::Validation(_))));
        assert!(matches!(resolve_model(&c, Some("gpt-17"), None), Err(ApiError::Validation(_))));
        assert!(require_vision(&resolve_model(&c, Some("text"), None).unwrap(), 1).is_err());
        assert!(require_vision(&resolve_model(&c, Some("eyes"), None).unwrap(), 1).is_ok());
        assert!(matches!(resolve_model(&Catalog::default(), None, None), Err(ApiError::Unavailable { .. })));
    }

    #[test]
    fn stream_problems_carry_the_request() {
        let info = RequestInfo { id: "req-12345678".into(), path: "/api/v1/chat/completions".into() };
        let p = problem_for(&ApiError::BadGateway(Box::new(StreamError::Dropped)), Some(&info));
        assert_eq!(p.status, 502);
        assert_eq!(p.request_id.as_deref(), Some("req-12345678"));
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("Dropped") && !text.contains("ended before"), "{text}");
    }

    #[test]
    fn default_mode_is_chat() {
        assert_eq!(crate::modes::Mode::default(), crate::modes::Mode::Chat);
    }
}
