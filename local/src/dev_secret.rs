//! The secrets the local stack stores in its local Secrets Manager: the same JSON shapes as in
//! AWS (one secret per function that needs one, [`SECRETS`]), each value taken from the
//! environment when set there.

use serde_json::{Map, Value};
use std::path::PathBuf;

/// Secret fields that `make dev` takes from the environment in place of its defaults.
pub const FIELDS: [&str; 3] = ["CLERK_SECRET_KEY", "CLERK_WEBHOOK_SECRET", "CLERK_JWT_KEY"];

#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    #[error("PROVIDERS_FILE {path} cannot be read")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{from} is not JSON")]
    Json {
        from: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{from} must be a JSON list of providers (see docs/chat.md, Providers)")]
    NotAList { from: String },
}

/// Each template secret (logical id) and the fields it holds: a function's secret holds only what
/// that function reads. `scripts/put-secret.sh` splits a stage's file the same way.
pub const SECRETS: [(&str, &[&str]); 2] =
    [("ChatSecret", &["CLERK_SECRET_KEY", "CLERK_JWT_KEY", "providers"]), ("WebhookSecret", &["CLERK_WEBHOOK_SECRET"])];

/// One JSON object of every field, split into each secret's value (JSON text); fields no secret
/// holds are dropped.
pub fn split(all: &str) -> Result<Vec<(&'static str, String)>, serde_json::Error> {
    let all: Map<String, Value> = serde_json::from_str(all)?;
    Ok(SECRETS
        .iter()
        .map(|(secret, fields)| {
            let own: Map<String, Value> =
                all.iter().filter(|(k, _)| fields.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
            (*secret, Value::Object(own).to_string())
        })
        .collect())
}

/// String fields only (the Clerk values).
pub fn from_env(defaults: &[(&str, String)]) -> String {
    let json: Vec<(&str, Value)> = defaults.iter().map(|(k, v)| (*k, Value::String(v.clone()))).collect();
    from_env_json(&json)
}

/// Any JSON value per field (e.g. the `providers` list); `FIELDS` from the environment replace
/// their defaults as strings.
pub fn from_env_json(defaults: &[(&str, Value)]) -> String {
    let mut m = Map::new();
    for (k, v) in defaults {
        m.insert((*k).to_string(), v.clone());
    }
    for k in FIELDS {
        if let Ok(v) = std::env::var(k) {
            m.insert(k.to_string(), Value::String(v));
        }
    }
    Value::Object(m).to_string()
}

/// The chat providers for the local secret: `PROVIDERS_JSON` (the list itself), else the file
/// `PROVIDERS_FILE` names, else None. Only the shape (a JSON list) is checked here; the chat
/// function checks each entry when it reads the secret.
pub fn providers(get: impl Fn(&str) -> Option<String>) -> Result<Option<Value>, ProvidersError> {
    let (from, text) = if let Some(json) = get("PROVIDERS_JSON").filter(|v| !v.trim().is_empty()) {
        ("PROVIDERS_JSON".to_string(), json)
    } else if let Some(path) = get("PROVIDERS_FILE").filter(|v| !v.trim().is_empty()) {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ProvidersError::Read { path: path.display().to_string(), source })?;
        (format!("PROVIDERS_FILE {}", path.display()), text)
    } else {
        return Ok(None);
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|source| ProvidersError::Json { from: from.clone(), source })?;
    if !value.is_array() {
        return Err(ProvidersError::NotAList { from });
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_from_json_or_file() {
        let none = |_: &str| None;
        assert!(providers(none).unwrap().is_none());
        let list = r#"[{"name": "ollama", "base_url": "http://127.0.0.1:11434/v1", "models": [{"id": "llama3.2"}]}]"#;
        let got = providers(|k| (k == "PROVIDERS_JSON").then(|| list.to_string())).unwrap().unwrap();
        assert_eq!(got[0]["name"], "ollama");
        let path = std::env::temp_dir().join(format!("providers-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, list).unwrap();
        let p = path.display().to_string();
        assert_eq!(providers(|k| (k == "PROVIDERS_FILE").then(|| p.clone())).unwrap().unwrap(), got);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            providers(|k| (k == "PROVIDERS_JSON").then(|| "{\"name\": 1}".into())),
            Err(ProvidersError::NotAList { .. })
        ));
        assert!(matches!(providers(|k| (k == "PROVIDERS_JSON").then(|| "[".into())), Err(ProvidersError::Json { .. })));
        assert!(matches!(
            providers(|k| (k == "PROVIDERS_FILE").then(|| "/nonexistent/providers.json".into())),
            Err(ProvidersError::Read { .. })
        ));
    }

    #[test]
    fn each_secret_gets_its_own_fields_only() {
        let all = r#"{"CLERK_SECRET_KEY":"sk","CLERK_WEBHOOK_SECRET":"whsec","providers":[{"name":"p"}],"other":1}"#;
        let parts: std::collections::BTreeMap<_, Value> =
            split(all).unwrap().into_iter().map(|(k, v)| (k, serde_json::from_str(&v).unwrap())).collect();
        assert_eq!(parts["ChatSecret"], serde_json::json!({"CLERK_SECRET_KEY": "sk", "providers": [{"name": "p"}]}));
        assert_eq!(parts["WebhookSecret"], serde_json::json!({"CLERK_WEBHOOK_SECRET": "whsec"}));
    }

    #[test]
    fn json_fields_are_kept_as_json() {
        let s = from_env_json(&[("providers", serde_json::json!([{"name": "fake"}]))]);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["providers"][0]["name"], "fake");
    }
}
