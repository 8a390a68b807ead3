//! JSON pointers (RFC 6901) naming the input a failure is about: body fields as `/title`,
//! query parameters as `/query/limit`, path parameters as `/path/id`.

use std::fmt::Write as _;

/// Where query parameters and path parameters live in the pointer space of a request.
pub const QUERY: &str = "/query";
pub const PATH: &str = "/path";

/// Escapes one reference token: `~` -> `~0`, `/` -> `~1`.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `base` + `/token`, the token escaped.
pub fn join(base: &str, token: &str) -> String {
    format!("{base}/{}", escape(token))
}

/// The pointer of a serde failure, from the path `serde_path_to_error` tracked.
pub fn from_serde_path(base: &str, path: &serde_path_to_error::Path) -> String {
    let mut out = base.to_string();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                let _ = write!(out, "/{index}");
            }
            serde_path_to_error::Segment::Map { key } => out.push_str(&join("", key)),
            serde_path_to_error::Segment::Enum { variant } => out.push_str(&join("", variant)),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// The pointer of a field serde ignored (an unknown field).
pub fn from_ignored_path(base: &str, path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        match path {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                let _ = write!(out, "/{index}");
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                out.push_str(&join("", key));
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = base.to_string();
    walk(path, &mut out);
    out
}

/// Serde reports a missing, duplicate or unknown field at its parent, naming it in backticks
/// (``missing field `title` ``); this recovers the field so the pointer names it.
pub fn named_field(message: &str) -> Option<&str> {
    let rest =
        ["missing field `", "unknown field `", "duplicate field `"].iter().find_map(|p| message.strip_prefix(p))?;
    rest.split('`').next().filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reference_tokens() {
        assert_eq!(join("", "a/b~c"), "/a~1b~0c");
        assert_eq!(join("/query", "limit"), "/query/limit");
    }

    #[test]
    fn recovers_field_names_from_serde_messages() {
        assert_eq!(named_field("missing field `title`"), Some("title"));
        assert_eq!(named_field("unknown field `x`, expected one of `a`, `b`"), Some("x"));
        assert_eq!(named_field("duplicate field `limit`"), Some("limit"));
        assert_eq!(named_field("invalid type: string \"a\", expected u32"), None);
    }
}
