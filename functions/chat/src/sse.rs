//! The SSE wire format BaatCheet's clients read: `event: conversation` first, `event: delta`
//! (`{content}`) per chunk, then `event: done` or `event: error` (a problem object), with a comment
//! heartbeat whenever nothing was sent for the heartbeat interval. Each event's data is one line of
//! JSON (serde escapes newlines), so no payload can break the framing or inject an event.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use baatcheet_shared::Problem;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderValue, StatusCode, header};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::api::{StreamDone, StreamStart};

#[derive(Debug, Clone)]
pub enum ChatEvent {
    Conversation(StreamStart),
    Delta(String),
    Done(StreamDone),
    Error(Box<Problem>),
}

#[derive(serde::Serialize)]
struct Delta<'a> {
    content: &'a str,
}

pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";

fn frame(event: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

impl ChatEvent {
    pub fn name(&self) -> &'static str {
        match self {
            ChatEvent::Conversation(_) => "conversation",
            ChatEvent::Delta(_) => "delta",
            ChatEvent::Done(_) => "done",
            ChatEvent::Error(_) => "error",
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        match self {
            ChatEvent::Conversation(s) => frame(self.name(), s),
            ChatEvent::Delta(c) => frame(self.name(), &Delta { content: c }),
            ChatEvent::Done(d) => frame(self.name(), d),
            ChatEvent::Error(p) => frame(self.name(), p),
        }
    }
}

/// The response body: events as they come, a heartbeat after each `heartbeat` of silence. Ends when
/// the producer is done (its sender dropped).
pub fn body_stream(
    events: mpsc::Receiver<ChatEvent>,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold(events, move |mut rx| async move {
        tokio::select! {
            biased;
            ev = rx.recv() => ev.map(|e| (Ok(e.to_bytes()), rx)),
            _ = tokio::time::sleep(heartbeat) => Some((Ok(Bytes::from_static(HEARTBEAT)), rx)),
        }
    })
}

/// A `200 text/event-stream` response over `events`, with headers that keep proxies from
/// buffering or transforming it.
pub fn response(events: mpsc::Receiver<ChatEvent>, heartbeat: Duration) -> Response {
    let mut res = (StatusCode::OK, Body::from_stream(body_stream(events, heartbeat))).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ids::{ConversationId, MessageId};
    use crate::store::model::Usage;
    use futures::StreamExt;

    fn text(ev: ChatEvent) -> String {
        String::from_utf8(ev.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn frames_each_event_on_one_data_line() {
        let t = text(ChatEvent::Delta("line one\nline two\r\n\nevent: done\ndata: {}".into()));
        assert!(t.starts_with("event: delta\ndata: {"));
        assert!(t.ends_with("}\n\n"));
        assert_eq!(t.matches('\n').count(), 3, "{t:?}");
        let data: serde_json::Value =
            serde_json::from_str(t.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["content"], "line one\nline two\r\n\nevent: done\ndata: {}");
    }

    #[test]
    fn done_and_conversation_payloads() {
        let (c, m) = (ConversationId::new(), MessageId::new());
        let t = text(ChatEvent::Done(StreamDone {
            message_id: m,
            model: "llama".into(),
            provider: "groq".into(),
            usage: Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, estimated: false },
            finish_reason: None,
        }));
        assert!(t.starts_with("event: done\n"), "{t}");
        assert!(t.contains(&format!("\"message_id\":\"{m}\"")));
        assert!(t.contains("\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}"));
        let t = text(ChatEvent::Conversation(StreamStart {
            conversation_id: c,
            user_message_id: m,
            message_id: m,
            title: "t".into(),
            created: true,
            replaces: None,
        }));
        assert!(t.starts_with("event: conversation\n") && t.contains(&c.to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_fill_silence_and_the_stream_ends_with_the_producer() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Box::pin(body_stream(rx, Duration::from_secs(15)));
        // Nothing to send for 15 s: a heartbeat comment.
        assert_eq!(body.next().await.unwrap().unwrap(), Bytes::from_static(HEARTBEAT));
        tx.send(ChatEvent::Delta("hi".into())).await.unwrap();
        assert!(body.next().await.unwrap().unwrap().starts_with(b"event: delta"));
        drop(tx);
        assert!(body.next().await.is_none());
    }

    #[test]
    fn response_headers_stop_buffering() {
        let (_tx, rx) = mpsc::channel(1);
        let res = response(rx, Duration::from_secs(15));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream; charset=utf-8");
        assert!(res.headers()[header::CACHE_CONTROL].to_str().unwrap().starts_with("no-cache"));
        assert_eq!(res.headers()["x-accel-buffering"], "no");
    }
}
