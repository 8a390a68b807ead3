//! A completion's stream, once the upstream produced its first token: a spawned task forwards
//! chunks as they arrive, writes the growing answer now and then, and stores it when it ends
//! (complete, or partial and `incomplete` when the upstream fails or the client goes away), telling
//! whoever holds the generation's open-stream place before the last event goes out.

use baatcheet_shared::auth::AuthUser;
use baatcheet_shared::error::error_chain;
use baatcheet_shared::request_id::RequestInfo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::prepare::Prepared;
use super::{answer_message, usage_or_estimate};
use crate::api::{StreamDone, StreamStart};
use crate::providers::client::{StreamError, StreamEvent};
use crate::providers::{Opened, Providers};
use crate::service::error::stream_problem;
use crate::service::{ChatError, ChatService, owner};
use crate::sse::{ChatEvent, EventId, SseEvent};
use crate::store::ConversationStore;
use crate::store::model::{AnswerMeta, MessageStatus};

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
        tokio::spawn(baatcheet_shared::xray::propagate(async move {
            let ack = self.0.await;
            release.await;
            if let Ok(ack) = ack {
                let _ = ack.send(());
            }
        }));
    }
}

impl ChatService {
    /// Starts the task that relays the opened upstream to the client and stores the answer.
    pub(super) fn start_stream(
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
        // for the rest with the stream route. Its calls stay in this invocation's trace.
        tokio::spawn(baatcheet_shared::xray::propagate(pump.run(opened, tx)).instrument(tracing::Span::current()));
        ChatStream { start, events: rx, generated: Some(GenerationEnd(generated)) }
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
                ChatEvent::Error(Box::new(stream_problem(ChatError::Upstream(e), self.request.as_ref())))
            }
            None => match stored {
                Ok(()) => ChatEvent::Done(StreamDone {
                    message_id: message.id,
                    model: self.model.clone(),
                    provider,
                    usage,
                    finish_reason,
                }),
                Err(e) => ChatEvent::Error(Box::new(stream_problem(ChatError::Store(e), self.request.as_ref()))),
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
    fn stream_problems_carry_the_request() {
        let info = RequestInfo { id: "req-12345678".into(), path: "/api/v1/chat/completions".into() };
        let p = stream_problem(ChatError::Upstream(StreamError::Dropped), Some(&info));
        assert_eq!(p.status, 502);
        assert_eq!(p.request_id.as_deref(), Some("req-12345678"));
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("Dropped") && !text.contains("ended before"), "{text}");
    }
}
