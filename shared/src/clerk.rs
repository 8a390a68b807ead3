//! Clerk's side of the user: its user object (as webhooks deliver it and the Backend API returns
//! it) read into a [`ClerkProfile`], and the one Backend API call BaatCheet makes,
//! `PATCH /v1/users/{id}/metadata`, with which an operator changes a user's role or tier. Clerk's
//! `public_metadata` stays the source of truth; the users table follows it.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Role, Tier};
use crate::secrets::{SecretsCache, SecretsError};
use crate::users::{ClerkProfile, Profile};
use crate::validation::ClerkUserId;

/// Why a Clerk user object could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserObjectError {
    #[error("not a Clerk user object: {0}")]
    Shape(String),
    #[error("the user id is missing or malformed")]
    UserId,
    #[error("the user has no updated_at")]
    UpdatedAt,
}

#[derive(Deserialize)]
struct EmailAddress {
    id: Option<String>,
    email_address: Option<String>,
}

/// The fields of Clerk's user object BaatCheet stores; Clerk adds fields freely, so the rest is
/// ignored.
#[derive(Deserialize)]
struct UserData {
    id: Option<String>,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    primary_email_address_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    image_url: Option<String>,
    #[serde(default)]
    public_metadata: Value,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

/// A Clerk user id as it may be stored: non-empty, bounded, printable ASCII.
pub fn valid_clerk_id(id: Option<&str>) -> Result<String, UserObjectError> {
    match id {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) => Ok(id.into()),
        _ => Err(UserObjectError::UserId),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Reads Clerk's user object: the primary email (the one `primary_email_address_id` names, not
/// the first), names, image, `role`/`tier` from `public_metadata` (unknown values fall back to
/// `user`/`free`) and Clerk's timestamps.
pub fn profile_from_user(data: Value) -> Result<ClerkProfile, UserObjectError> {
    let u: UserData = serde_json::from_value(data).map_err(|e| UserObjectError::Shape(e.to_string()))?;
    let clerk_id = valid_clerk_id(u.id.as_deref())?;
    let email = u.primary_email_address_id.as_deref().and_then(|primary| {
        u.email_addresses.iter().find(|e| e.id.as_deref() == Some(primary)).and_then(|e| e.email_address.clone())
    });
    let meta = |k: &str| u.public_metadata.get(k).and_then(Value::as_str);
    Ok(ClerkProfile {
        clerk_id,
        profile: Profile {
            email: non_empty(email),
            first_name: non_empty(u.first_name),
            last_name: non_empty(u.last_name),
            image_url: non_empty(u.image_url),
            role: Role::parse_lenient(meta("role")),
            tier: Tier::parse_lenient(meta("tier")),
        },
        created_at: u.created_at,
        updated_at: u.updated_at.ok_or(UserObjectError::UpdatedAt)?,
    })
}

/// Failures of a Backend API call. None of them carries the secret key.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("CLERK_SECRET_KEY is not configured")]
    NotConfigured,
    #[error("the secret could not be read")]
    Secrets(#[source] SecretsError),
    #[error("Clerk's Backend API could not be reached")]
    Unreachable(#[source] reqwest::Error),
    #[error("Clerk's Backend API did not answer in time")]
    Timeout,
    #[error("Clerk has no such user")]
    NotFound,
    #[error("Clerk's Backend API is rate limiting (retry in {retry_after} s)")]
    RateLimited { retry_after: u64 },
    #[error("Clerk's Backend API answered {status}")]
    Status { status: u16 },
    #[error("Clerk's Backend API answered with an unusable user object")]
    Body(#[source] UserObjectError),
}

/// The Backend API client (`CLERK_API_URL`, Bearer `CLERK_SECRET_KEY` from the secret).
pub struct BackendApi {
    http: reqwest::Client,
    api_url: String,
    secrets: Arc<SecretsCache>,
}

/// One Backend API call may take this long, connect to last byte.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);

impl BackendApi {
    pub fn new(api_url: impl Into<String>, secrets: Arc<SecretsCache>) -> Result<Self, reqwest::Error> {
        let http = crate::tls::client_builder()
            .timeout(BACKEND_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("BaatCheet/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, api_url: api_url.into(), secrets })
    }

    /// Merges `public_metadata` into the user's (Clerk deep-merges; keys not given are kept) and
    /// returns the user as Clerk now has it, `updated_at` included.
    pub async fn update_public_metadata(
        &self,
        clerk_id: &ClerkUserId,
        public_metadata: Value,
    ) -> Result<ClerkProfile, BackendError> {
        let secrets = self.secrets.get().await.map_err(BackendError::Secrets)?;
        let key = secrets.string("CLERK_SECRET_KEY").ok_or(BackendError::NotConfigured)?;
        // The id's alphabet is letters and digits after `user_`: it cannot change the path.
        let url = format!("{}/v1/users/{}/metadata", self.api_url, clerk_id.as_str());
        let res = self
            .http
            .patch(url)
            .bearer_auth(key.expose_secret())
            .json(&serde_json::json!({ "public_metadata": public_metadata }))
            .send()
            .await
            .map_err(|e| if e.is_timeout() { BackendError::Timeout } else { BackendError::Unreachable(e) })?;
        let status = res.status().as_u16();
        match status {
            200..=299 => {}
            404 => return Err(BackendError::NotFound),
            429 => {
                let retry_after = res
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(5)
                    .clamp(1, 300);
                return Err(BackendError::RateLimited { retry_after });
            }
            _ => return Err(BackendError::Status { status }),
        }
        let body: Value = res
            .json()
            .await
            .map_err(|e| if e.is_timeout() { BackendError::Timeout } else { BackendError::Unreachable(e) })?;
        profile_from_user(body).map_err(BackendError::Body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_primary_email_and_metadata() {
        let p = profile_from_user(json!({
            "id": "user_29w83sxmDNGwOuEthce5gg56FcC", "object": "user",
            "email_addresses": [
                {"id": "idn_old", "email_address": "old@example.org"},
                {"id": "idn_primary", "email_address": "primary@example.org"}
            ],
            "primary_email_address_id": "idn_primary",
            "first_name": "Ayesha", "last_name": " ", "image_url": "https://img.clerk.com/x",
            "public_metadata": {"role": "moderator", "tier": "enterprise"},
            "created_at": 1654012591514_i64, "updated_at": 1654012591835_i64
        }))
        .unwrap();
        assert_eq!(p.profile.email.as_deref(), Some("primary@example.org"));
        assert_eq!((p.profile.role, p.profile.tier), (Role::Moderator, Tier::Enterprise));
        assert_eq!(p.profile.last_name, None);
        assert_eq!((p.created_at, p.updated_at), (Some(1654012591514), 1654012591835));
    }

    #[test]
    fn unknown_metadata_falls_back_and_bad_objects_are_refused() {
        let p =
            profile_from_user(json!({"id": "user_1", "updated_at": 5, "public_metadata": {"role": "root", "tier": 3}}))
                .unwrap();
        assert_eq!((p.profile.role, p.profile.tier, p.profile.email), (Role::User, Tier::Free, None));
        assert_eq!(profile_from_user(json!({"updated_at": 1})), Err(UserObjectError::UserId));
        assert_eq!(profile_from_user(json!({"id": "user 1", "updated_at": 1})), Err(UserObjectError::UserId));
        assert_eq!(profile_from_user(json!({"id": "user_1"})), Err(UserObjectError::UpdatedAt));
        assert!(matches!(profile_from_user(json!("x")), Err(UserObjectError::Shape(_))));
    }
}
