//! The API as AWS runs it, for one test: the REST API of the translated template
//! (`$SAM_TEMPLATE_JSON`, written by `make test`) in front of the built function binaries
//! (`target/debug/<function>`, built by `make test` first), each instance a process of its own,
//! on the test's own tables and secret. Each test's function logs go to
//! `target/lambda-test-logs/<prefix>.log`.

use baatcheet_local::deployed::Deployed;
use baatcheet_local::lambda::LogSink;
use baatcheet_local::lambda_stack::{LambdaStack, LambdaStackOptions};
use std::sync::{Arc, OnceLock};

use crate::TestStack;

/// The request header the local REST API takes the client's address from in tests (a local-only
/// stand-in for `requestContext.identity.sourceIp`; API Gateway has no such header).
pub const SOURCE_IP_HEADER: &str = "x-local-source-ip";

/// The translated template, read once per test binary.
pub fn deployed() -> Deployed {
    static D: OnceLock<Deployed> = OnceLock::new();
    D.get_or_init(|| {
        Deployed::load_default().expect("the translated template: run the tests through `make test`, which writes it")
    })
    .clone()
}

/// Starts the stack over `stack`'s tables and secret with the functions' environment set from
/// `stack.env`, after `tweak` changed what the deploy would create (a test of a misconfiguration)
/// and `function_env` (logical id, name, value) added per-function variables.
pub async fn start_with(
    stack: &TestStack,
    tweak: impl FnOnce(&mut Deployed),
    function_env: &[(&str, &str, &str)],
) -> LambdaStack {
    let mut d = deployed();
    tweak(&mut d);
    let mut opts = LambdaStackOptions::new(&stack.prefix, &d);
    put_function_secrets(stack, &opts).await;
    opts.parameters.insert("ClerkIssuer".into(), crate::clerk::ISSUER.into());
    opts.env = stack.env.clone();
    // Each function reads its own secret, as the template says (health and docs none).
    opts.env.remove("SECRET_ID");
    // `make test`'s SDK timeouts for the queueing local endpoint apply to the functions too.
    for k in ["AWS_SDK_ATTEMPT_TIMEOUT_MS", "AWS_SDK_OPERATION_TIMEOUT_MS"] {
        if let Ok(v) = std::env::var(k) {
            opts.env.insert(k.into(), v);
        }
    }
    opts.env.insert("AWS_LAMBDA_LOG_LEVEL".into(), "info".into());
    opts.source_ip_header = Some(http::HeaderName::from_static(SOURCE_IP_HEADER));
    for (f, k, v) in function_env {
        opts.function_env.entry(f.to_string()).or_default().insert(k.to_string(), v.to_string());
    }
    let logs = log_path(&opts.binaries, stack);
    opts.logs = LogSink::file(&logs).expect("log file");
    opts.access_log = opts.logs.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    LambdaStack::start(Arc::new(d), &opts, listener).await.expect("the local stack starts (are the functions built?)")
}

/// The file the stack of `stack` writes its functions' logs and access-log lines to, one line
/// each, prefixed `[access] ` or `[<function>#<instance>] `.
pub fn log_path(binaries: &std::path::Path, stack: &TestStack) -> std::path::PathBuf {
    binaries.join("..").join("lambda-test-logs").join(format!("{}log", stack.prefix))
}

/// The log lines [`start_with`] wrote for `stack` so far: (prefix, line).
pub fn log_lines(stack: &TestStack) -> Vec<(String, String)> {
    let binaries = baatcheet_local::lambda_stack::default_binaries();
    let text = std::fs::read_to_string(log_path(&binaries, stack)).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once("] "))
        .map(|(p, l)| (p.to_string(), l.to_string()))
        .collect()
}

/// [`log_lines`] once `done` holds for them: a function's stdout reaches the log through a pipe,
/// possibly after the response did. Panics with the lines if it never holds (10 s).
pub async fn log_lines_when(stack: &TestStack, done: impl Fn(&[(String, String)]) -> bool) -> Vec<(String, String)> {
    for _ in 0..100 {
        let lines = log_lines(stack);
        if done(&lines) {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the expected log lines never arrived: {:#?}", log_lines(stack));
}

/// The stack's one test secret (all fields), split into each function's own secret as
/// `make dev` and `scripts/put-secret.sh` split theirs. A stack whose secret has no value (or none)
/// leaves the functions' secrets without one too.
async fn put_function_secrets(stack: &TestStack, opts: &LambdaStackOptions) {
    let sm = baatcheet_shared::aws::secrets_manager(&stack.sdk);
    let Some(id) = stack.env.get("SECRET_ID") else { return };
    let Ok(out) = sm.get_secret_value().secret_id(id).send().await else { return };
    let Some(all) = out.secret_string() else { return };
    for (secret, value) in baatcheet_local::dev_secret::split(all).expect("the test secret is a JSON object") {
        let name = &opts.secrets[secret];
        baatcheet_local::stack::put_secret(&sm, name, &value).await.expect("function secret stored");
    }
}

pub async fn start(stack: &TestStack) -> LambdaStack {
    start_with(stack, |_| {}, &[]).await
}
