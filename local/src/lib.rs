//! The local stack: provisioning of the local AWS endpoint from template.yaml, and the local
//! gateway that mounts every function's router as template.yaml routes it.

pub mod dev_key;
pub mod dev_secret;
pub mod functions;
pub mod gateway;
pub mod openapi;
pub mod stack;
pub mod template;
