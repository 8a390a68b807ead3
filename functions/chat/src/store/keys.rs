//! Key design of the conversations table (`pk`/`sk`, GSI `by-user` on `gsi1pk`/`gsi1sk`).
//!
//! | item         | pk            | sk          | gsi1pk          | gsi1sk        |
//! |--------------|---------------|-------------|-----------------|---------------|
//! | conversation | `CONV#{cid}`  | `META`      | `USER#{uid}`    | `CONV#{cid}`  |
//! | message      | `CONV#{cid}`  | `M#{mid}`   | `UMSG#{uid}`    | `M#{mid}`     |
//! | conversation being deleted | `CONV#{cid}` | `META` | `UDEL#{uid}` | `CONV#{cid}` |
//! | idempotency key | `IDEM#{uid}` | `{route}#{key}` | —          | —             |
//!
//! - A conversation and its messages share a partition. `META` sorts after every `M#...`, so one
//!   descending Query returns the conversation first and then its newest messages (the context of a
//!   completion is one call).
//! - Ids are UUID v7: a user's conversations list newest first on the index, messages sort by id.
//! - A conversation being deleted moves to `UDEL#{uid}` on the index first: it leaves the user's
//!   list (and search) at once, before its messages are removed, and stays findable by user id
//!   until its item goes (an interrupted delete is finished by the user's erasure).
//! - Messages are indexed under the user (`UMSG#`) so search reads the user's own items only, and
//!   the stream route finds an answer's conversation from its id alone.
//! - Idempotency-Key records (`idempotency`) sit in a partition per user, with a TTL (`expires_at`).

use super::ids::{ConversationId, MessageId};
use super::model::{Item, s};

pub const INDEX: &str = "by-user";
pub const META_SK: &str = "META";
pub const MSG_PREFIX: &str = "M#";

pub fn conv_pk(id: ConversationId) -> String {
    format!("CONV#{id}")
}

pub fn msg_sk(id: MessageId) -> String {
    format!("{MSG_PREFIX}{id}")
}

pub fn user_conversations(user_id: &str) -> String {
    format!("USER#{user_id}")
}

pub fn conv_gsi_sk(id: ConversationId) -> String {
    format!("CONV#{id}")
}

pub fn user_deleting(user_id: &str) -> String {
    format!("UDEL#{user_id}")
}

pub fn user_messages(user_id: &str) -> String {
    format!("UMSG#{user_id}")
}

/// Where a conversation of `user_id` is on the index: a Query's `ExclusiveStartKey` after it.
pub fn conv_index_key(user_id: &str, id: ConversationId) -> Item {
    index_key(conv_pk(id), META_SK.into(), user_conversations(user_id), conv_gsi_sk(id))
}

/// Where a message of `user_id` is on the index: a Query's `ExclusiveStartKey` after it.
pub fn msg_index_key(user_id: &str, conversation: ConversationId, id: MessageId) -> Item {
    index_key(conv_pk(conversation), msg_sk(id), user_messages(user_id), msg_sk(id))
}

fn index_key(pk: String, sk: String, gsi1pk: String, gsi1sk: String) -> Item {
    Item::from([("pk".into(), s(pk)), ("sk".into(), s(sk)), ("gsi1pk".into(), s(gsi1pk)), ("gsi1sk".into(), s(gsi1sk))])
}

/// `M#{mid}` -> the id.
pub fn parse_msg_sk(sk: &str) -> Option<MessageId> {
    sk.strip_prefix(MSG_PREFIX).and_then(|s| s.parse::<MessageId>().ok())
}

/// `CONV#{cid}` -> the id.
pub fn parse_conv_pk(pk: &str) -> Option<ConversationId> {
    pk.strip_prefix("CONV#").and_then(|s| s.parse::<ConversationId>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_sorts_after_every_message() {
        let m = msg_sk(MessageId::new());
        assert!(META_SK > m.as_str());
        assert!(META_SK.as_bytes() > b"M#ffffffff-ffff-7fff-bfff-ffffffffffff".as_slice());
        assert!(!META_SK.starts_with(MSG_PREFIX));
    }

    #[test]
    fn keys_round_trip() {
        let (c, m) = (ConversationId::new(), MessageId::new());
        assert_eq!(parse_conv_pk(&conv_pk(c)), Some(c));
        assert_eq!(parse_msg_sk(&msg_sk(m)), Some(m));
        assert_eq!(parse_msg_sk(META_SK), None);
    }
}
