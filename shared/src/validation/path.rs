//! `ValidPath<T>`: path parameters as `T`, pointers `/path/<name>`. Id newtypes check their
//! format while deserializing, so a malformed id is a 422 before any store call.

use axum::extract::path::ErrorKind;
use axum::extract::{FromRequestParts, Path, RawPathParams, rejection::PathRejection};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::validation::{Validate, pointer, validate};

#[derive(Debug, Clone)]
pub struct ValidPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ValidPath<T>
where
    T: DeserializeOwned + Validate + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => validate(value, pointer::PATH).map(ValidPath),
            Err(rejection) => {
                // Some failures (a custom error from a struct field) come without the key; with
                // one parameter in the route there is no doubt which it was.
                let only = RawPathParams::from_request_parts(parts, state).await.ok().and_then(|raw| {
                    let mut it = raw.iter();
                    let first = it.next().map(|(k, _)| k.to_string());
                    if it.next().is_none() { first } else { None }
                });
                Err(map_rejection(rejection, only.as_deref()))
            }
        }
    }
}

fn at(key: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(pointer::join(pointer::PATH, key), detail)])
}

fn map_rejection(rejection: PathRejection, only_param: Option<&str>) -> ApiError {
    let unkeyed = |detail: String| match only_param {
        Some(key) => at(key, detail),
        None => ApiError::Validation(vec![FieldError::new(pointer::PATH, detail)]),
    };
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        // No parameters matched: the route and the extractor disagree, a programming error.
        return ApiError::internal(std::io::Error::other(rejection.body_text()));
    };
    match e.into_kind() {
        ErrorKind::ParseErrorAtKey { key, expected_type, .. } => at(&key, format!("must be a valid {expected_type}")),
        ErrorKind::DeserializeError { key, message, .. } => at(&key, message),
        ErrorKind::InvalidUtf8InPathParam { key } => at(&key, "is not valid UTF-8"),
        ErrorKind::ParseErrorAtIndex { index, expected_type, .. } => {
            at(&index.to_string(), format!("must be a valid {expected_type}"))
        }
        ErrorKind::ParseError { expected_type, .. } => unkeyed(format!("must be a valid {expected_type}")),
        ErrorKind::Message(m) => unkeyed(m),
        kind => ApiError::internal(std::io::Error::other(kind.to_string())),
    }
}
