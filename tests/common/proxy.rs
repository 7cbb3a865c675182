//! A loopback TCP proxy in front of a node: counts the bytes clients send
//! through it and can drop every connection at once when a count is
//! reached, the way a flaky network (or a proxy restarting) cuts uploads.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    sent: AtomicU64,
    /// Counts of sent bytes at which every connection is dropped, ascending.
    cuts: Mutex<Vec<u64>>,
    /// Bumped at each cut; every connection ends when it changes.
    cut: watch::Sender<u64>,
    /// While set, new connections are closed at once (the server is "down").
    closed: std::sync::atomic::AtomicBool,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            sent: AtomicU64::new(0),
            cuts: Mutex::new(Vec::new()),
            cut: watch::channel(0).0,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target, accepting.clone()));
            }
        });
        Proxy { port, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Bytes clients have sent through the proxy so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Drops every connection once clients have sent `bytes` in all.
    pub fn cut_after(&self, bytes: u64) {
        let mut cuts = self.shared.cuts.lock().unwrap();
        cuts.push(bytes);
        cuts.sort_unstable();
    }

    /// Drops every connection now.
    pub fn cut_now(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Drops every connection and refuses new ones until [`Proxy::open`]:
    /// to the client, the server behind is down.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.cut_now();
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.shared.closed.store(false, Ordering::SeqCst);
    }

    /// Waits until clients have sent at least `bytes` in all (panics after
    /// `limit`).
    pub async fn wait_sent(&self, bytes: u64, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.sent() < bytes {
            assert!(
                std::time::Instant::now() < deadline,
                "clients sent only {} of {bytes} bytes in {limit:?}",
                self.sent()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, target: u16, shared: Arc<Shared>) {
    if shared.closed.load(Ordering::SeqCst) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let mut cut = shared.cut.subscribe();
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buffer).await?;
            if n == 0 {
                return server_write.shutdown().await;
            }
            server_write.write_all(&buffer[..n]).await?;
            let sent = shared.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            let reached = {
                let mut cuts = shared.cuts.lock().unwrap();
                let due = cuts.first().is_some_and(|&at| sent >= at);
                if due {
                    cuts.remove(0);
                }
                due
            };
            if reached {
                shared.cut.send_modify(|n| *n += 1);
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    // The server closing (or dying) ends the client's connection too; the
    // client closing its side waits for the server's answer.
    let upstream = async {
        if upstream.await.is_ok() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut.changed() => {}
    }
    // Dropping both sockets ends the connection abruptly.
}
