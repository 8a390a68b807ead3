//! HTTP client for one OpenAI-compatible upstream call: `/chat/completions` streamed (SSE chunks
//! ending in `[DONE]`) or whole, and `/audio/transcriptions` (multipart). One call = one attempt
//! with one key; retries and failover are the caller's (see `failover`). Keys go in the
//! `Authorization` header only and never into errors or logs; upstream error bodies are not kept.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use baatcheet_shared::xray::{Namespace, Subsegment};

use super::sse::{SseDecoder, SseError};
use super::wire::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, TranscriptionResponse, Usage};

/// Largest single SSE event accepted from an upstream.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Largest whole (non-streamed) response body accepted.
const MAX_BODY_BYTES: usize = 4 << 20;

/// Why one attempt failed. Classified by `failover::decide`.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("could not connect to the upstream")]
    Connect(#[source] reqwest::Error),
    #[error("no first token within the timeout")]
    FirstTokenTimeout,
    #[error("the upstream did not answer within the timeout")]
    Timeout,
    #[error("the upstream answered HTTP {status}")]
    Status { status: u16, retry_after: Option<Duration> },
    #[error("transport to the upstream failed")]
    Transport(#[source] reqwest::Error),
    #[error("the upstream's answer is invalid: {0}")]
    Protocol(String),
    #[error("the upstream stream failed")]
    Stream(#[source] StreamError),
}

/// A failure while reading an already started stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("reading the stream failed")]
    Transport(#[source] reqwest::Error),
    #[error("the stream ended before the answer was complete")]
    Dropped,
    #[error("the stream is malformed: {0}")]
    Protocol(String),
    #[error("the upstream reported an error inside the stream")]
    Upstream,
    #[error("no chunk within the idle timeout")]
    Idle,
}

impl From<SseError> for StreamError {
    fn from(e: SseError) -> Self {
        StreamError::Protocol(e.to_string())
    }
}

/// What a streamed answer yields.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    Usage(Usage),
    Finish(String),
}

/// Where one attempt goes.
pub struct Target<'a> {
    /// The provider's configured name (the attempt's X-Ray subsegment is named after it).
    pub provider: &'a str,
    pub base_url: &'a str,
    pub key: Option<&'a SecretString>,
}

/// An audio file already checked by the caller (type detected from its bytes, size bounded).
#[derive(Debug, Clone)]
pub struct AudioFile {
    pub bytes: Bytes,
    /// A server-chosen name such as `audio.mp3` (upstreams infer the format from the extension).
    pub file_name: String,
    pub content_type: String,
}

#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The chunks of one streamed answer, decoded.
pub struct ChunkStream {
    body: ByteStream,
    decoder: SseDecoder,
    pending: VecDeque<StreamEvent>,
    finished: bool,
    saw_finish_reason: bool,
    /// The attempt's subsegment, ended with the stream (its whole length is the call's).
    trace: Option<Subsegment>,
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        // Given up before its end (a first-token timeout, a broken stream): a failed call.
        if !self.finished
            && let Some(s) = self.trace.as_mut()
        {
            s.failed();
        }
    }
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream").field("finished", &self.finished).finish_non_exhaustive()
    }
}

impl ChunkStream {
    /// The next event; `None` once the upstream sent `[DONE]` (or closed after a finish reason).
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, StreamError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(Some(ev));
            }
            if self.finished {
                return Ok(None);
            }
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    for data in self.decoder.push(&bytes)? {
                        self.on_data(&data)?;
                        if self.finished {
                            break;
                        }
                    }
                }
                Some(Err(e)) => return Err(StreamError::Transport(e)),
                None => {
                    self.decoder.finish();
                    if self.saw_finish_reason {
                        self.finished = true;
                    } else {
                        return Err(StreamError::Dropped);
                    }
                }
            }
        }
    }

    fn on_data(&mut self, data: &str) -> Result<(), StreamError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.finished = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: ChatCompletionChunk =
            serde_json::from_str(data).map_err(|e| StreamError::Protocol(format!("chunk is not JSON: {e}")))?;
        if chunk.error.is_some() {
            return Err(StreamError::Upstream);
        }
        for choice in chunk.choices.iter().take(1) {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_ref()).filter(|t| !t.is_empty()) {
                self.pending.push_back(StreamEvent::Delta(text.clone()));
            }
            if let Some(reason) = &choice.finish_reason {
                self.saw_finish_reason = true;
                self.pending.push_back(StreamEvent::Finish(reason.clone()));
            }
        }
        if let Some(u) = chunk.usage.or_else(|| chunk.x_groq.and_then(|x| x.usage)) {
            self.pending.push_back(StreamEvent::Usage(u));
        }
        Ok(())
    }
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub content: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

fn failed(trace: &mut Option<Subsegment>) {
    if let Some(s) = trace.as_mut() {
        s.failed();
    }
}

fn classify_send_error(e: reqwest::Error) -> AttemptError {
    if e.is_connect() {
        AttemptError::Connect(e)
    } else if e.is_timeout() {
        AttemptError::Timeout
    } else {
        AttemptError::Transport(e)
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &fmt).ok()?.assume_utc();
    let at: SystemTime = at.into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = baatcheet_shared::tls::client_builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            // An upstream never legitimately redirects an API call; following one could leak the key.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("baatcheet-chat/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    fn post(&self, target: &Target<'_>, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.post(format!("{}{path}", target.base_url));
        if let Some(key) = target.key {
            req = req.bearer_auth(key.expose_secret());
        }
        req
    }

    /// Sends one attempt, timed as an X-Ray subsegment named after the provider (its operation,
    /// status and outcome; never the URL, the key or the request), which the caller keeps until
    /// the answer is read; a success status or the attempt's error.
    async fn send(
        target: &Target<'_>,
        operation: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, Option<Subsegment>), AttemptError> {
        let mut trace = Subsegment::start(target.provider.to_owned(), Namespace::Remote, operation);
        let res = req.send().await.map_err(classify_send_error)?;
        if let Some(s) = trace.as_mut() {
            s.status(res.status().as_u16());
        }
        Ok((Self::check_status(res).await?, trace))
    }

    async fn check_status(res: reqwest::Response) -> Result<reqwest::Response, AttemptError> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        Err(AttemptError::Status { status: status.as_u16(), retry_after })
    }

    /// Sends a streamed chat request; returns once the upstream answered with a success status.
    pub async fn start_stream(
        &self,
        target: &Target<'_>,
        req: &ChatCompletionRequest<'_>,
    ) -> Result<ChunkStream, AttemptError> {
        let post =
            self.post(target, "/chat/completions").header(reqwest::header::ACCEPT, "text/event-stream").json(req);
        let (res, trace) = Self::send(target, "chat.completions.stream", post).await?;
        Ok(ChunkStream {
            body: Box::pin(res.bytes_stream()),
            decoder: SseDecoder::new(MAX_EVENT_BYTES),
            pending: VecDeque::new(),
            finished: false,
            saw_finish_reason: false,
            trace,
        })
    }

    async fn read_bounded(res: reqwest::Response) -> Result<Vec<u8>, AttemptError> {
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(classify_send_error)?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(AttemptError::Protocol(format!("response exceeds {MAX_BODY_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A whole (non-streamed) chat answer.
    pub async fn complete(&self, target: &Target<'_>, req: &ChatCompletionRequest<'_>) -> Result<Answer, AttemptError> {
        let post = self.post(target, "/chat/completions").json(req);
        let (res, mut trace) = Self::send(target, "chat.completions", post).await?;
        let body = Self::read_bounded(res).await.inspect_err(|_| failed(&mut trace))?;
        let parsed: ChatCompletionResponse =
            serde_json::from_slice(&body).map_err(|e| AttemptError::Protocol(format!("response is not JSON: {e}")))?;
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| AttemptError::Protocol("response has no choices".into()))?;
        Ok(Answer {
            content: choice.message.content.unwrap_or_default(),
            usage: parsed.usage,
            finish_reason: choice.finish_reason,
        })
    }

    /// `POST {base}/audio/transcriptions` as multipart, asking for `verbose_json` (for `language`).
    pub async fn transcribe(
        &self,
        target: &Target<'_>,
        model: &str,
        audio: &AudioFile,
        language: Option<&str>,
    ) -> Result<TranscriptionResponse, AttemptError> {
        let part = reqwest::multipart::Part::stream_with_length(audio.bytes.clone(), audio.bytes.len() as u64)
            .file_name(audio.file_name.clone())
            .mime_str(&audio.content_type)
            .map_err(|_| AttemptError::Protocol("invalid audio content type".into()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", model.to_string())
            .text("response_format", "verbose_json");
        if let Some(lang) = language {
            form = form.text("language", lang.to_string());
        }
        let post = self.post(target, "/audio/transcriptions").multipart(form);
        let (res, mut trace) = Self::send(target, "audio.transcriptions", post).await?;
        let body = Self::read_bounded(res).await.inspect_err(|_| failed(&mut trace))?;
        serde_json::from_slice(&body).map_err(|e| AttemptError::Protocol(format!("transcription is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        for bad in ["", "soon", "-3", "NaN", "inf"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    fn stream_of(parts: Vec<&'static str>) -> ChunkStream {
        let items: Vec<reqwest::Result<Bytes>> =
            parts.into_iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))).collect();
        ChunkStream {
            body: Box::pin(futures::stream::iter(items)),
            decoder: SseDecoder::new(MAX_EVENT_BYTES),
            pending: VecDeque::new(),
            finished: false,
            saw_finish_reason: false,
            trace: None,
        }
    }

    async fn drain(mut s: ChunkStream) -> (Vec<StreamEvent>, Option<StreamError>) {
        let mut out = Vec::new();
        loop {
            match s.next().await {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn decodes_a_complete_stream() {
        let s = stream_of(vec![
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Sal\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"aam\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
            "data: [DONE]\n\n",
        ]);
        let (events, err) = drain(s).await;
        assert!(err.is_none());
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Sal".into()),
                StreamEvent::Delta("aam".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(Usage { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }),
            ]
        );
    }

    #[tokio::test]
    async fn eof_without_done_or_finish_is_a_drop() {
        let (events, err) = drain(stream_of(vec!["data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"])).await;
        assert_eq!(events, vec![StreamEvent::Delta("a".into())]);
        assert!(matches!(err, Some(StreamError::Dropped)));
        // A finish reason followed by EOF (no [DONE]) is a complete answer.
        let (_, err) = drain(stream_of(vec![
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n",
        ]))
        .await;
        assert!(err.is_none());
    }

    #[tokio::test]
    async fn garbage_and_in_stream_errors_fail() {
        let (_, err) = drain(stream_of(vec!["data: not json\n\n"])).await;
        assert!(matches!(err, Some(StreamError::Protocol(_))));
        let (_, err) = drain(stream_of(vec!["data: {\"error\":{\"message\":\"overloaded\"}}\n\n"])).await;
        assert!(matches!(err, Some(StreamError::Upstream)));
    }
}
