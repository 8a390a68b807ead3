//! The rate limiter: the engine against the local DynamoDB (`limiter`), limits over HTTP and
//! through the API as AWS runs it (`http`), and the global check made together with a route's
//! (`joint`).
//!
//! One binary, each file a module (each binary links the whole AWS SDK). The tests that need the
//! store slow, hung or down reach it through a fault proxy of their own and each has its own
//! tables, so they run in parallel with the rest; a test whose premise is a store that is slow
//! but answering gives the limiter timeouts far above what the local endpoint takes under load
//! (see `common::local_call_limit`).

mod common;
mod http;
mod joint;
mod limiter;
