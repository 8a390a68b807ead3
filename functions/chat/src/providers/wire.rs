//! The OpenAI-compatible wire format: what goes to `/chat/completions` and what comes back, as
//! whole responses and as streamed chunks. Only the fields BaatCheet uses are modelled; everything
//! else an upstream adds is ignored.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireMessage {
    pub role: WireRole,
    pub content: WireContent,
}

impl WireMessage {
    pub fn text(role: WireRole, text: impl Into<String>) -> Self {
        Self { role, content: WireContent::Text(text.into()) }
    }

    /// Text length in bytes (images are not counted here).
    pub fn text_len(&self) -> usize {
        match &self.content {
            WireContent::Text(t) => t.len(),
            WireContent::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    ContentPart::ImageUrl { .. } => 0,
                })
                .sum(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum WireContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

/// The body of `POST {base}/chat/completions`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletionRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [WireMessage],
    pub temperature: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

#[derive(Debug, Deserialize)]
pub struct ChatCompletionResponse {
    #[serde(default)]
    pub choices: Vec<ResponseChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseChoice {
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
}

/// One streamed chunk (`data: {...}`).
#[derive(Debug, Deserialize)]
pub struct ChatCompletionChunk {
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Groq reports streamed usage here.
    #[serde(default)]
    pub x_groq: Option<GroqExtra>,
    /// Some upstreams report a failure inside the stream.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct GroqExtra {
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub delta: Option<ChunkDelta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkDelta {
    #[serde(default)]
    pub content: Option<String>,
}

/// `verbose_json` transcription; plain `json` has `text` only.
#[derive(Debug, Deserialize)]
pub struct TranscriptionResponse {
    pub text: String,
    #[serde(default)]
    pub language: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_serialises_as_openai_expects() {
        let messages = vec![
            WireMessage::text(WireRole::System, "be brief"),
            WireMessage {
                role: WireRole::User,
                content: WireContent::Parts(vec![
                    ContentPart::Text { text: "what is this?".into() },
                    ContentPart::ImageUrl { image_url: ImageUrl { url: "https://img.example/a.png".into() } },
                ]),
            },
        ];
        let req = ChatCompletionRequest {
            model: "m",
            messages: &messages,
            temperature: 0.0,
            max_tokens: None,
            stream: true,
            stream_options: Some(StreamOptions { include_usage: true }),
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["temperature"], 0.0);
        assert!(v.get("max_tokens").is_none());
        assert_eq!(v["messages"][0], serde_json::json!({"role": "system", "content": "be brief"}));
        assert_eq!(v["messages"][1]["content"][1]["type"], "image_url");
        assert_eq!(v["messages"][1]["content"][1]["image_url"]["url"], "https://img.example/a.png");
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn chunks_parse_leniently() {
        let c: ChatCompletionChunk = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(c.choices[0].delta.as_ref().unwrap().content.is_none());
        let c: ChatCompletionChunk = serde_json::from_str(
            r#"{"choices":[],"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}"#,
        )
        .unwrap();
        assert_eq!(c.x_groq.unwrap().usage.unwrap().total_tokens, 7);
    }
}
