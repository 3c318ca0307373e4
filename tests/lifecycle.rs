//! The real binary from start to exit: graceful shutdown on SIGTERM, configuration errors and
//! their exit code, `certs dev`, and `demo`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gatehouse::devcerts::DevCertPaths;
use http::{Request, Response};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(15);

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_and_drains_the_request_in_flight() {
    let pki = pki();
    let release = Arc::new(Notify::new());
    let body = "finished after the drain began\n".repeat(4096);
    let app = {
        let release = release.clone();
        let body = body.clone();
        upstream(move |_| {
            let release = release.clone();
            let body = body.clone();
            async move {
                release.notified().await;
                Response::new(full(body))
            }
        })
        .await
    };
    let text = config_text(&pki, &app.url(), "limits:\n  drain_timeout: 10s\n");
    let mut gh = spawn_binary(&write_config(pki.dir.path(), &text));
    let (https, admin) = (gh.https.unwrap(), gh.admin);
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    let client = Client::new(https, &pki.paths.ca_cert);
    let in_flight = tokio::spawn(async move { client.h1(get("/slow")).await });
    eventually("the upstream has the request", WAIT, || {
        let arrived = !app.seen().is_empty();
        async move { arrived }
    })
    .await;

    gh.signal("TERM");
    eventually("/readyz reports 503", WAIT, || async move {
        admin_get(admin, "/readyz").await.0 == 503
    })
    .await;
    eventually("new connections are refused", WAIT, || async move {
        TcpStream::connect(https).await.is_err()
    })
    .await;
    assert!(!in_flight.is_finished(), "the request ended before release");

    release.notify_one();
    let response = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("the request in flight did not complete")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), body.as_bytes());

    let status = gh.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{:#?}", gh.log_lines());
    gh.wait_for_log("all connections drained").await;
}

#[test]
fn every_config_problem_is_reported_with_file_line_and_field_and_exit_64() {
    let pki = pki();
    let text = format!(
        "version: 1
listen:
  https: 127.0.0.1:0
  admin: not-an-address
tls:
  certificates:
    - cert_file: {cert}
      key_file: {key}
upstream:
  url: http://127.0.0.1:9
  timeout: 10 seconds
  retries: 3
limits:
  drain_timeout: soon
policies: {policies}
",
        policies = pki.policies().display(),
        cert = pki.paths.cert.display(),
        key = pki.paths.key.display(),
    );
    let file = write_config(pki.dir.path(), &text);
    let f = file.display();
    let expected = [
        format!("{f}:4:10: listen.admin: `not-an-address` is not an address"),
        format!("{f}:11:12: upstream.timeout: `10 seconds` needs a unit"),
        format!("{f}:12:3: upstream.retries: unknown field `retries`"),
        format!("{f}:14:18: limits.drain_timeout: `soon` is not a duration"),
    ];
    for command in ["check", "run"] {
        let output = cli(&[
            OsStr::new(command),
            OsStr::new("--config"),
            file.as_os_str(),
        ]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{command}: {err}");
        for line in &expected {
            assert!(err.contains(line), "{command}: missing `{line}` in:\n{err}");
        }
        assert!(
            err.contains("configuration invalid (4 problem(s))"),
            "{command}: {err}"
        );
    }
}

#[test]
fn check_accepts_a_valid_config_and_names_a_missing_certificate() {
    let pki = pki();
    let text = config_text(&pki, "http://127.0.0.1:9", "");
    let file = write_config(pki.dir.path(), &text);
    let output = cli(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        file.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", file.display())
    );

    let missing = pki.dir.path().join("missing.pem");
    let text = text.replace(
        &pki.paths.cert.display().to_string(),
        &missing.display().to_string(),
    );
    let file = write_config(pki.dir.path(), &text);
    let output = cli(&[
        OsStr::new("check"),
        OsStr::new("--config"),
        file.as_os_str(),
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(64), "{err}");
    // `    - cert_file: ` puts the value at line 8, column 18 of config_text's layout.
    let prefix = format!("{}:8:18: tls.certificates[0].cert_file: ", file.display());
    assert!(err.contains(&prefix), "missing `{prefix}` in:\n{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn certs_dev_makes_a_ca_and_a_leaf_that_serve_and_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let args = [
        OsStr::new("certs"),
        OsStr::new("dev"),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("extra.test"),
    ];
    let first = cli(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let paths = DevCertPaths::in_dir(&out);
    assert_eq!(mode(&paths.ca_key), 0o600);
    assert_eq!(mode(&paths.key), 0o600);
    assert!(paths.ca_cert.is_file() && paths.cert.is_file());
    let ca = std::fs::read(&paths.ca_cert).unwrap();
    let leaf = std::fs::read(&paths.cert).unwrap();

    // The leaf serves, and a client that trusts only ca.pem accepts it for every name.
    write_open_policy(dir.path());
    let pki = Pki { dir, paths };
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), "")).await;
    for name in ["localhost", "extra.test"] {
        let mut client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
        client.server_name = name.into();
        let request = Request::get("/")
            .header("host", name)
            .body(empty())
            .unwrap();
        let response = client.h1(request).await;
        assert_eq!(response.status(), 200, "{name}");
    }

    let second = cli(&args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(said.contains("kept CA"), "{said}");
    assert!(said.contains("kept certificate"), "{said}");
    assert_eq!(std::fs::read(&pki.paths.ca_cert).unwrap(), ca);
    assert_eq!(std::fs::read(&pki.paths.cert).unwrap(), leaf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_echo_app_over_https_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut command = Command::new(binary());
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--certs")
        .arg(&certs);
    let mut demo = start_demo(command).await;

    let client = Client::new(demo.https.unwrap(), &certs.join("ca.pem"));
    let response = client.h1(get("/public/hello?x=1")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let echo: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(echo["path"], "/public/hello");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    let page = Request::get("/public/hello")
        .header("host", "localhost")
        .header("accept", "text/html,application/xhtml+xml")
        .body(empty())
        .unwrap();
    let response = client.h1(page).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let html = String::from_utf8_lossy(response.body());
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<code>GET /public/hello</code>"), "{html}");

    // The sample policy protects the rest: no token 401, wrong role 403, admin 200 with the
    // identity the app sees.
    let missing = client.h1(get("/api/me")).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );
    let token = |sub: &str, roles: &str| {
        let out = cli(&[
            OsStr::new("dev"),
            OsStr::new("token"),
            OsStr::new("--sub"),
            OsStr::new(sub),
            OsStr::new("--roles"),
            OsStr::new(roles),
            OsStr::new("--certs"),
            certs.as_os_str(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let as_user = |path: &str, token: &str| {
        Request::get(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {token}"))
            .header("x-user-id", "mallory")
            .body(empty())
            .unwrap()
    };
    let bob = client
        .h1(as_user("/admin/panel", &token("bob", "dev")))
        .await;
    assert_eq!(bob.status(), 403);
    let alice = client
        .h1(as_user("/admin/panel", &token("alice", "admin,dev")))
        .await;
    assert_eq!(alice.status(), 200);
    let echo: serde_json::Value = serde_json::from_slice(alice.body()).unwrap();
    assert_eq!(echo["headers"]["x-user-id"], "alice");
    assert_eq!(echo["headers"]["x-user-roles"], "admin,dev");
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the token reached the app"
    );

    demo.signal("TERM");
    let status = demo.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{:#?}", demo.log_lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_certificates_at_once() {
    let pki = pki();
    let app = ok_upstream().await;
    // Polling once an hour: only the signal can make this reload happen within the test.
    let text =
        config_text(&pki, &app.url(), "").replace("reload_interval: 100ms", "reload_interval: 1h");
    let gh = spawn_binary(&write_config(pki.dir.path(), &text));
    let addr = gh.https.unwrap();
    let config = client_config(&pki.paths.ca_cert, &[b"http/1.1"]);
    let before = peer_leaf(
        &tls_connect(addr, "localhost", config.clone())
            .await
            .unwrap(),
    );
    assert_eq!(before, first_cert_der(&pki.paths.cert));

    let (_dir, next) = sibling_leaf(&pki, &["next.test"]);
    replace_file(&pki.paths.key, &std::fs::read(&next.key).unwrap());
    replace_file(&pki.paths.cert, &std::fs::read(&next.cert).unwrap());
    let expected = first_cert_der(&next.cert);
    gh.signal("HUP");
    eventually("SIGHUP reloads the certificate", WAIT, || {
        let config = config.clone();
        let expected = expected.clone();
        async move {
            let tls = tls_connect(addr, "localhost", config).await.unwrap();
            peer_leaf(&tls) == expected
        }
    })
    .await;
    gh.wait_for_log("reload requested").await;
    let mut gh = gh;
    assert!(
        gh.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the process"
    );
}
