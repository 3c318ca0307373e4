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

#[test]
fn explain_says_where_an_opaque_token_would_be_introspected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "introspection-secret").unwrap();
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = write_config(
        dir.path(),
        &format!(
            "version: 1
listen:
  http: 127.0.0.1:8080
upstream:
  url: http://127.0.0.1:3000
policies: {policies}
issuers:
  - issuer: https://a.example
    audiences: [api]
    introspection:
      url: https://a.example/introspect
      client_id: gatehouse
      client_secret: {{ file: secret }}
  - issuer: https://b.example
    audiences: [api]
    introspection:
      client_id: gatehouse
      client_secret: {{ file: secret }}
  - issuer: https://jwt.example
    audiences: [api]
",
            policies = policies.display()
        ),
    );
    let explain = |args: &[&str]| {
        let mut all = vec![
            "policy", "explain", "--dir", "policies", "--path", "/admin/x",
        ];
        all.extend_from_slice(args);
        let out = cli(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let config = config.to_str().unwrap();
    let opaque = explain(&["--token", "G4gUKgKf4bDUUEmbWkvheGAKup", "--config", config]);
    assert!(
        opaque.contains(
            "would introspect it at https://a.example/introspect (issuer https://a.example); \
             and at the introspection_endpoint of https://b.example/.well-known/openid-configuration (issuer https://b.example)"
        ),
        "{opaque}"
    );
    assert!(
        opaque.contains("depends on the introspection answer"),
        "{opaque}"
    );
    let offline = explain(&["--token", "G4gUKgKf4bDUUEmbWkvheGAKup"]);
    assert!(offline.contains("pass --config to see which"), "{offline}");

    let jwt = |iss: &str| {
        use base64::Engine as _;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg": "ES256"})),
            b64(serde_json::json!({"iss": iss, "sub": "carol", "roles": ["admin"]}))
        )
    };
    // A JWT of a configured issuer is read as such; one of another issuer is introspected.
    let known = explain(&["--token", &jwt("https://jwt.example"), "--config", config]);
    assert!(known.contains("caller    carol"), "{known}");
    let foreign = explain(&[
        "--token",
        &jwt("https://elsewhere.example"),
        "--config",
        config,
    ]);
    assert!(foreign.contains("would introspect it at"), "{foreign}");
}

#[tokio::test]
async fn forward_auth_in_a_bearer_only_config_applies_the_policy_when_asked_for() {
    let pki = pki();
    std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
    let issuer = DevIssuer::ensure(&pki.dir.path().join("issuer")).unwrap();
    let app = ok_upstream().await;
    let extra = format!(
        "{}forward_auth: true\ntrusted_proxies: [127.0.0.1/32]\n",
        issuer.config_yaml()
    );
    let gh = start(&config_text(&pki, &app.url(), &extra)).await;
    eventually("ready", Duration::from_secs(10), || async {
        admin_get(gh.admin_addr, "/readyz").await.0 == 200
    })
    .await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let admin = format!("Bearer {}", token(&issuer, "root", &["admin"]));
    let dev = format!("Bearer {}", token(&issuer, "dev", &["dev"]));
    let ask = |uri: &'static str, credential: Option<&str>, query: &str| {
        let mut headers = vec![("x-forwarded-uri", uri), ("x-forwarded-method", "GET")];
        if let Some(c) = credential {
            headers.push(("authorization", c));
        }
        request(&format!("/oauth2/auth{query}"), &headers)
    };
    let response = client.h1(ask("/admin/x", Some(&admin), "")).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-auth-request-user"], "root");
    assert_eq!(response.headers()["x-user-id"], "root");
    assert_eq!(response.headers()["x-user-roles"], "admin");
    let response = client.h1(ask("/admin/x", Some(&dev), "")).await;
    assert_eq!(response.status(), 403);
    let response = client.h1(ask("/admin/x", None, "")).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    // oauth2-proxy's query parameters narrow the route's requirements.
    let response = client
        .h1(ask("/admin/x", Some(&admin), "?allowed_groups=ops,billing"))
        .await;
    assert_eq!(response.status(), 403);
    let response = client
        .h1(ask("/admin/x", Some(&admin), "?allowed_groups=ops,admin"))
        .await;
    assert_eq!(response.status(), 202);
    // A public route needs nothing, unless a parameter asks for someone.
    let response = client.h1(ask("/public/x", None, "")).await;
    assert_eq!(response.status(), 202);
    assert!(!response.headers().contains_key("x-auth-request-user"));
    let response = client
        .h1(ask("/public/x", None, "?allowed_groups=admin"))
        .await;
    assert_eq!(response.status(), 401);
    // No route: the policy's default (deny).
    let response = client.h1(ask("/elsewhere", Some(&admin), "")).await;
    assert_eq!(response.status(), 403);
    assert!(app.seen().is_empty(), "forward-auth never goes upstream");
}

#[tokio::test]
async fn without_forward_auth_a_bearer_only_config_serves_no_auth_endpoint() {
    let (pki, _issuer, app, gh) = setup(OPEN_POLICY).await;
    let client = Client::new(gh.https_addr.unwrap(), &pki.paths.ca_cert);
    let response = client.h1(request("/oauth2/auth", &[])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.seen().len(), 1, "the path is the app's");
}
