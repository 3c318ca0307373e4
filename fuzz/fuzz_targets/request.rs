//! The whole request path: arbitrary HTTP/1.1 bytes sent to the real server
//! (`gatehouse::server::start`, plaintext `listen.http` on `127.0.0.1:0`) in front of an
//! in-process upstream that records every request it receives.
//!
//! Policy: `/public/**` is `auth: none`, `/admin/**` needs the `admin` role, everything else
//! is denied by default; the fuzzer cannot forge a token. Invariants: the upstream only ever
//! receives requests whose path is canonical and routes to `public`, and never an identity
//! header; the server never panics (a panic in any task aborts the process, see `main`).
//!
//! Determinism: the server and the upstream start once per process on a two-thread tokio
//! runtime. Each input goes to a fresh connection, whose write side is then closed, and its
//! answer is read until the server closes it or for at most `ANSWER_TIMEOUT`. The upstream
//! answers before Gatehouse does, so whatever an input made the upstream receive is recorded
//! by the time its answer has been read, and the check after each input is attributed to it;
//! an input that only times out may leave a request in flight that is then blamed on the
//! next input (rare: the upstream answers at once).
#![no_main]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gatehouse::config::{self, Overrides};
use gatehouse::policy::{self, Policy, Route};
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

const POLICY: &str = "version: 1
default: deny
routes:
  - name: public
    path: /public/**
    auth: none
  - name: admin
    path: /admin/**
    auth: bearer
    require:
      roles: { any_of: [admin] }
";

/// A P-256 key nobody has the private half of here (it is `fuzz_targets/jwt.rs`'s key).
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","x":"9t_Ajn1KK164oKD6n4_v-LGKKQkz2ZkSnqjyblj5z8E","y":"-g-agO_beuj69dY-GxnRDIp2w68jdUlaRHye7dSa6Ms"}]}"#;

const IDENTITY: [&str; 4] = [
    "x-user-id",
    "x-user-roles",
    "x-forwarded-user",
    "x-auth-request-user",
];

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

struct World {
    runtime: tokio::runtime::Runtime,
    gatehouse: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    policy: Policy,
    _running: gatehouse::server::Running,
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn world() -> Result<World, String> {
    gatehouse::install_crypto_provider();
    // A panic in a server task must not be swallowed by tokio: make it a crash.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let dir: PathBuf =
        std::env::temp_dir().join(format!("gatehouse-fuzz-request-{}", std::process::id()));
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).map_err(fail("policy dir"))?;
    std::fs::write(policies.join("fuzz.yaml"), POLICY).map_err(fail("policy"))?;
    std::fs::write(dir.join("jwks.json"), JWKS).map_err(fail("jwks"))?;
    let policy = policy::load_dir(&policies).map_err(|e| format!("{e:?}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(fail("runtime"))?;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let (gatehouse, running) = runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(fail("bind"))?;
        let upstream = listener.local_addr().map_err(fail("addr"))?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        if let Ok(mut seen) = record.lock() {
                            seen.push(Seen {
                                method: request.method().clone(),
                                uri: request.uri().clone(),
                                headers: request.headers().clone(),
                            });
                        }
                        async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        let text = format!(
            "version: 1
listen:
  http: 127.0.0.1:0
  admin: 127.0.0.1:0
upstream:
  url: http://{upstream}
  timeout: 2s
limits:
  header_read_timeout: 1s
  idle_timeout: 2s
policies: {policies}
issuers:
  - issuer: https://idp.example.com
    audiences: [app]
    jwks_file: {jwks}
",
            policies = policies.display(),
            jwks = dir.join("jwks.json").display(),
        );
        let config = config::parse(&text, Path::new("fuzz.yaml"), &Overrides::default())
            .map_err(fail("config"))?;
        let running = gatehouse::server::start(config)
            .await
            .map_err(fail("start"))?;
        let addr = running.http_addr.ok_or("no http listener")?;
        Ok::<_, String>((addr, running))
    })?;
    Ok(World {
        runtime,
        gatehouse,
        seen,
        policy,
        _running: running,
    })
}

static WORLD: LazyLock<World> = LazyLock::new(|| match world() {
    Ok(world) => world,
    Err(e) => panic!("the fuzz world does not start: {e}"),
});

async fn exchange(addr: SocketAddr, data: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    if stream.write_all(data).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut answer = [0u8; 4096];
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Ok(n) = stream.read(&mut answer).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    world.runtime.block_on(exchange(world.gatehouse, data));
    let seen: Vec<Seen> = match world.seen.lock() {
        Ok(mut seen) => seen.drain(..).collect(),
        Err(_) => panic!("the recorder panicked"),
    };
    for request in seen {
        let path = request.uri.path();
        assert_eq!(
            gatehouse::path::canonicalize(path).as_deref(),
            Ok(path),
            "the upstream got a non-canonical path: {request:?}"
        );
        let route = world.policy.route(&request.method, path, None);
        assert!(
            matches!(route, Route::Rule(rule) if rule.name == "public"),
            "the upstream got a protected path: {request:?} ({route:?})"
        );
        for name in IDENTITY {
            assert!(
                !request.headers.contains_key(name),
                "identity header reached the upstream: {request:?}"
            );
        }
    }
});
