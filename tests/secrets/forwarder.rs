//! A TCP forwarder between the proxy and moto that counts GetSecretValue calls and can be cut,
//! and a Secrets Manager that is not there at all.

use super::*;

pub(crate) const GET_SECRET_VALUE: &[u8] = b"secretsmanager.GetSecretValue";

pub(crate) struct Forwarder {
    addr: SocketAddr,
    gets: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Listens on `port` (0 for any) and forwards every connection to moto.
    pub(crate) async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the forwarder");
        let addr = listener.local_addr().expect("local addr");
        let upstream = moto().trim_start_matches("http://").to_string();
        let gets = Arc::new(AtomicUsize::new(0));
        let counter = gets.clone();
        let task = tokio::spawn(async move {
            // Owned here, so that stopping this task also cuts every open connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(client, upstream.clone(), counter.clone()));
            }
        });
        Self {
            addr,
            gets,
            task: Some(task),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn get_secret_value_calls(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Closes the port and every connection through it.
    pub(crate) async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Let the aborted connection tasks be dropped (their sockets closed).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) async fn forward(client: TcpStream, upstream: String, gets: Arc<AtomicUsize>) {
    let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        // The end of the previous read, so that a target split across reads is still seen.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tail.extend_from_slice(&buf[..n]);
            let found = tail
                .windows(GET_SECRET_VALUE.len())
                .filter(|w| *w == GET_SECRET_VALUE)
                .count();
            gets.fetch_add(found, Ordering::SeqCst);
            let keep = tail.len().min(GET_SECRET_VALUE.len() - 1);
            tail.drain(..tail.len() - keep);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// How a Secrets Manager outage looks from the proxy.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outage {
    /// Connections are accepted and requests read, but nothing is ever answered.
    Hang,
    /// Every call fails at once with a 500 InternalServiceError.
    Error,
}

/// A Secrets Manager in an outage; it counts the GetSecretValue calls it receives.
pub(crate) struct DownSecretsManager {
    addr: SocketAddr,
    gets: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DownSecretsManager {
    pub(crate) async fn start(outage: Outage) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let gets = Arc::new(AtomicUsize::new(0));
        let counter = gets.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let counter = counter.clone();
                connections.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    // Each request is one small write from the SDK; read until the client
                    // gives up.
                    while let Ok(n @ 1..) = client.read(&mut buf).await {
                        let found = buf[..n]
                            .windows(GET_SECRET_VALUE.len())
                            .filter(|w| *w == GET_SECRET_VALUE)
                            .count();
                        counter.fetch_add(found, Ordering::SeqCst);
                        if let (Outage::Error, 1..) = (outage, found) {
                            let body = r#"{"__type":"InternalServiceError","message":"outage"}"#;
                            let response = format!(
                                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/x-amz-json-1.1\r\n\
                                 content-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if client.write_all(response.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, gets, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn get_secret_value_calls(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

impl Drop for DownSecretsManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
