//! IAM grants as template.yaml writes them, and what a function's recorded AWS calls need.
//!
//! - [`template_grants`] reads every `AWS::Serverless::Function`'s inline policy statements,
//!   resolving `!GetAtt X.Arn`, `!Ref X` and `!Sub` ARNs to template logical ids, and lists what a
//!   least-privilege policy must not contain (wildcard actions or resources, policies it cannot
//!   read).
//! - [`needs`] maps one call recorded by [`crate::aws_proxy`] to the IAM actions it needs.
//! - [`compare`] reports, by function, action and resource, every call the template does not
//!   grant and every grant the function's code never needed.

use crate::aws_proxy::{AwsCall, Service};
use serde_yaml::Value;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The services the recording proxy sees: grants of any other service cannot be checked.
pub const OBSERVED_SERVICES: [&str; 2] = ["dynamodb", "secretsmanager"];

/// An IAM action such as `dynamodb:GetItem`. IAM compares actions case-insensitively.
#[derive(Debug, Clone)]
pub struct Action(pub String);

impl Action {
    fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    pub fn service(&self) -> String {
        self.key().split_once(':').map(|(s, _)| s.to_string()).unwrap_or_default()
    }
}

impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Action {}
impl PartialOrd for Action {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Action {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a statement's `Resource` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// A resource of the template (a table's ARN, an index of it, the secret's ARN).
    Logical { id: String, index: Option<String> },
    /// Anything else, as written.
    Literal(String),
}

impl Resource {
    pub fn of(id: &str) -> Self {
        Self::Logical { id: id.into(), index: None }
    }

    pub fn index(id: &str, index: &str) -> Self {
        Self::Logical { id: id.into(), index: Some(index.into()) }
    }

    fn is_wildcard(&self) -> bool {
        let wild = |s: &str| s.contains('*') || s.contains('?');
        match self {
            Self::Logical { index, .. } => index.as_deref().is_some_and(wild),
            Self::Literal(s) => wild(s),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Logical { id, index: None } => f.write_str(id),
            Self::Logical { id, index: Some(ix) } => write!(f, "{id}/index/{ix}"),
            Self::Literal(s) => write!(f, "`{s}`"),
        }
    }
}

/// One action allowed on one resource.
pub type Permission = (Action, Resource);

/// Every function's grants, and what is wrong with them regardless of the code.
#[derive(Debug, Default)]
pub struct TemplateGrants {
    /// Function logical id -> its inline Allow grants.
    pub functions: BTreeMap<String, BTreeSet<Permission>>,
    /// Wildcards and policies that cannot be checked, each naming the function.
    pub problems: Vec<String>,
}

/// Reads template.yaml's text.
pub fn template_grants_from_str(text: &str) -> TemplateGrants {
    match serde_yaml::from_str::<Value>(text) {
        Ok(doc) => template_grants(&doc),
        Err(e) => {
            TemplateGrants { problems: vec![format!("template.yaml is not valid YAML: {e}")], ..Default::default() }
        }
    }
}

pub fn template_grants(doc: &Value) -> TemplateGrants {
    let mut out = TemplateGrants::default();
    let Some(resources) = doc.get("Resources").and_then(Value::as_mapping) else {
        out.problems.push("template.yaml has no Resources".into());
        return out;
    };
    let types: BTreeMap<String, String> = resources
        .iter()
        .filter_map(|(id, r)| Some((id.as_str()?.to_string(), r.get("Type")?.as_str()?.to_string())))
        .collect();
    for (id, res) in resources {
        let Some(id) = id.as_str() else { continue };
        if types.get(id).map(String::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let grants = out.functions.entry(id.to_string()).or_default();
        let props = res.get("Properties");
        if props.and_then(|p| p.get("Role")).is_some() {
            out.problems.push(format!(
                "{id} sets its own Role: declare its grants as inline Policies statements so this test can check them"
            ));
        }
        let Some(policies) = props.and_then(|p| p.get("Policies")) else { continue };
        for policy in as_list(policies) {
            let Some(statements) = policy.get("Statement") else {
                out.problems.push(format!(
                    "{id} uses the policy {}: only inline `Statement` documents can be checked (managed policies and \
                     SAM policy templates such as DynamoDBCrudPolicy grant more than the code calls, index/* included)",
                    render(policy)
                ));
                continue;
            };
            for statement in as_list(statements) {
                read_statement(id, statement, &types, grants, &mut out.problems);
            }
        }
    }
    out
}

/// A value or a list of values (IAM and SAM accept both).
fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        other => vec![other],
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        Value::Mapping(m) => {
            let keys: Vec<_> = m.keys().map(|k| k.as_str().unwrap_or("?").to_string()).collect();
            format!("`{}`", keys.join(", "))
        }
        other => format!("`{}`", serde_yaml::to_string(other).unwrap_or_default().trim()),
    }
}

fn read_statement(
    function: &str,
    st: &Value,
    types: &BTreeMap<String, String>,
    grants: &mut BTreeSet<Permission>,
    problems: &mut Vec<String>,
) {
    for not in ["NotAction", "NotResource"] {
        if st.get(not).is_some() {
            problems.push(format!("{function} has a statement with {not}: it grants everything it does not name"));
        }
    }
    match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") => {}
        other => {
            problems.push(format!(
                "{function} has a statement with Effect {}: only Allow statements are modelled",
                other.unwrap_or("(none)")
            ));
            return;
        }
    }
    let mut actions = Vec::new();
    for a in st.get("Action").map(as_list).unwrap_or_default() {
        match a.as_str() {
            Some(a) if a.contains('*') || a.contains('?') => {
                problems.push(format!("{function} grants the wildcard action `{a}`"));
            }
            Some(a) => actions.push(Action(a.to_string())),
            None => problems.push(format!("{function} has an action that is not a string: {}", render(a))),
        }
    }
    if actions.is_empty() && st.get("Action").is_none() {
        problems.push(format!("{function} has a statement without Action"));
    }
    let Some(resources) = st.get("Resource") else {
        problems.push(format!("{function} has a statement without Resource"));
        return;
    };
    for r in as_list(resources) {
        let resource = match resolve(r, types) {
            Ok(r) => r,
            Err(why) => {
                problems.push(format!("{function}: {why}"));
                continue;
            }
        };
        if resource.is_wildcard() {
            let names: Vec<_> = actions.iter().map(ToString::to_string).collect();
            problems.push(format!(
                "{function} grants {} on the wildcard resource {resource}",
                if names.is_empty() { "actions".to_string() } else { names.join(", ") }
            ));
        }
        for a in &actions {
            grants.insert((a.clone(), resource.clone()));
        }
    }
}

/// `!GetAtt X.Arn`, `!Ref X`, `!Sub ...` (short or long form), or a literal string.
fn resolve(v: &Value, types: &BTreeMap<String, String>) -> Result<Resource, String> {
    let (tag, inner) = match v {
        Value::String(s) => return Ok(Resource::Literal(s.clone())),
        Value::Tagged(t) => (t.tag.to_string().trim_start_matches('!').to_string(), &t.value),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, inner) = m.iter().next().expect("one entry");
            (k.as_str().unwrap_or("").trim_start_matches("Fn::").to_string(), inner)
        }
        other => return Ok(Resource::Literal(render(other))),
    };
    match tag.as_str() {
        "GetAtt" => {
            let (id, attr) = match inner {
                Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_string(), b.to_string())),
                Value::Sequence(s) if s.len() == 2 => {
                    Some((s[0].as_str().unwrap_or_default().to_string(), s[1].as_str().unwrap_or_default().to_string()))
                }
                _ => None,
            }
            .ok_or_else(|| format!("cannot read the GetAtt {}", render(inner)))?;
            Ok(if attr == "Arn" { Resource::of(&id) } else { Resource::Literal(format!("!GetAtt {id}.{attr}")) })
        }
        "Ref" => {
            let id = inner.as_str().ok_or_else(|| format!("cannot read the Ref {}", render(inner)))?;
            match types.get(id).map(String::as_str) {
                Some("AWS::DynamoDB::Table") => {
                    Err(format!("`!Ref {id}` is the table's name, not its ARN: use `!GetAtt {id}.Arn`"))
                }
                Some(_) => Ok(Resource::of(id)),
                None => Ok(Resource::Literal(format!("!Ref {id}"))),
            }
        }
        "Sub" => {
            let (text, vars) = match inner {
                Value::String(s) => (s.clone(), None),
                Value::Sequence(s) if s.len() == 2 => {
                    (s[0].as_str().unwrap_or_default().to_string(), s[1].as_mapping().cloned())
                }
                _ => return Err(format!("cannot read the Sub {}", render(inner))),
            };
            let mut text = text;
            for (name, value) in vars.iter().flatten() {
                let placeholder = match resolve(value, types) {
                    Ok(Resource::Logical { id, index: None }) if value_is_getatt(value) => format!("${{{id}.Arn}}"),
                    Ok(Resource::Logical { id, index: None }) => format!("${{{id}}}"),
                    Ok(Resource::Literal(s)) => s,
                    Ok(other) => other.to_string(),
                    Err(e) => return Err(e),
                };
                text = text.replace(&format!("${{{}}}", name.as_str().unwrap_or_default()), &placeholder);
            }
            Ok(sub_arn(&text, types))
        }
        _ => Ok(Resource::Literal(render(v))),
    }
}

fn value_is_getatt(v: &Value) -> bool {
    match v {
        Value::Tagged(t) => t.tag == "!GetAtt",
        Value::Mapping(m) => m.contains_key("Fn::GetAtt"),
        _ => false,
    }
}

/// `${X.Arn}`, `${X.Arn}/index/NAME`, or `arn:...:dynamodb:...:table/${X}` (+ `/index/NAME`).
fn sub_arn(text: &str, types: &BTreeMap<String, String>) -> Resource {
    let tail = |rest: &str, id: &str| match rest {
        "" => Some(Resource::of(id)),
        r => {
            r.strip_prefix("/index/").filter(|ix| !ix.is_empty() && !ix.contains('/')).map(|ix| Resource::index(id, ix))
        }
    };
    let by_arn = text.strip_prefix("${").and_then(|r| r.split_once(".Arn}")).and_then(|(id, rest)| tail(rest, id));
    let by_name = text
        .split_once(":table/${")
        .filter(|(head, _)| head.starts_with("arn:") && head.contains(":dynamodb:"))
        .and_then(|(_, r)| r.split_once('}'))
        .filter(|(id, _)| types.get(*id).map(String::as_str) == Some("AWS::DynamoDB::Table"))
        .and_then(|(id, rest)| tail(rest, id));
    by_arn.or(by_name).unwrap_or_else(|| Resource::Literal(text.to_string()))
}

/// What IAM must allow for one call: an action on a physical name (table or secret) and index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub action: Action,
    pub name: String,
    pub index: Option<String>,
}

/// The IAM actions a recorded call needs. Transactions need the action of each item on its table
/// (there is no `dynamodb:TransactWriteItems` permission); a Query or Scan of an index needs the
/// index's ARN; every other call needs the action of its own name on what it names.
pub fn needs(call: &AwsCall) -> Result<Vec<Need>, String> {
    let prefix = match &call.service {
        Service::DynamoDb => "dynamodb",
        Service::SecretsManager => "secretsmanager",
        Service::Other(p) => {
            return Err(format!(
                "a call to {}{} that this test cannot map to IAM (extend tests/support/iam.rs)",
                if p.is_empty() { "an unknown service" } else { p },
                if call.operation.is_empty() { String::new() } else { format!(".{}", call.operation) }
            ));
        }
    };
    if call.names.is_empty() {
        return Err(format!("{prefix}:{} naming no table or secret this test can read", call.operation));
    }
    call.names
        .iter()
        .map(|n| {
            let op = match n.item.as_deref() {
                None => call.operation.clone(),
                Some("Put") => "PutItem".into(),
                Some("Update") => "UpdateItem".into(),
                Some("Delete") => "DeleteItem".into(),
                Some("ConditionCheck") => "ConditionCheckItem".into(),
                Some("Get") => "GetItem".into(),
                Some(other) => return Err(format!("{prefix}:{} with an unknown item kind {other}", call.operation)),
            };
            Ok(Need { action: Action(format!("{prefix}:{op}")), name: n.name.clone(), index: n.index.clone() })
        })
        .collect()
}

/// Compares what `function` needed while driven with what template.yaml grants it. Both ways:
/// every use must be granted, and every grant of an observed service must have been used.
pub fn compare(function: &str, granted: &BTreeSet<Permission>, used: &BTreeSet<Permission>) -> Vec<String> {
    let mut out = Vec::new();
    for (action, resource) in used.difference(granted) {
        out.push(format!("{function} calls {action} on {resource}, which template.yaml does not grant"));
    }
    for (action, resource) in granted.difference(used) {
        if OBSERVED_SERVICES.contains(&action.service().as_str()) {
            out.push(format!(
                "{function} is granted {action} on {resource}, which its code never called while driven: remove \
                 the grant, or drive the path that needs it (tests/iam.rs, DRIVERS)"
            ));
        } else {
            out.push(format!(
                "{function} is granted {action} on {resource}: this test observes only {} calls, so it cannot check \
                 that grant (extend tests/support/aws_proxy.rs and iam.rs)",
                OBSERVED_SERVICES.join(" and ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_proxy::Named;

    fn perm(a: &str, r: Resource) -> Permission {
        (Action(a.into()), r)
    }

    const TEMPLATE: &str = r#"
Resources:
  T:
    Type: AWS::DynamoDB::Table
  S:
    Type: AWS::SecretsManager::Secret
  Good:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:Query]
              Resource:
                - !GetAtt T.Arn
                - !Sub "${T.Arn}/index/by-user"
                - Fn::Sub: "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${T}/index/other"
                - !Sub ["${Tab}/index/third", { Tab: !GetAtt T.Arn }]
                - Fn::GetAtt: [T, Arn]
            - Effect: Allow
              Action: secretsmanager:GetSecretValue
              Resource: !Ref S
  Bad:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - AWSLambdaBasicExecutionRole
        - DynamoDBCrudPolicy: { TableName: !Ref T }
        - Statement:
            - Effect: Allow
              Action: ["dynamodb:*", "*", dynamodb:Get*]
              Resource: "*"
            - Effect: Allow
              Action: [dynamodb:PutItem]
              Resource:
                - "arn:aws:dynamodb:eu-west-1:123456789012:table/*"
                - !Sub "${T.Arn}/index/*"
                - !Ref T
            - Effect: Deny
              Action: dynamodb:DeleteItem
              Resource: !GetAtt T.Arn
            - Effect: Allow
              NotAction: dynamodb:DeleteItem
              Resource: !GetAtt T.Arn
"#;

    #[test]
    fn resolves_every_spelling_of_a_table_index_and_secret() {
        let g = template_grants_from_str(TEMPLATE);
        let good = &g.functions["Good"];
        let expect: BTreeSet<_> = [
            perm("dynamodb:GetItem", Resource::of("T")),
            perm("dynamodb:Query", Resource::of("T")),
            perm("dynamodb:GetItem", Resource::index("T", "by-user")),
            perm("dynamodb:Query", Resource::index("T", "by-user")),
            perm("dynamodb:GetItem", Resource::index("T", "other")),
            perm("dynamodb:Query", Resource::index("T", "other")),
            perm("dynamodb:GetItem", Resource::index("T", "third")),
            perm("dynamodb:Query", Resource::index("T", "third")),
            perm("secretsmanager:GetSecretValue", Resource::of("S")),
        ]
        .into();
        assert_eq!(good, &expect);
        assert!(g.problems.iter().all(|p| !p.starts_with("Good")), "{:#?}", g.problems);
    }

    #[test]
    fn names_every_wildcard_and_uncheckable_policy() {
        let g = template_grants_from_str(TEMPLATE);
        let bad: Vec<_> = g.problems.iter().filter(|p| p.starts_with("Bad")).map(String::as_str).collect();
        for expected in [
            "Bad uses the policy `AWSLambdaBasicExecutionRole`: only inline",
            "Bad uses the policy `DynamoDBCrudPolicy`: only inline",
            "Bad grants the wildcard action `dynamodb:*`",
            "Bad grants the wildcard action `*`",
            "Bad grants the wildcard action `dynamodb:Get*`",
            "Bad grants actions on the wildcard resource `*`",
            "Bad grants dynamodb:PutItem on the wildcard resource `arn:aws:dynamodb:eu-west-1:123456789012:table/*`",
            "Bad grants dynamodb:PutItem on the wildcard resource T/index/*",
            "Bad: `!Ref T` is the table's name, not its ARN: use `!GetAtt T.Arn`",
            "Bad has a statement with Effect Deny: only Allow statements are modelled",
            "Bad has a statement with NotAction: it grants everything it does not name",
        ] {
            assert!(bad.iter().any(|p| p.starts_with(expected)), "missing {expected:?} in {bad:#?}");
        }
    }

    #[test]
    fn maps_calls_to_the_actions_iam_checks() {
        let call = |service, operation: &str, names: Vec<(Option<&str>, &str, Option<&str>)>| AwsCall {
            service,
            operation: operation.into(),
            names: names
                .into_iter()
                .map(|(item, name, index)| Named {
                    item: item.map(str::to_string),
                    name: name.into(),
                    index: index.map(str::to_string),
                })
                .collect(),
        };
        let need = |a: &str, n: &str, ix: Option<&str>| Need {
            action: Action(a.into()),
            name: n.into(),
            index: ix.map(str::to_string),
        };
        let tx = call(
            Service::DynamoDb,
            "TransactWriteItems",
            vec![(Some("Put"), "a", None), (Some("Update"), "b", None), (Some("ConditionCheck"), "c", None)],
        );
        assert_eq!(
            needs(&tx).unwrap(),
            [
                need("dynamodb:PutItem", "a", None),
                need("dynamodb:UpdateItem", "b", None),
                need("dynamodb:ConditionCheckItem", "c", None)
            ]
        );
        let q = call(Service::DynamoDb, "Query", vec![(None, "conv", Some("by-user"))]);
        assert_eq!(needs(&q).unwrap(), [need("dynamodb:Query", "conv", Some("by-user"))]);
        let b = call(Service::DynamoDb, "BatchWriteItem", vec![(None, "x", None), (None, "y", None)]);
        assert_eq!(
            needs(&b).unwrap(),
            [need("dynamodb:BatchWriteItem", "x", None), need("dynamodb:BatchWriteItem", "y", None)]
        );
        let s = call(Service::SecretsManager, "GetSecretValue", vec![(None, "sec", None)]);
        assert_eq!(needs(&s).unwrap(), [need("secretsmanager:GetSecretValue", "sec", None)]);
        assert!(needs(&call(Service::Other("sns".into()), "Publish", vec![])).unwrap_err().contains("sns.Publish"));
        assert!(needs(&call(Service::DynamoDb, "ListTables", vec![])).is_err());
    }

    #[test]
    fn compare_names_function_action_and_table_both_ways() {
        let granted: BTreeSet<_> = [
            perm("dynamodb:GetItem", Resource::of("UsersTable")),
            perm("dynamodb:deleteitem", Resource::of("UsersTable")),
            perm("xray:PutTraceSegments", Resource::Literal("arn:aws:xray:eu-west-1:1:group/x".into())),
        ]
        .into();
        let used: BTreeSet<_> = [
            perm("dynamodb:GetItem", Resource::of("UsersTable")),
            perm("dynamodb:UpdateItem", Resource::of("RateLimitsTable")),
            perm("dynamodb:Query", Resource::index("ConversationsTable", "by-user")),
        ]
        .into();
        assert_eq!(
            compare("HealthFunction", &granted, &used),
            [
                "HealthFunction calls dynamodb:Query on ConversationsTable/index/by-user, which template.yaml does not grant",
                "HealthFunction calls dynamodb:UpdateItem on RateLimitsTable, which template.yaml does not grant",
                "HealthFunction is granted dynamodb:deleteitem on UsersTable, which its code never called while driven: \
                 remove the grant, or drive the path that needs it (tests/iam.rs, DRIVERS)",
                "HealthFunction is granted xray:PutTraceSegments on `arn:aws:xray:eu-west-1:1:group/x`: this test \
                 observes only dynamodb and secretsmanager calls, so it cannot check that grant (extend \
                 tests/support/aws_proxy.rs and iam.rs)",
            ]
        );
        // IAM actions are case-insensitive.
        let lower: BTreeSet<_> = [perm("DynamoDB:getitem", Resource::of("UsersTable"))].into();
        let upper: BTreeSet<_> = [perm("dynamodb:GetItem", Resource::of("UsersTable"))].into();
        assert!(compare("F", &lower, &upper).is_empty());
    }
}
