//! Chat test harness: the chat function's real router (`chat::router_with`: the shared request
//! path, Clerk authentication, per-route limits, validated extractors) on its own test stack
//! (tables + secret with a `providers` list pointing at fake upstreams), served over real HTTP.
//! Callers are real users with real session tokens (RSA-signed, verified through the fake Clerk's
//! JWKS, resolved through the users table).

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use axum::Router;
use baatcheet_shared::AppContext;
use baatcheet_shared::auth::{AuthUser, Role, Tier};
use chat::safety::ssrf::Resolver;
use chat::{ChatConfig, ChatState};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

use crate::TestStack;
use crate::clerk::{self, JwksServer, keys};

/// A user of the service as the chat service sees them, for calls that bypass HTTP (the service's
/// own API takes the authenticated `&AuthUser`).
pub fn user(id: &str) -> AuthUser {
    AuthUser { user_id: id.into(), clerk_id: format!("user_{id}"), email: None, role: Role::User, tier: Tier::Free }
}

/// Short timeouts so failure paths finish quickly.
pub fn fast_config() -> ChatConfig {
    ChatConfig {
        connect_timeout: Duration::from_millis(500),
        first_token_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        image_fetch_timeout: Duration::from_secs(2),
        ..ChatConfig::default()
    }
}

/// A signed-in user: their Clerk id (tokens are minted for it on demand) and who the API says
/// they are.
#[derive(Debug, Clone)]
pub struct Caller {
    pub clerk_id: String,
    pub user: AuthUser,
}

impl Caller {
    /// A fresh session token (RS256, signed with the key the fake Clerk's JWKS publishes).
    pub fn token(&self) -> String {
        clerk::token(&keys()[0], &self.clerk_id)
    }

    /// BaatCheet's id of the user (the store's owner key).
    pub fn id(&self) -> &str {
        &self.user.user_id
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }
}

/// Secret fields and environment for a stack whose callers authenticate against `clerk`, with
/// limits high enough not to get in the way (tests of limits set their own).
pub async fn stack_for(providers: Value, clerk: &JwksServer, env: &[(&str, &str)]) -> TestStack {
    let mut stack = TestStack::with_secret(json!({
        "providers": providers,
        "CLERK_SECRET_KEY": clerk::SECRET_KEY,
        "CLERK_WEBHOOK_SECRET": clerk::WEBHOOK_SECRET,
    }))
    .await;
    let defaults = [
        ("CLERK_ISSUER", clerk::ISSUER),
        ("CLERK_AUTHORIZED_PARTIES", clerk::AZP),
        ("CLERK_API_URL", clerk.url.as_str()),
        ("RATE_LIMIT_GLOBAL", "100000/1h"),
        ("RATE_LIMIT_AUTH", "100000/15m"),
        ("RATE_LIMIT_CHAT_FREE", "100000/1h"),
        ("RATE_LIMIT_CHAT_PRO", "100000/1h"),
        ("RATE_LIMIT_CHAT_ENTERPRISE", "100000/1h"),
        ("RATE_LIMIT_IMAGES", "100000/1h"),
        ("RATE_LIMIT_AUDIO", "100000/1h"),
        ("RATE_LIMIT_SEARCH", "100000/1h"),
    ];
    for (k, v) in defaults.iter().chain(env) {
        stack.env.insert(k.to_string(), v.to_string());
    }
    stack
}

/// Counts DynamoDB calls (executions, by operation name) made through a client.
#[derive(Debug, Clone, Default)]
pub struct DynamoCalls(Arc<Mutex<Vec<String>>>);

impl Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "DynamoCalls"
    }

    // Once per call, after the operation's configuration (which names it) is applied.
    fn read_before_serialization(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let op = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(op);
        Ok(())
    }
}

impl DynamoCalls {
    /// The calls since the last take.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Serves `router` on an ephemeral port with TCP_NODELAY, so SSE events leave as they are written.
pub async fn serve_streaming(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
            .expect("serve");
    });
    addr
}

pub struct ChatHarness {
    pub stack: TestStack,
    pub ctx: AppContext,
    pub state: ChatState,
    /// Base URL of the served chat router.
    pub base: String,
    pub calls: DynamoCalls,
    /// The fake Clerk (JWKS for token verification, Backend API for admin changes).
    pub clerk: JwksServer,
}

impl ChatHarness {
    /// A stack whose secret lists `providers`, the chat router with `config`, served on a port.
    pub async fn new(providers: Value, config: ChatConfig) -> Self {
        Self::with(providers, config, &[], None).await
    }

    /// As [`Self::new`], with extra function environment (e.g. `RATE_LIMIT_*`) and the resolver
    /// image URLs are checked with.
    pub async fn with(
        providers: Value,
        config: ChatConfig,
        env: &[(&str, &str)],
        resolver: Option<Arc<dyn Resolver>>,
    ) -> Self {
        let clerk = JwksServer::start(&[&keys()[0]]).await;
        let stack = stack_for(providers, &clerk, env).await;
        let calls = DynamoCalls::default();
        let conf = aws_sdk_dynamodb::config::Builder::from(&stack.sdk).interceptor(calls.clone()).build();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(conf);
        let ctx = AppContext::with_clients(stack.config(), dynamo, baatcheet_shared::aws::secrets_manager(&stack.sdk));
        ctx.secrets.fetch().await.expect("secret is readable");
        let state = match resolver {
            Some(r) => ChatState::with_resolver(&ctx, config, r),
            None => ChatState::new(&ctx, config),
        }
        .expect("chat state builds");
        let base = format!("http://{}", serve_streaming(chat::router_with(state.clone(), &ctx)).await);
        Self { stack, ctx, state, base, calls, clerk }
    }

    pub fn service(&self) -> &chat::ChatService {
        &self.state.service
    }

    /// A new user, signed in once (their first token creates them in the users table, role `user`,
    /// tier `free`), and known to the fake Clerk.
    pub async fn caller(&self, name: &str) -> Caller {
        let clerk_id = format!("user_{name}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let user = self.ctx.auth.authenticate_token(&clerk::token(&keys()[0], &clerk_id)).await.expect("signs in");
        self.clerk.add_user(&clerk_id, "user", "free", clerk::now_ms() - 60_000);
        Caller { clerk_id, user }
    }

    /// Gives `who` a role and tier the way Clerk does: metadata at Clerk, then a signed
    /// `user.updated` delivered to the webhook function (which drops the cached user).
    pub async fn set_role(&self, who: &mut Caller, role: &str, tier: &str) {
        let updated = clerk::now_ms();
        self.clerk.add_user(&who.clerk_id, role, tier, updated);
        let event = clerk::user_event("user.updated", &who.clerk_id, updated, "Test", role, tier);
        let res = webhook::router(self.ctx.clone())
            .expect("the webhook starts")
            .oneshot(clerk::Delivery::new(&event).request(clerk::WEBHOOK_SECRET))
            .await
            .expect("infallible");
        assert_eq!(res.status(), 200, "webhook delivery");
        who.user = self.ctx.auth.authenticate_token(&who.token()).await.expect("signs in");
        assert_eq!((who.user.role.as_str(), who.user.tier.as_str()), (role, tier));
    }

    fn with_token(&self, req: reqwest::RequestBuilder, who: &Caller) -> reqwest::RequestBuilder {
        req.header("authorization", who.bearer())
    }

    pub fn post(&self, path: &str, who: &Caller) -> reqwest::RequestBuilder {
        self.with_token(crate::http().post(format!("{}{path}", self.base)), who)
    }

    pub fn get(&self, path: &str, who: &Caller) -> reqwest::RequestBuilder {
        self.with_token(crate::http().get(format!("{}{path}", self.base)), who)
    }

    pub fn patch(&self, path: &str, who: &Caller) -> reqwest::RequestBuilder {
        self.with_token(crate::http().patch(format!("{}{path}", self.base)), who)
    }

    pub fn delete(&self, path: &str, who: &Caller) -> reqwest::RequestBuilder {
        self.with_token(crate::http().delete(format!("{}{path}", self.base)), who)
    }
}

/// `"name";r=R;t=T` (a `RateLimit` field) -> (name, R, T).
pub fn rate_limit_field(v: &str) -> (String, u64, u64) {
    let mut parts = v.split(';');
    let name = parts.next().unwrap_or_default().trim_matches('"').to_string();
    let mut get =
        |p: &str| parts.next().and_then(|s| s.strip_prefix(p)).and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
    let r = get("r=");
    let t = get("t=");
    (name, r, t)
}

/// The response's `RateLimit-Policy` and parsed `RateLimit` fields.
pub fn rate_limit(headers: &reqwest::header::HeaderMap) -> (String, (String, u64, u64)) {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (get("ratelimit-policy"), rate_limit_field(&get("ratelimit")))
}

/// One server-sent event as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Sse {
    Event { event: String, data: Value },
    Comment(String),
}

impl Sse {
    pub fn name(&self) -> &str {
        match self {
            Sse::Event { event, .. } => event,
            Sse::Comment(_) => ":",
        }
    }
}

/// Parses a complete event-stream body (LF-framed, as the chat function writes it).
pub fn parse_sse(body: &str) -> Vec<Sse> {
    body.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            if let Some(c) = block.strip_prefix(':') {
                return Sse::Comment(c.trim().to_string());
            }
            let mut event = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            Sse::Event { event, data: serde_json::from_str(&data).unwrap_or(Value::String(data)) }
        })
        .collect()
}

/// The events (comments dropped) of a finished stream.
pub fn events(all: &[Sse]) -> Vec<(String, Value)> {
    all.iter()
        .filter_map(|e| match e {
            Sse::Event { event, data } => Some((event.clone(), data.clone())),
            Sse::Comment(_) => None,
        })
        .collect()
}

/// A provider list entry's models: one chat model `m` unless given.
pub fn chat_model(id: &str) -> Value {
    serde_json::json!([{ "id": id, "context_length": 32768 }])
}
