//! The API's OpenAPI document: every routed function's own document merged into one, which the
//! docs function embeds (`make openapi` writes it; the contract test checks it is current).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use utoipa::openapi::OpenApi;

use crate::{functions, template::Template};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("template.yaml routes to {0}, which has no OpenAPI document in this build (local/src/functions.rs)")]
    UnknownFunction(String),
    #[error("{method} {path} is documented by both {first} and {second}")]
    DuplicateRoute { method: String, path: String, first: String, second: String },
    #[error("operationId {id} is used by both {first} and {second}")]
    DuplicateOperationId { id: String, first: String, second: String },
    #[error("{function} defines {kind} '{name}' differently from an earlier function")]
    ConflictingComponent { function: String, kind: &'static str, name: String },
}

/// Where the docs function embeds the document from.
pub fn embedded_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions/docs/openapi.json")
}

/// The document as the generator writes it: pretty JSON and a final newline.
pub fn render(doc: &OpenApi) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

fn component_json<T: serde::Serialize>(map: &BTreeMap<String, T>) -> BTreeMap<String, serde_json::Value> {
    map.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect()
}

/// The merged document of every function template.yaml routes to.
pub fn document(template: &Template) -> Result<OpenApi, MergeError> {
    let functions: BTreeSet<&str> = template.routes.iter().map(|r| r.function.as_str()).collect();
    let documents = functions
        .into_iter()
        .map(|f| functions::openapi_for(f).map(|api| (f, api)).ok_or_else(|| MergeError::UnknownFunction(f.into())))
        .collect::<Result<Vec<_>, _>>()?;
    merge(documents)
}

/// Merges function documents into [`baatcheet_shared::openapi::base`], refusing two functions
/// that claim one route or operationId, or define one component name two ways.
pub fn merge<'a>(documents: impl IntoIterator<Item = (&'a str, OpenApi)>) -> Result<OpenApi, MergeError> {
    let mut doc = baatcheet_shared::openapi::base();
    let mut routes: BTreeMap<(String, String), &str> = BTreeMap::new();
    let mut operation_ids: BTreeMap<String, &str> = BTreeMap::new();
    let mut components: BTreeMap<(&'static str, String), (serde_json::Value, &str)> = BTreeMap::new();
    for (function, api) in documents {
        for (path, item) in &api.paths.paths {
            for (method, op) in baatcheet_shared::openapi::operations(item) {
                if let Some(first) = routes.insert((method.into(), path.clone()), function) {
                    return Err(MergeError::DuplicateRoute {
                        method: method.into(),
                        path: path.clone(),
                        first: first.into(),
                        second: function.into(),
                    });
                }
                if let Some(id) = &op.operation_id
                    && let Some(first) = operation_ids.insert(id.clone(), function)
                {
                    return Err(MergeError::DuplicateOperationId {
                        id: id.clone(),
                        first: first.into(),
                        second: function.into(),
                    });
                }
            }
        }
        if let Some(c) = &api.components {
            let kinds = [
                ("schema", component_json(&c.schemas)),
                ("response", component_json(&c.responses)),
                ("security scheme", component_json(&c.security_schemes)),
            ];
            for (kind, entries) in kinds {
                for (name, value) in entries {
                    match components.get(&(kind, name.clone())) {
                        Some((seen, _)) if *seen != value => {
                            return Err(MergeError::ConflictingComponent { function: function.into(), kind, name });
                        }
                        Some(_) => {}
                        None => {
                            components.insert((kind, name), (value, function));
                        }
                    }
                }
            }
        }
        doc.merge(api);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::{
        ComponentsBuilder, ObjectBuilder, Type,
        path::{HttpMethod, OperationBuilder, PathItem},
        response::Response,
    };

    fn function(path: &str, operation_id: &str, schema_type: Type) -> OpenApi {
        let op = OperationBuilder::new().operation_id(Some(operation_id)).response("200", Response::new("ok")).build();
        let mut api = baatcheet_shared::openapi::base();
        api.paths.paths.insert(path.into(), PathItem::new(HttpMethod::Get, op));
        let components =
            ComponentsBuilder::new().schema("Thing", ObjectBuilder::new().schema_type(schema_type)).build();
        api.components.get_or_insert_default().schemas.extend(components.schemas);
        api
    }

    #[test]
    fn merges_distinct_functions() {
        let doc =
            merge([("A", function("/a", "getA", Type::Object)), ("B", function("/b", "getB", Type::Object))]).unwrap();
        assert_eq!(baatcheet_shared::openapi::routes(&doc).len(), 2);
        assert!(doc.components.unwrap().schemas.contains_key("Thing"));
    }

    #[test]
    fn refuses_what_two_functions_both_claim() {
        let err =
            merge([("A", function("/a", "getA", Type::Object)), ("B", function("/a", "getB", Type::Object))]).err();
        assert!(matches!(err, Some(MergeError::DuplicateRoute { .. })), "{err:?}");
        let err = merge([("A", function("/a", "get", Type::Object)), ("B", function("/b", "get", Type::Object))]).err();
        assert!(matches!(err, Some(MergeError::DuplicateOperationId { .. })), "{err:?}");
        let err =
            merge([("A", function("/a", "getA", Type::Object)), ("B", function("/b", "getB", Type::String))]).err();
        assert!(matches!(err, Some(MergeError::ConflictingComponent { kind: "schema", .. })), "{err:?}");
    }
}
