//! Chat test harness: the chat service on its own test stack (tables + secret with a `providers`
//! list pointing at fake upstreams), served over real HTTP by a router that mounts the chat
//! function's HTTP adapters. Until the auth extractor lands, a test-only stand-in (`TestUser`,
//! from the `x-test-user` header) supplies the caller; it exists only here, under tests/.

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use baatcheet_shared::auth::{AuthUser, Role, Tier};
use baatcheet_shared::{ApiError, AppContext, request_path};
use chat::api::{CompletionRequest, PageQuery, RegenerateRequest, RenameRequest, SearchQuery};
use chat::store::ids::ConversationId;
use chat::{ChatConfig, ChatState};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::TestStack;

pub const USER_HEADER: &str = "x-test-user";

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
        ..ChatConfig::default()
    }
}

/// Test stand-in for the auth layer's extractor: the user named by the `x-test-user` header.
pub struct TestUser(pub AuthUser);

impl<S: Send + Sync> FromRequestParts<S> for TestUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|id| TestUser(user(id)))
            .ok_or(ApiError::Unauthorized { reason: "missing", detail: "No test user.".into() })
    }
}

fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    ConversationId::parse(raw).ok_or_else(|| ApiError::NotFound("Conversation not found.".into()))
}

/// The chat routes as the issue lists them, over the chat function's HTTP adapters.
pub fn test_router(state: ChatState, ctx: &AppContext) -> Router {
    let routes = Router::new()
        .route("/api/v1/chat/models", get(chat::http::models))
        .route(
            "/api/v1/chat/completions",
            post(|State(s): State<ChatState>, TestUser(u): TestUser, Json(req): Json<CompletionRequest>| async move {
                chat::http::completions(&s, &u, req).await
            }),
        )
        .route(
            "/api/v1/chat/regenerate",
            post(|State(s): State<ChatState>, TestUser(u): TestUser, Json(req): Json<RegenerateRequest>| async move {
                chat::http::regenerate(&s, &u, req).await
            }),
        )
        .route(
            "/api/v1/conversations",
            get(|State(s): State<ChatState>, TestUser(u): TestUser, Query(q): Query<PageQuery>| async move {
                chat::http::list_conversations(&s, &u, q).await
            }),
        )
        .route(
            "/api/v1/conversations/search",
            get(|State(s): State<ChatState>, TestUser(u): TestUser, Query(q): Query<SearchQuery>| async move {
                chat::http::search(&s, &u, q).await
            }),
        )
        .route(
            "/api/v1/conversations/{id}",
            get(
                |State(s): State<ChatState>,
                 TestUser(u): TestUser,
                 Path(id): Path<String>,
                 Query(q): Query<PageQuery>| async move {
                    chat::http::get_conversation(&s, &u, conversation_id(&id)?, q).await
                },
            )
            .patch(
                |State(s): State<ChatState>,
                 TestUser(u): TestUser,
                 Path(id): Path<String>,
                 Json(req): Json<RenameRequest>| async move {
                    chat::http::rename_conversation(&s, &u, conversation_id(&id)?, req).await
                },
            )
            .delete(
                |State(s): State<ChatState>, TestUser(u): TestUser, Path(id): Path<String>| async move {
                    chat::http::delete_conversation(&s, &u, conversation_id(&id)?).await
                },
            ),
        )
        .with_state(state);
    request_path::wrap(routes, ctx)
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
    /// Base URL of the served test router.
    pub base: String,
    pub calls: DynamoCalls,
}

impl ChatHarness {
    /// A stack whose secret lists `providers`, the chat service with `config`, served on a port.
    pub async fn new(providers: Value, config: ChatConfig) -> Self {
        let stack = TestStack::with_secret(serde_json::json!({ "providers": providers })).await;
        let calls = DynamoCalls::default();
        let conf = aws_sdk_dynamodb::config::Builder::from(&stack.sdk).interceptor(calls.clone()).build();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(conf);
        let ctx = AppContext::with_clients(stack.config(), dynamo, baatcheet_shared::aws::secrets_manager(&stack.sdk));
        ctx.secrets.fetch().await.expect("secret is readable");
        let state = ChatState::new(&ctx, config).expect("chat state builds");
        let base = format!("http://{}", serve_streaming(test_router(state.clone(), &ctx)).await);
        Self { stack, ctx, state, base, calls }
    }

    pub fn service(&self) -> &chat::ChatService {
        &self.state.service
    }

    pub fn post(&self, path: &str, as_user: &str) -> reqwest::RequestBuilder {
        crate::http().post(format!("{}{path}", self.base)).header(USER_HEADER, as_user)
    }

    pub fn get(&self, path: &str, as_user: &str) -> reqwest::RequestBuilder {
        crate::http().get(format!("{}{path}", self.base)).header(USER_HEADER, as_user)
    }
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
