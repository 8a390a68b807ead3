//! A recording HTTP proxy in front of the local AWS endpoint. Each request is forwarded unchanged
//! (method, path, headers, body) and answered with the endpoint's own response; on the way, every
//! call is noted with its operation (from `X-Amz-Target`) and what its JSON body names: tables,
//! indexes, transaction items, batch tables, secrets. The IAM test compares these with the grants
//! template.yaml gives the function that made them.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderName, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Larger than any request DynamoDB or Secrets Manager accepts.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    SecretsManager,
    /// Anything else, by its `X-Amz-Target` prefix (empty when the header is missing).
    Other(String),
}

/// One resource a call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The item kind inside TransactWriteItems / TransactGetItems (`Put`, `Update`, `Delete`,
    /// `ConditionCheck`, `Get`); None when the call itself names the resource.
    pub item: Option<String>,
    /// Physical table name or secret id, as sent.
    pub name: String,
    /// `IndexName` (Query, Scan).
    pub index: Option<String>,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    pub service: Service,
    /// `GetItem`, `TransactWriteItems`, `GetSecretValue`, ...
    pub operation: String,
    pub names: Vec<Named>,
}

impl AwsCall {
    /// Reads a call of the AWS JSON protocols: `X-Amz-Target: DynamoDB_20120810.GetItem` or
    /// `secretsmanager.GetSecretValue`, and its body.
    pub fn parse(target: Option<&str>, body: &[u8]) -> Self {
        let target = target.unwrap_or("");
        let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let (service, names) = if prefix.starts_with("DynamoDB_") {
            (Service::DynamoDb, dynamodb_names(&json))
        } else if prefix == "secretsmanager" {
            let names = json["SecretId"].as_str().map(|id| Named { item: None, name: id.into(), index: None });
            (Service::SecretsManager, names.into_iter().collect())
        } else {
            (Service::Other(prefix.to_string()), Vec::new())
        };
        Self { service, operation: operation.to_string(), names }
    }
}

/// `TableName` (+ `IndexName`), each `TransactItems[*].{kind}.TableName`, each `RequestItems` key,
/// the table of a `ResourceArn`.
fn dynamodb_names(json: &Value) -> Vec<Named> {
    let mut out = Vec::new();
    if let Some(table) = json["TableName"].as_str() {
        out.push(Named { item: None, name: table.into(), index: json["IndexName"].as_str().map(str::to_string) });
    }
    for item in json["TransactItems"].as_array().into_iter().flatten() {
        for (kind, inner) in item.as_object().into_iter().flatten() {
            if let Some(table) = inner["TableName"].as_str() {
                out.push(Named { item: Some(kind.clone()), name: table.into(), index: None });
            }
        }
    }
    for table in json["RequestItems"].as_object().into_iter().flat_map(|m| m.keys()) {
        out.push(Named { item: None, name: table.clone(), index: None });
    }
    // Tagging and a few others name their table by ARN (`arn:aws:dynamodb:...:table/NAME[/index/I]`).
    if let Some((_, rest)) = json["ResourceArn"].as_str().and_then(|arn| arn.split_once(":table/")) {
        out.push(Named { item: None, name: rest.split('/').next().unwrap_or(rest).into(), index: None });
    }
    out
}

/// When a call arrived at the proxy and when the endpoint's whole answer was back at it: the time
/// a caller spent waiting on the local endpoint (the proxy's own hop included).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: Instant,
    pub end: Instant,
}

/// The time covered by `spans` between `from` and `to`, overlaps counted once (calls a caller
/// makes concurrently wait together).
pub fn time_within(spans: &[Span], from: Instant, to: Instant) -> std::time::Duration {
    let mut clipped: Vec<(Instant, Instant)> =
        spans.iter().map(|s| (s.start.max(from), s.end.min(to))).filter(|(a, b)| a < b).collect();
    clipped.sort_by_key(|(a, _)| *a);
    let mut total = std::time::Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (a, b) in clipped {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((a, b)) = current {
        total += b - a;
    }
    total
}

#[derive(Clone)]
struct Inner {
    upstream: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<AwsCall>>>,
    spans: Arc<Mutex<Vec<Span>>>,
}

/// The proxy, served on 127.0.0.1 on an ephemeral port for as long as the test runs.
pub struct RecordingProxy {
    pub url: String,
    calls: Arc<Mutex<Vec<AwsCall>>>,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl RecordingProxy {
    /// A proxy to `upstream` (`http://host:port`, e.g. `crate::endpoint()`).
    pub async fn to(upstream: &str) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let inner = Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder().build().expect("client"),
            calls: calls.clone(),
            spans: spans.clone(),
        };
        let app = Router::new().fallback(forward).with_state(inner);
        let addr = crate::serve(app).await;
        Self { url: format!("http://{addr}"), calls, spans }
    }

    /// When each call in flight between `from` and `to` was, in the order they were answered
    /// (a long run's earlier calls are not copied).
    pub fn spans_between(&self, from: Instant, to: Instant) -> Vec<Span> {
        let spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        spans.iter().filter(|s| s.end > from && s.start < to).copied().collect()
    }

    /// Every call recorded so far, in arrival order (retries included).
    pub fn calls(&self) -> Vec<AwsCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Connection-level headers: each hop sets its own (the body's length is unchanged).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade")
}

async fn forward(State(proxy): State<Inner>, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "recording proxy: request body too large").into_response();
    };
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    proxy.calls.lock().unwrap_or_else(|e| e.into_inner()).push(AwsCall::parse(target, &body));
    let response = relay(&proxy.client, &proxy.upstream, parts, body).await;
    proxy.spans.lock().unwrap_or_else(|e| e.into_inner()).push(Span { start, end: Instant::now() });
    response
}

/// Sends a request on to `server` (`http://host:port`) unchanged and answers with the server's
/// own status, headers and body; a server that cannot be reached is a 502.
pub async fn relay(client: &reqwest::Client, server: &str, parts: http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = client.request(parts.method, format!("{server}{path}")).body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        out = out.header(name, value);
    }
    let res = match out.send().await {
        Ok(res) => res,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {server} failed: {e}")).into_response(),
    };
    let status = res.status();
    let headers = res.headers().clone();
    let bytes: Bytes = match res.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {server} body: {e}")).into_response(),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        response.headers_mut().append(name, value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(target: &str, body: Value) -> AwsCall {
        AwsCall::parse(Some(target), body.to_string().as_bytes())
    }

    fn named(item: Option<&str>, name: &str, index: Option<&str>) -> Named {
        Named { item: item.map(str::to_string), name: name.into(), index: index.map(str::to_string) }
    }

    #[test]
    fn time_within_counts_overlaps_once_and_clips_to_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let spans = [
            Span { start: at(10), end: at(20) },
            Span { start: at(15), end: at(25) },
            Span { start: at(30), end: at(40) },
            Span { start: at(90), end: at(120) },
        ];
        let ms = |d: std::time::Duration| d.as_millis();
        assert_eq!(ms(time_within(&spans, at(0), at(100))), 15 + 10 + 10);
        assert_eq!(ms(time_within(&spans, at(18), at(35))), 7 + 5);
        assert_eq!(ms(time_within(&[], at(0), at(100))), 0);
    }

    #[test]
    fn reads_table_and_index() {
        let c = parse("DynamoDB_20120810.Query", json!({"TableName": "t-Conv", "IndexName": "by-user"}));
        assert_eq!((c.service, c.operation.as_str()), (Service::DynamoDb, "Query"));
        assert_eq!(c.names, [named(None, "t-Conv", Some("by-user"))]);
    }

    #[test]
    fn reads_every_transaction_item() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "a", "Item": {}}},
            {"Update": {"TableName": "b", "Key": {}}},
            {"Delete": {"TableName": "c", "Key": {}}},
            {"ConditionCheck": {"TableName": "d", "Key": {}}},
        ]});
        let c = parse("DynamoDB_20120810.TransactWriteItems", body);
        assert_eq!(
            c.names,
            [
                named(Some("Put"), "a", None),
                named(Some("Update"), "b", None),
                named(Some("Delete"), "c", None),
                named(Some("ConditionCheck"), "d", None)
            ]
        );
    }

    #[test]
    fn reads_batch_tables_and_secrets() {
        let c =
            parse("DynamoDB_20120810.BatchGetItem", json!({"RequestItems": {"x": {"Keys": []}, "y": {"Keys": []}}}));
        assert_eq!(c.names, [named(None, "x", None), named(None, "y", None)]);
        let c = parse("secretsmanager.GetSecretValue", json!({"SecretId": "t-secret"}));
        assert_eq!((c.service, c.operation.as_str()), (Service::SecretsManager, "GetSecretValue"));
        assert_eq!(c.names, [named(None, "t-secret", None)]);
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t-Limits/index/by-user";
        let c = parse("DynamoDB_20120810.ListTagsOfResource", json!({"ResourceArn": arn}));
        assert_eq!(c.names, [named(None, "t-Limits", None)]);
        let c = AwsCall::parse(None, b"Action=Publish");
        assert_eq!((c.service, c.names.len()), (Service::Other(String::new()), 0));
    }
}
