//! Why authentication failed. Client-side failures become 401 with a machine-readable `reason`;
//! server-side ones (configuration, key fetch, users table) become 5xx with the cause logged.
//! No variant carries the token or any part of it.

use crate::error::{ApiError, error_chain};
use crate::users::StoreError;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no session token in the Authorization header or the __session cookie")]
    MissingToken,
    #[error("the session token is longer than {max} bytes")]
    TooLarge { max: usize },
    #[error("the session token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the session token is not signed with RS256")]
    UnsupportedAlgorithm,
    #[error("the session token is signed by an unknown key")]
    UnknownKey,
    #[error("the session token's signature is invalid")]
    InvalidSignature,
    #[error("the session token has expired")]
    Expired,
    #[error("the session token is not valid yet")]
    NotYetValid,
    #[error("the session token was issued by another issuer")]
    InvalidIssuer,
    #[error("the session token was issued for another authorized party")]
    InvalidAuthorizedParty,
    #[error("the session token has no valid subject")]
    InvalidSubject,
    #[error("the token is not a Clerk session token (an OAuth access or machine token)")]
    NotASessionToken,
    #[error("the session is not active (it has pending tasks)")]
    SessionNotActive,
    #[error("the request carries more than one different __session cookie")]
    AmbiguousSessionCookie,
    #[error("the user has been deleted")]
    UserDeleted,

    #[error("authentication is not configured: {0}")]
    NotConfigured(&'static str),
    #[error("the configured verification key is invalid")]
    InvalidKeyConfig(#[source] BoxError),
    #[error("the signing keys could not be fetched")]
    KeysUnavailable(#[source] BoxError),
    #[error("the users table failed")]
    Store(#[from] StoreError),
    #[error("the secret could not be read")]
    Secrets(#[from] crate::secrets::SecretsError),
}

impl AuthError {
    /// The machine-readable reason of a 401; None for server-side failures.
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::MissingToken => "missing_token",
            Self::TooLarge { .. } => "token_too_large",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAuthorizedParty => "invalid_authorized_party",
            Self::InvalidSubject => "invalid_subject",
            Self::NotASessionToken => "not_a_session_token",
            Self::SessionNotActive => "session_not_active",
            Self::AmbiguousSessionCookie => "ambiguous_session_cookie",
            Self::UserDeleted => "user_deleted",
            Self::NotConfigured(_)
            | Self::InvalidKeyConfig(_)
            | Self::KeysUnavailable(_)
            | Self::Store(_)
            | Self::Secrets(_) => return None,
        })
    }
}

impl AuthError {
    /// Whether this failure counts against the client address's `auth` policy: a token that is
    /// garbled, not signed by the issuer's keys, or from another issuer (guessing and forgery).
    /// A token whose signature verifies is a client's own, even when it has expired or is
    /// refused for another reason (a client that has to refresh is not an attack), and a
    /// request without a token is not an attempt.
    pub fn counts_as_forgery(&self) -> bool {
        match self {
            Self::TooLarge { .. }
            | Self::Malformed(_)
            | Self::UnsupportedAlgorithm
            | Self::UnknownKey
            | Self::InvalidSignature
            | Self::InvalidIssuer => true,
            Self::MissingToken
            | Self::Expired
            | Self::NotYetValid
            | Self::InvalidAuthorizedParty
            | Self::InvalidSubject
            | Self::NotASessionToken
            | Self::SessionNotActive
            | Self::AmbiguousSessionCookie
            | Self::UserDeleted
            | Self::NotConfigured(_)
            | Self::InvalidKeyConfig(_)
            | Self::KeysUnavailable(_)
            | Self::Store(_)
            | Self::Secrets(_) => false,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        if let Some(reason) = err.reason() {
            return ApiError::Unauthorized { reason, detail: err.to_string() };
        }
        match err {
            // No secret yet (a new stack) or Secrets Manager down: fail closed, 503.
            AuthError::Secrets(e) => e.into(),
            // A dependency outage: the client may retry; the cause goes to the log here because
            // `Unavailable` only logs its client-facing detail.
            AuthError::KeysUnavailable(_) | AuthError::Store(StoreError::Dynamo { .. }) => {
                tracing::error!(cause = %error_chain(&err), "authentication dependency failed");
                ApiError::Unavailable {
                    detail: "Authentication is temporarily unavailable.".into(),
                    retry_after_secs: Some(1),
                }
            }
            // Misconfiguration, or a user's item a retry cannot mend (corrupt): fail closed, loudly.
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The users table down: 503 to retry; a user's item that cannot be read: 500 (a retry
    /// reads the same item).
    #[test]
    fn a_corrupt_user_is_a_500_an_outage_a_503() {
        let status = |e: StoreError| ApiError::from(AuthError::Store(e)).status().as_u16();
        assert_eq!(status(StoreError::Dynamo { op: "GetItem", source: "timeout".into() }), 503);
        assert_eq!(
            status(StoreError::Corrupt { clerk_id: "user_1".into(), why: "missing field `revision`".into() }),
            500
        );
    }
}
