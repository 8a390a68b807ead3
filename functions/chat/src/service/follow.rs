//! Following an answer by its message id: `GET /api/v1/chat/messages/{message_id}/stream`, and the
//! repeats of an Idempotency-Key. What is stored after the client's `Last-Event-ID` is sent at
//! once, then the answer's item is polled (consistent reads, so every progressive write made
//! before is seen) until it ends. The event ids are those of the live stream (`sse::EventId`), so
//! a client may drop and resume any number of times, from any instance.

use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::request_id::RequestInfo;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::completion::{ANSWER_BUDGET, ChatStream, MAX_ANSWER_BYTES};
use super::error::stream_problem;
use super::{ChatError, ChatService, owner};
use crate::api::{StreamDone, StreamStart};
use crate::providers::client::StreamError;
use crate::sse::{ChatEvent, EventId, SseEvent};
use crate::store::ids::{ConversationId, MessageId};
use crate::store::model::{AnswerMeta, Message, MessageStatus, Role};
use crate::store::{ConversationStore, StoreError};

/// Between two reads of an answer still being written.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// An answer still `streaming` this long after it began was abandoned (its instance died): the
/// answer's budget, the first-token wait before it, and a margin.
const ABANDONED_AFTER: Duration = Duration::from_secs(ANSWER_BUDGET.as_secs() + 40);

/// The `conversation` event of an answer, rebuilt from its item.
fn start_of(conversation_id: ConversationId, message: &Message, meta: &AnswerMeta) -> StreamStart {
    StreamStart {
        conversation_id,
        user_message_id: meta.user_message_id,
        message_id: message.id,
        title: meta.title.clone(),
        created: meta.created,
        replaces: meta.replaces,
    }
}

/// A `streaming` answer whose instance stopped writing it long ago.
pub(super) fn abandoned(message: &Message) -> bool {
    OffsetDateTime::parse(&message.created_at, &Rfc3339)
        .map(|at| OffsetDateTime::now_utc() - at > ABANDONED_AFTER)
        .unwrap_or(false)
}

impl ChatService {
    /// The stream of answer `message` of this user's (404 for anyone else's), after `last`.
    pub async fn follow(
        &self,
        user: &AuthUser,
        message: MessageId,
        last: Option<EventId>,
    ) -> Result<ChatStream, ChatError> {
        let map = |e: StoreError| match e {
            StoreError::NotFound => ChatError::MessageNotFound,
            e => ChatError::Store(e),
        };
        let conversation = self.store.message_conversation(owner(user), message).await.map_err(map)?;
        let (current, meta) = self.store.message(owner(user), conversation, message).await.map_err(map)?;
        let Some(meta) = meta.filter(|_| current.role == Role::Assistant) else {
            return Err(ChatError::MessageNotFound);
        };
        if let Some(EventId::At(n)) = last
            && (n > MAX_ANSWER_BYTES || (n <= current.content.len() && !current.content.is_char_boundary(n)))
        {
            return Err(ChatError::BadLastEventId);
        }
        let start = start_of(conversation, &current, &meta);
        let (tx, rx) = mpsc::channel(16);
        let follower = Follower {
            store: self.store.clone(),
            user_id: owner(user).to_string(),
            conversation,
            start: start.clone(),
            finish_reason: meta.finish_reason,
            request: RequestInfo::current(),
        };
        let follow = baatcheet_shared::xray::propagate(follower.run(current, last, tx));
        tokio::spawn(follow.instrument(tracing::Span::current()));
        Ok(ChatStream { start, events: rx, generated: None })
    }
}

struct Follower {
    store: ConversationStore,
    user_id: String,
    conversation: ConversationId,
    start: StreamStart,
    finish_reason: Option<String>,
    request: Option<RequestInfo>,
}

impl Follower {
    fn problem(&self, err: ChatError) -> ChatEvent {
        ChatEvent::Error(Box::new(stream_problem(err, self.request.as_ref())))
    }

    async fn run(self, mut current: Message, last: Option<EventId>, tx: mpsc::Sender<SseEvent>) {
        let send = |id, ev| {
            let tx = tx.clone();
            async move { tx.send(SseEvent::new(id, ev)).await.is_ok() }
        };
        let mut finish_reason = self.finish_reason.clone();
        let mut offset = match last {
            None => {
                if !send(EventId::At(0), ChatEvent::Conversation(self.start.clone())).await {
                    return;
                }
                0
            }
            Some(EventId::At(n)) => n,
            // The client saw the end: only the end again.
            Some(EventId::End) => usize::MAX,
        };
        loop {
            let text = &current.content;
            if offset < text.len() {
                let Some(rest) = text.get(offset..) else {
                    let _ = send(EventId::End, self.problem(ChatError::BadLastEventId)).await;
                    return;
                };
                if !send(EventId::At(text.len()), ChatEvent::Delta(rest.to_string())).await {
                    return;
                }
                offset = text.len();
            }
            let end = match current.status {
                MessageStatus::Streaming if abandoned(&current) => {
                    Some(self.problem(ChatError::Upstream(StreamError::Dropped)))
                }
                MessageStatus::Streaming => None,
                MessageStatus::Complete => Some(ChatEvent::Done(StreamDone {
                    message_id: current.id,
                    model: current.model.clone().unwrap_or_default(),
                    provider: current.provider.clone().unwrap_or_default(),
                    usage: current.usage.unwrap_or_default(),
                    finish_reason: finish_reason.clone(),
                })),
                MessageStatus::Incomplete | MessageStatus::Failed => {
                    Some(self.problem(ChatError::Upstream(StreamError::Dropped)))
                }
            };
            if let Some(ev) = end {
                let _ = send(EventId::End, ev).await;
                return;
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
            }
            match self.store.message(&self.user_id, self.conversation, current.id).await {
                Ok((m, meta)) => {
                    finish_reason = meta.and_then(|m| m.finish_reason);
                    current = m;
                }
                // Removed: no provider could answer (the request that began it got the problem).
                Err(StoreError::NotFound) => {
                    let _ = send(EventId::End, self.problem(ChatError::NoProviderAnswered)).await;
                    return;
                }
                Err(e) => {
                    let _ = send(EventId::End, self.problem(ChatError::Store(e))).await;
                    return;
                }
            }
        }
    }
}
