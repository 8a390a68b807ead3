//! The local AWS endpoint split by table over several servers, for load runs.
//!
//! moto answers one request at a time on one Python thread; under the load test's spike it is the
//! one saturated process while the machine still has idle CPU. DynamoDB itself spreads tables
//! (and partitions) over many servers, so a load run may too: this proxy sends each request to the
//! server that holds the tables it names (`routes`), everything else (Secrets Manager, tables not
//! listed) to the default one. A request is forwarded unchanged and answered with that server's
//! own response, so the SDK cannot tell. A request whose tables live on different servers (a
//! transaction or batch across them) or that names no table but concerns all of them (ListTables,
//! PartiQL statements) is refused with a DynamoDB `ValidationException` rather than half-served:
//! no such request is made by the API's functions (`make load` runs them through this proxy).

use crate::aws_proxy::{AwsCall, MAX_BODY_BYTES, Service, relay};
use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use std::collections::HashMap;
use std::sync::Arc;

/// DynamoDB operations that concern every table, so no single server can answer them.
const ALL_TABLES: &[&str] = &["ListTables", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error(
        "{operation} names tables held by different servers ({tables}); the shard proxy cannot serve it atomically"
    )]
    SpansShards { operation: String, tables: String },
    #[error("{0} concerns every table; the shard proxy serves requests that name their tables")]
    AllTables(String),
}

/// Which server holds which table: index 0 is the default.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    tables: HashMap<String, usize>,
}

impl Routes {
    /// `tables[i]` lists the tables held by server `i + 1`; any other table is on server 0.
    pub fn new(tables: &[Vec<String>]) -> Self {
        let tables =
            tables.iter().enumerate().flat_map(|(i, names)| names.iter().map(move |n| (n.clone(), i + 1))).collect();
        Self { tables }
    }

    fn server_of(&self, table: &str) -> usize {
        self.tables.get(table).copied().unwrap_or(0)
    }

    /// The server for one request (its `X-Amz-Target` and body).
    pub fn route(&self, target: Option<&str>, body: &[u8]) -> Result<usize, RouteError> {
        let call = AwsCall::parse(target, body);
        if call.service != Service::DynamoDb {
            return Ok(0);
        }
        if ALL_TABLES.contains(&call.operation.as_str()) {
            return Err(RouteError::AllTables(call.operation));
        }
        let tables: Vec<&str> = call.names.iter().map(|n| n.name.as_str()).collect();
        let mut servers = tables.iter().map(|t| self.server_of(t));
        let first = servers.next().unwrap_or(0);
        if servers.any(|s| s != first) {
            return Err(RouteError::SpansShards { operation: call.operation, tables: tables.join(", ") });
        }
        Ok(first)
    }
}

#[derive(Clone)]
struct Inner {
    servers: Arc<[String]>,
    routes: Arc<Routes>,
    client: reqwest::Client,
}

/// The proxy's router: every request to the server `routes` picks among `servers`
/// (`http://host:port`, index 0 the default).
pub fn router(servers: Vec<String>, routes: Routes) -> Router {
    let servers: Arc<[String]> = servers.into_iter().map(|s| s.trim_end_matches('/').to_string()).collect();
    let client = reqwest::Client::builder().build().expect("an HTTP client without TLS settings builds");
    Router::new().fallback(forward).with_state(Inner { servers, routes: Arc::new(routes), client })
}

/// A DynamoDB error as the SDK reads it (`__type` names the error, `message` says why).
fn validation_error(e: &RouteError) -> Response {
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ValidationException",
        "message": e.to_string(),
    });
    let mut res = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.0"));
    res
}

async fn forward(State(proxy): State<Inner>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "shard proxy: request body too large").into_response();
    };
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let server = match proxy.routes.route(target, &body) {
        Ok(i) => match proxy.servers.get(i) {
            Some(server) => server,
            None => return (StatusCode::BAD_GATEWAY, format!("shard proxy: no server {i}")).into_response(),
        },
        Err(e) => return validation_error(&e),
    };
    relay(&proxy.client, server, parts, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routes() -> Routes {
        Routes::new(&[vec!["limits".into()], vec!["other".into(), "third".into()]])
    }

    fn route(op: &str, body: serde_json::Value) -> Result<usize, RouteError> {
        routes().route(Some(&format!("DynamoDB_20120810.{op}")), body.to_string().as_bytes())
    }

    #[test]
    fn a_table_goes_to_its_server_and_others_to_the_default() {
        assert_eq!(route("GetItem", json!({"TableName": "limits"})), Ok(1));
        assert_eq!(route("Query", json!({"TableName": "third", "IndexName": "i"})), Ok(2));
        assert_eq!(route("PutItem", json!({"TableName": "conversations"})), Ok(0));
        assert_eq!(route("DescribeLimits", json!({})), Ok(0));
        assert_eq!(routes().route(Some("secretsmanager.GetSecretValue"), br#"{"SecretId":"limits"}"#), Ok(0));
        assert_eq!(routes().route(None, b"not json"), Ok(0));
    }

    #[test]
    fn transactions_and_batches_stay_on_one_server() {
        let same = json!({"TransactItems": [
            {"Update": {"TableName": "other", "Key": {}}},
            {"ConditionCheck": {"TableName": "third", "Key": {}}},
        ]});
        assert_eq!(route("TransactWriteItems", same), Ok(2));
        let across = json!({"TransactItems": [
            {"Put": {"TableName": "conversations", "Item": {}}},
            {"Update": {"TableName": "limits", "Key": {}}},
        ]});
        assert!(matches!(route("TransactWriteItems", across), Err(RouteError::SpansShards { .. })));
        let batch = json!({"RequestItems": {"limits": {"Keys": []}, "other": {"Keys": []}}});
        assert!(matches!(route("BatchGetItem", batch), Err(RouteError::SpansShards { .. })));
        let gets = json!({"TransactItems": [{"Get": {"TableName": "limits", "Key": {}}}]});
        assert_eq!(route("TransactGetItems", gets), Ok(1));
    }

    #[test]
    fn tables_named_by_arn_and_operations_on_every_table() {
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/limits";
        assert_eq!(route("TagResource", json!({"ResourceArn": arn, "Tags": []})), Ok(1));
        assert_eq!(route("ListTagsOfResource", json!({"ResourceArn": format!("{arn}/index/by-user")})), Ok(1));
        assert_eq!(route("ListTables", json!({})), Err(RouteError::AllTables("ListTables".into())));
        let statement = json!({"Statement": "SELECT * FROM limits"});
        assert_eq!(route("ExecuteStatement", statement), Err(RouteError::AllTables("ExecuteStatement".into())));
    }

    #[test]
    fn a_refusal_reads_as_a_dynamodb_validation_error() {
        let res = validation_error(&RouteError::AllTables("ListTables".into()));
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/x-amz-json-1.0");
    }
}
