//! The shared platform against the local services: authentication (and its differential test
//! against Clerk's own verifier), the Clerk webhook (and its signature check against the
//! vendors'), DynamoDB expressions, the sharded local endpoint of the load tests, through the
//! Lambda-shaped stack the revocation bound and the erasure of a deleted user, and limits keyed by
//! identity.
//!
//! One test binary per area (few binaries: each links the whole AWS SDK); each file below is one
//! module, as it was one binary before.

#[path = "auth.rs"]
mod auth;

#[path = "clerk_differential.rs"]
mod clerk_differential;

#[path = "webhook.rs"]
mod webhook;

#[path = "svix_differential.rs"]
mod svix_differential;

// Through the Lambda-shaped stack, here rather than among `api`'s many short-timeout functions:
// the erasure test seeds and scans thousands of items on the shared local endpoint.
#[path = "revocation.rs"]
mod revocation;

#[path = "erasure.rs"]
mod erasure;

#[path = "expressions.rs"]
mod expressions;

#[path = "aws_shards.rs"]
mod aws_shards;

#[path = "limits_identity.rs"]
mod limits_identity;
