//! A TCP proxy to a real endpoint whose behaviour a test changes while clients use it: up, slow
//! (latency on every answer, or only on requests that mention a given text, e.g. one bucket's
//! key), hung (connections accepted and held, nothing forwarded either way) or down (connections
//! reset). Unlike [`crate::Switch`], it can make a dependency hang or crawl instead of failing
//! fast. Leaving `Hung` resets the connections it held, as a restarted server would.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Up,
    /// Every chunk the endpoint sends back is held this long.
    Slow(Duration),
    /// Requests whose bytes contain the text are held this long before they are forwarded.
    SlowFor(String, Duration),
    Hung,
    Down,
}

pub struct Faulty {
    pub addr: SocketAddr,
    mode: watch::Sender<Fault>,
}

impl Faulty {
    pub async fn to(target: &str) -> Self {
        let target: SocketAddr =
            target.trim_start_matches("http://").trim_end_matches('/').parse().expect("target is host:port");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mode, rx) = watch::channel(Fault::Up);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                if *rx.borrow() == Fault::Down {
                    continue; // dropped: connection reset
                }
                tokio::spawn(relay(client, target, rx));
            }
        });
        Self { addr, mode }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        let _ = self.mode.send(fault);
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut rx: watch::Receiver<Fault>) {
    let _ = client.set_nodelay(true);
    let Ok(mut upstream) = TcpStream::connect(target).await else { return };
    let _ = upstream.set_nodelay(true);
    let (mut up_buf, mut down_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let fault = rx.borrow_and_update().clone();
        match fault {
            Fault::Down => return,
            Fault::Hung => {
                // Hold both ends, forward nothing; reset when the fault ends.
                let _ = rx.changed().await;
                return;
            }
            Fault::Up | Fault::Slow(_) | Fault::SlowFor(..) => {}
        }
        tokio::select! {
            r = client.read(&mut up_buf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if let Fault::SlowFor(text, delay) = &fault
                    && up_buf[..n].windows(text.len()).any(|w| w == text.as_bytes())
                {
                    tokio::time::sleep(*delay).await;
                }
                if upstream.write_all(&up_buf[..n]).await.is_err() {
                    return;
                }
            }
            r = upstream.read(&mut down_buf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if let Fault::Slow(delay) = fault {
                    tokio::time::sleep(delay).await;
                }
                if client.write_all(&down_buf[..n]).await.is_err() {
                    return;
                }
            }
            _ = rx.changed() => {}
        }
    }
}
