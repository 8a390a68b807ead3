//! A completion's preparation, before any upstream is asked: validate (nothing written on bad
//! input) -> read the conversation with its newest messages (one Query) -> choose the model (it
//! must take the images: vision) -> images checked, counted against the images limit, fetched and
//! verified -> store the user's message (one transaction) -> the upstream parameters, trimmed to
//! the model's context.

use baatcheet_shared::auth::AuthUser;
use std::sync::Arc;

use super::context_window::{self, ContextLimits, estimate_tokens};
use crate::api::{AttachmentInput, CompletionInput, Generation, RegenerateInput};
use crate::modes;
use crate::providers::ChatParams;
use crate::providers::catalog::{Catalog, Model};
use crate::service::attachments::Image;
use crate::service::{ChatError, ChatService, owner};
use crate::store::Settings;
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{Conversation, Message, MessageStatus, Role, now_rfc3339};
use crate::title;

/// Everything needed to ask the upstream, after the user's message is stored.
pub(in crate::service) struct Prepared {
    pub(super) catalog: Arc<Catalog>,
    pub(in crate::service) conversation_id: ConversationId,
    pub(super) title: String,
    pub(super) created: bool,
    pub(in crate::service) user_message_id: MessageId,
    pub(in crate::service) replaces: Option<MessageId>,
    /// The message answered was marked failed by an earlier attempt.
    pub(super) revive: bool,
    /// A regenerate: holds the conversation's regenerate lock while it runs.
    pub(super) regenerate: bool,
    pub(super) model: String,
    pub(super) params: ChatParams,
    pub(super) prompt_estimate: u64,
}

/// The model to use: the request's (which must exist and chat), else the conversation's (if still
/// offered), else the default.
fn resolve_model(catalog: &Catalog, requested: Option<&str>, stored: Option<&str>) -> Result<Model, ChatError> {
    if let Some(id) = requested {
        return match catalog.model(id) {
            Some(m) if m.chat => Ok(m.clone()),
            _ => Err(ChatError::ModelNotOffered),
        };
    }
    stored
        .and_then(|id| catalog.model(id))
        .filter(|m| m.chat)
        .or_else(|| catalog.default_chat_model())
        .cloned()
        .ok_or(ChatError::NoChatModel)
}

fn require_vision(model: &Model, images: usize) -> Result<(), ChatError> {
    if images > 0 && !model.vision {
        return Err(ChatError::NoVision(model.id.clone()));
    }
    Ok(())
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
        generation: &Generation,
    ) -> (ChatParams, u64) {
        let Generation { temperature, max_tokens, .. } = *generation;
        let system = modes::system_prompt(settings.mode, settings.system_prompt.as_deref());
        let system_tokens = estimate_tokens(&system);
        let limits = ContextLimits::for_model(
            self.config.context_messages,
            self.config.context_budget_tokens,
            model.context_length,
            max_tokens,
        );
        let start = context_window::context_start(history, limits, system_tokens);
        let sent = &history[start..];
        let estimate = (system_tokens + sent.iter().map(|m| estimate_tokens(&m.content)).sum::<usize>()) as u64;
        let messages = context_window::build(system, sent, &images);
        (
            ChatParams { messages, temperature: modes::effective_temperature(temperature, settings.mode), max_tokens },
            estimate,
        )
    }

    /// The images of a message, ready for the upstream: checked (count, data URLs verified, web
    /// URLs through the SSRF guard), then counted against the images limit (one per image), then
    /// fetched and verified. Nothing is stored before this succeeds.
    async fn images(&self, user: &AuthUser, items: &[AttachmentInput]) -> Result<Vec<Image>, ChatError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let checked = self.attachments.check(items).await?;
        let cost = u32::try_from(items.len()).unwrap_or(u32::MAX);
        self.limiter.check(crate::limits::IMAGES.policy(), owner(user), cost).await?;
        self.attachments.load(checked).await
    }

    pub(super) async fn prepare_completion(
        &self,
        user: &AuthUser,
        input: CompletionInput,
    ) -> Result<Prepared, ChatError> {
        input.validate().map_err(ChatError::Invalid)?;
        self.attachments.check_count(input.attachments.len())?;
        let catalog = self.providers.catalog().await?;
        let requested = input.generation.model.as_deref();
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
                    mode: input.generation.mode.unwrap_or(conversation.mode),
                    model: model.id.clone(),
                    system_prompt: input.system_prompt.clone().or(conversation.system_prompt),
                };
                self.store.append(owner(user), conversation.id, &user_message, &settings).await?;
                recent.push(user_message);
                (conversation.id, conversation.title, false, settings, recent)
            }
            None => {
                let settings = Settings {
                    mode: input.generation.mode.unwrap_or_default(),
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
        let (params, prompt_estimate) = self.params(&settings, &model, &history, images, &input.generation);
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

    pub(in crate::service) async fn prepare_regenerate(
        &self,
        user: &AuthUser,
        input: RegenerateInput,
    ) -> Result<Prepared, ChatError> {
        input.validate().map_err(ChatError::Invalid)?;
        let catalog = self.providers.catalog().await?;
        let keep = self.config.context_messages;
        // The newest `keep` messages before the answer being replaced, plus that answer.
        let (conversation, mut recent) = self.store.load_recent(owner(user), input.conversation_id, keep + 1).await?;
        let replaces = match recent.last() {
            // An answer still being written (by a completion, or a regenerate): follow it instead.
            Some(m) if m.status == MessageStatus::Streaming && !crate::service::follow::abandoned(m) => {
                return Err(ChatError::Running(m.id));
            }
            Some(m) if m.role == Role::Assistant => recent.pop().map(|m| m.id),
            _ => None,
        };
        let Some(prompt) = recent.last().filter(|m| m.role == Role::User) else {
            return Err(ChatError::NothingToAnswer);
        };
        let user_message_id = prompt.id;
        let revive = prompt.status == MessageStatus::Failed;
        if recent.len() > keep {
            recent.drain(..recent.len() - keep);
        }
        let model = resolve_model(&catalog, input.generation.model.as_deref(), conversation.model.as_deref())?;
        let settings = Settings {
            mode: input.generation.mode.unwrap_or(conversation.mode),
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
        let images = self.images(user, &stored).await.map_err(|e| match e {
            ChatError::ImageRefused(_) => ChatError::ImageGone,
            e => e,
        })?;
        let images = images.into_iter().map(|i| i.data_url).collect();
        let (params, prompt_estimate) = self.params(&settings, &model, &recent, images, &input.generation);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(resolve_model(&c, Some("whisper"), None), Err(ChatError::ModelNotOffered)));
        assert!(matches!(resolve_model(&c, Some("gpt-17"), None), Err(ChatError::ModelNotOffered)));
        assert!(require_vision(&resolve_model(&c, Some("text"), None).unwrap(), 1).is_err());
        assert!(require_vision(&resolve_model(&c, Some("eyes"), None).unwrap(), 1).is_ok());
        assert!(matches!(resolve_model(&Catalog::default(), None, None), Err(ChatError::NoChatModel)));
    }

    #[test]
    fn default_mode_is_chat() {
        assert_eq!(crate::modes::Mode::default(), crate::modes::Mode::Chat);
    }
}
