//! The SSE wire format BaatCheet's clients read: `event: conversation` first, `event: delta`
//! (`{content}`) per chunk, then `event: done` or `event: error` (a problem object), with a comment
//! heartbeat whenever nothing was sent for the heartbeat interval. Each event's data is one line of
//! JSON (serde escapes newlines), so no payload can break the framing or inject an event.
//!
//! Every event carries an `id:` a client sends back as `Last-Event-ID` to resume (see [`EventId`]):
//! the ids depend only on the answer's text, so a replay from the store and the live stream agree.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use baatcheet_shared::Problem;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderValue, StatusCode, header};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::api::{StreamDone, StreamStart};

#[derive(Debug, Clone)]
pub enum ChatEvent {
    Conversation(StreamStart),
    Delta(String),
    Done(StreamDone),
    Error(Box<Problem>),
}

/// `event: delta`: the next piece of the answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = StreamDelta)]
pub struct Delta<'a> {
    pub content: &'a str,
}

/// Where an event leaves the client: `0` after the `conversation` event, the answer's length in
/// UTF-8 bytes after a `delta`, `end` after `done` or `error`. Resuming after `n` sends the answer
/// from byte `n` on, so a reconnecting client gets no gap and no repeat however the text was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventId {
    At(usize),
    End,
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventId::At(n) => write!(f, "{n}"),
            EventId::End => f.write_str("end"),
        }
    }
}

impl EventId {
    /// A `Last-Event-ID` as this service writes them (at most 9 digits: answers are < 1 MB), else `None`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "end" {
            return Some(EventId::End);
        }
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().map(EventId::At)
    }
}

/// One event with its id, as the body writes it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: EventId,
    pub event: ChatEvent,
}

impl SseEvent {
    pub fn new(id: EventId, event: ChatEvent) -> Self {
        Self { id, event }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = format!("id: {}\n", self.id).into_bytes();
        out.extend_from_slice(&self.event.to_bytes());
        Bytes::from(out)
    }
}

pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// Documentation only: the schema of one event of the stream, for the `text/event-stream`
/// responses (OpenAPI 3.1 has no `itemSchema`; by the convention tools such as schemathesis
/// follow, a stream's `schema` describes each event). An event is `{event, data}`, its `data` one
/// line of JSON whose schema depends on `event`.
pub struct StreamEvent;

impl StreamEvent {
    /// Each event name with the schema of its `data`, in stream order.
    fn kinds() -> [(&'static str, String); 4] {
        [
            ("conversation", StreamStart::name().into_owned()),
            ("delta", Delta::name().into_owned()),
            ("done", StreamDone::name().into_owned()),
            ("error", baatcheet_shared::openapi::ProblemDetails::name().into_owned()),
        ]
    }
}

impl PartialSchema for StreamEvent {
    fn schema() -> RefOr<Schema> {
        let mut events = OneOfBuilder::new().description(Some(
            "One server-sent event: `conversation` first, `delta` any number of times, then `done` or `error`, \
             each with an `id`. `data` is one line of JSON (`contentSchema`); comment lines (`: keep-alive`) are heartbeats.",
        ));
        for (event, data) in Self::kinds() {
            events = events.item(
                ObjectBuilder::new()
                    .property(
                        "id",
                        ObjectBuilder::new().schema_type(Type::String).pattern(Some("^([0-9]{1,9}|end)$")).description(
                            Some("`0` (conversation), the answer's length in UTF-8 bytes so far (delta), `end` (done, error): send it back as `Last-Event-ID` to resume."),
                        ),
                    )
                    .required("id")
                    .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([event])))
                    .required("event")
                    .property(
                        "data",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .content_media_type("application/json")
                            .content_schema(Some(Ref::from_schema_name(data))),
                    )
                    .required("data"),
            );
        }
        events.into()
    }
}

impl ToSchema for StreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((StreamStart::name().into_owned(), StreamStart::schema()));
        StreamStart::schemas(schemas);
        schemas.push((Delta::name().into_owned(), Delta::schema()));
        schemas.push((StreamDone::name().into_owned(), StreamDone::schema()));
        StreamDone::schemas(schemas);
        // ProblemDetails is one of the shared components every document has.
    }
}

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
    events: mpsc::Receiver<SseEvent>,
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
pub fn response(events: mpsc::Receiver<SseEvent>, heartbeat: Duration) -> Response {
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

    /// Every event the stream sends is one `StreamEvent` documents: its name, and a `data` with
    /// every required field of the documented schema and no field the schema lacks.
    #[test]
    fn the_documented_events_are_the_events_sent() {
        let (c, m) = (ConversationId::new(), MessageId::new());
        let usage = Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, estimated: true };
        let sent = [
            ChatEvent::Conversation(StreamStart {
                conversation_id: c,
                user_message_id: m,
                message_id: m,
                title: "t".into(),
                created: false,
                replaces: Some(m),
            }),
            ChatEvent::Delta("hi".into()),
            ChatEvent::Done(StreamDone {
                message_id: m,
                model: "m".into(),
                provider: "p".into(),
                usage,
                finish_reason: Some("stop".into()),
            }),
            ChatEvent::Error(Box::new(baatcheet_shared::ApiError::BadGateway("x".into()).problem())),
        ];
        let schemas: std::collections::BTreeMap<String, serde_json::Value> = {
            let mut all = vec![(
                baatcheet_shared::openapi::ProblemDetails::name().into_owned(),
                baatcheet_shared::openapi::ProblemDetails::schema(),
            )];
            StreamEvent::schemas(&mut all);
            all.into_iter().map(|(n, s)| (n, serde_json::to_value(s).unwrap())).collect()
        };
        let kinds = StreamEvent::kinds();
        assert_eq!(kinds.len(), sent.len());
        for ev in sent {
            let t = text(ev);
            let mut lines = t.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data: serde_json::Value =
                serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
            let (_, schema_name) = kinds.iter().find(|(e, _)| *e == name).unwrap_or_else(|| panic!("{name}"));
            let schema = &schemas[schema_name];
            let props = schema["properties"].as_object().unwrap();
            for key in data.as_object().unwrap().keys() {
                assert!(props.contains_key(key), "{name}: {key} is not in {schema_name}");
            }
            for req in schema["required"].as_array().into_iter().flatten() {
                assert!(data.get(req.as_str().unwrap()).is_some(), "{name}: required {req} not sent");
            }
        }
        let doc = serde_json::to_value(StreamEvent::schema()).unwrap();
        assert_eq!(doc["oneOf"].as_array().unwrap().len(), kinds.len());
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_fill_silence_and_the_stream_ends_with_the_producer() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Box::pin(body_stream(rx, Duration::from_secs(15)));
        // Nothing to send for 15 s: a heartbeat comment.
        assert_eq!(body.next().await.unwrap().unwrap(), Bytes::from_static(HEARTBEAT));
        tx.send(SseEvent::new(EventId::At(2), ChatEvent::Delta("hi".into()))).await.unwrap();
        assert!(body.next().await.unwrap().unwrap().starts_with(b"id: 2\nevent: delta"));
        drop(tx);
        assert!(body.next().await.is_none());
    }

    #[test]
    fn event_ids_parse_as_written() {
        for id in [EventId::At(0), EventId::At(17), EventId::At(999_999_999), EventId::End] {
            assert_eq!(EventId::parse(&id.to_string()), Some(id));
        }
        for bad in ["", "-1", "1e3", " 5", "5 ", "0x10", "1234567890", "END", "١٢"] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
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
