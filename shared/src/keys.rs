//! DynamoDB keys built only from validated ids and compile-time prefixes. A key string is never
//! assembled from raw request text: `key(PREFIX, &id)` takes a `&'static str` prefix and a
//! [`KeyPart`], which only the validated id types (and numbers) implement (the trait is sealed).
//! Expressions stay constant strings with `#name` / `:value` placeholders (a workspace test
//! checks that no expression is built at run time).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A value allowed inside a key string.
pub trait KeyPart: sealed::Sealed {
    fn key_part(&self) -> String;
}

/// Numbers are zero-padded so that keys sort numerically.
impl KeyPart for u64 {
    fn key_part(&self) -> String {
        format!("{self:020}")
    }
}
impl sealed::Sealed for u64 {}

/// `PREFIX#part`, e.g. `key("CONV", &conversation_id)` -> `CONV#0190...`.
pub fn key(prefix: &'static str, part: &impl KeyPart) -> String {
    format!("{prefix}#{}", part.key_part())
}

/// `PREFIX#a#b`, for composite sort keys such as a message's time and id.
pub fn key2(prefix: &'static str, a: &impl KeyPart, b: &impl KeyPart) -> String {
    format!("{prefix}#{}#{}", a.key_part(), b.key_part())
}

/// The key map of an item: `pk` and, for tables with a sort key, `sk`.
pub fn item_key(pk: String, sk: Option<String>) -> HashMap<String, AttributeValue> {
    let mut m = HashMap::with_capacity(2);
    m.insert("pk".to_string(), AttributeValue::S(pk));
    if let Some(sk) = sk {
        m.insert("sk".to_string(), AttributeValue::S(sk));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{ClerkUserId, ConversationId};

    #[test]
    fn keys_come_from_validated_parts() {
        let id: ConversationId = "0190b8a4-5b7e-7000-8000-000000000001".parse().unwrap();
        assert_eq!(key("CONV", &id), "CONV#0190b8a4-5b7e-7000-8000-000000000001");
        let user: ClerkUserId = "user_abc".parse().unwrap();
        assert_eq!(key2("MSG", &42u64, &id), "MSG#00000000000000000042#0190b8a4-5b7e-7000-8000-000000000001");
        let k = item_key(key("USER", &user), Some(key("CONV", &id)));
        assert_eq!(k["pk"], AttributeValue::S("USER#user_abc".into()));
        assert_eq!(k.len(), 2);
    }
}
