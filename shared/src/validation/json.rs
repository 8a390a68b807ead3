//! `ValidJson<T>`: the body as `T`, or a problem+json saying exactly what is wrong.
//!
//! Order of checks: media type (415) -> size, before parsing (413) -> JSON syntax and UTF-8
//! (400) -> shape: types, missing and unknown fields (422, pointer of the field) -> the type's
//! `Validate` rules (422, every failing field).

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::validation::{BodyLimit, Validate, body, pointer, validate};

/// Most JSON failure messages are short; bound what reaches the client anyway.
const MAX_DETAIL: usize = 200;

#[derive(Debug, Clone)]
pub struct ValidJson<T>(pub T);

impl<T, S> FromRequest<S> for ValidJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        body::require_json(req.headers())?;
        let limit = BodyLimit::from_extensions(req.extensions()).0;
        let (parts, body) = req.into_parts();
        let bytes = body::read_limited(&parts.headers, body, limit).await?;
        validate(parse_json::<T>(&bytes)?, "").map(ValidJson)
    }
}

/// Deserializes a request body, a JSON object, as `T`, rejecting unknown fields anywhere in the
/// document (all of them are listed), naming the field of a type failure, and telling syntax
/// errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // RFC 8259 lets a parser ignore a UTF-8 byte order mark, which some platforms' encoders write.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("The request body is empty; a JSON document is required.".into()));
    }
    // Syntax first, over the whole document: a body that is not JSON is a 400 even when a
    // prefix of it would already fail as the wrong shape.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(syntax_error)?;
    // Then the root, before any field: an array must not be read as the struct's fields in order.
    require_object(bytes)?;
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = {
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(pointer::from_ignored_path("", &path));
        let ignoring = serde_ignored::Deserializer::new(&mut de, &mut record);
        serde_path_to_error::deserialize::<_, T>(ignoring)
    };
    match result {
        Ok(value) => {
            de.end().map_err(syntax_error)?;
            if unknown.is_empty() {
                Ok(value)
            } else {
                Err(ApiError::Validation(
                    unknown.into_iter().map(|p| FieldError::new(p, "is not a known field")).collect(),
                ))
            }
        }
        Err(e) => {
            let path = e.path().clone();
            let inner = e.into_inner();
            // A number too large for its type (1e400) is valid JSON: serde_json calls it a syntax
            // error, but the client's mistake is the field's value.
            let out_of_range = inner.to_string().starts_with("number out of range");
            match inner.classify() {
                serde_json::error::Category::Data => Err(shape_error("", &path, &inner.to_string())),
                serde_json::error::Category::Syntax if out_of_range => {
                    Err(shape_error("", &path, "is out of range for a number"))
                }
                _ => Err(syntax_error(inner)),
            }
        }
    }
}

/// Every request body of this API is a JSON object. serde's derived structs also accept an array
/// of their fields in order (`["hello", null, 0.5]`), a second spelling no client is told about:
/// refused here, once the document is known to be valid JSON.
fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::Validation(vec![FieldError::new("", "must be a JSON object")])),
    }
}

fn syntax_error(e: serde_json::Error) -> ApiError {
    ApiError::BadRequest(format!("The request body is not valid JSON (line {}, column {}).", e.line(), e.column()))
}

/// A 422 at the failing field. serde_json appends " at line L column C" to data errors; the
/// pointer says where, so that is dropped.
pub(crate) fn shape_error(base: &str, path: &serde_path_to_error::Path, message: &str) -> ApiError {
    let message = message.split(" at line ").next().unwrap_or(message);
    let mut at = pointer::from_serde_path(base, path);
    let detail = match pointer::named_field(message) {
        Some(field) => {
            // Depending on the format the path may already end at the field.
            let tail = pointer::join("", field);
            if !at.ends_with(&tail) {
                at.push_str(&tail);
            }
            match message.split(' ').next() {
                Some("missing") => "is required",
                Some("duplicate") => "must not be repeated",
                _ => "is not a known field",
            }
            .to_string()
        }
        None => truncate(message),
    };
    ApiError::Validation(vec![FieldError::new(at, detail)])
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_DETAIL {
        return s.to_string();
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Msg {
        role: String,
        content: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        title: String,
        limit: u32,
        #[serde(default)]
        messages: Vec<Msg>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: u32,
    }

    fn errors(r: Result<impl std::fmt::Debug, ApiError>) -> Vec<(String, String)> {
        match r {
            Err(ApiError::Validation(e)) => e.into_iter().map(|f| (f.pointer, f.detail)).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = errors(parse_json::<Req>(br#"{"title":"a","limit":"ten"}"#));
        assert_eq!(e[0].0, "/limit");
        assert!(e[0].1.contains("expected u32"), "{e:?}");
        let e = errors(parse_json::<Req>(br#"{"title":"a","limit":1,"messages":[{"role":"user","content":5}]}"#));
        assert_eq!(e[0].0, "/messages/0/content");
        let e = errors(parse_json::<Req>(br#"{"title":"a","limit":-1}"#));
        assert_eq!(e[0].0, "/limit");
    }

    #[test]
    fn a_byte_order_mark_is_ignored_and_a_huge_number_is_the_fields_fault() {
        assert!(parse_json::<Strict>(b"\xEF\xBB\xBF{\"a\":1}").is_ok());
        assert_eq!(parse_json::<Strict>(b"\xEF\xBB\xBF").unwrap_err().status(), 400, "a mark alone is empty");
        assert_eq!(errors(parse_json::<Strict>(br#"{"a":1e400}"#))[0].0, "/a");
        let e =
            errors(parse_json::<Req>(br#"{"title":"a","limit":1,"messages":[{"role":"u","content":"c"}],"x":1e999}"#));
        assert_eq!(e[0].0, "/x", "{e:?}");
    }

    #[test]
    fn missing_fields_are_named() {
        let e = errors(parse_json::<Req>(br#"{"title":"a","messages":[{"role":"user"}]}"#));
        assert_eq!(e, [("/messages/0/content".to_string(), "is required".to_string())]);
    }

    #[test]
    fn every_unknown_field_is_listed() {
        let e = errors(parse_json::<Req>(
            br#"{"title":"a","limit":1,"admin":true,"messages":[{"role":"u","content":"c","x~/y":1}]}"#,
        ));
        let pointers: Vec<_> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/admin", "/messages/0/x~0~1y"]);
        let e = errors(parse_json::<Strict>(br#"{"a":1,"b":2}"#));
        assert_eq!(e, [("/b".to_string(), "is not a known field".to_string())]);
    }

    #[test]
    fn only_an_object_is_a_body() {
        assert!(require_object(b" \n\t{\"a\":1}").is_ok());
        for bad in [&b"[1]"[..], b"\"x\"", b"5", b"null", b"true"] {
            assert_eq!(errors(require_object(bad)), [(String::new(), "must be a JSON object".to_string())]);
        }
        // serde's derived structs take the array spelling, whole or wrongly typed: refused at the
        // root before any field is read.
        for array in [&b"[7]"[..], b"[\"x\"]", b"[]"] {
            assert_eq!(errors(parse_json::<Strict>(array)), [(String::new(), "must be a JSON object".to_string())]);
        }
        // Syntax still comes first.
        assert_eq!(parse_json::<Strict>(b"[7,").unwrap_err().status(), 400);
    }

    #[test]
    fn syntax_errors_are_400() {
        for bad in [
            &b"{"[..],
            b"{\"title\":\"a\",}",
            b"",
            b"{\"title\":\"\xff\xfe\",\"limit\":1}",
            b"{\"title\":\"\\ud800\",\"limit\":1}",
            b"{\"title\":\"a\",\"limit\":1} x",
        ] {
            let err = parse_json::<Req>(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{:?}: {err:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}1{}", "{\"a\":".repeat(1000), "}".repeat(1000));
        assert_eq!(parse_json::<serde_json::Value>(deep.as_bytes()).unwrap_err().status(), 400);
    }

    #[test]
    fn wrong_top_level_type_points_at_the_root() {
        let e = errors(parse_json::<Req>(b"\"hi\""));
        assert_eq!(e[0].0, "");
        let e = errors(parse_json::<Req>(br#"{"title":"a","title":"b","limit":1}"#));
        assert_eq!(e, [("/title".to_string(), "must not be repeated".to_string())]);
    }
}
