//! The secret the local stack stores in its local Secrets Manager: the same JSON shape as in AWS,
//! each value taken from the environment when set there.

use serde_json::{Map, Value};

/// Secret fields that `make dev` takes from the environment in place of its defaults.
pub const FIELDS: [&str; 3] = ["CLERK_SECRET_KEY", "CLERK_WEBHOOK_SECRET", "CLERK_JWT_KEY"];

pub fn from_env(defaults: &[(&str, String)]) -> String {
    let mut m = Map::new();
    for (k, v) in defaults {
        m.insert((*k).to_string(), Value::String(v.clone()));
    }
    for k in FIELDS {
        if let Ok(v) = std::env::var(k) {
            m.insert(k.to_string(), Value::String(v));
        }
    }
    Value::Object(m).to_string()
}
