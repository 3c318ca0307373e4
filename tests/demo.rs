//! `gatehouse demo` on the real binary: browsers are sent to the dev login page, API calls get
//! 401 JSON, and `gatehouse dev token` bearer tokens work; the inspector under `/.gatehouse/`
//! streams decisions in demo mode and does not exist under `gatehouse run`.
//! (The browser side, with Chromium, is tests/e2e/inspector.test.mjs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use http::Request;

const WAIT: Duration = Duration::from_secs(30);

struct Demo {
    process: Process,
    client: Client,
    certs: PathBuf,
    _dir: tempfile::TempDir,
}

fn banner_value(lines: &[String], prefix: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let rest = l.split_once(prefix)?.1;
        Some(rest.split('/').next()?.to_owned())
    })
}

/// Starts `gatehouse demo` on free ports with its own certificates and the sample policy.
async fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut command = Command::new(binary());
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--certs")
        .arg(&certs)
        .arg("--policies")
        .arg(dir.path().join("none"));
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
    let port: u16 = banner_value(&lines, "open    https://localhost:")
        .unwrap()
        .parse()
        .unwrap();
    let admin: SocketAddr = banner_value(&lines, "admin   http://")
        .unwrap()
        .parse()
        .unwrap();
    eventually("the demo is ready", WAIT, || async move {
        admin_get(admin, "/readyz").await.0 == 200
    })
    .await;
    let https = SocketAddr::from(([127, 0, 0, 1], port));
    process.https = Some(https);
    process.admin = admin;
    Demo {
        process,
        client: Client::new(https, &certs.join("ca.pem")),
        certs,
        _dir: dir,
    }
}

fn token(certs: &Path, sub: &str, roles: &str) -> String {
    let out = cli(&[
        "dev".as_ref(),
        "token".as_ref(),
        "--sub".as_ref(),
        sub.as_ref(),
        "--roles".as_ref(),
        roles.as_ref(),
        "--certs".as_ref(),
        certs.as_os_str(),
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn navigation(path: &str) -> Request<BoxBody> {
    Request::get(path)
        .header("host", "localhost")
        .header("accept", "text/html,application/xhtml+xml")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body(empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_signs_browsers_in_and_keeps_api_calls_and_tokens_working() {
    let demo = demo().await;
    let client = &demo.client;

    // A browser navigation to a protected route goes to the dev login and back.
    for path in ["/admin/", "/me"] {
        let response = client.h1(navigation(path)).await;
        assert_eq!(response.status(), 302, "{path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/oauth2/start?rd="), "{location}");
        let login = client.h1(navigation(location)).await;
        assert!(
            login.status() == 302 || login.status() == 200,
            "{}",
            login.status()
        );
    }

    // An API call with no credential: 401 JSON, never the login page.
    let response = client.h1(get("/admin/")).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["error"], "unauthenticated");

    // A `gatehouse dev token` bearer: alice (admin) gets in, bob (dev) is refused.
    let bearer = |token: String| {
        Request::get("/admin/")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .unwrap()
    };
    let response = client
        .h1(bearer(token(&demo.certs, "alice", "admin")))
        .await;
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(echo["headers"]["x-user-id"], "alice");
    assert!(echo["headers"].get("authorization").is_none());
    let response = client.h1(bearer(token(&demo.certs, "bob", "dev"))).await;
    assert_eq!(response.status(), 403);
    // The session-or-bearer route takes the token too.
    let me = Request::get("/me")
        .header("host", "localhost")
        .header(
            "authorization",
            format!("Bearer {}", token(&demo.certs, "bob", "dev")),
        )
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(me).await.status(), 200);

    // The root page says what happened and where to go next.
    let response = client.h1(navigation("/")).await;
    assert_eq!(response.status(), 200);
    let html = String::from_utf8_lossy(response.body());
    for needle in [
        "This route is <b>public</b>",
        "href=\"/me\"",
        "href=\"/admin/\"",
        "/oauth2/start",
        "/oauth2/sign_out",
        "/.gatehouse/",
        "<tr class=added><th>x-request-id</th>",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    drop(demo.process);
}
