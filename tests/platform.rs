//! The shared platform against the local services: authentication (and its differential test
//! against Clerk's own verifier), the Clerk webhook, DynamoDB
//! expressions, and the sharded local endpoint of the load tests.
//!
//! One test binary per area (few binaries: each links the whole AWS SDK); each file below is one
//! module, as it was one binary before.

#[path = "auth.rs"]
mod auth;

#[path = "clerk_differential.rs"]
mod clerk_differential;

#[path = "webhook.rs"]
mod webhook;

#[path = "expressions.rs"]
mod expressions;

#[path = "aws_shards.rs"]
mod aws_shards;
