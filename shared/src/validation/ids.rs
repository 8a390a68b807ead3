//! Id newtypes that check their format when parsed (from a path, a query, a body), so a value
//! of one of these types is always well-formed and safe to put in a store key.
//!
//! Resource ids are UUIDs in canonical form: 36 characters, lowercase hex, hyphens at 8-13-18-23.
//! Only that spelling is accepted, so one resource has exactly one id string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::validation::report::no_rules;

/// The OpenAPI schema of an id type: a string with the format rules its parser enforces, as a
/// named component (`#/components/schemas/<Name>`) that request and response schemas refer to.
/// `ids_schemas_state_the_parsers_rules` checks each pattern against the parser.
fn string_schema(
    description: &str,
    pattern: &str,
    min: usize,
    max: usize,
    format: Option<&str>,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(|f| SchemaFormat::Custom(f.into())))
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .examples([example])
        .into()
}

/// A canonical UUID: 36 characters, lowercase hex, hyphens at 8-13-18-23.
pub const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// Why an id failed to parse; the `Display` is the client-facing detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a valid {what} ({format})")]
pub struct IdError {
    what: &'static str,
    format: &'static str,
}

/// Canonical lowercase hyphenated UUID text, nil refused.
fn parse_canonical_uuid(s: &str) -> Option<uuid::Uuid> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        });
    if !shape_ok {
        return None;
    }
    uuid::Uuid::parse_str(s).ok().filter(|u| !u.is_nil())
}

/// What every id type shares, given its `Display` and `FromStr`: it is its text in JSON and in
/// the OpenAPI document (`schema`), and has no rules beyond its parsing.
macro_rules! id_text {
    ($name:ident, $schema:expr) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $name {}

        no_rules!($name);
    };
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub const WHAT: &'static str = $what;

            /// A new id, time-ordered (UUIDv7) so keys sort by creation.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_canonical_uuid(s).map(Self).ok_or(IdError { what: $what, format: "a lowercase UUID" })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        id_text!(
            $name,
            string_schema(
                concat!("A ", $what, ": a UUID in canonical form (lowercase, hyphenated; not the nil UUID)."),
                UUID_PATTERN,
                36,
                36,
                Some("uuid"),
                $example,
            )
        );
    };
}

uuid_id!(
    /// A conversation.
    ConversationId,
    "conversation id",
    "0190b8a4-5b7e-7000-8000-000000000001"
);
uuid_id!(
    /// A message within a conversation.
    MessageId,
    "message id",
    "0190b8a4-5b7f-7000-8000-000000000002"
);
uuid_id!(
    /// A stored file (upload). Files are stored and served under this id, never a client's name.
    FileId,
    "file id",
    "0190b8a4-5b80-7000-8000-000000000003"
);

/// Text ids with a fixed alphabet: a prefix and a bounded run of allowed bytes.
macro_rules! text_id {
    (
        $(#[$doc:meta])* $name:ident, $what:literal, $format:literal, $valid:expr,
        schema: $description:literal, $pattern:literal, $min:literal..=$max:literal, $example:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const WHAT: &'static str = $what;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) { Ok(Self(s.to_string())) } else { Err(IdError { what: $what, format: $format }) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            /// The documented pattern (ECMA-262 and Rust `regex` read it alike).
            pub const PATTERN: &'static str = $pattern;
            pub const MIN_LEN: usize = $min;
            pub const MAX_LEN: usize = $max;
        }

        id_text!($name, string_schema($description, $pattern, $min, $max, None, $example));
    };
}

text_id!(
    /// A Clerk user id as Clerk issues them: `user_` and 1..=64 ASCII letters or digits.
    ClerkUserId,
    "Clerk user id",
    "user_ followed by letters and digits",
    |s| s.strip_prefix("user_").is_some_and(|r| (1..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())),
    schema: "A Clerk user id: `user_` and 1-64 ASCII letters or digits.",
    "^user_[A-Za-z0-9]{1,64}$",
    6..=69,
    "user_2abcDEF123"
);

text_id!(
    /// A model name as OpenAI-compatible providers spell them (`llama-3.1-8b-instant`,
    /// `meta-llama/llama-3.1-8b-instruct:free`): 1..=128 of `[A-Za-z0-9._:/-]`, starting
    /// alphanumeric, no `..` or `//`.
    ModelId,
    "model id",
    "letters, digits and . _ : / -",
    |s| (1..=128).contains(&s.len())
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
        && !s.contains("..")
        && !s.contains("//"),
    schema: "A model id as providers spell them: 1-128 of `A-Z a-z 0-9 . _ : / -`, starting with a letter or digit, without `..` or `//`.",
    // A letter or digit, then runs of (alternating `.`/`/` separators, one other allowed
    // character), then at most one trailing separator run: no `..` and no `//` anywhere.
    "^[A-Za-z0-9](?:\\.?(?:/\\.)*/?[A-Za-z0-9_:-])*\\.?(?:/\\.)*/?$",
    1..=128,
    "llama-3.1-8b-instant"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uuid_ids_accept_only_the_canonical_spelling() {
        let id = ConversationId::new();
        let s = id.to_string();
        assert_eq!(s.parse::<ConversationId>().unwrap(), id);
        let upper = s.to_uppercase();
        for bad in [
            upper.as_str(),
            "00000000-0000-0000-0000-000000000000",
            "{0190b8a4-5b7e-7000-8000-000000000001}",
            "urn:uuid:0190b8a4-5b7e-7000-8000-000000000001",
            "0190b8a45b7e70008000000000000001",
            "0190b8a4-5b7e-7000-8000-00000000000g",
            "0190b8a4-5b7e-7000-8000-0000000000011",
            "0190b8a4-5b7e-7000-8000-00000000001",
            "../../etc/passwd",
            "",
        ] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad}");
        }
        let e = "x".parse::<ConversationId>().unwrap_err();
        assert_eq!(e.to_string(), "must be a valid conversation id (a lowercase UUID)");
    }

    #[test]
    fn ids_round_trip_through_serde() {
        let id = MessageId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<MessageId>("\"nope\"").is_err());
        assert!(serde_json::from_str::<MessageId>("5").is_err());
    }

    #[test]
    fn text_ids() {
        assert!("user_2abcDEF123".parse::<ClerkUserId>().is_ok());
        for bad in ["user_", "user_a-b", "usr_abc", "user_abc\n", "user_ä"] {
            assert!(bad.parse::<ClerkUserId>().is_err(), "{bad}");
        }
        for ok in ["llama-3.1-8b-instant", "meta-llama/llama-3.1-8b-instruct:free", "gpt-4o"] {
            assert!(ok.parse::<ModelId>().is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/../b", "a//b", "<script>", &"a".repeat(129)] {
            assert!(bad.parse::<ModelId>().is_err(), "{bad}");
        }
    }

    /// Whether a value meets an id's documented schema (pattern and length in characters).
    fn schema_accepts(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>, s: &str) -> bool {
        let v = serde_json::to_value(schema).unwrap();
        let re = regex::Regex::new(v["pattern"].as_str().unwrap()).unwrap();
        let n = s.chars().count() as u64;
        re.is_match(s) && n >= v["minLength"].as_u64().unwrap() && n <= v["maxLength"].as_u64().unwrap()
    }

    fn agree<T: utoipa::PartialSchema + FromStr>(s: &str) {
        assert_eq!(schema_accepts(T::schema(), s), s.parse::<T>().is_ok(), "{s:?}");
    }

    /// The documented schema of each id says exactly what its parser accepts (the nil UUID
    /// aside: a pattern cannot refuse it, the description says it).
    #[test]
    fn id_schemas_state_the_parsers_rules() {
        use utoipa::PartialSchema;
        let samples = [
            "",
            "user_",
            "user_2abcDEF123",
            "user_a-b",
            "usr_abc",
            "user_abc\n",
            "user_ä",
            "x",
            "-x",
            "a b",
            "a/../b",
            "a//b",
            "a/./b",
            "a./b",
            "a/.",
            "a.",
            "a/",
            "./a",
            "a..",
            "gpt-4o",
            "meta-llama/llama-3.1-8b-instruct:free",
            "llama-3.1-8b-instant",
            "a:b_c-d",
            "<script>",
            "a\n",
            "\na",
            "0190b8a4-5b7e-7000-8000-000000000001",
            "0190B8A4-5B7E-7000-8000-000000000001",
            "0190b8a45b7e70008000000000000001",
            "0190b8a4-5b7e-7000-8000-00000000000g",
            "0190b8a4-5b7e-7000-8000-000000000001\n",
        ];
        let long =
            ["a".repeat(128), "a".repeat(129), format!("user_{}", "a".repeat(64)), format!("user_{}", "a".repeat(65))];
        for s in samples.iter().copied().chain(long.iter().map(String::as_str)) {
            agree::<ClerkUserId>(s);
            agree::<ModelId>(s);
            agree::<ConversationId>(s);
            agree::<MessageId>(s);
        }
        agree::<ConversationId>(&ConversationId::new().to_string());
        let v = serde_json::to_value(ConversationId::schema()).unwrap();
        assert_eq!(v["format"], "uuid");
        assert!(v["description"].as_str().unwrap().contains("not the nil UUID"));
    }

    proptest! {
        #[test]
        fn id_schemas_agree_with_the_parsers(s in "[a-zA-Z0-9._:/-]{0,130}|user_[a-zA-Z0-9]{0,66}|[0-9a-f-]{36}|\\PC{0,8}") {
            agree::<ClerkUserId>(&s);
            agree::<ModelId>(&s);
            if s != "00000000-0000-0000-0000-000000000000" {
                agree::<ConversationId>(&s);
            }
        }

        #[test]
        fn no_string_panics_the_id_parsers(s in any::<String>()) {
            if let Ok(id) = s.parse::<ConversationId>() {
                prop_assert_eq!(id.to_string(), s.clone());
            }
            let _ = s.parse::<ClerkUserId>();
            let _ = s.parse::<ModelId>();
        }
    }
}
