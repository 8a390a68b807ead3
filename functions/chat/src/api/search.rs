//! `GET /api/v1/conversations/search`.

use baatcheet_shared::validation::chars::{TRIMMED_TEXT_PATTERN, is_blank};
use baatcheet_shared::validation::{Report, Validate, text};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::common::{CursorText, PageRequest, text_schema};
use crate::store::cursor::Cursor;
use crate::store::search::SearchHit;

pub const MAX_SEARCH_PAGE: usize = 50;
pub const MAX_QUERY_CHARS: usize = 200;

/// Documentation only: `SearchQuery::q` (the parameter carries the description).
pub struct SearchText;

impl PartialSchema for SearchText {
    fn schema() -> RefOr<Schema> {
        text_schema(None, TRIMMED_TEXT_PATTERN, Some(1), MAX_QUERY_CHARS, None, false)
    }
}

impl ToSchema for SearchText {}

/// `GET /api/v1/conversations/search?q=&limit=&cursor=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The text to find in titles, then in messages: trimmed, then 1-200 characters, not blank,
    /// without control characters other than tab, line feed and carriage return. Matched in
    /// folded form (docs/chat.md, "Search"): Urdu letter variants (Arabic keyboard ك ي ه), diacritics,
    /// tatweel, joiners and digits of any script are folded; Latin is case- and accent-folded,
    /// with Roman Urdu spellings met (`salaam` = `salam`, `kese` = `kaise`).
    #[param(value_type = SearchText, inline, example = "chai")]
    pub q: String,
    /// Results per page, 1-50 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 50, example = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous search page (opaque).
    #[serde(default)]
    #[param(value_type = Option<CursorText>, inline)]
    pub cursor: Option<Cursor>,
}

/// The rules of a search, shared by the query's `Validate` and the service's own check.
pub fn check_search(r: &mut Report, q: &str, cursor: Option<&Cursor>) {
    let chars = q.chars().count();
    if is_blank(q) {
        r.fail_at("q", "must not be empty");
    } else if q.trim() != q || chars > MAX_QUERY_CHARS {
        r.fail_at("q", format!("must be 1-{MAX_QUERY_CHARS} characters"));
    } else if let Err(e) = text::check_free_text(q) {
        r.fail_at("q", e.to_string());
    }
    if cursor.is_some_and(|c| !c.is_search()) {
        r.fail_at("cursor", "is not a valid cursor");
    }
}

impl Validate for SearchQuery {
    fn validate(&mut self, r: &mut Report) {
        let trimmed = self.q.trim();
        if trimmed.len() != self.q.len() {
            self.q = trimmed.to_string();
        }
        check_search(r, &self.q, self.cursor.as_ref());
        if let Some(l) = self.limit {
            text::range(r, "limit", l, 1, MAX_SEARCH_PAGE as u32);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Trimmed, 1-200 characters.
    pub q: String,
    pub page: PageRequest,
}

impl SearchQuery {
    pub fn into_request(self) -> SearchRequest {
        SearchRequest {
            q: self.q,
            page: PageRequest { limit: self.limit.map_or(20, |l| l as usize), cursor: self.cursor },
        }
    }
}

/// A page of search results: title matches first, then message matches, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
    /// Pass as `cursor` to search on (older data, or the rest of a page cut short by the work
    /// bound); `null` when everything was searched.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Items read for this page (the work per request is bounded).
    #[schema(minimum = 0)]
    pub scanned: usize,
}
