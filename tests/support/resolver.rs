//! A fixed name -> addresses table standing in for DNS, so URL checks are tested without the
//! internet. Unknown names fail like NXDOMAIN.

use chat::safety::ssrf::Resolver;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Default, Clone)]
pub struct MapResolver(HashMap<String, Vec<IpAddr>>);

impl MapResolver {
    pub fn new(entries: &[(&str, &[&str])]) -> Self {
        Self(
            entries
                .iter()
                .map(|(name, addrs)| {
                    (name.to_string(), addrs.iter().map(|a| a.parse().expect("address in test table")).collect())
                })
                .collect(),
        )
    }
}

impl Resolver for MapResolver {
    fn lookup<'a>(&'a self, host: &'a str, _port: u16) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.get(host.trim_end_matches('.')).cloned();
        Box::pin(async move { found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name")) })
    }
}
