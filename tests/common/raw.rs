//! Byte-level test helpers: an upstream that speaks HTTP/1.1 by hand (so it can do what a
//! careless app does, such as answer `101` to any upgrade), and a client that writes raw
//! bytes over TLS and reads what comes back.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::client::TlsStream;

use super::{client_config, tls_connect};

/// How the hand-made upstream answers a request that asks for an upgrade.
#[derive(Debug, Clone)]
pub enum OnUpgrade {
    /// `101` naming the protocol the request asked for (any protocol: a careless server).
    Accept,
    /// `101` naming this protocol, whatever was asked.
    AcceptAs(&'static str),
}

/// What the hand-made upstream received.
#[derive(Debug, Default)]
pub struct Received {
    /// Every request head, as text, in order.
    pub heads: Vec<String>,
    /// Bytes that arrived after it answered `101`: what a tunnel carried.
    pub tunneled: Vec<u8>,
}

/// An HTTP/1.1 upstream written by hand on `127.0.0.1:0`: `200 plain` to ordinary requests
/// (keep-alive, `Content-Length` bodies only), and `101` to any request with an `Upgrade`
/// header, after which everything the connection carries is recorded.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start(on_upgrade: OnUpgrade) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let record = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_raw(stream, on_upgrade.clone(), record.clone()));
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.received.lock().unwrap().heads.clone()
    }

    pub fn tunneled(&self) -> Vec<u8> {
        self.received.lock().unwrap().tunneled.clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_raw(
    mut stream: tokio::net::TcpStream,
    on_upgrade: OnUpgrade,
    record: Arc<Mutex<Received>>,
) {
    let mut buffered = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buffered).await else {
            return;
        };
        record.lock().unwrap().heads.push(head.clone());
        let asked = header(&head, "upgrade");
        if let Some(asked) = asked {
            let protocol = match &on_upgrade {
                OnUpgrade::Accept => asked,
                OnUpgrade::AcceptAs(p) => (*p).to_owned(),
            };
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            record.lock().unwrap().tunneled.extend_from_slice(&buffered);
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        record.lock().unwrap().tunneled.extend_from_slice(&buf[..n]);
                        // Answer like an app would, so a client would see it got through.
                        let _ = stream.write_all(b"tunnel reached the app\n").await;
                    }
                }
            }
        }
        if read_body(&mut stream, &head, &mut buffered).await.is_none() {
            return;
        }
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain";
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request head (up to the blank line) from `stream`, keeping any bytes after it in
/// `buffered`. `None` at end of stream.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffered: &mut Vec<u8>,
) -> Option<String> {
    loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffered[..end + 4]).into_owned();
            buffered.drain(..end + 4);
            return Some(head);
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffered.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads the `Content-Length` body that follows `head` (none without one), taking what is
/// already in `buffered` first. `None` when the stream ends before the body does.
async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    head: &str,
    buffered: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let length: usize = header(head, "content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while buffered.len() < length {
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffered.extend_from_slice(&buf[..n]),
        }
    }
    Some(buffered.drain(..length).collect())
}

/// Runs one of the Python HTTP/2 clients in `tests/h2/` (Debian's python3 with python3-h2)
/// against `127.0.0.1:port` with `args` after the CA file and `stdin` as input, and returns
/// the JSON it prints.
pub async fn python_h2(
    script: &str,
    port: u16,
    ca: &Path,
    args: &[&str],
    stdin: &str,
) -> serde_json::Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = format!("{}/tests/h2/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(&script)
        .args(["127.0.0.1", &port.to_string()])
        .arg(ca)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command
            .spawn()
            .expect("python3 (Debian's, with python3-h2) is needed: scripts/test installs it");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of header `name` (case-insensitive) in a head written as text.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A TLS connection offering only `http/1.1`, for writing requests by hand.
pub async fn raw_tls(addr: SocketAddr, ca: &Path) -> TlsStream<tokio::net::TcpStream> {
    tls_connect(addr, "localhost", client_config(ca, &[b"http/1.1"]))
        .await
        .unwrap()
}

/// The status code of a response head written as text (`HTTP/1.1 200 OK`).
pub fn status(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response head: {head:?}"))
}

/// Reads one response (head and, when it has a `Content-Length`, its body); returns the head
/// and the body as text. Panics when nothing arrives within `limit`.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffered: &mut Vec<u8>,
    limit: Duration,
) -> (String, String) {
    let read = async {
        let head = read_head(stream, buffered)
            .await
            .expect("connection closed");
        let body = read_body(stream, &head, buffered).await.unwrap_or_default();
        (head, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("no response in time")
}

/// Writes `bytes` and flushes.
pub async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}
