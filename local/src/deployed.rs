//! template.yaml as a deploy creates it: the CloudFormation that AWS's SAM translator renders
//! (`local/sam/translate.py`, written to `$SAM_TEMPLATE_JSON` by `make dev` and `make test`), read
//! into what the Lambda-shaped local stack runs: the REST API's routes with their integrations
//! (buffered or response-streaming, timeout), binary media types, gateway responses, stage and
//! access-log format, and each function's binary, environment, timeout and memory.
//!
//! Nothing here is a second reading of the SAM source: a route exists locally exactly when the
//! translator gave it an integration, and it streams exactly when that integration does.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DeployedError {
    #[error(
        "no translated template (SAM_TEMPLATE_JSON): run through `make dev` / `make test`, which translate template.yaml"
    )]
    NotTranslated,
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not JSON")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("translated template: {0}")]
    Shape(String),
}

fn shape(msg: impl Into<String>) -> DeployedError {
    DeployedError::Shape(msg.into())
}

/// API Gateway's default integration timeout (REST APIs).
pub const DEFAULT_INTEGRATION_TIMEOUT: Duration = Duration::from_millis(29_000);

/// One method of one resource of the REST API and its Lambda proxy integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// Upper case; `ANY` matches every method.
    pub method: String,
    /// The resource path as API Gateway spells it (`/api/v1/conversations/{id}`).
    pub path: String,
    /// Logical id of the function the integration invokes.
    pub function: String,
    /// `responseTransferMode: STREAM` with the `.../response-streaming-invocations` URI.
    pub streamed: bool,
    pub timeout: Duration,
}

/// A customised gateway response (`x-amazon-apigateway-gateway-responses`).
#[derive(Debug, Clone, Default)]
pub struct GatewayResponse {
    pub status: Option<u16>,
    /// Content type -> body template.
    pub templates: BTreeMap<String, String>,
    /// Header name -> value (literal values only; `'...'` in the template).
    pub headers: Vec<(String, String)>,
}

/// An environment variable's value in the translated template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    /// `{"Ref": X}`: a parameter, a table, the secret.
    Ref(String),
}

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// Cargo binary name (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub env: BTreeMap<String, EnvValue>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub reserved_concurrency: Option<u32>,
    /// `LoggingConfig`: Lambda sets AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL from it.
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Deployed {
    pub stage: String,
    pub routes: Vec<ApiRoute>,
    pub binary_media_types: Vec<String>,
    pub gateway_responses: BTreeMap<String, GatewayResponse>,
    pub access_log_format: Option<String>,
    pub functions: BTreeMap<String, FunctionSpec>,
    /// Parameter defaults (a parameter without one is absent).
    pub parameters: BTreeMap<String, String>,
    /// Resource type per logical id (what a function's `Ref` names).
    pub resource_types: BTreeMap<String, String>,
}

/// The path `make dev` / `make test` wrote the translation to (`$SAM_TEMPLATE_JSON`, else where
/// they write it: `.local/sam/template.json` in the workspace).
pub fn translated_path() -> Result<PathBuf, DeployedError> {
    if let Some(p) = std::env::var_os("SAM_TEMPLATE_JSON") {
        return Ok(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".local").join("sam").join("template.json");
    if p.is_file() { Ok(p) } else { Err(DeployedError::NotTranslated) }
}

impl Deployed {
    pub fn load_default() -> Result<Self, DeployedError> {
        Self::load(&translated_path()?)
    }

    pub fn load(path: &Path) -> Result<Self, DeployedError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DeployedError::Read { path: p.clone(), source })?;
        let doc: Value = serde_json::from_str(&text).map_err(|source| DeployedError::Json { path: p, source })?;
        Self::from_cloudformation(&doc)
    }

    pub fn from_cloudformation(doc: &Value) -> Result<Self, DeployedError> {
        let resources = doc["Resources"].as_object().ok_or_else(|| shape("no Resources"))?;
        let parameters: BTreeMap<String, String> = doc["Parameters"]
            .as_object()
            .map(|ps| ps.iter().filter_map(|(k, v)| Some((k.clone(), scalar(&v["Default"])?))).collect())
            .unwrap_or_default();
        let of_type = |t: &'static str| resources.iter().filter(move |(_, r)| r["Type"] == t);

        let mut apis = of_type("AWS::ApiGateway::RestApi");
        let (api_id, api) = apis.next().ok_or_else(|| shape("no AWS::ApiGateway::RestApi"))?;
        if apis.next().is_some() {
            return Err(shape("more than one REST API; the local stack serves one"));
        }
        let body = &api["Properties"]["Body"];
        let stage_res = of_type("AWS::ApiGateway::Stage")
            .find(|(_, s)| s["Properties"]["RestApiId"]["Ref"] == api_id.as_str())
            .map(|(_, s)| &s["Properties"])
            .ok_or_else(|| shape(format!("no stage for {api_id}")))?;
        let stage = resolve_scalar(&stage_res["StageName"], &parameters)
            .ok_or_else(|| shape("the stage name is neither a literal nor a parameter with a default"))?;
        let access_log_format = stage_res["AccessLogSetting"]["Format"].as_str().map(str::to_string);

        let mut routes = Vec::new();
        for (path, item) in body["paths"].as_object().ok_or_else(|| shape("API body has no paths"))? {
            for (method, op) in item.as_object().into_iter().flatten() {
                let integ = &op["x-amazon-apigateway-integration"];
                if integ.is_null() {
                    continue;
                }
                routes.push(route(resources, path, method, integ)?);
            }
        }
        routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));

        let mut binary_media_types: Vec<String> = body["x-amazon-apigateway-binary-media-types"]
            .as_array()
            .or_else(|| api["Properties"]["BinaryMediaTypes"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(|s| s.replace("~1", "/")))
            .collect();
        binary_media_types.dedup();

        let gateway_responses = body["x-amazon-apigateway-gateway-responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(kind, r)| (kind.clone(), gateway_response(r)))
            .collect();

        let cond = Conditions { defs: &doc["Conditions"], parameters: &parameters };
        let functions = of_type("AWS::Lambda::Function")
            .map(|(id, f)| Ok((id.clone(), function(id, f, &cond)?)))
            .collect::<Result<_, DeployedError>>()?;
        let resource_types =
            resources.iter().filter_map(|(id, r)| Some((id.clone(), r["Type"].as_str()?.to_string()))).collect();
        Ok(Self {
            stage,
            routes,
            binary_media_types,
            gateway_responses,
            access_log_format,
            functions,
            parameters,
            resource_types,
        })
    }

    /// The functions some route invokes, each once.
    pub fn routed_functions(&self) -> Vec<&FunctionSpec> {
        self.functions.values().filter(|f| self.routes.iter().any(|r| r.function == f.logical_id)).collect()
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn resolve_scalar(v: &Value, parameters: &BTreeMap<String, String>) -> Option<String> {
    scalar(v).or_else(|| v["Ref"].as_str().and_then(|p| parameters.get(p).cloned()))
}

/// `${X}` or `${X.Arn}` right after `/functions/` in an integration URI -> X.
fn uri_target(uri: &str) -> Option<&str> {
    let rest = uri.split("/functions/").nth(1)?;
    let inner = rest.strip_prefix("${")?.split('}').next()?;
    Some(inner.split('.').next().unwrap_or(inner))
}

fn route(
    resources: &serde_json::Map<String, Value>,
    path: &str,
    method: &str,
    integ: &Value,
) -> Result<ApiRoute, DeployedError> {
    let at = format!("{} {path}", method.to_uppercase());
    if integ["type"] != "aws_proxy" {
        return Err(shape(format!(
            "{at}: integration type {} (the local stack runs Lambda proxy only)",
            integ["type"]
        )));
    }
    let uri = integ["uri"]["Fn::Sub"].as_str().or_else(|| integ["uri"].as_str()).unwrap_or_default();
    let target = uri_target(uri).ok_or_else(|| shape(format!("{at}: integration URI {uri} names no function")))?;
    // The integration invokes the function's alias (AutoPublishAlias) or the function itself.
    let function = match resources.get(target) {
        Some(r) if r["Type"] == "AWS::Lambda::Alias" => r["Properties"]["FunctionName"]["Ref"]
            .as_str()
            .ok_or_else(|| shape(format!("{at}: alias {target} names no function")))?
            .to_string(),
        Some(r) if r["Type"] == "AWS::Lambda::Function" => target.to_string(),
        _ => return Err(shape(format!("{at}: {target} is not a function or alias of this template"))),
    };
    let streaming_uri = uri.ends_with("/response-streaming-invocations");
    let streamed = integ["responseTransferMode"] == "STREAM";
    if streaming_uri != streamed {
        return Err(shape(format!(
            "{at}: responseTransferMode {} with URI {uri}: API Gateway streams only through response-streaming-invocations",
            integ["responseTransferMode"]
        )));
    }
    let timeout = integ["timeoutInMillis"].as_u64().map(Duration::from_millis).unwrap_or(DEFAULT_INTEGRATION_TIMEOUT);
    Ok(ApiRoute { method: method.to_uppercase(), path: path.to_string(), function, streamed, timeout })
}

fn gateway_response(r: &Value) -> GatewayResponse {
    GatewayResponse {
        status: r["statusCode"].as_str().and_then(|s| s.parse().ok()).or(r["statusCode"].as_u64().map(|n| n as u16)),
        templates: r["responseTemplates"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(ct, t)| Some((ct.clone(), t.as_str()?.to_string())))
            .collect(),
        headers: r["responseParameters"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("gatewayresponse.header.")?;
                let value = v.as_str()?.strip_prefix('\'')?.strip_suffix('\'')?;
                Some((name.to_string(), value.to_string()))
            })
            .collect(),
    }
}

/// The template's conditions, evaluated with the parameters' defaults.
struct Conditions<'a> {
    defs: &'a Value,
    parameters: &'a BTreeMap<String, String>,
}

impl Conditions<'_> {
    fn eval(&self, c: &Value, depth: u8) -> Result<bool, DeployedError> {
        if depth > 16 {
            return Err(shape("conditions nest too deeply"));
        }
        let list = |k: &str| c[k].as_array().ok_or_else(|| shape(format!("{k} takes a list")));
        if let Some(name) = c["Condition"].as_str().or(c.as_str()) {
            return self.eval(&self.defs[name], depth + 1);
        }
        if c.get("Fn::Equals").is_some() {
            let args = list("Fn::Equals")?;
            let v = |i: usize| args.get(i).and_then(|a| resolve_scalar(a, self.parameters));
            return Ok(v(0).is_some() && v(0) == v(1));
        }
        if c.get("Fn::Not").is_some() {
            return Ok(!self.eval(list("Fn::Not")?.first().unwrap_or(&Value::Null), depth + 1)?);
        }
        if c.get("Fn::And").is_some() {
            return list("Fn::And")?.iter().try_fold(true, |acc, x| Ok(acc && self.eval(x, depth + 1)?));
        }
        if c.get("Fn::Or").is_some() {
            return list("Fn::Or")?.iter().try_fold(false, |acc, x| Ok(acc || self.eval(x, depth + 1)?));
        }
        Err(shape(format!("condition {c} is not one the local stack evaluates")))
    }

    /// An environment value: a literal, a Ref, or `Fn::If` between them; None for AWS::NoValue.
    fn env_value(&self, v: &Value, depth: u8) -> Result<Option<EnvValue>, DeployedError> {
        if let Some(s) = scalar(v) {
            return Ok(Some(EnvValue::Literal(s)));
        }
        if let Some(r) = v["Ref"].as_str() {
            return Ok((r != "AWS::NoValue").then(|| EnvValue::Ref(r.to_string())));
        }
        if let Some([c, yes, no]) = v["Fn::If"].as_array().map(Vec::as_slice) {
            let pick =
                if self.eval(&Value::String(c.as_str().unwrap_or_default().into()), depth + 1)? { yes } else { no };
            return self.env_value(pick, depth + 1);
        }
        Err(shape(format!("{v} is neither a literal, a Ref nor an Fn::If")))
    }
}

/// `ReservedConcurrentExecutions`: a number, a parameter, or `Fn::If` between them (None: not
/// reserved, AWS::NoValue or absent).
fn reserved_concurrency(v: &Value, cond: &Conditions) -> Option<u32> {
    let value = match cond.env_value(v, 0).ok()?? {
        EnvValue::Literal(n) => n,
        EnvValue::Ref(p) => cond.parameters.get(&p)?.clone(),
    };
    value.trim().parse().ok()
}

fn function(id: &str, f: &Value, cond: &Conditions) -> Result<FunctionSpec, DeployedError> {
    let props = &f["Properties"];
    let binary = f["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .ok_or_else(|| shape(format!("{id}: no Metadata.BuildProperties.Binary")))?
        .to_string();
    let mut env = BTreeMap::new();
    for (k, v) in props["Environment"]["Variables"].as_object().into_iter().flatten() {
        let value = cond.env_value(v, 0).map_err(|e| shape(format!("{id}: environment variable {k}: {e}")))?;
        if let Some(value) = value {
            env.insert(k.clone(), value);
        }
    }
    let secs = |v: &Value, default: u64| v.as_u64().unwrap_or(default);
    Ok(FunctionSpec {
        logical_id: id.to_string(),
        binary,
        env,
        // Lambda's defaults when the template says nothing.
        timeout: Duration::from_secs(secs(&props["Timeout"], 3)),
        memory_mb: secs(&props["MemorySize"], 128) as u32,
        reserved_concurrency: reserved_concurrency(&props["ReservedConcurrentExecutions"], cond),
        log_format: props["LoggingConfig"]["LogFormat"].as_str().map(str::to_string),
        log_level: props["LoggingConfig"]["ApplicationLogLevel"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(integration: Value) -> Value {
        json!({
            "Parameters": {"Environment": {"Type": "String", "Default": "staging"}},
            "Resources": {
                "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": {
                    "paths": {"/x/{id}": {"get": {"x-amazon-apigateway-integration": integration}}},
                    "x-amazon-apigateway-binary-media-types": ["multipart~1form-data", "audio/*"],
                    "x-amazon-apigateway-gateway-responses": {"DEFAULT_4XX": {
                        "statusCode": "400",
                        "responseParameters": {"gatewayresponse.header.Content-Type": "'application/problem+json'"},
                        "responseTemplates": {"application/json": "{}"}
                    }}
                }}},
                "ApiStage": {"Type": "AWS::ApiGateway::Stage", "Properties": {
                    "RestApiId": {"Ref": "Api"}, "StageName": {"Ref": "Environment"},
                    "AccessLogSetting": {"Format": "$context.requestId"}
                }},
                "FnAliaslive": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Ref": "Fn"}}},
                "Fn": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "fn"}},
                    "Properties": {"Timeout": 7, "Environment": {"Variables": {"A": "1", "T": {"Ref": "Table"}}}}}
            }
        })
    }

    fn integration(uri: &str, mode: Option<&str>) -> Value {
        let mut i = json!({"type": "aws_proxy", "httpMethod": "POST", "uri": {"Fn::Sub": uri}});
        if let Some(m) = mode {
            i["responseTransferMode"] = json!(m);
            i["timeoutInMillis"] = json!(120000);
        }
        i
    }

    const BUFFERED: &str =
        "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${FnAliaslive}/invocations";
    const STREAMED: &str = "arn:aws:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/${FnAliaslive}/response-streaming-invocations";

    #[test]
    fn reads_routes_through_aliases() {
        let d = Deployed::from_cloudformation(&doc(integration(BUFFERED, None))).unwrap();
        assert_eq!(d.stage, "staging");
        assert_eq!(
            d.routes,
            vec![ApiRoute {
                method: "GET".into(),
                path: "/x/{id}".into(),
                function: "Fn".into(),
                streamed: false,
                timeout: DEFAULT_INTEGRATION_TIMEOUT
            }]
        );
        assert_eq!(d.binary_media_types, ["multipart/form-data", "audio/*"]);
        let r = &d.gateway_responses["DEFAULT_4XX"];
        assert_eq!(r.status, Some(400));
        assert_eq!(r.headers, [("Content-Type".to_string(), "application/problem+json".to_string())]);
        let f = &d.functions["Fn"];
        assert_eq!((f.binary.as_str(), f.timeout), ("fn", Duration::from_secs(7)));
        assert_eq!(f.env["T"], EnvValue::Ref("Table".into()));
        assert_eq!(d.access_log_format.as_deref(), Some("$context.requestId"));
    }

    #[test]
    fn streams_only_through_the_streaming_uri() {
        let d = Deployed::from_cloudformation(&doc(integration(STREAMED, Some("STREAM")))).unwrap();
        assert!(d.routes[0].streamed);
        assert_eq!(d.routes[0].timeout, Duration::from_secs(120));
        // Either half alone is a configuration API Gateway does not stream with.
        assert!(Deployed::from_cloudformation(&doc(integration(BUFFERED, Some("STREAM")))).is_err());
        assert!(Deployed::from_cloudformation(&doc(integration(STREAMED, None))).is_err());
    }
}
