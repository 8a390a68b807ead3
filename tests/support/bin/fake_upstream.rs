//! `fake-upstream`: the fake OpenAI-compatible provider as a process, for running the API offline
//! (`make dev` points the dev secret's `providers` at it). It echoes the last user message, streamed
//! word by word, and transcribes any audio to a fixed text.
//!
//! `FAKE_UPSTREAM_PORT` (default 5003), `FAKE_UPSTREAM_TOKEN_DELAY_MS` (default 40).

use baatcheet_tests::fake_upstream::{Behavior, FakeUpstream};
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("FAKE_UPSTREAM_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(5003);
    let delay: u64 = std::env::var("FAKE_UPSTREAM_TOKEN_DELAY_MS").ok().and_then(|d| d.parse().ok()).unwrap_or(40);
    let fake = FakeUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await;
    fake.set_default(Behavior::ok().echo().token_delay(Duration::from_millis(delay)));
    let providers = serde_json::json!([fake.provider(
        "fake",
        &["fake-key"],
        serde_json::json!([
            {"id": "fake-chat", "context_length": 32768, "vision": true},
            {"id": "fake-whisper", "chat": false, "audio": true}
        ])
    )]);
    println!("fake upstream: {}", fake.base_url());
    println!("providers secret field: {providers}");
    let _ = tokio::signal::ctrl_c().await;
}
