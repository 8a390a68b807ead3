//! Conversation and message ids: UUID v7, so ids sort by creation time (messages are ordered by
//! their id; conversations list newest first by theirs). Only the canonical lowercase hyphenated
//! form is accepted back, so every id has exactly one key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

macro_rules! sortable_id {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id; ids made by this process are strictly increasing.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The canonical form only (36 chars, lowercase, hyphenated).
            pub fn parse(s: &str) -> Option<Self> {
                if s.len() != 36 {
                    return None;
                }
                let u = Uuid::try_parse(s).ok()?;
                (u.hyphenated().to_string() == s).then_some(Self(u))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or(InvalidId($what))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(concat!("not a valid ", $what)))
            }
        }
    };
}

sortable_id!(ConversationId, "conversation id");
sortable_id!(MessageId, "message id");

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {0}")]
pub struct InvalidId(pub &'static str);

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
        assert_eq!(ConversationId::parse(&s), Some(id));
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
            assert_eq!(ConversationId::parse(&bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<ConversationId>("\"nope\"").is_err());
        assert_eq!(serde_json::from_str::<ConversationId>(&format!("\"{s}\"")).unwrap(), id);
    }
}
