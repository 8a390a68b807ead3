//! `ValidQuery<T>`: the query string as `T`. Pointers are `/query/<name>`. Unknown parameters,
//! repeated parameters and text that is not UTF-8 once percent-decoded are refused rather than
//! silently dropped, replaced or last-wins.

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::validation::{Validate, json::shape_error, pointer, validate};

#[derive(Debug, Clone)]
pub struct ValidQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ValidQuery<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let value = parse_query::<T>(parts.uri.query().unwrap_or(""))?;
        validate(value, pointer::QUERY).map(ValidQuery)
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    check_utf8(query)?;
    let mut unknown = Vec::new();
    let result = {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let mut record =
            |path: serde_ignored::Path<'_>| unknown.push(pointer::from_ignored_path(pointer::QUERY, &path));
        let ignoring = serde_ignored::Deserializer::new(de, &mut record);
        serde_path_to_error::deserialize::<_, T>(ignoring)
    };
    match result {
        Ok(v) if unknown.is_empty() => Ok(v),
        Ok(_) => Err(ApiError::Validation(
            unknown.into_iter().map(|p| FieldError::new(p, "is not a known query parameter")).collect(),
        )),
        Err(e) => Err(shape_error(pointer::QUERY, e.path(), &e.inner().to_string())),
    }
}

/// `form_urlencoded` decodes lossily (U+FFFD); refuse instead, naming the parameter if we can.
fn check_utf8(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            let plus = s.replace('+', " ");
            percent_encoding::percent_decode_str(&plus).decode_utf8().map(|c| c.into_owned())
        };
        let key = decode(k).map_err(|_| ApiError::BadRequest("The query string is not valid UTF-8.".into()))?;
        if decode(v).is_err() {
            return Err(ApiError::Validation(vec![FieldError::new(
                pointer::join(pointer::QUERY, &key),
                "is not valid UTF-8",
            )]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
        cursor: Option<String>,
    }

    fn pointers(r: Result<Page, ApiError>) -> Vec<String> {
        match r {
            Err(ApiError::Validation(e)) => e.into_iter().map(|f| f.pointer).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn parses_and_rejects() {
        let p = parse_query::<Page>("limit=20&cursor=a%2Fb").unwrap();
        assert_eq!((p.limit, p.cursor.as_deref()), (Some(20), Some("a/b")));
        assert!(parse_query::<Page>("").is_ok());
        assert_eq!(pointers(parse_query("limit=abc")), ["/query/limit"]);
        assert_eq!(pointers(parse_query("limit=-1")), ["/query/limit"]);
        assert_eq!(pointers(parse_query("limit=1&limit=2")), ["/query/limit"]);
        assert_eq!(pointers(parse_query("sort=asc&x=1")), ["/query/sort", "/query/x"]);
        assert_eq!(pointers(parse_query("cursor=%FF")), ["/query/cursor"]);
        assert_eq!(parse_query::<Page>("%FF=1").unwrap_err().status(), 400);
    }
}
