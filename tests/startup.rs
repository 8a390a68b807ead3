//! A new stack's functions start without a secret value (and health, as deployed, without any
//! secret at all): each built binary is exec'd as Lambda
//! runs it (under `support::runtime_api`) against a stack whose secret has no value, or does not
//! exist, and must keep polling and answer every route: `/live` 200, health's `/health` and
//! `/ready` 503 naming the secret, and every request that needs the secret a problem+json 503
//! (chat in the streaming format: JSON prelude, 8 NUL bytes, body).
//!
//! Needs the debug binaries (`cargo build -p health -p webhook -p chat -p docs`; scripts/test.sh
//! builds them before `cargo test`) and AWS_ENDPOINT_URL, like the other tests.

use baatcheet_tests::clerk::{self, Delivery, keys};
use baatcheet_tests::{TestStack, runtime_api::RuntimeApi};
use base64::Engine;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// moto answers one call at a time; a parallel suite queues there.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binary(name: &str) -> PathBuf {
    let path = root().join("target/debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the function binaries first with `cargo build -p health -p webhook -p chat -p docs` \
         (scripts/test.sh does)",
        path.display()
    );
    path
}

#[derive(Clone, Copy, Debug)]
enum Secret {
    /// Created (as CloudFormation creates it) with no value.
    NoValue,
    /// No secret of that name.
    Missing,
}

/// A stack whose `SECRET_ID` names a secret without a value, or none.
async fn stack(secret: Secret) -> TestStack {
    let mut stack = TestStack::new().await;
    let name = format!("{}unset-secret", stack.prefix);
    if let Secret::NoValue = secret {
        baatcheet_shared::aws::secrets_manager(&stack.sdk)
            .create_secret()
            .name(&name)
            .send()
            .await
            .expect("a secret without a value is created");
    }
    stack.env.insert("SECRET_ID".into(), name);
    // Chat's auth reads its key from the secret (no CLERK_JWT_KEY in the environment).
    stack.env.insert("CLERK_ISSUER".into(), clerk::ISSUER.into());
    stack
}

/// One function's binary polling its own Runtime API, its log lines collected.
struct Function {
    name: &'static str,
    api: RuntimeApi,
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Function {
    async fn start(name: &'static str, stack: &TestStack) -> Self {
        let api = RuntimeApi::start().await.expect("runtime API");
        let mut child = tokio::process::Command::new(binary(name))
            .envs(&stack.env)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_LEVEL", "info")
            .env_remove("LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the function binary runs");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        Self { name, api, child, log }
    }

    /// Sends one event and returns the raw answer; fails if the process exits instead.
    async fn invoke(&mut self, event: &Value) -> Vec<u8> {
        let answer = self.api.invoke(event.to_string().into_bytes());
        tokio::select! {
            status = self.child.wait() => {
                // Let the reader take the last lines of its log.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "{} exited instead of answering ({status:?}); its log:\n{}",
                    self.name,
                    self.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
                )
            }
            a = tokio::time::timeout(ANSWER_TIMEOUT, answer) => {
                let a = a.unwrap_or_else(|_| panic!("{} did not answer within {ANSWER_TIMEOUT:?}", self.name))
                    .expect("the runtime API keeps the answer");
                assert!(!a.error, "{}: invocation error: {}", self.name, String::from_utf8_lossy(&a.body));
                a.body.to_vec()
            }
        }
    }

    fn assert_running(&mut self) {
        assert!(matches!(self.child.try_wait(), Ok(None)), "{} is no longer running", self.name);
    }

    /// The start logged why the secret could not be read, once, at error level.
    fn assert_start_logged_once(&self) {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let errors: Vec<&String> = log
            .iter()
            .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("could not be read at start"))
            .collect();
        assert_eq!(errors.len(), 1, "{}: one start error expected, log:\n{}", self.name, log.join("\n"));
        assert!(errors[0].contains("\"cause\""), "{}", errors[0]);
    }
}

/// An HTTP answer read back from Lambda's wire format.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Value,
}

fn header(headers: &Value, name: &str) -> Option<String> {
    let (_, v) = headers.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The buffered proxy response object.
fn buffered(raw: &[u8]) -> Reply {
    let v: Value = serde_json::from_slice(raw)
        .unwrap_or_else(|e| panic!("not a proxy response ({e}): {}", String::from_utf8_lossy(raw)));
    let text = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD.decode(text).expect("base64 body")
    } else {
        text.as_bytes().to_vec()
    };
    let content_type = header(&v["headers"], "content-type")
        .or_else(|| header(&v["multiValueHeaders"], "content-type"))
        .unwrap_or_default();
    Reply {
        status: v["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).expect("statusCode"),
        content_type,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

/// The streamed response: a JSON prelude, 8 NUL bytes, then the body.
fn streamed(raw: &[u8]) -> Reply {
    let split = raw
        .windows(8)
        .position(|w| w == [0u8; 8])
        .unwrap_or_else(|| panic!("no prelude separator in a streamed answer: {}", String::from_utf8_lossy(raw)));
    let prelude: Value = serde_json::from_slice(&raw[..split]).expect("the prelude is JSON");
    Reply {
        status: prelude["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).expect("statusCode"),
        content_type: header(&prelude["headers"], "content-type").unwrap_or_default(),
        body: serde_json::from_slice(&raw[split + 8..]).unwrap_or(Value::Null),
    }
}

fn fixture(name: &str) -> Value {
    let path = root().join("events").join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("fixture exists")).expect("fixture is JSON")
}

fn set_header(event: &mut Value, name: &str, value: &str) {
    event["headers"][name] = json!(value);
    event["multiValueHeaders"][name] = json!([value]);
}

/// A fail-closed answer: 503 problem+json, saying the service is not configured, no internals.
fn assert_not_configured(r: &Reply, secret_name: &str) {
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.content_type, "application/problem+json", "{r:?}");
    assert_eq!(r.body["status"], 503, "{r:?}");
    assert_eq!(r.body["type"], "https://baatcheet.app/problems/service-unavailable", "{r:?}");
    assert_eq!(r.body["detail"], "The service is not configured yet.", "{r:?}");
    assert!(!r.body.to_string().contains(secret_name), "the secret's name leaked: {r:?}");
}

async fn health_starts(secret: Secret) {
    let stack = stack(secret).await;
    let mut f = Function::start("health", &stack).await;

    let live = buffered(&f.invoke(&fixture("live.json")).await);
    assert_eq!((live.status, &live.body["status"]), (200, &json!("alive")), "{secret:?}: {live:?}");

    let health = buffered(&f.invoke(&fixture("health.json")).await);
    assert_eq!(health.status, 503, "{secret:?}: {health:?}");
    assert_eq!(health.body["status"], "unhealthy", "{health:?}");
    assert_eq!(health.body["services"]["secrets"]["status"], "unhealthy", "{health:?}");
    assert_eq!(health.body["services"]["secrets"]["error"], "unreachable", "{health:?}");

    let ready = buffered(&f.invoke(&fixture("ready.json")).await);
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body["failed"].as_array().is_some_and(|a| a.contains(&json!("secrets"))), "{ready:?}");

    f.assert_running();
    f.assert_start_logged_once();
}

async fn chat_starts(secret: Secret) {
    let stack = stack(secret).await;
    let secret_name = stack.env["SECRET_ID"].clone();
    let mut f = Function::start("chat", &stack).await;

    // Authenticated: the Clerk key would come from the secret, so nothing is accepted.
    let mut list = fixture("conversations-list.json");
    set_header(&mut list, "Authorization", &format!("Bearer {}", clerk::token(&keys()[0], &clerk::unique_user())));
    let r = streamed(&f.invoke(&list).await);
    assert_not_configured(&r, &secret_name);

    // Without a token it is still a 401, before any secret is needed.
    let r = streamed(&f.invoke(&fixture("conversations-list.json")).await);
    assert_eq!(r.status, 401, "{r:?}");

    // Public, but the provider list is in the secret.
    let r = streamed(&f.invoke(&fixture("chat-models.json")).await);
    assert_not_configured(&r, &secret_name);

    // A second authenticated request, past the retry interval: read again, still fails closed.
    tokio::time::sleep(baatcheet_shared::secrets::RETRY_INTERVAL).await;
    let r = streamed(&f.invoke(&list).await);
    assert_not_configured(&r, &secret_name);

    f.assert_running();
    f.assert_start_logged_once();
}

async fn webhook_starts(secret: Secret) {
    let stack = stack(secret).await;
    let secret_name = stack.env["SECRET_ID"].clone();
    let mut f = Function::start("webhook", &stack).await;

    // A current, well-formed delivery (signed with some key): it cannot be verified, so 503 and
    // Svix retries; it is never accepted.
    let mut event = fixture("clerk-webhook.json");
    let d = Delivery {
        id: format!("msg_startup_{}", uuid::Uuid::new_v4().simple()),
        timestamp: clerk::now(),
        body: event["body"].as_str().unwrap_or_default().to_string(),
    };
    set_header(&mut event, "svix-id", &d.id);
    set_header(&mut event, "svix-timestamp", &d.timestamp.to_string());
    set_header(&mut event, "svix-signature", &d.signature(clerk::WEBHOOK_SECRET));
    let r = buffered(&f.invoke(&event).await);
    assert_not_configured(&r, &secret_name);

    f.assert_running();
    f.assert_start_logged_once();
}

/// As template.yaml deploys it: health has no secret (no `SECRET_ID`, no grant) and needs none.
#[tokio::test]
async fn health_needs_no_secret_at_all() {
    let mut stack = TestStack::new().await;
    stack.env.remove("SECRET_ID");
    let mut f = Function::start("health", &stack).await;
    let live = buffered(&f.invoke(&fixture("live.json")).await);
    assert_eq!(live.status, 200, "{live:?}");
    let health = buffered(&f.invoke(&fixture("health.json")).await);
    assert_eq!((health.status, &health.body["status"]), (200, &json!("healthy")), "{health:?}");
    assert!(health.body["services"].get("secrets").is_none(), "no secret to probe: {health:?}");
    assert_eq!(health.body["services"]["database"]["status"], "healthy", "{health:?}");
    let ready = buffered(&f.invoke(&fixture("ready.json")).await);
    assert_eq!(ready.status, 200, "{ready:?}");
    f.assert_running();
}

#[tokio::test]
async fn health_starts_with_a_secret_without_value() {
    health_starts(Secret::NoValue).await;
}

#[tokio::test]
async fn health_starts_without_the_secret() {
    health_starts(Secret::Missing).await;
}

#[tokio::test]
async fn chat_starts_with_a_secret_without_value_and_fails_closed() {
    chat_starts(Secret::NoValue).await;
}

#[tokio::test]
async fn chat_starts_without_the_secret_and_fails_closed() {
    chat_starts(Secret::Missing).await;
}

#[tokio::test]
async fn webhook_starts_with_a_secret_without_value_and_fails_closed() {
    webhook_starts(Secret::NoValue).await;
}

#[tokio::test]
async fn webhook_starts_without_the_secret_and_fails_closed() {
    webhook_starts(Secret::Missing).await;
}

/// In production (`ENVIRONMENT=prod`) every function refuses to start without
/// `CLERK_AUTHORIZED_PARTIES` (no `azp` check would accept tokens the Clerk instance signs for
/// any client): the process exits before polling, saying which setting is missing. With the
/// setting, the same binary starts and answers.
#[tokio::test]
async fn functions_refuse_to_start_in_production_without_authorized_parties() {
    let mut stack = TestStack::new().await;
    stack.env.insert("ENVIRONMENT".into(), "prod".into());
    stack.env.remove("CLERK_AUTHORIZED_PARTIES");
    for name in ["health", "webhook", "chat", "docs"] {
        let api = RuntimeApi::start().await.expect("runtime API");
        let out = tokio::process::Command::new(binary(name))
            .envs(&stack.env)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(ANSWER_TIMEOUT, out)
            .await
            .unwrap_or_else(|_| panic!("{name} kept running in production without authorized parties"))
            .expect("the function binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {:?}", out.status);
        assert!(
            stderr.contains("CLERK_AUTHORIZED_PARTIES") && stderr.contains("ENVIRONMENT=prod"),
            "{name} must say what is missing: {stderr}"
        );
    }
    // The same production settings with authorized parties: health starts and answers.
    stack.env.insert("CLERK_AUTHORIZED_PARTIES".into(), "https://app.baatcheet.test".into());
    let mut f = Function::start("health", &stack).await;
    let live = buffered(&f.invoke(&fixture("live.json")).await);
    assert_eq!(live.status, 200, "{live:?}");
}
