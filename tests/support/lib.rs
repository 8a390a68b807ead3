//! Test support: per-test isolated state on the local AWS endpoint that `make test` starts, the
//! local gateway on an ephemeral port, and small HTTP helpers.

pub mod aws_proxy;
pub mod aws_shards;
pub mod clerk;
pub mod faults;
pub mod iam;
pub mod probe;
pub mod recorder;
pub mod resolver;

use aws_config::SdkConfig;
use baatcheet_local::{gateway, stack, template::Template};
use baatcheet_shared::{AppContext, Config};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// The local AWS endpoint; `make test` exports it.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run the tests through `make test`, which starts the local AWS endpoint")
}

pub fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| Template::load_default().expect("template.yaml parses"))
}

pub async fn sdk() -> SdkConfig {
    let _ = endpoint();
    baatcheet_shared::aws::sdk_config().await
}

/// A DynamoDB client whose endpoint is `url` (a dead, hung or switchable endpoint in outage
/// tests). Set on the service config: the environment's endpoint would override a shared one.
pub async fn dynamodb_at(url: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk().await).endpoint_url(url).build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// A Secrets Manager client whose endpoint is `url`.
pub async fn secrets_manager_at(url: &str) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(&sdk().await).endpoint_url(url).build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

pub fn unique_prefix() -> String {
    format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// One test's own tables and secret on the shared local endpoint.
pub struct TestStack {
    pub sdk: SdkConfig,
    pub prefix: String,
    /// Function environment (table names, SECRET_ID, CORS origins) for this stack.
    pub env: BTreeMap<String, String>,
}

impl TestStack {
    pub async fn new() -> Self {
        Self::with_secret(serde_json::json!({})).await
    }

    pub async fn with_secret(secret: serde_json::Value) -> Self {
        let sdk = sdk().await;
        let prefix = unique_prefix();
        let mut env = stack::create_tables(&baatcheet_shared::aws::dynamodb(&sdk), template(), &prefix)
            .await
            .expect("tables are created on the local endpoint");
        let secret_id = format!("{prefix}secret");
        stack::put_secret(&baatcheet_shared::aws::secrets_manager(&sdk), &secret_id, &secret.to_string())
            .await
            .expect("secret is stored");
        env.insert("SECRET_ID".into(), secret_id);
        env.insert("CORS_ALLOWED_ORIGINS".into(), "https://app.baatcheet.test".into());
        env.insert("DEPENDENCY_TIMEOUT_MS".into(), "800".into());
        // Every health request probes afresh, so an outage a test makes shows on the next request
        // (tests/health.rs checks the sharing of probe runs with its own TTL).
        env.insert("HEALTH_PROBE_TTL_MS".into(), "0".into());
        // The local endpoint queues requests under a parallel test run: a slow answer there must
        // not send the rate limiter to its in-memory fallback (outage tests set their own).
        env.insert("RATE_LIMIT_STORE_TIMEOUT_MS".into(), "20000".into());
        Self { sdk, prefix, env }
    }

    pub fn config(&self) -> Config {
        let env = self.env.clone();
        Config::from_lookup(move |k| env.get(k).cloned()).expect("test config is valid")
    }

    /// A context on this stack, with the secret already read (as at cold start).
    pub async fn context(&self) -> AppContext {
        let ctx = AppContext::new(self.config(), &self.sdk);
        ctx.secrets.fetch().await.expect("secret is readable");
        ctx
    }
}

/// Serves `router` on 127.0.0.1 on an ephemeral port, with socket addresses as ConnectInfo.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve");
    });
    addr
}

/// The local gateway, as `make dev` runs it, on an ephemeral port.
pub async fn spawn_gateway(ctx: &AppContext) -> String {
    let app = gateway::build(template(), ctx).expect("gateway builds from template.yaml");
    format!("http://{}", serve(app).await)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// A TCP endpoint that accepts connections and never answers: a hung dependency.
pub async fn blackhole() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    addr
}

/// An address where nothing listens: a dead dependency.
pub async fn dead_endpoint() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Asserts Helmet's default header set and no server banner.
pub fn assert_security_headers(headers: &reqwest::header::HeaderMap) {
    for (name, value) in baatcheet_shared::security_headers::SECURITY_HEADERS {
        assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "header {name}");
    }
    assert!(headers.get("server").is_none(), "server banner present");
    assert!(headers.get("x-powered-by").is_none());
}

/// A TCP proxy to a real endpoint that a test can cut and restore: an outage of a dependency
/// that was healthy a moment ago (pooled connections included).
pub struct Switch {
    pub addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Switch {
    pub async fn to(target: &str) -> Self {
        let target: SocketAddr =
            target.trim_start_matches("http://").trim_end_matches('/').parse().expect("target is host:port");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (up, rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                if !*rx.borrow() {
                    continue; // dropped: connection reset
                }
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cut(&self) {
        let _ = self.up.send(false);
    }

    pub fn restore(&self) {
        let _ = self.up.send(true);
    }
}
pub mod runtime_api;

/// The router as a client at `ip` reaches it, when no socket says otherwise: the address the local
/// gateway would hand it (tests that call a router with `oneshot` have no socket).
pub fn as_client(router: axum::Router, ip: &str) -> axum::Router {
    use axum::extract::ConnectInfo;
    let addr = SocketAddr::new(ip.parse().expect("an IP address"), 40_000);
    router.layer(axum::middleware::map_request(move |mut req: axum::extract::Request| async move {
        if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        req
    }))
}

pub mod chat;
pub mod deployed;
pub mod fake_upstream;
pub mod seed;
