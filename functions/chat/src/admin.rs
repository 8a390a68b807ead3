//! How an operator changes a user's role or tier: `GET`/`PATCH /api/v1/admin/users/{id}` (behind
//! `require_role(admin)`; `{id}` is the Clerk user id).
//!
//! Clerk's `public_metadata` is the source of truth. A PATCH first writes it through Clerk's Backend
//! API (`PATCH /v1/users/{id}/metadata`); only when Clerk accepted it is the users table updated,
//! at once, with the user exactly as Clerk returned it (Clerk's `updated_at` included). So the new
//! limits apply as soon as the per-instance user cache lets go (at once on this instance), the
//! `user.updated` webhook that follows finds nothing newer to apply, and an older webhook cannot
//! undo the change (the table's write is conditional on Clerk's `updated_at`, as the webhook's is).
//! When Clerk fails, nothing is written: a 502 or 503 problem.

use baatcheet_shared::auth::{AuthUser, Authenticator, Role, Tier};
use baatcheet_shared::clerk::{BackendApi, BackendError};
use baatcheet_shared::error::error_chain;
use baatcheet_shared::users::{StoreError, UserRecord, UsersStore};
use baatcheet_shared::validation::{ClerkUserId, Report, Validate};
use baatcheet_shared::{ApiError, AppContext};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `PATCH` body: the fields to change (at least one).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, example = json!({"tier": "pro"}))]
pub struct UserPatch {
    /// The user's new role.
    #[serde(default)]
    #[schema(nullable = false)]
    pub role: Option<Role>,
    /// The user's new tier.
    #[serde(default)]
    #[schema(nullable = false)]
    pub tier: Option<Tier>,
}

impl Validate for UserPatch {
    fn validate(&mut self, r: &mut Report) {
        if self.role.is_none() && self.tier.is_none() {
            r.fail("must set role or tier");
        }
    }
}

/// A user as an operator sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AdminUser {
    /// The Clerk user id.
    #[schema(example = "user_2abcDEF123")]
    pub clerk_id: String,
    /// BaatCheet's own id of the user (`usr_` and 32 hex digits), set once.
    #[schema(example = "usr_0190b8a45b7e70008000000000000001")]
    pub user_id: String,
    #[schema(required = true, example = "ayesha@example.com")]
    pub email: Option<String>,
    #[schema(required = true, example = "Ayesha")]
    pub first_name: Option<String>,
    #[schema(required = true, example = "Khan")]
    pub last_name: Option<String>,
    #[schema(required = true)]
    pub image_url: Option<String>,
    pub role: Role,
    pub tier: Tier,
    /// Clerk's `updated_at` (ms) of the data held; `null` until Clerk's data reached the table.
    #[schema(required = true, example = 1768469400123_i64)]
    pub updated_at: Option<i64>,
}

impl From<&UserRecord> for AdminUser {
    fn from(r: &UserRecord) -> Self {
        Self {
            clerk_id: r.clerk_id.clone(),
            user_id: r.user_id.clone(),
            email: r.profile.email.clone(),
            first_name: r.profile.first_name.clone(),
            last_name: r.profile.last_name.clone(),
            image_url: r.profile.image_url.clone(),
            role: r.profile.role,
            tier: r.profile.tier,
            updated_at: r.updated_at,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("User not found.".into())
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Dynamo { .. } => {
            tracing::error!(cause = %error_chain(&e), "users table failed");
            ApiError::Unavailable {
                detail: "Storage is temporarily unavailable; please retry.".into(),
                retry_after_secs: Some(2),
            }
        }
        StoreError::Corrupt { .. } => ApiError::internal(e),
    }
}

/// Clerk's failures as problems: its 404 is ours; it being down or busy is a 503 to retry; any
/// other answer (a refused key, a malformed answer) is a 502 and an error in the log.
fn clerk_error(e: BackendError) -> ApiError {
    match e {
        BackendError::NotFound => not_found(),
        BackendError::Unreachable(_) | BackendError::Timeout => {
            tracing::warn!(cause = %error_chain(&e), "Clerk Backend API unavailable");
            ApiError::Unavailable {
                detail: "Clerk is not reachable right now; please retry.".into(),
                retry_after_secs: Some(5),
            }
        }
        BackendError::RateLimited { retry_after } => ApiError::Unavailable {
            detail: "Clerk is rate limiting; please retry.".into(),
            retry_after_secs: Some(retry_after),
        },
        BackendError::NotConfigured | BackendError::Secrets(_) => {
            tracing::error!(cause = %error_chain(&e), "Clerk Backend API not usable");
            ApiError::Unavailable {
                detail: "User administration is not available right now.".into(),
                retry_after_secs: Some(30),
            }
        }
        BackendError::Status { .. } | BackendError::Body(_) => ApiError::BadGateway(Box::new(e)),
    }
}

pub struct Admin {
    users: UsersStore,
    clerk: BackendApi,
    auth: Arc<Authenticator>,
}

impl Admin {
    pub fn new(ctx: &AppContext) -> Result<Self, reqwest::Error> {
        Ok(Self {
            users: UsersStore::new(ctx.dynamo.clone(), ctx.config.tables.users.clone()),
            clerk: BackendApi::new(ctx.config.clerk.api_url.clone(), ctx.secrets.clone())?,
            auth: ctx.auth.clone(),
        })
    }

    async fn live(&self, id: &ClerkUserId) -> Result<Option<UserRecord>, ApiError> {
        Ok(self.users.get(id.as_str()).await.map_err(store_error)?.filter(|u| !u.deleted))
    }

    /// The user as the users table holds them; deleted and unknown users are not found.
    pub async fn get(&self, id: &ClerkUserId) -> Result<AdminUser, ApiError> {
        self.live(id).await?.as_ref().map(AdminUser::from).ok_or_else(not_found)
    }

    /// Writes `patch` to Clerk, then the table; see the module docs.
    pub async fn update(&self, actor: &AuthUser, id: &ClerkUserId, patch: &UserPatch) -> Result<AdminUser, ApiError> {
        // A deleted user stays deleted (Clerk never reuses ids); no call to Clerk for them.
        if self.users.get(id.as_str()).await.map_err(store_error)?.is_some_and(|u| u.deleted) {
            return Err(not_found());
        }
        let mut metadata = serde_json::Map::new();
        if let Some(role) = patch.role {
            metadata.insert("role".into(), role.as_str().into());
        }
        if let Some(tier) = patch.tier {
            metadata.insert("tier".into(), tier.as_str().into());
        }
        let profile = self.clerk.update_public_metadata(id, metadata.into()).await.map_err(clerk_error)?;
        if profile.clerk_id != id.as_str() {
            return Err(ApiError::BadGateway(Box::new(std::io::Error::other("Clerk answered for another user"))));
        }
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let record = self.users.apply_profile(&profile, now_ms).await.map_err(store_error)?;
        // This instance applies the change at once; others within their user-cache TTL.
        self.auth.forget_user(id.as_str());
        if record.deleted {
            return Err(not_found());
        }
        tracing::info!(
            admin = %actor.clerk_id,
            user = %id,
            role = record.profile.role.as_str(),
            tier = record.profile.tier.as_str(),
            "user role/tier changed through Clerk"
        );
        Ok(AdminUser::from(&record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baatcheet_shared::validation::{parse_json, validate};

    #[test]
    fn a_patch_names_known_roles_and_tiers_and_changes_something() {
        let p = validate(parse_json::<UserPatch>(br#"{"tier":"pro"}"#).unwrap(), "").unwrap();
        assert_eq!((p.role, p.tier), (None, Some(Tier::Pro)));
        assert_eq!(validate(parse_json::<UserPatch>(b"{}").unwrap(), "").unwrap_err().status(), 422);
        for bad in [&br#"{"tier":"platinum"}"#[..], br#"{"role":"root"}"#, br#"{"tier":"pro","credits":5}"#] {
            assert_eq!(parse_json::<UserPatch>(bad).unwrap_err().status(), 422);
        }
    }

    #[test]
    fn clerk_failures_map_to_problems() {
        assert_eq!(clerk_error(BackendError::NotFound).status(), 404);
        assert_eq!(clerk_error(BackendError::Timeout).status(), 503);
        assert_eq!(clerk_error(BackendError::RateLimited { retry_after: 7 }).status(), 503);
        assert_eq!(clerk_error(BackendError::NotConfigured).status(), 503);
        assert_eq!(clerk_error(BackendError::Status { status: 500 }).status(), 502);
        assert_eq!(clerk_error(BackendError::Status { status: 401 }).status(), 502);
    }
}
