//! What several resources share: pages (`?limit=&cursor=`), the `model` rule and the schema of a
//! text field.

use baatcheet_shared::validation::{ModelId, Report, Validate, text};
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::store::cursor::{Cursor, MAX_CURSOR_LEN};

pub const MAX_PAGE: usize = 100;

/// `model`: a model id in the form providers spell them (the shared `ModelId` rule).
pub(super) fn check_model(r: &mut Report, model: Option<&str>) {
    if let Some(m) = model
        && let Err(e) = m.parse::<ModelId>()
    {
        r.fail_at("model", e.to_string());
    }
}

// The text fields' schemas, documentation only: each states its field's limits and the shared
// text rule as a pattern (`baatcheet_shared::validation::chars`: the character classes the
// validation code uses, in one place; `api/tests.rs` checks pattern and validation agree).

/// A string schema: `pattern`, lengths, example, and `description` when the field's own doc
/// comment cannot carry it (a struct field with a `value_type` schema; a parameter keeps its own).
pub(super) fn text_schema(
    description: Option<&str>,
    pattern: &str,
    min_length: Option<usize>,
    max_length: usize,
    example: Option<&str>,
    nullable: bool,
) -> RefOr<Schema> {
    let schema_type =
        if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) };
    #[allow(deprecated)] // `example`, like every derived schema of the API
    ObjectBuilder::new()
        .schema_type(schema_type)
        .description(description)
        .example(example.map(serde_json::Value::from))
        .min_length(min_length)
        .max_length(Some(max_length))
        .pattern(Some(pattern))
        .into()
}

/// Documentation only: a `cursor` parameter, the form `Cursor::encode` writes (its `next_cursor`).
pub struct CursorText;

impl PartialSchema for CursorText {
    fn schema() -> RefOr<Schema> {
        text_schema(None, "^[A-Za-z0-9_-]+$", Some(1), MAX_CURSOR_LEN, None, false)
    }
}

impl ToSchema for CursorText {}

/// Query of the list endpoints (`?limit=&cursor=`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1-100 (default: 20 conversations, 50 messages).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque).
    #[serde(default)]
    #[param(value_type = Option<CursorText>, inline)]
    pub cursor: Option<Cursor>,
}

impl Validate for PageQuery {
    fn validate(&mut self, r: &mut Report) {
        if let Some(l) = self.limit {
            text::range(r, "limit", l, 1, MAX_PAGE as u32);
        }
    }
}

impl PageQuery {
    /// `default` items when no limit is given.
    pub fn page(&self, default: usize) -> PageRequest {
        PageRequest { limit: self.limit.map_or(default, |l| l as usize), cursor: self.cursor }
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        Self { limit, cursor: None }
    }
}
