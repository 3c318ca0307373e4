//! `gatehouse dev` on the real binary: the short-lived leaf is renewed while running without
//! dropping the listener or open connections, and the plain-HTTP port redirects to HTTPS.
//! (Trust stores, the dev login page and the app-down page are covered in tests/e2e/dev.test.mjs,
//! with curl and Chromium.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hyper_util::rt::TokioIo;

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaf_is_renewed_without_dropping_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let app = ok_upstream().await;
    let (port, admin, http) = (free_port(), free_port(), free_port());
    let mut command = Command::new(binary());
    command
        .args([
            "dev",
            "--upstream",
            &app.addr.to_string(),
            "--leaf-lifetime",
            "3s",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--admin-port",
            &admin.to_string(),
            "--http-port",
            &http.to_string(),
        ])
        .arg("--certs")
        .arg(dir.path())
        .stdout(Stdio::null());
    let (child, log) = spawn_logged(command);
    let process = Process {
        child,
        https: None,
        admin: SocketAddr::from(([127, 0, 0, 1], admin)),
        log,
    };
    eventually("gatehouse dev is ready", WAIT, || async move {
        let listening = tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .is_ok();
        listening && admin_get(process_admin(admin), "/readyz").await.0 == 200
    })
    .await;

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ca = dir.path().join("ca.pem");
    let config = client_config(&ca, &[b"http/1.1"]);
    // A connection opened before the renewal, kept open across it.
    let held = tls_connect(addr, "localhost", config.clone())
        .await
        .unwrap();
    let first = peer_leaf(&held);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(held))
        .await
        .unwrap();
    tokio::spawn(conn);

    eventually("a renewed leaf is served to new handshakes", WAIT, || {
        let config = config.clone();
        let first = first.clone();
        async move {
            let tls = tls_connect(addr, "localhost", config).await.unwrap();
            peer_leaf(&tls) != first
        }
    })
    .await;
    process
        .wait_for_log("development certificate renewed")
        .await;

    // The renewed leaf chains to the same CA (the client trusts only ca.pem), and the
    // connection from before the renewal still serves requests.
    let bearer = {
        let out = cli(&[
            std::ffi::OsStr::new("dev"),
            std::ffi::OsStr::new("token"),
            std::ffi::OsStr::new("--sub"),
            std::ffi::OsStr::new("alice"),
            std::ffi::OsStr::new("--certs"),
            dir.path().as_os_str(),
        ]);
        format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim())
    };
    let request = http::Request::get("/after-renewal")
        .header("host", "localhost")
        .header("authorization", &bearer)
        .body(empty())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.seen().last().unwrap().header("x-user-id"),
        Some("alice")
    );
    // Dev mode has the inspector; the app never sees its prefix.
    let seen = app.seen().len();
    drop(collect(response).await);
    sender.ready().await.unwrap();
    let response = sender
        .send_request(get("/.gatehouse/inspector.js"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    drop(collect(response).await);
    assert_eq!(app.seen().len(), seen);

    // The plain-HTTP port sends browsers to HTTPS, keeping host and path.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", http))
        .await
        .unwrap();
    let (mut plain, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/x?y=1")
        .header("host", format!("myapp.localhost:{http}"))
        .body(empty())
        .unwrap();
    let response = plain.send_request(request).await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://myapp.localhost:{port}/x?y=1").as_str()
    );
    drop(process);
}

fn process_admin(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
