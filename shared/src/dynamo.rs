//! DynamoDB items read as typed structs (serde_dynamo), for every store: each item layout is a
//! struct, and an item that does not fit it is an error naming the attribute, never a default
//! (a missing or garbled number read as 0 would pass for data).

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// Why an item could not be read as its struct: the attribute (when serde names one) and why,
/// never the value (items hold users' text, which must not reach the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{why}", attribute.as_deref().map(|a| format!("attribute `{a}`: ")).unwrap_or_default())]
pub struct BadItem {
    pub attribute: Option<String>,
    pub why: String,
}

/// `item` read as `T`.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, BadItem> {
    if let Some((k, _)) = item.iter().find(|(_, v)| !known(v)) {
        // DynamoDB answered with a type newer than this SDK (which cannot make one, so no test
        // can): serde_dynamo's conversion would panic on it.
        return Err(BadItem { attribute: Some(k.clone()), why: "of a type this SDK does not know".into() });
    }
    let map = serde_dynamo::AttributeValue::M(serde_dynamo::Item::from(item.clone()).into());
    serde_path_to_error::deserialize(serde_dynamo::Deserializer::from_attribute_value(map)).map_err(|e| {
        // serde's "missing field `x`" names only a field of ours; other messages may quote the value.
        let inner = e.inner().to_string();
        let why = if inner.starts_with("missing field") { inner } else { "malformed".into() };
        let at = e.path().to_string();
        BadItem { attribute: (at != ".").then_some(at), why }
    })
}

/// Whether `v` and everything in it is of a type the SDK knows.
fn known(v: &AttributeValue) -> bool {
    match v {
        AttributeValue::M(m) => m.values().all(known),
        AttributeValue::L(l) => l.iter().all(known),
        other => !other.is_unknown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Row {
        count: i64,
    }

    #[test]
    fn names_the_attribute_never_the_value() {
        let item = |v: AttributeValue| Item::from([("count".to_string(), v)]);
        assert_eq!(from_item::<Row>(&item(AttributeValue::N("7".into()))).map(|r| r.count), Ok(7));
        let e = from_item::<Row>(&item(AttributeValue::N("secret".into()))).unwrap_err();
        assert_eq!(e.to_string(), "attribute `count`: malformed");
        let e = from_item::<Row>(&Item::new()).unwrap_err();
        assert_eq!((e.attribute, e.why.as_str()), (None, "missing field `count`"));
    }
}
