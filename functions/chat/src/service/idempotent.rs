//! Repeats of a request with an Idempotency-Key: the first request (the key's owner) answers; a
//! repeat follows or replays that answer in the form it asks for, never generating another. When
//! the first attempt found no provider, the repeat that comes first takes the key over and answers
//! the stored user message (no second copy of it).

use baatcheet_shared::auth::AuthUser;
use std::time::{Duration, Instant};

use super::completion::ChatStream;
use super::follow::FOLLOW_POLL;
use super::{ChatError, ChatService, owner};
use crate::api::{AnswerMessage, CompletionResponse, RegenerateInput};
use crate::store::StoreError;
use crate::store::idempotency::{Claim, IdempotencyStore, KeyRecord, KeyRef, KeyState};
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{MessageStatus, Role};

/// How long a repeat waits for the first request to store its user message (validation, images,
/// one write) before it answers 409: the first request then either failed or is still preparing.
const PREPARE_WAIT: Duration = Duration::from_secs(30);
/// How long a repeat asking for JSON waits for the answer to end (the answer's budget and margin).
const ANSWER_WAIT: Duration = Duration::from_secs(140);

/// A request's key as its route's guard claimed it.
#[derive(Clone)]
pub struct Idempotent {
    pub store: IdempotencyStore,
    pub key: KeyRef,
    pub claim: Claim,
}

/// An answer in the form asked for.
pub enum Answer {
    Stream(ChatStream),
    Whole(CompletionResponse),
}

impl ChatService {
    /// Follows the key's answer, waiting for the first request to begin it; or, when the first
    /// attempt found no provider, answers its stored user message (`retry` is the regenerate of
    /// it; `fresh_prompt`: a completion, whose user message must still be the last one).
    pub(super) async fn repeat(
        &self,
        user: &AuthUser,
        k: &Idempotent,
        mut record: KeyRecord,
        stream: bool,
        retry: RegenerateInput,
        fresh_prompt: bool,
    ) -> Result<Answer, ChatError> {
        let started = Instant::now();
        loop {
            if let (Some(conversation), Some(message)) = (record.conversation_id, record.message_id) {
                return self.replay(user, conversation, message, stream).await;
            }
            if record.state == KeyState::Failed && k.store.retake(&k.key).await? {
                let owner_key = Idempotent { claim: Claim::Owner, ..k.clone() };
                let restore = |e: ChatError| async {
                    if let (Some(c), Some(m)) = (record.conversation_id, record.user_message_id)
                        && let Err(f) = k.store.failed(&k.key, c, m).await
                    {
                        tracing::error!(cause = %baatcheet_shared::error::error_chain(&f), "restoring a failed key");
                    }
                    e
                };
                let input = RegenerateInput {
                    conversation_id: record.conversation_id.unwrap_or(retry.conversation_id),
                    ..retry
                };
                let prepared = match self.prepare_regenerate(user, input).await {
                    Ok(p)
                        if fresh_prompt
                            && (p.replaces.is_some() || Some(p.user_message_id) != record.user_message_id) =>
                    {
                        // The conversation moved on since: the message of this key is no longer the one to answer.
                        return Err(restore(ChatError::KeyMovedOn).await);
                    }
                    Ok(p) => p,
                    Err(e) => return Err(restore(e).await),
                };
                return self.answer(user, prepared, stream, Some(&owner_key)).await;
            }
            if record.state == KeyState::Done {
                return Err(ChatError::KeyGone);
            }
            if started.elapsed() > PREPARE_WAIT {
                return Err(ChatError::KeyPreparing);
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            record = k.store.get(&k.key).await?.ok_or(ChatError::KeyGone)?;
        }
    }

    /// The answer `message`, followed as events or, whole, once it ended.
    async fn replay(
        &self,
        user: &AuthUser,
        conversation: ConversationId,
        message: MessageId,
        stream: bool,
    ) -> Result<Answer, ChatError> {
        if stream {
            return self.follow(user, message, None).await.map(Answer::Stream);
        }
        let started = Instant::now();
        loop {
            let (m, _) = match self.store.message(owner(user), conversation, message).await {
                Ok(found) => found,
                // Removed: its attempt found no provider (and a repeat may answer it next).
                Err(StoreError::NotFound) => return Err(ChatError::KeyGone),
                Err(e) => return Err(e.into()),
            };
            match m.status {
                MessageStatus::Complete => {
                    return Ok(Answer::Whole(CompletionResponse {
                        conversation_id: conversation,
                        message: AnswerMessage { id: m.id, role: Role::Assistant, content: m.content },
                        model: m.model.unwrap_or_default(),
                        provider: m.provider.unwrap_or_default(),
                        usage: m.usage.unwrap_or_default(),
                    }));
                }
                MessageStatus::Streaming if started.elapsed() < ANSWER_WAIT => {
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                MessageStatus::Streaming => return Err(ChatError::Running(m.id)),
                MessageStatus::Incomplete | MessageStatus::Failed => {
                    return Err(ChatError::Upstream(crate::providers::client::StreamError::Dropped));
                }
            }
        }
    }
}
