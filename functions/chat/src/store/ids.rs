//! Conversation and message ids: the shared validated id types (UUID v7, so ids sort by creation
//! time: messages are ordered by their id; conversations list newest first by theirs). Only the
//! canonical lowercase hyphenated form parses, so every id has exactly one key, and a malformed id
//! in a path, query or body is a 422 before any store call.

pub use baatcheet_shared::validation::{ConversationId, MessageId};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.windows(2).all(|w| w[0].to_string() < w[1].to_string()), "string order matches too");
    }

    #[test]
    fn only_canonical_form_parses() {
        let id = ConversationId::new();
        let s = id.to_string();
        assert_eq!(s.parse::<ConversationId>().ok(), Some(id));
        for bad in [
            s.to_uppercase(),
            s.replace('-', ""),
            format!("{{{s}}}"),
            format!("urn:uuid:{s}"),
            format!("{s} "),
            "CONV#x".into(),
            "".into(),
            "../../etc/passwd".into(),
        ] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ConversationId>("\"nope\"").is_err());
        assert_eq!(serde_json::from_str::<ConversationId>(&format!("\"{s}\"")).unwrap(), id);
    }
}
