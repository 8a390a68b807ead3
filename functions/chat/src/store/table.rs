//! The conversations table (keyed by `pk` and `sk`) as the stores here use it: every request
//! names the table once, here, and the two bulk jobs (deleting found items in batches, erasing
//! whatever a Query finds within a budget) are written once for every store.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use baatcheet_shared::erasure::{Budget, Erased};
use std::time::Duration;

use super::StoreError;
use super::model::{Item, s};

/// Items per BatchWriteItem (the DynamoDB maximum).
const BATCH_WRITE: usize = 25;
/// Items read per Query page while erasing (further bounded by the budget left).
const ERASE_PAGE: usize = 100;

/// The table key of an item.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    Item::from([("pk".into(), s(pk)), ("sk".into(), s(sk))])
}

/// Turns an SDK builder's error (a required field unset: a bug) into the store's.
pub(crate) fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::dynamo("build", e))
}

#[derive(Clone)]
pub(crate) struct Table {
    client: Client,
    name: String,
}

impl Table {
    pub(crate) fn new(client: Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A GetItem of `key`, read consistently (a reader sees every write made before).
    pub(crate) fn get(&self, key: Item) -> GetItemFluentBuilder {
        self.client.get_item().table_name(&self.name).set_key(Some(key)).consistent_read(true)
    }

    pub(crate) fn put(&self, item: Item) -> PutItemFluentBuilder {
        self.client.put_item().table_name(&self.name).set_item(Some(item))
    }

    pub(crate) fn update(&self, key: Item) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.name).set_key(Some(key))
    }

    pub(crate) fn delete(&self, key: Item) -> DeleteItemFluentBuilder {
        self.client.delete_item().table_name(&self.name).set_key(Some(key))
    }

    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// Deletes the items of `found` (read with at least their key attributes) in batches. Unprocessed items (throttling) are retried with a short backoff, a
    /// bounded number of times.
    pub(crate) async fn delete_found(&self, op: &'static str, found: &[Item]) -> Result<(), StoreError> {
        for chunk in found.chunks(BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|item| {
                    let key = item.iter().filter(|(k, _)| *k == "pk" || *k == "sk");
                    build(
                        DeleteRequest::builder()
                            .set_key(Some(key.map(|(k, v)| (k.clone(), v.clone())).collect()))
                            .build(),
                    )
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<Vec<_>, _>>()?;
            for attempt in 0..6u32 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.name, requests)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo(op, e))?;
                requests = out.unprocessed_items().and_then(|m| m.get(&self.name)).cloned().unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            if !requests.is_empty() {
                return Err(StoreError::dynamo(op, std::io::Error::other("items left unprocessed after retries")));
            }
        }
        Ok(())
    }

    /// Deletes every item `query` finds (it need project only the key attributes), page by
    /// page, at most `budget.left()` items; `Done` once it finds none. Each page's keys are read
    /// once: paging on, rather than querying again, never re-reads items an index still shows for
    /// a moment after their deletion.
    pub(crate) async fn erase_found(
        &self,
        what: &'static str,
        query: QueryFluentBuilder,
        budget: &mut Budget,
    ) -> Result<Erased, StoreError> {
        let mut start: Option<Item> = None;
        loop {
            if budget.is_spent() {
                return Ok(Erased::More);
            }
            let out = query
                .clone()
                .limit(i32::try_from(budget.left().min(ERASE_PAGE)).unwrap_or(ERASE_PAGE as i32))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo(what, e))?;
            for chunk in out.items().chunks(BATCH_WRITE) {
                self.delete_found(what, chunk).await?;
                budget.spend(chunk.len());
            }
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(Erased::Done),
            }
        }
    }
}
