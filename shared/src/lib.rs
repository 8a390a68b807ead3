//! The one place cross-cutting logic of the BaatCheet functions lives.

pub mod auth;
pub mod aws;
pub mod clerk;
pub mod client_ip;
pub mod config;
pub mod context;
pub mod cors;
pub mod dynamo;
pub mod erasure;
pub mod error;
pub mod lambda;
pub mod leases;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod request_path;
pub mod routes;
pub mod secrets;
pub mod security_headers;
pub mod telemetry;
pub mod tls;
pub mod users;
pub mod validation;
pub mod xray;

pub use client_ip::ClientIp;
pub use config::{Config, Tables};
pub use context::AppContext;
pub use error::{ApiError, FieldError, Problem};
