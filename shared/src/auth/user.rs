//! Who is calling: the user as the users table knows them, with role and tier from the user's
//! Clerk `public_metadata` (as synced by the webhook).

use serde::{Deserialize, Serialize};

/// What a user may do: `admin` may change other users' roles and tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = UserRole)]
pub enum Role {
    #[default]
    User,
    Moderator,
    Admin,
}

/// A user's plan; it sizes their chat rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Free,
    Pro,
    Enterprise,
}

impl Role {
    /// Unknown or missing values fall back to `user`: metadata never grants more than it says.
    pub fn parse_lenient(s: Option<&str>) -> Self {
        match s.map(str::trim) {
            Some("admin") => Self::Admin,
            Some("moderator") => Self::Moderator,
            _ => Self::User,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Moderator => "moderator",
            Self::Admin => "admin",
        }
    }
}

impl Tier {
    /// Unknown or missing values fall back to `free`.
    pub fn parse_lenient(s: Option<&str>) -> Self {
        match s.map(str::trim) {
            Some("pro") => Self::Pro,
            Some("enterprise") => Self::Enterprise,
            _ => Self::Free,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }
}

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthUser {
    /// BaatCheet's own stable id for the user.
    pub user_id: String,
    /// Clerk's user id (`user_...`), the JWT `sub`.
    pub clerk_id: String,
    pub email: Option<String>,
    pub role: Role,
    pub tier: Tier,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_fall_back_to_least_privilege() {
        assert_eq!(Role::parse_lenient(Some("admin")), Role::Admin);
        assert_eq!(Role::parse_lenient(Some("superuser")), Role::User);
        assert_eq!(Role::parse_lenient(Some("ADMIN")), Role::User);
        assert_eq!(Role::parse_lenient(None), Role::User);
        assert_eq!(Tier::parse_lenient(Some("enterprise")), Tier::Enterprise);
        assert_eq!(Tier::parse_lenient(Some("platinum")), Tier::Free);
    }
}
