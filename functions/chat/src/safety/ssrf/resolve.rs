//! Name resolution behind a trait, so the guard can be given any resolver: the system's in
//! production, a fixed table in tests (which never touch the internet).

use std::io;
use std::net::IpAddr;

use futures::future::BoxFuture;

pub trait Resolver: Send + Sync {
    /// Every address (A and AAAA) `host` resolves to.
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo` through tokio), which returns A and AAAA
/// records together.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Vec<IpAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.map(|sa| sa.ip()).collect()) })
    }
}
