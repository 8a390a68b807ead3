//! The provider list from the secret's `providers` field: an ordered list of OpenAI-compatible
//! upstreams, each with its base URL, API keys and the models it serves.
//!
//! ```json
//! "providers": [
//!   { "name": "groq", "base_url": "https://api.groq.com/openai/v1", "api_keys": ["gsk_..."],
//!     "models": [
//!       { "id": "llama-3.3-70b", "upstream_id": "llama-3.3-70b-versatile", "context_length": 131072 },
//!       { "id": "whisper-large-v3", "chat": false, "audio": true } ] },
//!   { "name": "openrouter", "base_url": "https://openrouter.ai/api/v1", "api_keys": ["sk-or-..."],
//!     "models": [ { "id": "llama-3.3-70b", "upstream_id": "meta-llama/llama-3.3-70b-instruct" } ] }
//! ]
//! ```
//!
//! The public model `id` is what clients name; providers listing the same `id` serve equivalent
//! models and are failover targets for each other, in list order. `upstream_id` is the name that
//! provider expects (defaults to `id`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("provider #{index}: {reason}")]
    Provider { index: usize, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub name: String,
    pub base_url: String,
    /// Zero keys is allowed for keyless upstreams (a local Ollama).
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    pub models: Vec<ModelSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub id: String,
    #[serde(default)]
    pub upstream_id: Option<String>,
    #[serde(default = "default_context_length")]
    pub context_length: u32,
    /// Serves `/chat/completions` (false for a transcription-only model such as Whisper).
    #[serde(default = "yes")]
    pub chat: bool,
    /// Accepts image inputs.
    #[serde(default)]
    pub vision: bool,
    /// Serves `/audio/transcriptions`.
    #[serde(default)]
    pub audio: bool,
}

fn default_context_length() -> u32 {
    8_192
}

fn yes() -> bool {
    true
}

/// One configured upstream. Debug never shows keys (`SecretString` redacts itself).
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    /// Without a trailing slash; endpoints are appended (`{base_url}/chat/completions`).
    pub base_url: String,
    pub keys: Vec<SecretString>,
    pub models: Vec<Model>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub id: String,
    pub upstream_id: String,
    pub context_length: u32,
    pub chat: bool,
    pub vision: bool,
    pub audio: bool,
}

/// What a model can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ModelCapabilities)]
pub struct Capabilities {
    /// Completions (`model` of completions and regenerate).
    pub chat: bool,
    /// Images in completions (`attachments`).
    pub vision: bool,
    /// Transcription (`model` of transcribe).
    pub audio: bool,
}

/// A model as `GET /api/v1/chat/models` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// The id to pass as `model`.
    #[schema(example = "llama-3.1-8b-instant")]
    pub id: String,
    /// The primary provider (first in the list) serving it.
    #[schema(example = "groq")]
    pub provider: String,
    /// Every provider serving it, in failover order.
    pub providers: Vec<String>,
    /// Its context window, in tokens.
    #[schema(example = 131072)]
    pub context_length: u32,
    pub capabilities: Capabilities,
}

/// Which provider serves a model, and under which upstream name: one failover target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub provider: usize,
    pub upstream_model: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub providers: Vec<Provider>,
}

const MAX_NAME: usize = 64;

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

/// `http(s)://host[:port][/path]`, no userinfo, query or fragment (keys travel in a header only).
fn normalise_base_url(raw: &str) -> Option<String> {
    let url = reqwest::Url::parse(raw.trim()).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    ok.then(|| url.as_str().trim_end_matches('/').to_string())
}

impl Catalog {
    pub fn from_specs(specs: Vec<ProviderSpec>) -> Result<Self, CatalogError> {
        let mut providers: Vec<Provider> = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let err = |reason: String| CatalogError::Provider { index, reason };
            let name = spec.name.trim().to_string();
            if !valid_name(&name) {
                return Err(err("name must be 1-64 characters of [A-Za-z0-9-_.:/]".into()));
            }
            if providers.iter().any(|p| p.name == name) {
                return Err(err(format!("duplicate provider name {name}")));
            }
            let base_url = normalise_base_url(&spec.base_url)
                .ok_or_else(|| err(format!("{name}: base_url must be an http(s) URL without credentials or query")))?;
            if spec.models.is_empty() {
                return Err(err(format!("{name}: serves no models")));
            }
            let mut models: Vec<Model> = Vec::with_capacity(spec.models.len());
            for m in spec.models {
                let id = m.id.trim().to_string();
                if !valid_name(&id) || models.iter().any(|x| x.id == id) {
                    return Err(err(format!("{name}: model id '{id}' is invalid or repeated")));
                }
                let upstream_id = m.upstream_id.map(|u| u.trim().to_string()).unwrap_or_else(|| id.clone());
                if upstream_id.is_empty() || upstream_id.len() > 256 {
                    return Err(err(format!("{name}: model {id} has an invalid upstream_id")));
                }
                if m.context_length < 256 {
                    return Err(err(format!("{name}: model {id} context_length must be at least 256")));
                }
                models.push(Model {
                    id,
                    upstream_id,
                    context_length: m.context_length,
                    chat: m.chat,
                    vision: m.vision,
                    audio: m.audio,
                });
            }
            providers.push(Provider { name, base_url, keys: spec.api_keys, models });
        }
        Ok(Self { providers })
    }

    /// Every public model once, in first-appearance order, with its primary provider's figures.
    pub fn models(&self) -> Vec<ModelInfo> {
        let mut out: Vec<ModelInfo> = Vec::new();
        for p in &self.providers {
            for m in &p.models {
                match out.iter_mut().find(|i| i.id == m.id) {
                    Some(info) => info.providers.push(p.name.clone()),
                    None => out.push(ModelInfo {
                        id: m.id.clone(),
                        provider: p.name.clone(),
                        providers: vec![p.name.clone()],
                        context_length: m.context_length,
                        capabilities: Capabilities { chat: m.chat, vision: m.vision, audio: m.audio },
                    }),
                }
            }
        }
        out
    }

    /// The model as its primary provider declares it.
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.providers.iter().flat_map(|p| p.models.iter()).find(|m| m.id == id)
    }

    /// The first chat model listed: used when neither request nor conversation names one.
    pub fn default_chat_model(&self) -> Option<&Model> {
        self.providers.iter().flat_map(|p| p.models.iter()).find(|m| m.chat)
    }

    /// The first transcription model listed.
    pub fn default_audio_model(&self) -> Option<&Model> {
        self.providers.iter().flat_map(|p| p.models.iter()).find(|m| m.audio)
    }

    /// The failover targets for a public model id, in list order.
    pub fn routes(&self, model_id: &str) -> Vec<Route> {
        self.providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.models
                    .iter()
                    .find(|m| m.id == model_id)
                    .map(|m| Route { provider: i, upstream_model: m.upstream_id.clone() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse(v: serde_json::Value) -> Result<Catalog, String> {
        let specs: Vec<ProviderSpec> = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Catalog::from_specs(specs).map_err(|e| e.to_string())
    }

    fn two() -> Catalog {
        parse(serde_json::json!([
            {"name": "groq", "base_url": "https://api.groq.com/openai/v1/", "api_keys": ["k1", "k2"],
             "models": [{"id": "llama", "upstream_id": "llama-3.3-70b-versatile", "context_length": 131072},
                        {"id": "whisper", "chat": false, "audio": true}]},
            {"name": "openrouter", "base_url": "https://openrouter.ai/api/v1", "api_keys": ["k3"],
             "models": [{"id": "llama", "upstream_id": "meta-llama/llama-3.3-70b-instruct"},
                        {"id": "vision-model", "vision": true}]}
        ]))
        .unwrap()
    }

    #[test]
    fn parses_the_documented_shape() {
        let c = two();
        assert_eq!(c.providers[0].base_url, "https://api.groq.com/openai/v1");
        assert_eq!(c.providers[0].keys[1].expose_secret(), "k2");
        assert_eq!(c.model("whisper").unwrap().upstream_id, "whisper");
        assert_eq!(c.default_chat_model().unwrap().id, "llama");
        assert_eq!(c.default_audio_model().unwrap().id, "whisper");
        let routes = c.routes("llama");
        assert_eq!(routes.len(), 2);
        assert_eq!((routes[0].provider, routes[0].upstream_model.as_str()), (0, "llama-3.3-70b-versatile"));
        assert_eq!((routes[1].provider, routes[1].upstream_model.as_str()), (1, "meta-llama/llama-3.3-70b-instruct"));
        assert!(c.routes("unknown").is_empty());
    }

    #[test]
    fn lists_each_model_once_with_all_its_providers() {
        let models = two().models();
        let ids: Vec<_> = models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["llama", "whisper", "vision-model"]);
        assert_eq!(models[0].provider, "groq");
        assert_eq!(models[0].providers, ["groq", "openrouter"]);
        assert_eq!(models[0].context_length, 131072);
        assert!(models[2].capabilities.vision && !models[1].capabilities.chat && models[1].capabilities.audio);
    }

    #[test]
    fn rejects_bad_provider_entries() {
        let base = |name: &str, url: &str| serde_json::json!([{ "name": name, "base_url": url, "api_keys": ["k"], "models": [{"id": "m"}] }]);
        assert!(parse(base("ok", "http://127.0.0.1:9/v1")).is_ok());
        for (name, url) in [
            ("", "https://a.example/v1"),
            ("bad name", "https://a.example/v1"),
            ("p", "ftp://a.example"),
            ("p", "https://user:pw@a.example/v1"),
            ("p", "https://a.example/v1?key=abc"),
            ("p", "not a url"),
        ] {
            assert!(parse(base(name, url)).is_err(), "{name} {url}");
        }
        let dup = serde_json::json!([
            {"name": "a", "base_url": "https://a.example", "models": [{"id": "m"}]},
            {"name": "a", "base_url": "https://b.example", "models": [{"id": "m"}]}
        ]);
        assert!(parse(dup).is_err());
        let unknown =
            serde_json::json!([{"name": "a", "base_url": "https://a.example", "models": [{"id": "m"}], "key": "x"}]);
        assert!(parse(unknown).is_err());
        let empty = serde_json::json!([{"name": "a", "base_url": "https://a.example", "models": []}]);
        assert!(parse(empty).is_err());
    }

    #[test]
    fn parse_errors_do_not_echo_keys() {
        let specs: Result<Vec<ProviderSpec>, _> = serde_json::from_value(serde_json::json!([
            {"name": "a", "base_url": "https://a.example", "api_keys": ["sk-live-SECRET"], "models": [{"id": 5}]}
        ]));
        let msg = specs.err().unwrap().to_string();
        assert!(!msg.contains("sk-live-SECRET"), "{msg}");
        let c = two();
        assert!(!format!("{:?}", c.providers[0]).contains("k1"));
    }
}
