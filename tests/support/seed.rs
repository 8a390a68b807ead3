//! Data seeded fast, past the API: a user's conversations and messages written with
//! BatchWriteItem in the chat store's own item shapes (`Conversation::to_item`,
//! `Message::to_item`), and whole-table scans for tests that must see everything a table holds.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chat::modes::Mode;
use chat::store::ids::{ConversationId, MessageId};
use chat::store::model::{Conversation, Message, MessageStatus, Role, now_rfc3339};
use std::collections::{BTreeMap, HashMap};

use crate::TestStack;

pub type Item = HashMap<String, AttributeValue>;

pub fn conversation(owner: &str, title: &str, messages: u64) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        user_id: owner.into(),
        title: title.into(),
        mode: Mode::Chat,
        model: Some("m".into()),
        system_prompt: None,
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        message_count: messages,
        deleted: false,
    }
}

pub fn message(role: Role, content: &str) -> Message {
    Message {
        id: MessageId::new(),
        role,
        content: content.into(),
        status: MessageStatus::Complete,
        created_at: now_rfc3339(),
        model: None,
        provider: None,
        usage: None,
        attachments: vec![],
    }
}

/// Writes `items` to `table`, 25 per BatchWriteItem, a few calls at a time.
pub async fn batch_put(dynamo: &aws_sdk_dynamodb::Client, table: &str, items: Vec<Item>) {
    use futures::StreamExt;
    let batches: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|c| {
            c.iter()
                .map(|i| {
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(i.clone())).build().unwrap())
                        .build()
                })
                .collect()
        })
        .collect();
    futures::stream::iter(batches)
        .for_each_concurrent(4, |mut requests| async move {
            while !requests.is_empty() {
                let out = dynamo.batch_write_item().request_items(table, requests).send().await.expect("batch write");
                requests = out.unprocessed_items().and_then(|m| m.get(table)).cloned().unwrap_or_default();
            }
        })
        .await;
}

/// `conversations` conversations of `user_id` with `messages` messages each; their ids.
pub async fn conversations(
    stack: &TestStack,
    user_id: &str,
    conversations: usize,
    messages: usize,
) -> Vec<ConversationId> {
    let mut items = Vec::with_capacity(conversations * (messages + 1));
    let mut ids = Vec::with_capacity(conversations);
    for c in 0..conversations {
        let conv = conversation(user_id, &format!("seeded {c}"), messages as u64);
        for m in 0..messages {
            let role = if m % 2 == 0 { Role::User } else { Role::Assistant };
            items.push(
                message(role, &format!("seeded message {c}.{m}: salaam"))
                    .to_item(conv.id, user_id, None)
                    .expect("item"),
            );
        }
        items.push(conv.to_item().expect("item"));
        ids.push(conv.id);
    }
    let dynamo = baatcheet_shared::aws::dynamodb(&stack.sdk);
    batch_put(&dynamo, &stack.env["CONVERSATIONS_TABLE"], items).await;
    ids
}

/// The variable of every table of the stack (template.yaml).
const TABLES: [&str; 5] =
    ["USERS_TABLE", "CONVERSATIONS_TABLE", "RATE_LIMITS_TABLE", "WEBHOOK_DELIVERIES_TABLE", "STREAM_LEASES_TABLE"];

/// Every item of every table of the stack, by table variable, each table's items sorted.
pub async fn scan_all(stack: &TestStack) -> BTreeMap<&'static str, Vec<Item>> {
    let dynamo = baatcheet_shared::aws::dynamodb(&stack.sdk);
    let mut all = BTreeMap::new();
    for var in TABLES {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = dynamo
                .scan()
                .table_name(&stack.env[var])
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
        items.sort_by_cached_key(|i| format!("{:?}{:?}", i.get("pk"), i.get("sk")));
        all.insert(var, items);
    }
    all
}

/// Whether any attribute value of `item` (strings, at any depth) contains `needle`.
pub fn mentions(item: &Item, needle: &str) -> bool {
    fn any(v: &AttributeValue, needle: &str) -> bool {
        match v {
            AttributeValue::S(s) => s.contains(needle),
            AttributeValue::Ss(l) => l.iter().any(|s| s.contains(needle)),
            AttributeValue::L(l) => l.iter().any(|v| any(v, needle)),
            AttributeValue::M(m) => m.iter().any(|(k, v)| k.contains(needle) || any(v, needle)),
            _ => false,
        }
    }
    item.values().any(|v| any(v, needle))
}
