//! Route policy through the real stack: no bypass by health paths, user agents, query strings,
//! fragments or case; the default decision; and the offline `policy` commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::time::Duration;

use common::*;
use gatehouse::devissuer::{DevClaims, DevIssuer};
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = "\
version: 1
routes:
  - name: public
    path: /public/**
    auth: none
  - name: admin
    path: /admin/**
    require:
      roles: { any_of: [admin] }
  - name: api
    path: /api/**
    auth: bearer
";

/// Gatehouse with `policy` and the development issuer; returns it with a token minter.
async fn setup(policy: &str) -> (Pki, DevIssuer, Upstream, gatehouse::server::Running) {
    let pki = pki();
    std::fs::write(pki.policies().join("open.yaml"), policy).unwrap();
    let issuer = DevIssuer::ensure(&pki.dir.path().join("issuer")).unwrap();
    let app = ok_upstream().await;
    let gh = start(&config_text(&pki, &app.url(), &issuer.config_yaml())).await;
    eventually(
        "the issuer's keys load",
        Duration::from_secs(10),
        || async { admin_get(gh.admin_addr, "/readyz").await.0 == 200 },
    )
    .await;
    (pki, issuer, app, gh)
}

fn token(issuer: &DevIssuer, sub: &str, roles: &[&str]) -> String {
    let claims = DevClaims {
        subject: sub.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ttl: Duration::from_secs(600),
        ..DevClaims::default()
    };
    issuer.token(&claims).unwrap()
}

fn request(path: &str, headers: &[(&str, &str)]) -> Request<BoxBody> {
    let mut builder = Request::get(path).header("host", "localhost");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(empty()).unwrap()
}

#[tokio::test]
async fn health_paths_and_magic_user_agents_do_not_skip_auth() {
    let policy = "version: 1\nroutes:\n  - name: all\n    path: /**\n    auth: bearer\n";
    let (pki, _issuer, app, gh) = setup(policy).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/ping",
        "/ready",
        "/oauth2/auth",
    ] {
        for agent in [
            "kube-probe/1.29",
            "GoogleHC/1.0",
            "ELB-HealthChecker/2.0",
            "Prometheus/2.50",
        ] {
            let response = client.h1(request(path, &[("user-agent", agent)])).await;
            assert_eq!(response.status(), 401, "{path} as {agent}");
        }
    }
    assert!(
        app.seen().is_empty(),
        "an unauthenticated probe reached the app"
    );
}

#[tokio::test]
async fn no_matching_route_means_the_default() {
    let (pki, issuer, app, gh) = setup(POLICY).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let alice = token(&issuer, "alice", &["admin"]);
    let bearer = format!("Bearer {alice}");
    let response = client
        .h1(request("/elsewhere", &[("authorization", &bearer)]))
        .await;
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["error"], "forbidden");
    assert!(app.seen().is_empty());

    // `default: allow` forwards, without identity and without the credential.
    let allow = POLICY.replace("version: 1\n", "version: 1\ndefault: allow\n");
    let (pki, issuer, app, gh) = setup(&allow).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let bearer = format!("Bearer {}", token(&issuer, "alice", &["admin"]));
    let response = client
        .h1(request(
            "/elsewhere",
            &[("authorization", &bearer), ("x-user-id", "mallory")],
        ))
        .await;
    assert_eq!(response.status(), 200);
    let seen = &app.seen()[0];
    assert_eq!(seen.header("x-user-id"), None);
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn the_query_string_never_takes_part_in_matching() {
    let (pki, _issuer, app, gh) = setup(POLICY).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    assert_eq!(
        client.h1(get("/public/a?next=/admin/x")).await.status(),
        200
    );
    assert_eq!(app.seen()[0].uri, "/public/a?next=/admin/x");
    assert_eq!(
        client.h1(get("/admin/x?route=/public/a")).await.status(),
        401
    );
    assert_eq!(
        client.h1(get("/admin/x?/../../public/a")).await.status(),
        401
    );
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test]
async fn a_fragment_in_the_request_target_never_reaches_the_app_as_another_path() {
    let (pki, _issuer, app, gh) = setup(POLICY).await;
    let config = client_config(&pki.paths.ca_cert, &[b"http/1.1"]);
    let mut tls = tls_connect(gh.https_addr.unwrap(), "localhost", config)
        .await
        .unwrap();
    tls.write_all(
        b"GET /public/x#/../../admin/y HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    assert!(
        app.seen().iter().all(|s| !s.uri.starts_with("/admin")),
        "{:?}",
        app.seen()
    );
}

#[tokio::test]
async fn segments_a_lenient_origin_would_trim_are_refused_before_the_upstream() {
    // A permissive catch-all is where such a bypass shows: `/admin.` is not `/admin` to the
    // policy, but an IIS-style origin strips the trailing dot (or space) and serves `/admin`.
    let open = format!("{POLICY}  - name: everything-else\n    path: /**\n    auth: none\n");
    let (pki, _issuer, app, gh) = setup(&open).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    for path in [
        "/admin./users",
        "/admin%20/users",
        "/admin%2e/users",
        "/admin%3B/users",
        "/admin%3F/users",
        "/admin%23/users",
        "/public\\..\\admin/users",
    ] {
        let response = client.h1(get(path)).await;
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "bad_path", "{path}");
    }
    assert!(app.seen().is_empty(), "{:?}", app.seen());
    assert_eq!(client.h1(get("/elsewhere.txt")).await.status(), 200);
}

#[tokio::test]
async fn case_insensitive_paths_keep_admin_routes_closed_for_case_insensitive_apps() {
    let folded = POLICY.replace("version: 1\n", "version: 1\ncase_insensitive_paths: true\n");
    let (pki, issuer, app, gh) = setup(&folded).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let bob = format!("Bearer {}", token(&issuer, "bob", &["dev"]));
    for path in ["/ADMIN/x", "/Admin/x", "/%41dmin/x"] {
        let response = client.h1(request(path, &[("authorization", &bob)])).await;
        assert_eq!(response.status(), 403, "{path}");
    }
    assert!(app.seen().is_empty());
}

#[test]
fn policy_check_and_explain_work_offline() {
    let ok = cli(&["policy", "check", "policies"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "version: 1\nroutes:\n  - name: x\n    path: admin\n    auth: maybe\n",
    )
    .unwrap();
    let bad = cli(&[
        OsStr::new("policy"),
        OsStr::new("check"),
        dir.path().as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:11: routes[0].path:", file.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:5:11: routes[0].auth:", file.display())),
        "{stderr}"
    );

    let explain = |args: &[&str]| {
        let mut all = vec!["policy", "explain", "--dir", "policies"];
        all.extend_from_slice(args);
        let out = cli(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bob = explain(&[
        "--path",
        "/admin/x",
        "--claims",
        r#"{"sub":"bob","roles":["dev"]}"#,
    ]);
    assert!(
        bob.contains("route     admin (policies/demo.yaml:"),
        "{bob}"
    );
    assert!(
        bob.contains("403 Forbidden: needs role one of admin"),
        "{bob}"
    );
    // The identity rules of a real request: a comma role, one roles string, a name twice.
    for claims in [
        r#"{"sub":"bob","roles":["reader,admin"]}"#,
        r#"{"sub":"bob","roles":"admin"}"#,
        r#"{"sub":"bob","roles":["dev"],"roles":["admin"]}"#,
    ] {
        let out = explain(&["--path", "/admin/x", "--claims", claims]);
        assert!(
            out.contains("unusable claims") && out.contains("401 Unauthorized"),
            "{claims}: {out}"
        );
    }
    let anonymous = explain(&["--path", "/public/../admin/x"]);
    assert!(anonymous.contains("GET /admin/x"), "{anonymous}");
    assert!(anonymous.contains("401 Unauthorized"), "{anonymous}");
    let tricky = explain(&["--path", "/public/..%2fadmin"]);
    assert!(tricky.contains("400 Bad Request"), "{tricky}");
}
