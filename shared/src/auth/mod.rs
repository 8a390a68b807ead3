//! Clerk authentication: session-token verification, the authenticated-user context every
//! protected route uses, and role checks.

pub mod authenticator;
pub mod config;
pub mod error;
pub mod extract;
pub mod jwks;
pub mod origin;
pub mod token;
pub mod user;

pub use authenticator::Authenticator;
pub use config::{ClerkConfig, JwksPolicy, USER_CACHE_TTL_SECS};
pub use error::AuthError;
pub use extract::{RequireRoleLayer, authenticate, require_role};
pub use user::{AuthUser, Role, Tier};
