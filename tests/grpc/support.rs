//! The gRPC peers of tests/grpc.rs and tests/grpc_memory.rs: a real grpcio app and a real
//! grpcio client (tests/grpc/peer.py, on Debian's python3), and Gatehouse with an IdP and an
//! `h2c` upstream.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse::auth::signing::Signer;
use gatehouse::server::Running;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::common::idp::Idp;
use crate::common::*;

pub const AUDIENCE: &str = "gatehouse-grpc-tests";
pub const WAIT: Duration = Duration::from_secs(60);
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/peer.py");

/// The example policy of the README: health public, one method admin-only, the rest of the
/// service for any caller with a token.
pub const POLICY: &str = "version: 1
routes:
  - name: grpc-health
    path: /grpc.health.v1.Health/**
    auth: none
  - name: echo-admin
    path: /test.Echo/Admin
    methods: [POST]
    auth: bearer
    require:
      roles: { any_of: [admin] }
  - name: echo
    path: /test.Echo/**
    methods: [POST]
    auth: bearer
";

fn python() -> Command {
    // Debian's interpreter, where python3-grpcio is installed (not a pyenv shim).
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(PEER)
        .env_remove("http_proxy")
        .env_remove("https_proxy");
    command
}

/// A grpcio app, killed on drop. Its events ("STARTED Hang", "CANCELLED Hang") are collected.
pub struct GrpcApp {
    child: Child,
    _stdin: ChildStdin,
    pub url: String,
    events: Arc<Mutex<Vec<String>>>,
}

impl GrpcApp {
    pub fn start(args: &[&str]) -> Self {
        let mut child = python()
            .arg("server")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with grpcio (scripts/test installs python3-grpcio)");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let listening = first.strip_prefix("LISTENING ").unwrap().to_owned();
        let url = match args.iter().position(|a| *a == "--unix") {
            Some(i) => format!("unix:{}", args[i + 1]),
            None => format!("http://127.0.0.1:{listening}"),
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            _stdin: stdin,
            url,
            events,
        }
    }

    pub fn saw(&self, event: &str) -> bool {
        self.events.lock().unwrap().iter().any(|e| e == event)
    }

    pub fn count(&self, event: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == event)
            .count()
    }

    pub async fn wait_for(&self, event: &str) {
        eventually(event, WAIT, || async { self.saw(event) }).await;
    }
}

impl Drop for GrpcApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one grpcio client scenario against Gatehouse and returns what it printed.
pub async fn grpc_call(
    port: u16,
    ca: &Path,
    scenario: &str,
    token: Option<&str>,
    arg: &str,
) -> Value {
    let mut command = python();
    command
        .arg("client")
        .arg(port.to_string())
        .arg(ca)
        .arg(scenario)
        .arg(token.unwrap_or("-"))
        .arg(arg);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "the gRPC client printed nothing: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

/// A grpcio client whose call stays open until [`PendingCall::cancel`].
pub struct PendingCall {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl PendingCall {
    pub fn start(port: u16, ca: &Path, token: &str) -> Self {
        let mut child = python()
            .arg("client")
            .arg(port.to_string())
            .arg(ca)
            .arg("cancel")
            .arg(token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    /// Cancels the call and returns the client's report.
    pub fn cancel(mut self) -> Value {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"cancel\n").unwrap();
        drop(stdin);
        let mut out = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut out).unwrap();
        let _ = self.child.wait();
        serde_json::from_str(out.lines().last().unwrap()).unwrap()
    }
}

/// Gatehouse in front of `app` with `protocol: h2c`, [`POLICY`] and an IdP.
pub struct Fixture {
    pub pki: Pki,
    pub idp: Idp,
    pub gh: Running,
    signer: Signer,
}

impl Fixture {
    pub async fn start(upstream_url: &str, upstream_extra: &str) -> Self {
        let pki = pki();
        std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
        let signer = Signer::generate(Algorithm::ES256, "ec-1").unwrap();
        let idp = Idp::start(&[&signer]).await;
        let upstream = format!("{upstream_url}\n  protocol: h2c\n{upstream_extra}");
        let text = config_text(&pki, &upstream, &idp.issuer_yaml(AUDIENCE, &[]));
        let gh = start(&text).await;
        wait_ready(&gh, WAIT).await;
        Self {
            pki,
            idp,
            gh,
            signer,
        }
    }

    pub fn port(&self) -> u16 {
        self.gh.https_addr.unwrap().port()
    }

    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": self.idp.issuer(),
            "aud": AUDIENCE,
            "sub": sub,
            "roles": roles,
            "iat": now,
            "exp": now + 300,
        });
        self.signer.sign(&claims).unwrap()
    }

    pub async fn call(&self, scenario: &str, token: Option<&str>, arg: &str) -> Value {
        grpc_call(self.port(), &self.pki.paths.ca_cert, scenario, token, arg).await
    }
}
