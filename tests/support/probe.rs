//! One function of template.yaml, built as `baatcheet_local::functions::router_for` builds it, with
//! its DynamoDB and Secrets Manager clients pointed at a [`RecordingProxy`] in front of the local
//! endpoint: whatever requests drive it, the AWS calls its code makes are recorded and can be
//! named in IAM terms (action, template logical id).

use crate::aws_proxy::RecordingProxy;
use crate::iam::{Permission, Resource, needs};
use crate::{TestStack, as_client, template};
use axum::{Router, body::Body};
use baatcheet_local::{functions, template::physical_table_name};
use baatcheet_shared::AppContext;
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

/// The client address requests from the probe come from (a documentation range).
pub const CLIENT_IP: &str = "203.0.113.61";

#[derive(Clone)]
pub struct Probe {
    /// The function's template.yaml logical id.
    pub function: String,
    pub stack: Arc<TestStack>,
    /// The function's context, its AWS clients at the proxy.
    pub ctx: AppContext,
    router: Router,
    proxy: Arc<RecordingProxy>,
}

impl Probe {
    /// Builds `function` on `stack` as its Lambda's cold start does (the secret read once if its
    /// `main.rs` builds `AppContext::from_env_with`), with every AWS call it makes going through a new
    /// recording proxy. Err if this build has no such function.
    pub async fn start(function: &str, stack: TestStack) -> Result<Self, String> {
        let proxy = RecordingProxy::to(&crate::endpoint()).await;
        // The function's secret, if the template gives it one (health and docs have none).
        let mut config = stack.config();
        if template().env_ref(function, "SECRET_ID").is_none() {
            config.secret_id = None;
        }
        let ctx = AppContext::with_clients(
            config,
            crate::dynamodb_at(&proxy.url).await,
            crate::secrets_manager_at(&proxy.url).await,
        );
        if reads_secret_at_cold_start(function)? && ctx.secrets.is_configured() {
            ctx.secrets
                .fetch()
                .await
                .map_err(|e| format!("{function}: the secret is not readable at cold start: {e}"))?;
        }
        let router = functions::router_for(function, &ctx).ok_or_else(|| {
            format!(
                "template.yaml declares {function}, but baatcheet_local::functions::router_for does not know it, \
                 so its grants cannot be checked against its code"
            )
        })?;
        Ok(Self {
            function: function.to_string(),
            stack: Arc::new(stack),
            ctx,
            router: as_client(router, CLIENT_IP),
            proxy: Arc::new(proxy),
        })
    }

    /// Sends one request through the function's router: (status, JSON body or Null).
    pub async fn send(&self, req: http::Request<Body>) -> (u16, Value) {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(http::Request::get(path).body(Body::empty()).expect("request")).await
    }

    /// Feeds every `events/*.json` fixture of this function's routes through its router, as a
    /// Lambda invocation would. Each must be routed and served without a 5xx.
    pub async fn drive_fixtures(&self) {
        let routes: Vec<_> = template().routes.iter().filter(|r| r.function == self.function).collect();
        let mut driven = 0;
        for (name, text) in event_fixtures() {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
            let method = v["httpMethod"].as_str().unwrap_or_default().to_uppercase();
            let resource = v["resource"].as_str().unwrap_or_default();
            if !routes.iter().any(|r| r.method == method && r.path == resource) {
                continue;
            }
            let (status, body) = self.send(lambda_request(&text, &v)).await;
            assert!(
                !matches!(status, 404 | 405) && status < 500,
                "{}: events/{name}.json answered {status}: {body}",
                self.function
            );
            driven += 1;
        }
        assert!(driven > 0 || routes.is_empty(), "{}: no events/*.json fixture for any of its routes", self.function);
    }

    /// What the function's recorded calls needed, named as template.yaml names things; and the
    /// calls that cannot be named so (other services, resources outside its stack).
    pub fn used(&self) -> (BTreeSet<Permission>, Vec<String>) {
        let mut used = BTreeSet::new();
        let mut problems = BTreeSet::new();
        for call in self.proxy.calls() {
            let needs = match needs(&call) {
                Ok(n) => n,
                Err(why) => {
                    problems.insert(format!("{} makes {why}", self.function));
                    continue;
                }
            };
            for need in needs {
                match self.logical(&need.name) {
                    Some(id) => {
                        used.insert((need.action, Resource::Logical { id, index: need.index }));
                    }
                    None => {
                        problems.insert(format!(
                            "{} calls {} on `{}`, which is no table or secret of its test stack",
                            self.function, need.action, need.name
                        ));
                    }
                }
            }
        }
        (used, problems.into_iter().collect())
    }

    /// The logical id of a physical table name (`{prefix}{LogicalId}`) or of a resource a
    /// function environment variable names (its secret: `SECRET_ID` -> `!Ref ChatSecret`).
    fn logical(&self, name: &str) -> Option<String> {
        let t = template();
        if let Some(table) = t.tables.iter().find(|tb| physical_table_name(&self.stack.prefix, &tb.logical_id) == name)
        {
            return Some(table.logical_id.clone());
        }
        self.stack
            .env
            .iter()
            .find(|(_, v)| v.as_str() == name)
            .and_then(|(var, _)| t.env_ref(&self.function, var))
            .cloned()
    }
}

/// Whether the function's `main.rs` builds `AppContext::from_env_with`, which reads the secret once
/// before the first request (what `AppContext::with_clients` + `secrets.fetch()` do here). A
/// function that only builds its `Config` (docs) makes no AWS call at cold start.
fn reads_secret_at_cold_start(function: &str) -> Result<bool, String> {
    let binary = template()
        .binaries
        .get(function)
        .ok_or_else(|| format!("{function} has no Metadata.BuildProperties.Binary in template.yaml"))?;
    let main = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions").join(binary).join("src/main.rs");
    let src = std::fs::read_to_string(&main)
        .map_err(|e| format!("{function}: cannot read {} to see its cold start: {e}", main.display()))?;
    Ok(src.contains("AppContext::from_env_with"))
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// (file stem, text) of every `events/*.json`, by name.
pub fn event_fixtures() -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().expect("file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect();
    out.sort();
    out
}

/// The request lambda_http hands the router for an API Gateway REST event. template.yaml sets
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` for every function; rather than set the process
/// environment from a test, the stage lambda_http puts in front of the path is taken off here.
pub fn lambda_request(text: &str, event: &Value) -> http::Request<Body> {
    let req = lambda_http::request::from_str(text).expect("event parses as an API Gateway request");
    let (mut parts, body) = req.into_parts();
    if let Some(stage) = event["requestContext"]["stage"].as_str() {
        let prefix = format!("/{stage}");
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if let Some(rest) = path_and_query.strip_prefix(&prefix).filter(|r| r.starts_with('/')) {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(rest.parse().expect("a path"));
            parts.uri = http::Uri::from_parts(uri).expect("a URI");
        }
    }
    http::Request::from_parts(parts, Body::from(body.to_vec()))
}
