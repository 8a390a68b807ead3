//! The API in its deployed shape and its contracts: the SAM translator's template, the Lambda-shaped
//! stack, the routes against the template, the OpenAPI document and IAM, the event fixtures, health and
//! start-up without a secret.
//!
//! One test binary per area (few binaries: each links the whole AWS SDK); each file below is one
//! module, as it was one binary before.

#[path = "deployed.rs"]
mod deployed;

#[path = "gateway.rs"]
mod gateway;

#[path = "docs.rs"]
mod docs;

#[path = "startup.rs"]
mod startup;

#[path = "template.rs"]
mod template;

#[path = "contract.rs"]
mod contract;

#[path = "fixtures.rs"]
mod fixtures;

#[path = "iam.rs"]
mod iam;

#[path = "health.rs"]
mod health;

#[path = "chat_limits.rs"]
mod chat_limits;

#[path = "chat_resume.rs"]
mod chat_resume;

#[path = "platform_boundary.rs"]
mod platform_boundary;
