//! Typed request validation. Extractors whose rejections are problem+json:
//! - [`ValidJson<T>`]: media type (415), size before parsing (413, [`BodyLimit`], default 1 MiB),
//!   JSON syntax (400), types / missing / unknown fields (422 with the field's pointer), then
//!   `T`'s [`Validate`] rules (422 listing every failing field);
//! - [`ValidQuery<T>`] and [`ValidPath<T>`]: the same for `/query/...` and `/path/...`;
//! - id newtypes ([`ConversationId`], ...) that check their format while parsing.
//!
//! String rules live in [`text`]: short identifiers are NFC-normalised; message content is kept
//! byte-exact. Their character classes (and the OpenAPI patterns made of them) live in [`chars`].

pub mod body;
pub mod chars;
pub mod ids;
pub mod json;
pub mod path;
pub mod pointer;
pub mod query;
pub mod report;
pub mod text;

pub use body::{BodyLimit, KIB, MIB};
pub use ids::{ClerkUserId, ConversationId, FileId, IdError, MessageId, ModelId};
pub use json::{ValidJson, parse_json};
pub use path::ValidPath;
pub use query::{ValidQuery, parse_query};
pub use report::{Report, Validate, check, validate};
pub use text::TextError;
