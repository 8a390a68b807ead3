//! `aws-shards`: the local AWS endpoint split by table over several servers (see
//! `baatcheet_tests::aws_shards`); `make load` puts the rate-limit table on a moto of its own.
//!
//!     aws-shards PORT DEFAULT_URL [URL=TABLE[,TABLE...]]...
//!
//! Serves on 127.0.0.1:PORT; each request goes to the URL holding the tables it names, anything
//! else to DEFAULT_URL.

use baatcheet_tests::aws_shards::{Routes, router};
use std::net::SocketAddr;

const USAGE: &str = "usage: aws-shards PORT DEFAULT_URL [URL=TABLE[,TABLE...]]...";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().ok_or(USAGE)?.parse().map_err(|e| format!("PORT: {e}; {USAGE}"))?;
    let mut servers = vec![args.next().ok_or(USAGE)?];
    let mut tables = Vec::new();
    for arg in args {
        let (url, names) = arg.split_once('=').ok_or_else(|| format!("{arg}: expected URL=TABLE,...; {USAGE}"))?;
        servers.push(url.to_string());
        tables.push(names.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect());
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!("aws-shards on 127.0.0.1:{port}: {servers:?}, tables {tables:?}");
    axum::serve(listener, router(servers, Routes::new(&tables))).await?;
    Ok(())
}
