//! Chat function: streamed completions over OpenAI-compatible providers with failover, and the
//! user's conversations in DynamoDB.
//!
//! Layers: `api` (request/response bodies and their validation), `service` (the domain: takes the
//! authenticated user and typed input), `store` (DynamoDB), `providers` (upstreams, failover),
//! `sse` (the event-stream wire format), `http` (adapters and the router), `admin` (role and tier
//! changes through Clerk).

pub mod admin;
pub mod api;
pub mod config;
pub mod http;
pub mod limits;
pub mod modes;
pub mod providers;
pub mod safety;
pub mod service;
pub mod sse;
pub mod store;
pub mod streams;
pub mod title;

pub use config::ChatConfig;
pub use http::{ChatState, openapi, router, router_with};
pub use service::ChatService;
