//! Shared by the integration tests: a real CA and certificates (rcgen, through
//! `gatehouse::devcerts`), real upstream servers on `127.0.0.1:0`, real TLS clients that trust
//! that CA, Gatehouse started in-process or as the real binary, OpenID providers (`idp` for
//! keys, `oidc_idp` for browser login), a test browser (`browser`) and a real Redis
//! (`redis_server`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod clientcerts;
pub mod idp;
pub mod oidc_idp;
pub mod opaque_idp;
pub mod raw;
pub mod redis_server;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gatehouse::config::{self, Overrides};
use gatehouse::devcerts::{self, DevCertPaths};
use gatehouse::server::{self, Running};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn init() {
    gatehouse::install_crypto_provider();
}

/// A temporary directory with a development CA and a leaf for localhost/127.0.0.1/::1.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub paths: DevCertPaths,
}

pub fn pki() -> Pki {
    init();
    let dir = tempfile::tempdir().unwrap();
    let (paths, _) = devcerts::ensure(dir.path(), &[]).unwrap();
    write_open_policy(dir.path());
    Pki { dir, paths }
}

/// Writes [`OPEN_POLICY`] into `dir/policies/`.
pub fn write_open_policy(dir: &Path) {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("open.yaml"), OPEN_POLICY).unwrap();
}

/// A policy that lets every request through without authentication.
pub const OPEN_POLICY: &str =
    "version: 1\nroutes:\n  - name: everything\n    path: /**\n    auth: none\n";

impl Pki {
    /// The policy directory (holding [`OPEN_POLICY`] unless a test changes it).
    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }
}

/// A client configuration that trusts only `ca` and offers `alpn`.
pub fn client_config(ca: &Path, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    init();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// A TLS client for one Gatehouse listener, HTTP/1.1 or HTTP/2, trusting the test CA.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub server_name: String,
    pub ca: PathBuf,
}

impl Client {
    pub fn new(addr: SocketAddr, ca: &Path) -> Self {
        Self {
            addr,
            server_name: "localhost".into(),
            ca: ca.to_owned(),
        }
    }

    /// One request over a fresh HTTP/1.1 connection; the body is read whole.
    pub async fn h1(&self, request: Request<BoxBody>) -> Response<Bytes> {
        let response = self.h1_streaming(request).await;
        collect(response).await
    }

    pub async fn h1_streaming(&self, request: Request<BoxBody>) -> Response<Incoming> {
        let tls = tls_connect(
            self.addr,
            &self.server_name,
            client_config(&self.ca, &[b"http/1.1"]),
        )
        .await
        .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        sender.send_request(request).await.unwrap()
    }

    /// One request over a fresh HTTP/2 connection (ALPN `h2`).
    pub async fn h2(&self, request: Request<BoxBody>) -> Response<Bytes> {
        let tls = tls_connect(
            self.addr,
            &self.server_name,
            client_config(&self.ca, &[b"h2"]),
        )
        .await
        .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        collect(sender.send_request(request).await.unwrap()).await
    }
}

pub async fn collect(response: Response<Incoming>) -> Response<Bytes> {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, bytes)
}

pub fn empty() -> BoxBody {
    full("")
}

pub fn full(data: impl Into<Bytes>) -> BoxBody {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

/// `GET path` with `Host: localhost`.
pub fn get(path: &str) -> Request<BoxBody> {
    Request::get(path)
        .header("host", "localhost")
        .body(empty())
        .unwrap()
}

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A real HTTP/1.1 upstream on `127.0.0.1:0` that records what it receives.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP/1.1 test server (the test IdPs) that can be stopped hard: `stop` closes the
/// listener and every open connection, so from then on the server is simply unreachable.
pub struct TestServer {
    pub addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl TestServer {
    /// Serves `listener` with `handler` until stopped.
    pub fn start<F, Fut>(listener: TcpListener, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let connection = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let answer = handler(request);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                let mut connections = tracked.lock().unwrap();
                connections.retain(|c| !c.is_finished());
                connections.push(connection);
            }
        });
        Self {
            addr,
            accept,
            connections,
        }
    }

    /// Stops listening and closes every open connection: from now on connections are refused.
    pub fn stop(&self) {
        self.accept.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts an upstream whose answers come from `handler`.
pub async fn upstream<F, Fut>(handler: F) -> Upstream
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    record.lock().unwrap().push(Seen {
                        method: request.method().to_string(),
                        uri: request.uri().to_string(),
                        headers: request.headers().clone(),
                    });
                    let answer = handler(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream { addr, seen, task }
}

/// An upstream that answers every request with 200 and `ok`.
pub async fn ok_upstream() -> Upstream {
    upstream(|_| async { Response::new(full("ok")) }).await
}

/// A config with an HTTPS listener and an admin listener on free ports, the test certificate,
/// and `upstream`; `extra` is appended (top-level YAML).
pub fn config_text(pki: &Pki, upstream: &str, extra: &str) -> String {
    format!(
        "version: 1
listen:
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
tls:
  reload_interval: 100ms
  certificates:
    - cert_file: {cert}
      key_file: {key}
upstream:
  url: {upstream}
policies: {policies}
{extra}",
        cert = pki.paths.cert.display(),
        key = pki.paths.key.display(),
        policies = pki.policies().display(),
    )
}

/// Starts Gatehouse in this process.
pub async fn start(text: &str) -> Running {
    init();
    let config = config::parse(text, Path::new("test.yaml"), &Overrides::default()).unwrap();
    server::start(config).await.unwrap()
}

/// Waits (at most `limit`) until `gh`'s `/readyz` answers 200: its keys, providers and stores
/// are loaded.
pub async fn wait_ready(gh: &Running, limit: Duration) {
    let admin = gh.admin_addr;
    eventually("gatehouse is ready", limit, || async move {
        admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
}

/// GET on the admin listener; returns status and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::get(path)
        .header("host", "admin")
        .body(empty())
        .unwrap();
    let response = collect(sender.send_request(request).await.unwrap()).await;
    (
        response.status().as_u16(),
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

/// The value of a counter or gauge line in `/metrics` (0 when absent).
pub async fn metric(admin: SocketAddr, series: &str) -> f64 {
    let (_, text) = admin_get(admin, "/metrics").await;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Polls `check` until it returns true, for at most `limit`; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `gatehouse` binary, running with a config file; killed on drop.
/// Starts `command` (a `gatehouse demo` with `--listen`/`--admin` on port 0), reads the
/// addresses it bound from its banner, and waits until its `/readyz` answers 200.
pub async fn start_demo(command: Command) -> Process {
    const WAIT: Duration = Duration::from_secs(30);
    let (child, log) = spawn_logged(command);
    let mut process = Process {
        child,
        https: None,
        admin: "127.0.0.1:0".parse().unwrap(),
        log,
    };
    eventually("the demo prints its banner", WAIT, || {
        let printed = process
            .log_lines()
            .iter()
            .any(|l| l.contains("admin   http://"));
        async move { printed }
    })
    .await;
    let lines = process.log_lines();
    let port: u16 = banner_addr(&lines, "open    https://localhost:")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0, "{lines:#?}");
    let admin: SocketAddr = banner_addr(&lines, "admin   http://")
        .unwrap()
        .parse()
        .unwrap();
    // The banner comes once the listeners are bound; the keys may still be loading.
    eventually("the demo is ready", WAIT, || async move {
        admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
    process.https = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    process.admin = admin;
    process
}

/// The address printed after `prefix` on a banner line, up to the next `/`.
pub fn banner_addr(lines: &[String], prefix: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let rest = l.split_once(prefix)?.1;
        Some(rest.split('/').next()?.to_owned())
    })
}

pub struct Process {
    pub child: Child,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Peak resident memory (`VmHWM`) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`. The log is read by another thread, so a
    /// line the process has written may not be here yet: never assert on it directly.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.log_lines().iter().any(|l| l.contains(needle)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line contains {needle:?}:\n{:#?}",
                self.log_lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

/// Runs `gatehouse run --config FILE --log-format json` and waits until it serves.
pub fn spawn_binary(config_file: &Path) -> Process {
    spawn_binary_under(&[], config_file)
}

/// [`spawn_binary`] under a wrapper command, e.g. `["prlimit", "--nofile=64:64"]`.
pub fn spawn_binary_under(wrapper: &[&str], config_file: &Path) -> Process {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary());
            command
        }
        None => Command::new(binary()),
    };
    let mut child = command
        .args(["run", "--config"])
        .arg(config_file)
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("gatehouse is serving")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gatehouse did not start");
    let fields: BTreeMap<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
    let addr = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
    };
    Process {
        https: addr("https"),
        admin: addr("admin").unwrap(),
        child,
        log,
    }
}

/// A client configuration that speaks only `versions`, trusts only `ca` and offers `alpn`.
pub fn client_config_versions(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    init();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client configuration that accepts any server certificate (signatures are still checked),
/// for tests that compare the presented certificate's bytes themselves.
pub fn accept_any_cert_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    init();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The DER bytes of the first certificate in a PEM file.
pub fn first_cert_der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// The DER bytes of the leaf certificate the server presented.
pub fn peer_leaf(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A new leaf for the default names plus `extra`, signed by the CA of `pki`, in a directory of
/// its own (the CA files are copied there so that `devcerts::ensure` reuses them).
pub fn sibling_leaf(pki: &Pki, extra: &[&str]) -> (tempfile::TempDir, DevCertPaths) {
    let dir = tempfile::tempdir().unwrap();
    let target = DevCertPaths::in_dir(dir.path());
    std::fs::copy(&pki.paths.ca_cert, &target.ca_cert).unwrap();
    std::fs::copy(&pki.paths.ca_key, &target.ca_key).unwrap();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (paths, report) = devcerts::ensure(dir.path(), &extra).unwrap();
    assert!(!report.created_ca && report.issued_leaf, "{report:?}");
    (dir, paths)
}

/// Replaces `path` atomically: writes a temporary file beside it, then renames it over.
pub fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("replacing");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Reads until the peer closes (end of stream or an error) and returns what arrived before;
/// `None` when the connection is still open after `limit`.
pub async fn read_until_closed<R>(stream: &mut R, limit: Duration) -> Option<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some(received)
}

/// Writes `text` as `gatehouse.yaml` in `dir`, for [`spawn_binary`] or the CLI.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("gatehouse.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

impl Process {
    /// Waits at most `limit` for the process to exit on its own; panics otherwise.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gatehouse did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Client {
    /// One request over a fresh HTTP/2 connection; the response body is left streaming.
    pub async fn h2_streaming(&self, request: Request<BoxBody>) -> Response<Incoming> {
        let tls = tls_connect(
            self.addr,
            &self.server_name,
            client_config(&self.ca, &[b"h2"]),
        )
        .await
        .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    }
}

/// Starts `command` with its stderr collected line by line into the returned log.
pub fn spawn_logged(mut command: Command) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (child, log)
}

/// Runs `gatehouse ARGS` to completion (at most 60 s) and returns its output.
pub fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(AsRef::as_ref).collect();
    let child = Command::new(binary())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("gatehouse {args:?} did not finish within 60 s");
        }
    }
}
