//! Reads template.yaml, the single source of routes and tables, into what the local stack needs:
//! each function's API routes, each table's key schema, and which environment variable names
//! which table.

use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template is not valid YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template: {0}")]
    Shape(String),
}

/// One API Gateway route: `method` upper-case (`ANY` for any), `path` as API Gateway spells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// Logical id of the function serving it, e.g. `HealthFunction`.
    pub function: String,
}

#[derive(Debug, Clone)]
pub struct KeyAttr {
    pub name: String,
    /// `S`, `N` or `B`.
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub hash: String,
    pub range: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub logical_id: String,
    pub attributes: Vec<KeyAttr>,
    pub hash: String,
    pub range: Option<String>,
    pub indexes: Vec<Index>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub routes: Vec<Route>,
    pub tables: Vec<Table>,
    /// Global function environment variable -> logical id it `!Ref`s (the tables).
    pub env_refs: BTreeMap<String, String>,
    /// Per function logical id: its own environment variables that `!Ref` a resource (its
    /// secret: `SECRET_ID` -> `!Ref ChatSecret`).
    pub function_env_refs: BTreeMap<String, BTreeMap<String, String>>,
    /// Binary name (`Metadata.BuildProperties.Binary`) per function logical id.
    pub binaries: BTreeMap<String, String>,
}

/// The repository's template.yaml (the workspace root is the parent of this crate).
pub fn default_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("template.yaml")
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    pub fn load_default() -> Result<Self, TemplateError> {
        Self::load(&default_path())
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_yaml::from_str(text)?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::Shape("no Resources".into()))?;
        let mut routes = Vec::new();
        let mut tables = Vec::new();
        let mut binaries = BTreeMap::new();
        let mut function_env_refs = BTreeMap::new();
        for (id, res) in resources {
            let id = id.as_str().ok_or_else(|| TemplateError::Shape("non-string resource id".into()))?;
            match res.get("Type").and_then(Value::as_str) {
                Some("AWS::Serverless::Function") => {
                    if let Some(bin) = res
                        .get("Metadata")
                        .and_then(|m| m.get("BuildProperties"))
                        .and_then(|b| b.get("Binary"))
                        .and_then(Value::as_str)
                    {
                        binaries.insert(id.to_string(), bin.to_string());
                    }
                    routes.extend(function_routes(id, res)?);
                    let refs: BTreeMap<String, String> = res
                        .get("Properties")
                        .and_then(|p| p.get("Environment"))
                        .and_then(|e| e.get("Variables"))
                        .and_then(Value::as_mapping)
                        .map(|vars| {
                            vars.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), ref_target(v)?))).collect()
                        })
                        .unwrap_or_default();
                    function_env_refs.insert(id.to_string(), refs);
                }
                Some("AWS::DynamoDB::Table") => tables.push(table(id, res)?),
                _ => {}
            }
        }
        routes.sort();
        let env_refs = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .map(|vars| vars.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), ref_target(v)?))).collect())
            .unwrap_or_default();
        Ok(Self { routes, tables, env_refs, function_env_refs, binaries })
    }

    /// `function`'s environment variable `var`'s `!Ref` target: its own, else the global one.
    pub fn env_ref(&self, function: &str, var: &str) -> Option<&String> {
        self.function_env_refs.get(function).and_then(|r| r.get(var)).or_else(|| self.env_refs.get(var))
    }

    /// Environment variables naming tables, with the physical name each gets under `prefix`.
    pub fn table_env(&self, prefix: &str) -> BTreeMap<String, String> {
        self.env_refs
            .iter()
            .filter(|(_, target)| self.tables.iter().any(|t| &t.logical_id == *target))
            .map(|(var, target)| (var.clone(), physical_table_name(prefix, target)))
            .collect()
    }
}

/// Local physical name of a table: `{prefix}{LogicalId}`.
pub fn physical_table_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}{logical_id}")
}

/// `!Ref X` -> X.
fn ref_target(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_string),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn function_routes(id: &str, res: &Value) -> Result<Vec<Route>, TemplateError> {
    let Some(events) = res.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, ev) in events {
        if ev.get("Type").and_then(Value::as_str) != Some("Api") {
            continue;
        }
        let props = ev.get("Properties");
        let field =
            |f: &str| {
                props.and_then(|p| p.get(f)).and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
                    TemplateError::Shape(format!("{id}.Events.{}: no {f}", name.as_str().unwrap_or("?")))
                })
            };
        out.push(Route { method: field("Method")?.to_uppercase(), path: field("Path")?, function: id.to_string() });
    }
    Ok(out)
}

fn str_field(v: &Value, f: &str, ctx: &str) -> Result<String, TemplateError> {
    v.get(f).and_then(Value::as_str).map(str::to_string).ok_or_else(|| TemplateError::Shape(format!("{ctx}: no {f}")))
}

fn key_schema(v: Option<&Value>, ctx: &str) -> Result<(String, Option<String>), TemplateError> {
    let list = v.and_then(Value::as_sequence).ok_or_else(|| TemplateError::Shape(format!("{ctx}: no KeySchema")))?;
    let mut hash = None;
    let mut range = None;
    for k in list {
        let name = str_field(k, "AttributeName", ctx)?;
        match str_field(k, "KeyType", ctx)?.as_str() {
            "HASH" => hash = Some(name),
            "RANGE" => range = Some(name),
            other => return Err(TemplateError::Shape(format!("{ctx}: key type {other}"))),
        }
    }
    Ok((hash.ok_or_else(|| TemplateError::Shape(format!("{ctx}: no HASH key")))?, range))
}

fn table(id: &str, res: &Value) -> Result<Table, TemplateError> {
    let props = res.get("Properties").ok_or_else(|| TemplateError::Shape(format!("{id}: no Properties")))?;
    let attributes = props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .ok_or_else(|| TemplateError::Shape(format!("{id}: no AttributeDefinitions")))?
        .iter()
        .map(|a| Ok(KeyAttr { name: str_field(a, "AttributeName", id)?, kind: str_field(a, "AttributeType", id)? }))
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let (hash, range) = key_schema(props.get("KeySchema"), id)?;
    let indexes = props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .map(|seq| {
            seq.iter()
                .map(|i| {
                    let name = str_field(i, "IndexName", id)?;
                    let (hash, range) = key_schema(i.get("KeySchema"), &name)?;
                    Ok(Index { name, hash, range })
                })
                .collect::<Result<Vec<_>, TemplateError>>()
        })
        .transpose()?
        .unwrap_or_default();
    let ttl_attribute = props
        .get("TimeToLiveSpecification")
        .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
        .and_then(|t| t.get("AttributeName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Table { logical_id: id.to_string(), attributes, hash, range, indexes, ttl_attribute })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_template() {
        let t = Template::load_default().unwrap();
        assert!(t.routes.iter().any(|r| r.method == "GET" && r.path == "/health" && r.function == "HealthFunction"));
        let users = t.tables.iter().find(|t| t.logical_id == "UsersTable").unwrap();
        assert_eq!(users.hash, "pk");
        let limits = t.tables.iter().find(|t| t.logical_id == "RateLimitsTable").unwrap();
        assert_eq!(limits.ttl_attribute.as_deref(), Some("expires_at"));
        let env = t.table_env("x-");
        assert_eq!(env["USERS_TABLE"], "x-UsersTable");
        assert_eq!(env.len(), 5);
        assert_eq!(t.binaries["HealthFunction"], "health");
    }
}
