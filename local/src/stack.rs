//! Provisions the local AWS endpoint from template.yaml: every declared table (keys, indexes,
//! TTL) under a name prefix, and the app secret. Tests use a unique prefix per test, so they run
//! in parallel against one endpoint without sharing state.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use std::collections::BTreeMap;

use crate::template::{Table, Template, physical_table_name};

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("table {table}: {what}")]
    Table {
        table: String,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("secret {name}: {what}")]
    Secret {
        name: String,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("table {0} has an attribute type the local stack does not know")]
    AttributeType(String),
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type are set")
}

fn key_schema(hash: &str, range: Option<&str>) -> Vec<KeySchemaElement> {
    let mut out = vec![key(hash, KeyType::Hash)];
    if let Some(r) = range {
        out.push(key(r, KeyType::Range));
    }
    out
}

/// Creates one table as declared (an existing table of that name is left as it is).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &Table, name: &str) -> Result<(), StackError> {
    let err =
        |what, source: Box<dyn std::error::Error + Send + Sync>| StackError::Table { table: name.into(), what, source };
    let mut req = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    for a in &table.attributes {
        let kind = match a.kind.as_str() {
            "S" => ScalarAttributeType::S,
            "N" => ScalarAttributeType::N,
            "B" => ScalarAttributeType::B,
            _ => return Err(StackError::AttributeType(name.into())),
        };
        req = req.attribute_definitions(
            AttributeDefinition::builder().attribute_name(&a.name).attribute_type(kind).build().expect("set"),
        );
    }
    req = req.set_key_schema(Some(key_schema(&table.hash, table.range.as_deref())));
    for i in &table.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&i.name)
                .set_key_schema(Some(key_schema(&i.hash, i.range.as_deref())))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("name, keys and projection are set"),
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => return Ok(()),
        Err(e) => return Err(err("create failed", Box::new(e))),
    }
    if let Some(attr) = &table.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name(attr).enabled(true).build().expect("set"),
            )
            .send()
            .await
            .map_err(|e| err("enabling TTL failed", Box::new(e)))?;
    }
    Ok(())
}

/// Creates every table of the template under `prefix` and returns the function environment
/// variables (USERS_TABLE, ...) that name them.
pub async fn create_tables(
    client: &aws_sdk_dynamodb::Client,
    template: &Template,
    prefix: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let creates = template.tables.iter().map(|t| {
        let name = physical_table_name(prefix, &t.logical_id);
        async move { create_table(client, t, &name).await }
    });
    futures::future::try_join_all(creates).await?;
    Ok(template.table_env(prefix))
}

/// Creates (or overwrites) the secret with a JSON value.
pub async fn put_secret(client: &aws_sdk_secretsmanager::Client, name: &str, json: &str) -> Result<(), StackError> {
    let err =
        |what, source: Box<dyn std::error::Error + Send + Sync>| StackError::Secret { name: name.into(), what, source };
    match client.create_secret().name(name).secret_string(json).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => {
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(json)
                .send()
                .await
                .map_err(|e| err("update failed", Box::new(e)))?;
            Ok(())
        }
        Err(e) => Err(err("create failed", Box::new(e))),
    }
}
