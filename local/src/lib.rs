//! The local stack: provisioning of the local AWS endpoint from template.yaml; the API as AWS runs
//! it (the translated template's REST API in front of Lambda-shaped function processes); and the
//! in-process gateway that mounts every function's router, for tests that inject test doubles.

pub mod deployed;
pub mod dev_key;
pub mod dev_secret;
pub mod functions;
pub mod gateway;
pub mod lambda;
pub mod lambda_stack;
pub mod openapi;
pub mod rest_api;
pub mod stack;
pub mod template;
