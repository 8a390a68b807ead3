//! Completions and regeneration, streamed or whole: `prepare` (validation, the conversation and its
//! messages, the model, the images and their limit, the user's message stored), then here the
//! answer's item written and the upstream opened with failover until its first token -> only then
//! `200 text/event-stream` (`stream` pumps the rest), so a request no provider could serve is a
//! real 503, and the user never sees text repeated by a failover.

mod context_window;
mod prepare;
mod stream;

use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::error::error_chain;
use tracing::Instrument;

use super::idempotent::{Answer, Idempotent};
use super::{ChatError, ChatService, owner};
use crate::api::{AnswerMessage, CompletionInput, CompletionResponse, RegenerateInput, StreamStart};
use crate::providers::{Completed, wire};
use crate::store::idempotency::Claim;
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{AnswerMeta, Message, MessageStatus, Role, Usage, now_rfc3339};
use context_window::estimate_tokens;

pub(super) use prepare::Prepared;
pub use stream::{ANSWER_BUDGET, ChatStream, GenerationEnd, MAX_ANSWER_BYTES, PROGRESS_BYTES, PROGRESS_INTERVAL};

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

impl ChatService {
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
    ) -> Result<Answer, ChatError> {
        if let Some(k) = key
            && let Claim::Repeat(record) = &k.claim
        {
            let retry = RegenerateInput {
                conversation_id: record.conversation_id.unwrap_or_else(ConversationId::new),
                generation: input.generation.clone(),
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
    ) -> Result<Answer, ChatError> {
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
    ) -> Result<Answer, ChatError> {
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
            Ok::<_, ChatError>(())
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

    /// The user's message could not be answered by any provider: it is marked `failed` (kept, so a
    /// retry answers it rather than storing another), and the problem says so.
    async fn unanswered(&self, conversation: ConversationId, message: MessageId, err: ChatError) -> ChatError {
        if let Err(e) = self.store.set_status(conversation, message, MessageStatus::Failed).await {
            tracing::error!(cause = %error_chain(&e), "marking a message failed did not work");
            return err;
        }
        ChatError::Unanswered { message, cause: Box::new(err) }
    }

    async fn answer_whole(
        &self,
        user: &AuthUser,
        p: Prepared,
        start: StreamStart,
        meta: AnswerMeta,
        done: Completed,
    ) -> Result<CompletionResponse, ChatError> {
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
            Ok::<_, ChatError>(CompletionResponse {
                conversation_id: p.conversation_id,
                message: AnswerMessage { id: message.id, role: Role::Assistant, content: message.content },
                model: p.model,
                provider: done.provider,
                usage,
            })
        };
        tokio::spawn(baatcheet_shared::xray::propagate(task).instrument(tracing::Span::current()))
            .await
            .map_err(ChatError::internal)?
    }
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
}
