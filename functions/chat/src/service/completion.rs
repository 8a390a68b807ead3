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
use tokio::sync::mpsc;
use tracing::Instrument;

use super::attachments::Image;
use super::{ChatService, owner};
use crate::api::{
    AnswerMessage, AttachmentInput, CompletionInput, CompletionResponse, RegenerateInput, StreamDone, StreamStart,
    field_error,
};
use crate::context::{self, ContextLimits, estimate_tokens};
use crate::modes;
use crate::providers::catalog::{Catalog, Model};
use crate::providers::client::{StreamError, StreamEvent};
use crate::providers::{ChatParams, Opened, Providers, wire};
use crate::sse::ChatEvent;
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{Conversation, Message, MessageStatus, Role, Usage, now_rfc3339};
use crate::store::{ConversationStore, Settings};
use crate::title;

/// Events buffered between the upstream reader and the client.
const EVENT_BUFFER: usize = 64;
/// An answer longer than this is cut (and stored as incomplete): DynamoDB items are at most 400 KB.
pub const MAX_ANSWER_BYTES: usize = 300_000;

/// A started stream: what the first event says, and the events to send.
pub struct ChatStream {
    pub start: StreamStart,
    pub events: mpsc::Receiver<ChatEvent>,
}

/// Everything needed to ask the upstream, after the user's message is stored.
struct Prepared {
    catalog: Arc<Catalog>,
    conversation_id: ConversationId,
    title: String,
    created: bool,
    user_message_id: MessageId,
    replaces: Option<MessageId>,
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
                Some(self.store.load_recent(owner(user), id, keep).await?)
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
            model: model.id,
            params,
            prompt_estimate,
        })
    }

    async fn prepare_regenerate(&self, user: &AuthUser, input: RegenerateInput) -> Result<Prepared, ApiError> {
        input.validate()?;
        let catalog = self.providers.catalog().await?;
        let keep = self.config.context_messages;
        // The newest `keep` messages before the answer being replaced, plus that answer.
        let (conversation, mut recent) = self.store.load_recent(owner(user), input.conversation_id, keep + 1).await?;
        let replaces = match recent.last() {
            Some(m) if m.role == Role::Assistant => recent.pop().map(|m| m.id),
            _ => None,
        };
        let Some(prompt) = recent.last().filter(|m| m.role == Role::User) else {
            return Err(ApiError::Conflict("This conversation has no message to answer.".into()));
        };
        let user_message_id = prompt.id;
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
            model: model.id,
            params,
            prompt_estimate,
        })
    }

    /// `stream: true` completion. Returns once the upstream produced its first token (or failed
    /// everywhere: then the error, e.g. 503 with Retry-After, and no stream).
    pub async fn stream_completion(&self, user: &AuthUser, input: CompletionInput) -> Result<ChatStream, ApiError> {
        let prepared = self.prepare_completion(user, input).await?;
        self.start_stream(user, prepared).await
    }

    /// `stream: false` completion.
    pub async fn complete(&self, user: &AuthUser, input: CompletionInput) -> Result<CompletionResponse, ApiError> {
        let prepared = self.prepare_completion(user, input).await?;
        self.answer_whole(user, prepared).await
    }

    /// Regenerates the last answer, streamed. The user's message is neither stored again nor sent
    /// twice; the old answer is replaced when the new one is stored.
    pub async fn stream_regenerate(&self, user: &AuthUser, input: RegenerateInput) -> Result<ChatStream, ApiError> {
        let prepared = self.prepare_regenerate(user, input).await?;
        self.start_stream(user, prepared).await
    }

    /// Regenerates the last answer, whole.
    pub async fn regenerate(&self, user: &AuthUser, input: RegenerateInput) -> Result<CompletionResponse, ApiError> {
        let prepared = self.prepare_regenerate(user, input).await?;
        self.answer_whole(user, prepared).await
    }

    async fn start_stream(&self, user: &AuthUser, p: Prepared) -> Result<ChatStream, ApiError> {
        let opened = self.providers.open_stream(&p.catalog, &p.model, &p.params).await?;
        let start = StreamStart {
            conversation_id: p.conversation_id,
            user_message_id: p.user_message_id,
            message_id: MessageId::new(),
            title: p.title,
            created: p.created,
            replaces: p.replaces,
        };
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let pump = Pump {
            store: self.store.clone(),
            providers: self.providers.clone(),
            user_id: owner(user).to_string(),
            start: start.clone(),
            model: p.model,
            prompt_estimate: p.prompt_estimate,
            idle_timeout: self.providers.idle_timeout(),
            request: RequestInfo::current(),
        };
        // Spawned, so the answer is stored even when the client (and its response body) goes away.
        tokio::spawn(pump.run(opened, tx).instrument(tracing::Span::current()));
        Ok(ChatStream { start, events: rx })
    }

    async fn answer_whole(&self, user: &AuthUser, p: Prepared) -> Result<CompletionResponse, ApiError> {
        let store = self.store.clone();
        let providers = self.providers.clone();
        let user_id = owner(user).to_string();
        // Spawned, so a client that hangs up does not cancel the store of an answer being paid for.
        let task = async move {
            let done = providers.complete(&p.catalog, &p.model, &p.params).await?;
            let usage = usage_or_estimate(done.answer.usage, p.prompt_estimate, &done.answer.content);
            let message = Message {
                id: MessageId::new(),
                role: Role::Assistant,
                content: done.answer.content,
                status: MessageStatus::Complete,
                created_at: now_rfc3339(),
                model: Some(p.model.clone()),
                provider: Some(done.provider.clone()),
                usage: Some(usage),
                attachments: Vec::new(),
            };
            store.finish(&user_id, p.conversation_id, &message, p.replaces).await?;
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

/// Moves one streamed answer from the upstream to the client and into the store.
struct Pump {
    store: ConversationStore,
    providers: Arc<Providers>,
    user_id: String,
    start: StreamStart,
    model: String,
    prompt_estimate: u64,
    idle_timeout: Duration,
    request: Option<RequestInfo>,
}

/// How the stream ended.
enum End {
    Complete,
    ClientGone,
    Failed(StreamError),
}

impl Pump {
    async fn run(self, opened: Opened, tx: mpsc::Sender<ChatEvent>) {
        let Opened { provider, mut stream, first, ended } = opened;
        let mut content = String::new();
        let mut usage = None;
        let mut finish_reason = None;
        let mut end = End::Complete;

        let mut client_gone = tx.send(ChatEvent::Conversation(self.start.clone())).await.is_err();
        let mut on_event = |ev: StreamEvent, content: &mut String| -> Option<String> {
            match ev {
                StreamEvent::Delta(t) => {
                    content.push_str(&t);
                    return Some(t);
                }
                StreamEvent::Usage(u) => usage = Some(u),
                StreamEvent::Finish(r) => finish_reason = Some(r),
            }
            None
        };
        for ev in first {
            if let Some(t) = on_event(ev, &mut content)
                && !client_gone
            {
                client_gone = tx.send(ChatEvent::Delta(t)).await.is_err();
            }
        }
        if client_gone {
            end = End::ClientGone;
        } else if !ended {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = tx.closed() => { end = End::ClientGone; break; }
                    n = tokio::time::timeout(self.idle_timeout, stream.next()) => n,
                };
                let ev = match next {
                    Err(_) => Err(StreamError::Idle),
                    Ok(r) => r,
                };
                match ev {
                    Ok(None) => break,
                    Err(e) => {
                        end = End::Failed(e);
                        break;
                    }
                    Ok(Some(ev)) => {
                        if let Some(t) = on_event(ev, &mut content) {
                            if content.len() > MAX_ANSWER_BYTES {
                                end = End::Failed(StreamError::Protocol("answer exceeds the stored size limit".into()));
                                break;
                            }
                            if tx.send(ChatEvent::Delta(t)).await.is_err() {
                                end = End::ClientGone;
                                break;
                            }
                        }
                    }
                }
            }
        }
        drop(stream); // stop the upstream generating (and billing) as soon as we are done with it

        let status = if matches!(end, End::Complete) { MessageStatus::Complete } else { MessageStatus::Incomplete };
        let usage = usage_or_estimate(usage, self.prompt_estimate, &content);
        let message = Message {
            id: self.start.message_id,
            role: Role::Assistant,
            content,
            status,
            created_at: now_rfc3339(),
            model: Some(self.model.clone()),
            provider: Some(provider.clone()),
            usage: Some(usage),
            attachments: Vec::new(),
        };
        let stored = self.store.finish(&self.user_id, self.start.conversation_id, &message, self.start.replaces).await;
        if let Err(e) = &stored {
            tracing::error!(cause = %error_chain(e), conversation = %self.start.conversation_id, "storing the answer failed");
        }
        let outcome = match end {
            End::ClientGone => {
                tracing::info!(conversation = %self.start.conversation_id, stored = stored.is_ok(), "client went away; partial answer kept");
                return;
            }
            End::Failed(e) => {
                self.providers.report_stream_failure(&provider);
                tracing::warn!(provider = %provider, cause = %error_chain(&e), "upstream failed mid-stream");
                ChatEvent::Error(Box::new(problem_for(&ApiError::BadGateway(Box::new(e)), self.request.as_ref())))
            }
            End::Complete => match stored {
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
        let _ = tx.send(outcome).await;
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
