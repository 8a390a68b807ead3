//! The API as AWS runs it, on one local port: the REST API of the translated template in front of
//! one pool of Lambda-shaped instances per function (`lambda.rs`, `rest_api.rs`). Each function's
//! environment is the template's, with its `Ref`s resolved to the local tables, secret and
//! parameter defaults, then the local overrides; nothing else of this process's environment
//! reaches a function except the local AWS endpoint and its dummy credentials.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::deployed::{Deployed, EnvValue, FunctionSpec};
use crate::lambda::{FunctionConfig, FunctionPool, LogSink};
use crate::rest_api::RestApi;
use crate::template::physical_table_name;

#[derive(Debug, thiserror::Error)]
pub enum LambdaStackError {
    #[error("{function}: environment variable {var} refers to {target}, which the local stack cannot provide")]
    Unresolved { function: String, var: String, target: String },
    #[error("{function}: its binary {path} is missing (build it: cargo build -p <function crate>)")]
    MissingBinary { function: String, path: String },
    #[error("cannot listen")]
    Listen(#[source] std::io::Error),
}

/// Host variables a function gets: the local stand-ins for what Lambda provides (the AWS
/// endpoint, credentials and region) and the platform's certificate locations.
const PASSED_THROUGH: [&str; 9] = [
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Local instances per function at most, unless the template reserves fewer.
pub const DEFAULT_MAX_INSTANCES: usize = 8;

#[derive(Debug, Clone)]
pub struct LambdaStackOptions {
    /// Directory holding each function's binary under its cargo name (`target/debug`).
    pub binaries: PathBuf,
    pub table_prefix: String,
    /// Each secret of the template (logical id) -> the local secret's name.
    pub secrets: BTreeMap<String, String>,
    /// Parameter values (`sam deploy --parameter-overrides`), over the template's defaults.
    pub parameters: BTreeMap<String, String>,
    /// Overrides for every function (after the template's values).
    pub env: BTreeMap<String, String>,
    /// Overrides for one function, by logical id (after `env`).
    pub function_env: BTreeMap<String, BTreeMap<String, String>>,
    pub logs: LogSink,
    pub access_log: LogSink,
    pub max_instances: usize,
    /// Local only, for tests: a request header the REST API takes the client's address from
    /// (see [`RestApi::with_source_ip_header`]). None (the default): the connection's address.
    pub source_ip_header: Option<axum::http::HeaderName>,
}

impl LambdaStackOptions {
    /// Options for tables under `table_prefix` and each of `deployed`'s secrets under its
    /// [`physical_secret_name`].
    pub fn new(table_prefix: &str, deployed: &Deployed) -> Self {
        let secrets = deployed
            .resource_types
            .iter()
            .filter(|(_, t)| t.as_str() == "AWS::SecretsManager::Secret")
            .map(|(id, _)| (id.clone(), physical_secret_name(table_prefix, id)))
            .collect();
        Self {
            binaries: default_binaries(),
            table_prefix: table_prefix.into(),
            secrets,
            parameters: BTreeMap::new(),
            env: BTreeMap::new(),
            function_env: BTreeMap::new(),
            logs: LogSink::Stderr,
            access_log: LogSink::Discard,
            max_instances: DEFAULT_MAX_INSTANCES,
            source_ip_header: None,
        }
    }
}

/// Local name of a template secret: `{prefix}{LogicalId}` (as tables).
pub fn physical_secret_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}{logical_id}")
}

/// The workspace's debug build directory (`$CARGO_TARGET_DIR` when set).
pub fn default_binaries() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("debug")
}

/// A function's whole environment: what Lambda sets, the template's variables resolved, the
/// overrides.
pub fn function_env(
    deployed: &Deployed,
    spec: &FunctionSpec,
    opts: &LambdaStackOptions,
) -> Result<BTreeMap<String, String>, LambdaStackError> {
    let extra = opts.function_env.get(&spec.logical_id);
    let overridden = |k: &str| opts.env.contains_key(k) || extra.is_some_and(|e| e.contains_key(k));
    let mut env = BTreeMap::new();
    for k in PASSED_THROUGH {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.to_string(), v);
        }
    }
    for (k, v) in &spec.env {
        if overridden(k) {
            continue;
        }
        let value = match v {
            EnvValue::Literal(s) => s.clone(),
            EnvValue::Ref(target) => match deployed.resource_types.get(target).map(String::as_str) {
                Some("AWS::DynamoDB::Table") => physical_table_name(&opts.table_prefix, target),
                Some("AWS::SecretsManager::Secret") => {
                    opts.secrets.get(target).cloned().ok_or_else(|| LambdaStackError::Unresolved {
                        function: spec.logical_id.clone(),
                        var: k.clone(),
                        target: target.clone(),
                    })?
                }
                _ => opts.parameters.get(target).or_else(|| deployed.parameters.get(target)).cloned().ok_or_else(
                    || LambdaStackError::Unresolved {
                        function: spec.logical_id.clone(),
                        var: k.clone(),
                        target: target.clone(),
                    },
                )?,
            },
        };
        env.insert(k.clone(), value);
    }
    env.extend(opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(e) = extra {
        env.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // What Lambda itself sets for a provided.al2023 function (reserved: overrides cannot change it).
    let name = format!("baatcheet-local-{}", spec.logical_id);
    let reserved = [
        ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("_HANDLER", "bootstrap".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
    ];
    for (k, v) in reserved {
        env.insert(k.into(), v);
    }
    if let Some(f) = &spec.log_format {
        env.entry("AWS_LAMBDA_LOG_FORMAT".into()).or_insert_with(|| f.clone());
    }
    if let Some(l) = &spec.log_level {
        env.entry("AWS_LAMBDA_LOG_LEVEL".into()).or_insert_with(|| l.clone());
    }
    Ok(env)
}

/// The running stack: its REST API and where it listens.
pub struct LambdaStack {
    pub api: Arc<RestApi>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl LambdaStack {
    /// Serves `deployed` on `listener`: one pool per routed function, started lazily (the first
    /// request to a function is its cold start, as in Lambda).
    pub async fn start(
        deployed: Arc<Deployed>,
        opts: &LambdaStackOptions,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, LambdaStackError> {
        let mut pools = BTreeMap::new();
        for spec in deployed.routed_functions() {
            let binary = opts.binaries.join(&spec.binary);
            if !binary.is_file() {
                return Err(LambdaStackError::MissingBinary {
                    function: spec.logical_id.clone(),
                    path: binary.display().to_string(),
                });
            }
            let max = spec.reserved_concurrency.map(|r| r as usize).unwrap_or(usize::MAX).min(opts.max_instances);
            let cfg = FunctionConfig {
                name: spec.logical_id.clone(),
                binary,
                env: function_env(&deployed, spec, opts)?,
                timeout: spec.timeout,
                memory_mb: spec.memory_mb,
                max_instances: max.max(1),
                logs: opts.logs.clone(),
            };
            pools.insert(spec.logical_id.clone(), FunctionPool::new(cfg));
        }
        let api = Arc::new(
            RestApi::new(deployed, pools, opts.access_log.clone()).with_source_ip_header(opts.source_ip_header.clone()),
        );
        let addr = listener.local_addr().map_err(LambdaStackError::Listen)?;
        // Nagle off: streamed events leave as they are written.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = api.clone().router().into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { api, addr, server })
    }

    /// The stage's base URL, as API Gateway's invoke URL ends in the stage.
    pub fn base_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.api.stage())
    }

    pub fn pool(&self, function: &str) -> Option<&FunctionPool> {
        self.api.pool(function)
    }
}

impl Drop for LambdaStack {
    fn drop(&mut self) {
        self.server.abort();
        for p in self.api.pools() {
            p.shutdown();
        }
    }
}

/// Host variables that are this machine's or the local tools' own, never a function's setting
/// (a name ending in `_` is a prefix).
const HOST_ONLY: [&str; 32] = [
    "PATH",
    "HOME",
    "USER",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TERM",
    "LANG",
    "LC_",
    "HOSTNAME",
    "SHLVL",
    "CARGO",
    "CARGO_",
    "RUSTUP_",
    "RUSTC",
    "RUSTC_",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
    "VIRTUAL_ENV",
    "PYENV_",
    "PYTHONPATH",
    "NODE_",
    "SSH_",
    "XDG_",
    "LOGNAME",
    "_",
    "TMUX",
    "DISPLAY",
    "LS_COLORS",
];
/// The local stack's own settings (this gateway's, not the functions').
const STACK_OWN: [&str; 10] = [
    "PORT",
    "TABLE_PREFIX",
    "SECRET_ID",
    "SAM_TEMPLATE_JSON",
    "LAMBDA_",
    "PROVIDERS_",
    "FAKE_UPSTREAM_",
    "AWS_PORT",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_",
];

/// The part of a developer's environment that configures the functions: `RATE_LIMIT_GLOBAL=... make
/// dev` reaches them, as `sam local --env-vars` would carry it; the host's and the stack's own
/// variables do not.
pub fn from_host_env(vars: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter(|(k, _)| k.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .filter(|(k, _)| !HOST_ONLY.iter().chain(&STACK_OWN).any(|p| k == p || (p.ends_with('_') && k.starts_with(p))))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read {0}")]
    Read(String, #[source] std::io::Error),
    #[error("{0} is not the JSON of `sam local --env-vars` ({{\"Parameters\": {{...}}, \"<Function>\": {{...}}}})")]
    Shape(String),
}

type EnvMap = BTreeMap<String, String>;

/// A `sam local --env-vars` file: `Parameters` apply to every function, other keys to the function
/// of that logical id. Values may be strings, numbers or booleans.
pub fn read_env_file(path: &Path) -> Result<(EnvMap, BTreeMap<String, EnvMap>), EnvFileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EnvFileError::Read(p.clone(), e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| EnvFileError::Shape(p.clone()))?;
    let obj = v.as_object().ok_or_else(|| EnvFileError::Shape(p.clone()))?;
    let vars = |v: &serde_json::Value| -> Result<EnvMap, EnvFileError> {
        v.as_object()
            .ok_or_else(|| EnvFileError::Shape(p.clone()))?
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return Err(EnvFileError::Shape(p.clone())),
                };
                Ok((k.clone(), s))
            })
            .collect()
    };
    let mut all = EnvMap::new();
    let mut per = BTreeMap::new();
    for (k, v) in obj {
        if k == "Parameters" {
            all = vars(v)?;
        } else {
            per.insert(k.clone(), vars(v)?);
        }
    }
    Ok((all, per))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_variables_stay_on_the_host() {
        let vars = [
            ("RATE_LIMIT_GLOBAL", "1/1h"),
            ("LOG_FORMAT", "text"),
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("CARGO_HOME", "x"),
            ("LC_ALL", "C"),
            ("PORT", "5001"),
            ("LAMBDA_BINARIES", "x"),
            ("PROVIDERS_FILE", "x"),
            ("lowercase", "x"),
            ("USER_AGENT_SUFFIX", "kept: USER is a name, not a prefix"),
            ("RUST_LOG", "debug"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let kept: Vec<String> = from_host_env(vars).into_keys().collect();
        assert_eq!(kept, ["LOG_FORMAT", "RATE_LIMIT_GLOBAL", "RUST_LOG", "USER_AGENT_SUFFIX"]);
    }
}
