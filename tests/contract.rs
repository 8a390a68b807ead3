//! One contract for the API's routes. On every (method, path) these agree:
//!
//! - template.yaml: what API Gateway routes, and to which function;
//! - each function's router: what it serves, found by probing it (what its fallbacks answer, the
//!   router's 404 or a 405, is not served);
//! - each function's `openapi()` and the document the docs function embeds.
//!
//! And the embedded document is exactly what the code generates (`make openapi`), and each route is
//! reached (signed in or not) as its function's route table declares.
//!
//! OPTIONS is never documented nor served by a route: the shared CORS layer answers every
//! OPTIONS request (the preflight). An OPTIONS route in template.yaml is therefore only allowed
//! on a path that has other routes, and must get a CORS answer from its function.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use baatcheet_local::{functions, openapi};
use baatcheet_shared::rate_limit::Access;
use baatcheet_tests::{TestStack, as_client, template};
use serde_json::Value;
use tower::ServiceExt;

type Routes = BTreeSet<(String, String)>;

/// Methods a router is probed with on every known path (OPTIONS and HEAD are answered by the
/// CORS layer and by axum for any GET route, so they say nothing about the routes).
const PROBE_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Functions template.yaml routes requests to.
fn routed_functions() -> BTreeSet<String> {
    template().routes.iter().map(|r| r.function.clone()).collect()
}

/// Template routes (OPTIONS aside), of one function or of all.
fn template_routes(function: Option<&str>) -> Routes {
    template()
        .routes
        .iter()
        .filter(|r| r.method != "OPTIONS" && function.is_none_or(|f| r.function == f))
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn embedded() -> Value {
    serde_json::from_str(docs::DOCUMENT).expect("functions/docs/openapi.json is JSON")
}

/// (METHOD, path) of every operation in a document (as JSON).
fn document_routes(doc: &Value) -> Routes {
    let mut out = Routes::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn diff(what: &str, left: (&str, &Routes), right: (&str, &Routes)) -> String {
    let only = |a: &Routes, b: &Routes| a.difference(b).map(|(m, p)| format!("{m} {p}")).collect::<Vec<_>>();
    format!("{what}: only in {}: {:?}; only in {}: {:?}", left.0, only(left.1, right.1), right.0, only(right.1, left.1))
}

#[test]
fn embedded_document_is_what_the_code_generates() {
    let generated = openapi::render(&openapi::document(template()).expect("every function's document merges"));
    if generated != docs::DOCUMENT {
        let line = generated.lines().zip(docs::DOCUMENT.lines()).position(|(a, b)| a != b).map_or(0, |n| n + 1);
        panic!(
            "functions/docs/openapi.json is not what the code generates (first difference near line {line}): run `make openapi`"
        );
    }
}

#[test]
fn template_routes_are_explicit() {
    let t = template();
    assert!(!t.routes.is_empty());
    for r in &t.routes {
        assert_ne!(r.method, "ANY", "{}: ANY routes every method; list them so the contract can check each", r.path);
        assert!(r.path.starts_with('/'), "{}", r.path);
        assert!(!r.path.contains("+}"), "{}: greedy path parameters have no OpenAPI equivalent", r.path);
        if r.method == "OPTIONS" {
            assert!(
                t.routes.iter().any(|o| o.path == r.path && o.method != "OPTIONS" && o.function == r.function),
                "OPTIONS {} has no other route on its path in {}",
                r.path,
                r.function
            );
        }
    }
}

#[test]
fn template_keeps_the_stage_out_of_function_paths() {
    let text = std::fs::read_to_string(baatcheet_local::template::default_path()).expect("template.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let global = &doc["Globals"]["Function"]["Environment"]["Variables"]["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"];
    assert_eq!(global.as_str(), Some("true"), "Globals must set AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH: \"true\"");
    for (id, res) in doc["Resources"].as_mapping().expect("Resources") {
        let own = &res["Properties"]["Environment"]["Variables"]["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"];
        assert!(own.is_null() || own.as_str() == Some("true"), "{id:?} overrides AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH");
    }
}

#[test]
fn every_function_documents_exactly_its_template_routes() {
    for function in routed_functions() {
        let api = functions::openapi_for(&function)
            .unwrap_or_else(|| panic!("{function} has no openapi_for arm in local/src/functions.rs"));
        let documented = baatcheet_shared::openapi::routes(&api);
        let routed = template_routes(Some(&function));
        assert_eq!(documented, routed, "{}", diff(&function, ("openapi()", &documented), ("template.yaml", &routed)));
    }
}

#[test]
fn embedded_document_describes_exactly_the_template_routes() {
    let documented = document_routes(&embedded());
    let routed = template_routes(None);
    assert_eq!(documented, routed, "{}", diff("document", ("openapi.json", &documented), ("template.yaml", &routed)));
}

/// Whether the request reached no route: a 405, or the router's own 404 (a handler's 404 names
/// what it did not find).
async fn unrouted(res: axum::response::Response) -> bool {
    match res.status() {
        http::StatusCode::METHOD_NOT_ALLOWED => true,
        http::StatusCode::NOT_FOUND => {
            let baatcheet_shared::ApiError::NotFound(router) = baatcheet_shared::error::not_found().await else {
                panic!("the router's fallback is a 404")
            };
            let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("a body");
            serde_json::from_slice::<Value>(&body).expect("problem+json")["detail"] == router.as_str()
        }
        _ => false,
    }
}

/// The template's path with every parameter filled in.
fn concrete(path: &str) -> String {
    path.split('/').map(|seg| if seg.starts_with('{') { "contract-probe" } else { seg }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn every_function_serves_exactly_its_documented_routes() {
    let stack = TestStack::new().await;
    let ctx = stack.context().await;
    for function in routed_functions() {
        let router = as_client(functions::router_for(&function, &ctx).expect("function exists"), "198.51.100.40");
        let routed = template_routes(Some(&function));
        let documented = baatcheet_shared::openapi::routes(&functions::openapi_for(&function).expect("document"));
        let paths: BTreeSet<String> = routed.iter().chain(&documented).map(|(_, p)| p.clone()).collect();
        let mut served = Routes::new();
        for path in &paths {
            for method in PROBE_METHODS {
                let req = http::Request::builder().method(method).uri(concrete(path)).body(Body::empty()).unwrap();
                let res = router.clone().oneshot(req).await.expect("infallible");
                if !unrouted(res).await {
                    served.insert((method.to_string(), path.clone()));
                }
            }
        }
        assert_eq!(served, routed, "{}", diff(&function, ("router", &served), ("template.yaml", &routed)));
    }
}

/// Each route is reached as its function's route table declares: without a token, a route for a
/// signed-in user answers 401 before anything else runs, and a public or unlimited one does not.
#[tokio::test]
async fn every_route_is_reached_as_its_table_declares() {
    let stack = TestStack::new().await;
    let ctx = stack.context().await;
    let mut checked = 0;
    for function in routed_functions() {
        let router = as_client(functions::router_for(&function, &ctx).expect("function exists"), "198.51.100.41");
        let rows = functions::routes_for(&function).expect("a route table");
        for row in rows {
            let req = http::Request::builder().method(row.method.as_str()).uri(concrete(&row.path)).body(Body::empty());
            let res = router.clone().oneshot(req.unwrap()).await.expect("infallible");
            let signed_in = matches!(row.access, Access::SignedIn | Access::SignedInLimited);
            let what = format!("{} {} ({function}, {:?})", row.method, row.path, row.access);
            assert_eq!(res.status() == http::StatusCode::UNAUTHORIZED, signed_in, "{what}: {}", res.status());
            checked += 1;
        }
    }
    assert_eq!(checked, template_routes(None).len(), "every routed operation is a row of a table");
}

#[tokio::test]
async fn options_routes_are_preflights_the_cors_layer_answers() {
    assert!(!document_routes(&embedded()).iter().any(|(m, _)| m == "OPTIONS"), "OPTIONS is never documented");
    let stack = TestStack::new().await;
    let ctx = stack.context().await;
    let origin = "https://app.baatcheet.test"; // allowed by TestStack's CORS configuration
    for r in template().routes.iter().filter(|r| r.method == "OPTIONS") {
        let other = template()
            .routes
            .iter()
            .find(|o| o.path == r.path && o.method != "OPTIONS")
            .expect("checked by template_routes_are_explicit");
        let router = as_client(functions::router_for(&r.function, &ctx).expect("function exists"), "198.51.100.40");
        let req = http::Request::builder()
            .method("OPTIONS")
            .uri(concrete(&r.path))
            .header("origin", origin)
            .header("access-control-request-method", &other.method)
            .body(Body::empty())
            .unwrap();
        let res = router.oneshot(req).await.expect("infallible");
        assert!(res.status().is_success(), "OPTIONS {}: {}", r.path, res.status());
        assert_eq!(res.headers()["access-control-allow-origin"], origin, "OPTIONS {}", r.path);
        let methods = res.headers()["access-control-allow-methods"].to_str().unwrap().to_string();
        assert!(methods.contains(&other.method), "OPTIONS {}: {methods}", r.path);
    }
}

/// Every `"$ref"` in a JSON value.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn embedded_document_is_complete_and_consistent() {
    let doc = embedded();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: only local references"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().cloned().unwrap_or_default();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (method, path) in document_routes(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let what = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{what}: no operationId")).to_string();
        if let Some(first) = ids.insert(id.clone(), what.clone()) {
            panic!("operationId {id} used by {first} and {what}");
        }
        assert!(op["summary"].is_string(), "{what}: no summary (the handler's doc comment)");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{what}: no responses"));
        assert!(responses.keys().any(|s| s.starts_with('2')), "{what}: no success response");
        assert!(responses.contains_key("500"), "{what}: no 500 (openapi::finish adds it)");
        // Each path parameter of the template is declared, and nothing else is.
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(in_path, declared, "{what}: path parameters");
        for req in op["security"].as_array().into_iter().flatten() {
            for name in req.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(name), "{what}: unknown security scheme {name}");
            }
        }
        // A route that takes credentials says what happens without them.
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            assert!(responses.contains_key("401"), "{what}: secured but documents no 401");
        }
    }
}
