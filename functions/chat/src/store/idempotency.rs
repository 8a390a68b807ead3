//! Idempotency-Key records (IETF httpapi draft "The Idempotency-Key HTTP Header Field"), in the
//! conversations table under the user: `pk = IDEM#{user}`, `sk = {route}#{key}`, with a TTL
//! (`expires_at`, 24 h). One record per key: the first request claims it (a conditional PutItem),
//! every later one with the same key reads it and follows or replays what the first produced.
//!
//! | state     | meaning                                                                    |
//! |-----------|----------------------------------------------------------------------------|
//! | `running` | the first request is working; `message_id` once its answer's item exists    |
//! | `failed`  | no provider answered `user_message_id`; a repeat takes the record over      |
//! | `done`    | finished; `response` holds a JSON answer that has no message (transcribe)   |
//!
//! Erasure finds every record of a user with one Query on their partition ([`IdempotencyStore::erase`],
//! called by the conversations store's erasure; [`IdempotencyStore::delete_all_for_user`]).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use baatcheet_shared::erasure::{Budget, Erased};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

use super::StoreError;
use super::ids::{ConversationId, MessageId};
use super::model::{Item, from_item, n, s, to_item};
use super::table::{Table, key};

/// How long a key is remembered.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest key accepted (the draft sets none; UUIDs and ULIDs fit many times over).
pub const MAX_KEY_LEN: usize = 128;

fn idem_pk(user_id: &str) -> String {
    format!("IDEM#{user_id}")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Why a header is not a key.
#[derive(Debug, PartialEq, Eq)]
pub struct BadKey;

/// The key of an `Idempotency-Key` header: 1 to 128 characters from `A-Z a-z 0-9 - _ . : ~ + / =`,
/// bare or as the draft's quoted string (`"..."`).
pub fn parse_key(header: &[u8]) -> Result<String, BadKey> {
    let raw = std::str::from_utf8(header).map_err(|_| BadKey)?;
    let key = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:~+/=".contains(&b));
    if ok { Ok(key.to_string()) } else { Err(BadKey) }
}

/// What identifies "the same request": the route, the query and the body, with what does not
/// change the result left out: a JSON body's `stream` (a repeat may ask for the other form) and
/// key order; a multipart body's boundary (each send of a form draws a new one).
pub fn fingerprint(route: &str, query: &str, content_type: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update(b"\n");
    h.update(query.as_bytes());
    h.update(b"\n");
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media == "application/json"
        && let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice::<serde_json::Value>(body)
    {
        map.remove("stream");
        // serde_json's map is ordered by key: the same object in any key order hashes the same.
        h.update(serde_json::Value::Object(map).to_string().as_bytes());
    } else if media == "multipart/form-data"
        && let Some(boundary) = content_type.split(';').skip(1).find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("boundary").then(|| v.trim_matches('"').to_string())
        })
        && !boundary.is_empty()
    {
        let mut rest = body;
        while let Some(at) = rest.windows(boundary.len()).position(|w| w == boundary.as_bytes()) {
            h.update(&rest[..at]);
            h.update(b"\x00boundary\x00");
            rest = &rest[at + boundary.len()..];
        }
        h.update(rest);
    } else {
        h.update(body);
    }
    format!("{:x}", h.finalize())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Running,
    Failed,
    Done,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            KeyState::Running => "running",
            KeyState::Failed => "failed",
            KeyState::Done => "done",
        }
    }
}

/// A key's record as a repeat reads it: the attributes of its item of those names (the updates
/// below add the optional ones).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyRecord {
    pub fingerprint: String,
    pub state: KeyState,
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    #[serde(default)]
    pub user_message_id: Option<MessageId>,
    #[serde(default)]
    pub message_id: Option<MessageId>,
    #[serde(default)]
    pub response: Option<String>,
}

/// A record's item as a claim writes it.
#[derive(Serialize)]
struct ClaimItem<'a> {
    pk: &'a str,
    sk: &'a str,
    kind: &'static str,
    user_id: &'a str,
    fingerprint: &'a str,
    state: KeyState,
    /// The table's TTL attribute (seconds since the epoch).
    expires_at: u64,
}

/// One key of one user on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pk: String,
    sk: String,
}

impl KeyRef {
    pub fn new(user_id: &str, route: &str, key: &str) -> Self {
        Self { pk: idem_pk(user_id), sk: format!("{route}#{key}") }
    }

    fn key(&self) -> Item {
        key(&self.pk, &self.sk)
    }
}

/// The outcome of presenting a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First with this key: this request does the work (and pays for it).
    Owner,
    /// The key was used before with the same request.
    Repeat(KeyRecord),
    /// The key was used before with another request.
    Mismatch,
}

#[derive(Clone)]
pub struct IdempotencyStore {
    table: Table,
}

impl IdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self::from_table(Table::new(client, table))
    }

    pub(crate) fn from_table(table: Table) -> Self {
        Self { table }
    }

    /// Claims `key` for a request with `fingerprint`, or reads who has it. A record past its TTL
    /// that DynamoDB has not removed yet counts as absent.
    pub async fn claim(&self, key: &KeyRef, user_id: &str, fingerprint: &str) -> Result<Claim, StoreError> {
        let now = now_secs();
        let item = ClaimItem {
            pk: &key.pk,
            sk: &key.sk,
            kind: "idempotency-key",
            user_id,
            fingerprint,
            state: KeyState::Running,
            expires_at: now + KEY_TTL.as_secs(),
        };
        let put = self
            .table
            .put(to_item("idempotency key", &item)?)
            .condition_expression("attribute_not_exists(#pk) OR #expires_at < :now")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Owner),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                match self.get(key).await? {
                    Some(r) if r.fingerprint == fingerprint => Ok(Claim::Repeat(r)),
                    Some(_) => Ok(Claim::Mismatch),
                    // Released between the two calls: the next send claims it.
                    None => Ok(Claim::Repeat(KeyRecord {
                        fingerprint: fingerprint.into(),
                        state: KeyState::Running,
                        conversation_id: None,
                        user_message_id: None,
                        message_id: None,
                        response: None,
                    })),
                }
            }
            Err(e) => Err(StoreError::dynamo("claim idempotency key", e)),
        }
    }

    /// The record (consistent read), if any.
    pub async fn get(&self, key: &KeyRef) -> Result<Option<KeyRecord>, StoreError> {
        let out = self.table.get(key.key()).send().await.map_err(|e| StoreError::dynamo("read idempotency key", e))?;
        out.item().map(|item| from_item("idempotency key", item)).transpose()
    }

    /// The answer's item exists: repeats follow it.
    pub async fn started(
        &self,
        key: &KeyRef,
        conversation: ConversationId,
        user_message: MessageId,
        message: MessageId,
    ) -> Result<(), StoreError> {
        let update = self
            .table
            .update(key.key())
            .update_expression("SET #state = :state, #cid = :cid, #umid = :umid, #mid = :mid")
            .expression_attribute_values(":mid", s(message.to_string()));
        self.record("record idempotency key start", update, KeyState::Running, conversation, user_message).await
    }

    /// No provider answered the user's message: a repeat answers that message.
    pub async fn failed(
        &self,
        key: &KeyRef,
        conversation: ConversationId,
        user_message: MessageId,
    ) -> Result<(), StoreError> {
        let update = self
            .table
            .update(key.key())
            .update_expression("SET #state = :state, #cid = :cid, #umid = :umid REMOVE #mid");
        self.record("record idempotency key failure", update, KeyState::Failed, conversation, user_message).await
    }

    /// Sends `update`, whose expression sets the state and the message answered (`#mid` is the
    /// answer's message id, set or removed).
    async fn record(
        &self,
        op: &'static str,
        update: UpdateItemFluentBuilder,
        state: KeyState,
        conversation: ConversationId,
        user_message: MessageId,
    ) -> Result<(), StoreError> {
        update
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#cid", "conversation_id")
            .expression_attribute_names("#umid", "user_message_id")
            .expression_attribute_names("#mid", "message_id")
            .expression_attribute_values(":state", s(state.as_str()))
            .expression_attribute_values(":cid", s(conversation.to_string()))
            .expression_attribute_values(":umid", s(user_message.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::dynamo(op, e))
    }

    /// A repeat of a failed request takes the work over; `false` if another repeat did first.
    pub async fn retake(&self, key: &KeyRef) -> Result<bool, StoreError> {
        let out = self
            .table
            .update(key.key())
            .update_expression("SET #state = :running")
            .condition_expression("#state = :failed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", s(KeyState::Running.as_str()))
            .expression_attribute_values(":failed", s(KeyState::Failed.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(StoreError::dynamo("retake idempotency key", e)),
        }
    }

    /// Finished, with the JSON answer repeats replay.
    pub async fn done(&self, key: &KeyRef, response: &str) -> Result<(), StoreError> {
        self.table
            .update(key.key())
            .update_expression("SET #state = :state, #response = :response")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":state", s(KeyState::Done.as_str()))
            .expression_attribute_values(":response", s(response))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::dynamo("record idempotency key result", e))
    }

    /// The first request ended in an error that changed nothing: the key is free again (a failed
    /// record stays, so its repeat answers the stored message).
    pub async fn release(&self, key: &KeyRef) -> Result<(), StoreError> {
        let out = self
            .table
            .delete(key.key())
            .condition_expression("#state = :running")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":running", s(KeyState::Running.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(StoreError::dynamo("release idempotency key", e)),
        }
    }

    /// Deletes every key record of a user: one Query per page of their partition, then batch
    /// deletes. Returns how many were removed.
    pub async fn delete_all_for_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut budget = Budget::new(usize::MAX);
        self.erase(user_id, &mut budget).await?;
        Ok(usize::MAX - budget.left())
    }

    /// The erasure of a user's key records (part of the conversations store's), at most
    /// `budget.left()` items; `Done` once none is left.
    pub async fn erase(&self, user_id: &str, budget: &mut Budget) -> Result<Erased, StoreError> {
        let found = self
            .table
            .query()
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(idem_pk(user_id)))
            .projection_expression("#pk, #sk")
            .consistent_read(true);
        self.table.erase_found("erase idempotency keys", found, budget).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!(parse_key(b"8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        assert_eq!(parse_key(b"\"abc:1\"").unwrap(), "abc:1");
        assert_eq!(parse_key(&[b'k'; MAX_KEY_LEN]).unwrap().len(), MAX_KEY_LEN);
        for bad in [&b""[..], b"\"\"", b"has space", b"a#b", b"\xff", b"\"open", &[b'k'; MAX_KEY_LEN + 1]] {
            assert_eq!(parse_key(bad), Err(BadKey), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn same_request_same_fingerprint() {
        let a = fingerprint("/c", "", "application/json", br#"{"message":"hi","stream":false,"model":"m"}"#);
        let b = fingerprint("/c", "", "application/json; charset=utf-8", br#"{"model":"m","message":"hi"}"#);
        assert_eq!(a, b, "stream and key order do not count");
        assert_ne!(a, fingerprint("/c", "", "application/json", br#"{"message":"hi!","model":"m"}"#));
        assert_ne!(a, fingerprint("/r", "", "application/json", br#"{"message":"hi","model":"m"}"#));
        let form =
            |b: &str| format!("--{b}\r\ncontent-disposition: form-data; name=\"file\"\r\n\r\nRIFF\r\n--{b}--\r\n");
        let x = fingerprint("/t", "language=ur", "multipart/form-data; boundary=XyZ1", form("XyZ1").as_bytes());
        let y = fingerprint("/t", "language=ur", "multipart/form-data; boundary=\"q9\"", form("q9").as_bytes());
        assert_eq!(x, y, "the boundary does not count");
        assert_ne!(x, fingerprint("/t", "language=en", "multipart/form-data; boundary=q9", form("q9").as_bytes()));
    }

    #[test]
    fn records_keep_their_stored_layout_and_read_strictly() {
        let key = KeyRef::new("u1", "/c", "k1");
        let claim = ClaimItem {
            pk: &key.pk,
            sk: &key.sk,
            kind: "idempotency-key",
            user_id: "u1",
            fingerprint: "f",
            state: KeyState::Running,
            expires_at: 1_700_000_000,
        };
        let mut item = to_item("idempotency key", &claim).unwrap();
        let want = Item::from([
            ("pk".into(), s("IDEM#u1")),
            ("sk".into(), s("/c#k1")),
            ("kind".into(), s("idempotency-key")),
            ("user_id".into(), s("u1")),
            ("fingerprint".into(), s("f")),
            ("state".into(), s("running")),
            ("expires_at".into(), n(1_700_000_000)),
        ]);
        assert_eq!(item, want);
        let read = |item: &Item| from_item::<KeyRecord>("idempotency key", item);
        let fresh = KeyRecord {
            fingerprint: "f".into(),
            state: KeyState::Running,
            conversation_id: None,
            user_message_id: None,
            message_id: None,
            response: None,
        };
        assert_eq!(read(&item).unwrap(), fresh);
        // As `started`, `failed` and `done` leave it.
        let (c, u, m) = (ConversationId::new(), MessageId::new(), MessageId::new());
        item.insert("state".into(), s(KeyState::Done.as_str()));
        item.insert("conversation_id".into(), s(c.to_string()));
        item.insert("user_message_id".into(), s(u.to_string()));
        item.insert("message_id".into(), s(m.to_string()));
        item.insert("response".into(), s("{}"));
        let done = KeyRecord {
            state: KeyState::Done,
            conversation_id: Some(c),
            user_message_id: Some(u),
            message_id: Some(m),
            response: Some("{}".into()),
            ..fresh
        };
        assert_eq!(read(&item).unwrap(), done);
        assert_eq!(read(&Item::from([("state".into(), s("failed"))])).map(|r| r.state).ok(), None);
        for (attr, bad) in [("state", s("paused")), ("message_id", s("not-an-id")), ("fingerprint", n(1))] {
            let mut garbled = item.clone();
            garbled.insert(attr.into(), bad);
            match read(&garbled) {
                Err(StoreError::Corrupt(why)) => assert!(why.contains(attr), "{why}"),
                other => panic!("{attr}: {other:?}"),
            }
        }
    }
}
