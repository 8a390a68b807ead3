//! `fake-upstream`: the fake OpenAI-compatible provider as a process, for running the API offline
//! (`make dev` starts it and puts its `providers` entry into the dev secret). It echoes the last user
//! message, streamed word by word with a per-token delay like a real model's, and transcribes any
//! audio to a fixed text.
//!
//! `FAKE_UPSTREAM_PORT` (default 5003), `FAKE_UPSTREAM_TOKEN_DELAY_MS` (default 40: about 25 tokens
//! a second), `FAKE_UPSTREAM_FIRST_TOKEN_MS` (default 250: time to the first token),
//! `FAKE_UPSTREAM_CHUNKS` (when set: answer with exactly that many chunks, `tok0 tok1 ...`, instead of
//! the echo, so every answer of a load test costs the same), `FAKE_UPSTREAM_PROVIDERS_FILE` (write
//! the `providers` list there, for `PROVIDERS_FILE`).

use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use std::net::SocketAddr;
use std::time::Duration;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = env_num("FAKE_UPSTREAM_PORT", 5003) as u16;
    let delay = Duration::from_millis(env_num("FAKE_UPSTREAM_TOKEN_DELAY_MS", 40));
    let first = Duration::from_millis(env_num("FAKE_UPSTREAM_FIRST_TOKEN_MS", 250));
    let fake = FakeUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let answer = match std::env::var("FAKE_UPSTREAM_CHUNKS").ok().and_then(|n| n.parse().ok()) {
        Some(n) => Behavior::ok().chunks(n),
        None => Behavior::ok().echo(),
    };
    fake.set_default(answer.first_delay(first).token_delay(delay));
    let providers = serde_json::json!([fake.provider(
        "fake",
        &["fake-key"],
        serde_json::json!([
            {"id": "fake-chat", "context_length": 32768, "vision": true},
            {"id": "fake-whisper", "chat": false, "audio": true}
        ])
    )]);
    if let Ok(path) = std::env::var("FAKE_UPSTREAM_PROVIDERS_FILE") {
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, providers.to_string())?;
        std::fs::rename(&tmp, &path)?;
    }
    println!("fake upstream: {}", fake.base_url());
    println!("providers secret field: {providers}");
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
