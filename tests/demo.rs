//! `gatehouse demo` on the real binary: browsers are sent to the dev login page, API calls get
//! 401 JSON, and `gatehouse dev token` bearer tokens work; the inspector under `/.gatehouse/`
//! streams decisions in demo mode and does not exist under `gatehouse run`.
//! (The browser side, with Chromium, is tests/e2e/inspector.test.mjs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
    let process = start_demo(command).await;
    let https = process.https.unwrap();
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

/// Reads the event stream until an entry satisfies `wanted`; returns it.
async fn next_entry(
    body: &mut hyper::body::Incoming,
    buffer: &mut String,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    use http_body_util::BodyExt as _;
    tokio::time::timeout(WAIT, async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let Some(data) = event.trim_end().strip_prefix("data: ") else {
                    continue;
                };
                let entry: serde_json::Value = serde_json::from_str(data).unwrap();
                if wanted(&entry) {
                    return entry;
                }
            }
            let frame = body.frame().await.expect("the stream ended").unwrap();
            if let Some(data) = frame.data_ref() {
                buffer.push_str(std::str::from_utf8(data).unwrap());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_streams_decisions_with_route_reason_and_redacted_headers() {
    let demo = demo().await;
    let client = &demo.client;

    // An early request is in the backlog a later reader gets.
    assert_eq!(client.h1(get("/public/early")).await.status(), 200);
    let stream = client.h1_streaming(get("/.gatehouse/events")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut body = stream.into_body();
    let mut buffer = String::new();
    next_entry(&mut body, &mut buffer, "the backlog", |e| {
        e["path"] == "/public/early"
    })
    .await;

    // A denied API call: route with its place in the policy, the reason, no identity.
    let denied = Request::get("/admin/x")
        .header("host", "localhost")
        .header("x-note", "<script>alert(1)</script>")
        .header("cookie", "gatehouse_session=secretvalue")
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(denied).await.status(), 401);
    let entry = next_entry(&mut body, &mut buffer, "the denial", |e| {
        e["path"] == "/admin/x"
    })
    .await;
    assert_eq!(entry["kind"], "request");
    assert_eq!(entry["route"], "admin");
    assert!(
        entry["route_at"].as_str().unwrap().contains("demo.yaml:"),
        "{entry}"
    );
    assert_eq!(entry["decision"], "unauthenticated");
    assert_eq!(entry["reason"], "missing credential");
    assert_eq!(entry["status"], 401);
    assert_eq!(entry["forwarded"], false);
    assert!(entry["identity"].is_null());
    assert!(
        entry["explain"]
            .as_str()
            .unwrap()
            .contains("route     admin ("),
        "{entry}"
    );
    let text = entry.to_string();
    assert!(!text.contains("secretvalue"), "{text}");
    assert!(text.contains("gatehouse_session=[redacted]"), "{text}");
    // Markup is kept as text (the page shows it with textContent).
    assert!(text.contains("<script>alert(1)</script>"), "{text}");

    // An allowed bearer call: the identity sent, what was added and removed, timings.
    let token = token(&demo.certs, "alice", "admin");
    let allowed = Request::get("/admin/y")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-id", "mallory")
        .body(empty())
        .unwrap();
    assert_eq!(client.h1(allowed).await.status(), 200);
    let entry = next_entry(&mut body, &mut buffer, "the allowed call", |e| {
        e["path"] == "/admin/y"
    })
    .await;
    assert_eq!(entry["decision"], "allow");
    assert_eq!(entry["identity"]["subject"], "alice");
    assert_eq!(entry["forwarded"], true);
    assert!(
        entry["added"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["x-user-id", "alice"])),
        "{entry}"
    );
    assert!(
        entry["removed"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("authorization")),
        "{entry}"
    );
    assert!(
        entry["timings_ms"]["upstream"].as_f64().is_some(),
        "{entry}"
    );
    assert!(!entry.to_string().contains(&token), "{entry}");

    // A policy change on disk shows as a line: the error with file and line, then the fix.
    let file = demo.certs.join("policies/demo.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    replace_file(
        &file,
        b"version: 1\nroutes:\n  - name: broken\n    auth: sometimes\n",
    );
    let failed = next_entry(&mut body, &mut buffer, "the failed reload", |e| {
        e["kind"] == "reload"
    })
    .await;
    assert_eq!(failed["ok"], false);
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("demo.yaml:"), "{message}");
    replace_file(&file, good.as_bytes());
    let fixed = next_entry(&mut body, &mut buffer, "the reload", |e| {
        e["kind"] == "reload"
    })
    .await;
    assert_eq!(fixed["ok"], true, "{fixed}");

    // The page and its script, with a CSP that allows no inline script.
    let page = client.h1(navigation("/.gatehouse/")).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(String::from_utf8_lossy(page.body()).contains("/.gatehouse/inspector.js"));
    let script = client.h1(get("/.gatehouse/inspector.js")).await;
    assert_eq!(script.status(), 200);
    assert_eq!(client.h1(get("/.gatehouse/nothing")).await.status(), 404);
    drop(demo.process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn there_is_no_inspector_under_run() {
    // An open policy: `/.gatehouse/` is an ordinary path, and goes to the app.
    let pki = common::pki();
    let app = ok_upstream().await;
    let running = start(&config_text(&pki, &app.url(), "")).await;
    let client = Client::new(running.https_addr.unwrap(), &pki.paths.ca_cert);
    for path in [
        "/.gatehouse/",
        "/.gatehouse/events",
        "/.gatehouse/inspector.js",
    ] {
        let response = client.h1(get(path)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.body().as_ref(), b"ok", "{path}");
        assert_ne!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
    }
    assert_eq!(app.seen().len(), 3);

    // The demo's own policy under `run`: the path is judged by it (a bearer route: 401).
    let pki = common::pki();
    std::fs::remove_file(pki.policies().join("open.yaml")).unwrap();
    std::fs::write(
        pki.policies().join("demo.yaml"),
        gatehouse::demo::SAMPLE_POLICY,
    )
    .unwrap();
    let issuer = gatehouse::devissuer::DevIssuer::ensure(pki.dir.path()).unwrap();
    let running = start(&config_text(&pki, &app.url(), &issuer.config_yaml())).await;
    let client = Client::new(running.https_addr.unwrap(), &pki.paths.ca_cert);
    let response = client.h1(get("/.gatehouse/events")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(app.seen().len(), 3);
}
