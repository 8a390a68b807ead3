//! Clerk authentication: the authenticated-user context every protected route uses.

pub mod user;

pub use user::{AuthUser, Role, Tier};
