//! CORS through the real stack (issue 18, item 5): preflights on `answer` and `pass` routes,
//! never authenticated, forwarded with an identity or sent to the login; a non-preflight
//! `OPTIONS` needs a credential; Gatehouse's own 401 and 403 readable by allowed origins only;
//! forward-auth judging the original method; and the `cors` block's errors with their lines.
//! (The browser's side of it is tests/e2e/cors.test.mjs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use gatehouse::devissuer::{DevClaims, DevIssuer};
use http::Request;

const APP: &str = "https://app.example.com";

const POLICY: &str = "\
version: 1
routes:
  - name: answered
    path: /api/**
    auth: any
    require:
      roles: { any_of: [reader] }
    cors:
      preflight: answer
      allowed_origins: [https://app.example.com, \"https://*.tenants.example.com\"]
      allowed_methods: [PUT, DELETE]
      allowed_headers: [x-custom, content-type]
      allow_credentials: true
      max_age: 600
  - name: passed
    path: /passed/**
    auth: any
    cors:
      preflight: pass
      allowed_origins: [https://app.example.com]
      allow_credentials: true
  - name: browser
    path: /pages/**
    auth: session
    on_unauthenticated: redirect
  - name: public
    path: /public/**
    auth: none
  - name: anything
    path: /**
    auth: any
";

struct Setup {
    pki: Pki,
    issuer: DevIssuer,
    app: Upstream,
    gh: gatehouse::server::Running,
}

/// Gatehouse with [`POLICY`], the dev issuer for tokens and dev-mode sessions (so that login
/// redirects exist), in front of an app that answers its own preflights with `app-cors`.
async fn setup() -> Setup {
    let pki = pki();
    std::fs::write(pki.policies().join("open.yaml"), POLICY).unwrap();
    let issuer = DevIssuer::ensure(&pki.dir.path().join("issuer")).unwrap();
    let secret = pki.dir.path().join("session-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
    let app = upstream(|request: Request<hyper::body::Incoming>| async move {
        let mut response = http::Response::new(full("from the app"));
        if request.method() == http::Method::OPTIONS {
            let h = response.headers_mut();
            h.insert("access-control-allow-origin", "app-cors".parse().unwrap());
            h.insert("x-app", "answered".parse().unwrap());
        }
        response
    })
    .await;
    let extra = format!(
        "{}session:\n  secrets: [{{ file: {} }}]\ntrusted_proxies: [127.0.0.1/32]\n",
        issuer.config_yaml(),
        secret.display()
    );
    let text = config_text(&pki, &app.url(), &extra);
    init();
    let mut config = gatehouse::config::parse(
        &text,
        Path::new("test.yaml"),
        &gatehouse::config::Overrides::default(),
    )
    .unwrap();
    config.dev_users = Some(vec![
        gatehouse::login::DevUser::parse("alice=reader").unwrap(),
    ]);
    let gh = gatehouse::server::start(config).await.unwrap();
    eventually(
        "the issuer's keys load",
        Duration::from_secs(10),
        || async { admin_get(gh.admin_addr, "/readyz").await.0 == 200 },
    )
    .await;
    Setup {
        pki,
        issuer,
        app,
        gh,
    }
}

impl Setup {
    fn client(&self) -> Client {
        Client::new(self.gh.https_addr.unwrap(), &self.pki.paths.ca_cert)
    }

    fn token(&self, roles: &[&str]) -> String {
        let claims = DevClaims {
            subject: "alice".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ttl: Duration::from_secs(600),
            ..DevClaims::default()
        };
        format!("Bearer {}", self.issuer.token(&claims).unwrap())
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<BoxBody> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(empty()).unwrap()
}

fn preflight(path: &str, origin: &str, method: &str, headers: &str) -> Request<BoxBody> {
    let mut list = vec![
        ("origin", origin),
        ("access-control-request-method", method),
        // What a browser sends for a preflight; a navigation-looking Accept must not matter.
        ("accept", "text/html,*/*"),
    ];
    if !headers.is_empty() {
        list.push(("access-control-request-headers", headers));
    }
    request("OPTIONS", path, &list)
}

fn header<'a>(response: &'a http::Response<bytes::Bytes>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn no_cors_allow(response: &http::Response<bytes::Bytes>) -> bool {
    response
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-allow"))
}

#[tokio::test]
async fn answer_routes_answer_preflights_from_their_lists() {
    let s = setup().await;
    let client = s.client();

    let ok = client
        .h1(preflight(
            "/api/orders",
            APP,
            "PUT",
            "X-Custom, Content-Type",
        ))
        .await;
    assert_eq!(ok.status(), 204);
    assert_eq!(header(&ok, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&ok, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        header(&ok, "access-control-allow-methods"),
        Some("PUT, DELETE")
    );
    assert_eq!(
        header(&ok, "access-control-allow-headers"),
        Some("x-custom, content-type")
    );
    assert_eq!(header(&ok, "access-control-max-age"), Some("600"));
    assert!(header(&ok, "vary").unwrap().contains("Origin"));

    // A wildcard matches subdomains (one label or more), never the apex.
    for origin in [
        "https://acme.tenants.example.com",
        "https://eu.acme.tenants.example.com",
    ] {
        let r = client.h1(preflight("/api/orders", origin, "PUT", "")).await;
        assert_eq!(r.status(), 204, "{origin}");
        assert_eq!(header(&r, "access-control-allow-origin"), Some(origin));
    }

    // Refused: other origins (the apex, another scheme or port, a look-alike), methods
    // and headers not listed. 403 without allow headers: the browser blocks the request.
    for (origin, method, headers) in [
        ("https://evil.example", "PUT", ""),
        ("https://tenants.example.com", "PUT", ""),
        ("http://acme.tenants.example.com", "PUT", ""),
        ("https://acme.tenants.example.com:8443", "PUT", ""),
        ("https://acme.tenants.example.com.evil.example", "PUT", ""),
        ("https://badtenants.example.com", "PUT", ""),
        ("null", "PUT", ""),
        (APP, "PATCH", ""),
        (APP, "PUT", "x-custom, x-secret"),
    ] {
        let r = client
            .h1(preflight("/api/orders", origin, method, headers))
            .await;
        assert_eq!(r.status(), 403, "{origin} {method} {headers}");
        assert!(no_cors_allow(&r), "{origin} {method} {headers}: {r:?}");
    }
    // Nothing of it reached the app.
    assert!(s.app.seen().is_empty(), "{:?}", s.app.seen());
}

#[tokio::test]
async fn pass_routes_forward_preflights_without_identity() {
    let s = setup().await;
    let client = s.client();
    let mut spoofed = preflight("/passed/x", APP, "DELETE", "x-custom");
    for (name, value) in [
        ("x-user-id", "admin"),
        ("X_User_Id", "admin"),
        ("x-user-roles", "admin"),
        ("x-forwarded-user", "admin"),
        ("authorization", "Bearer not-checked"),
    ] {
        spoofed.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let r = client.h1(spoofed).await;
    assert_eq!(r.status(), 200);
    // The app's own answer comes back unchanged.
    assert_eq!(header(&r, "access-control-allow-origin"), Some("app-cors"));
    assert_eq!(header(&r, "x-app"), Some("answered"));
    let seen = s.app.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, "OPTIONS");
    for name in [
        "x-user-id",
        "x_user_id",
        "x-user-roles",
        "x-forwarded-user",
        "authorization",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the app");
    }
    assert_eq!(seen.header("origin"), Some(APP));
}

#[tokio::test]
async fn preflights_never_meet_the_login_or_routes_without_cors() {
    let s = setup().await;
    let client = s.client();
    // A session route that redirects even non-navigations: the preflight still is no login.
    for path in ["/pages/x", "/other"] {
        let r = client.h1(preflight(path, APP, "GET", "x-custom")).await;
        assert_eq!(r.status(), 403, "{path}");
        assert!(no_cors_allow(&r), "{path}");
        assert!(!r.headers().contains_key("location"), "{path}");
    }
    assert!(s.app.seen().is_empty());
    // A public route without `cors` lets its preflight through as it lets everything
    // through: to the app, with no identity even when the client sends one.
    let mut public = preflight("/public/x", APP, "GET", "");
    public
        .headers_mut()
        .insert("x-user-id", "mallory".parse().unwrap());
    let r = client.h1(public).await;
    assert_eq!(r.status(), 200);
    let seen = s.app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "OPTIONS");
    assert_eq!(seen[0].header("x-user-id"), None);
}

#[tokio::test]
async fn an_options_that_is_no_preflight_needs_a_credential() {
    let s = setup().await;
    let client = s.client();
    // No Access-Control-Request-Method, or a body: an ordinary request, judged as one.
    let plain = request("OPTIONS", "/api/orders", &[("origin", APP)]);
    let r = client.h1(plain).await;
    assert_eq!(r.status(), 401);
    let no_origin = request("OPTIONS", "/api/orders", &[]);
    assert_eq!(client.h1(no_origin).await.status(), 401);
    let mut with_body = request(
        "OPTIONS",
        "/passed/x",
        &[("origin", APP), ("access-control-request-method", "GET")],
    );
    *with_body.body_mut() = full("smuggled");
    let r = client.h1(with_body).await;
    assert_eq!(r.status(), 401);
    assert!(s.app.seen().is_empty());
    // With a credential it reaches the app, with the identity.
    let authed = request(
        "OPTIONS",
        "/api/orders",
        &[("authorization", &s.token(&["reader"]))],
    );
    assert_eq!(client.h1(authed).await.status(), 200);
    assert_eq!(s.app.seen()[0].header("x-user-id"), Some("alice"));
    // A request method that is not a method is malformed.
    let bad = preflight("/api/orders", APP, "P(T", "");
    assert_eq!(client.h1(bad).await.status(), 400);
}

#[tokio::test]
async fn own_denials_carry_cors_headers_for_allowed_origins_only() {
    let s = setup().await;
    let client = s.client();
    let fetch = |origin: &str, token: Option<&str>| {
        let mut headers = vec![("origin", origin), ("sec-fetch-mode", "cors")];
        if let Some(token) = token {
            headers.push(("authorization", token));
        }
        request("GET", "/api/orders", &headers)
    };
    let unauthenticated = client.h1(fetch(APP, None)).await;
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        header(&unauthenticated, "access-control-allow-origin"),
        Some(APP)
    );
    assert_eq!(
        header(&unauthenticated, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(header(&unauthenticated, "vary"), Some("Origin"));
    let forbidden_token = s.token(&["nobody"]);
    let forbidden = client.h1(fetch(APP, Some(&forbidden_token))).await;
    assert_eq!(forbidden.status(), 403);
    assert_eq!(header(&forbidden, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&forbidden, "vary"), Some("Origin"));

    for (token, status) in [(None, 401), (Some(forbidden_token.as_str()), 403)] {
        let other = client.h1(fetch("https://evil.example", token)).await;
        assert_eq!(other.status(), status);
        assert!(no_cors_allow(&other));
        assert_eq!(header(&other, "vary"), Some("Origin"));
    }
    // A route without `cors` adds nothing.
    let plain = client
        .h1(request("GET", "/other", &[("origin", APP)]))
        .await;
    assert_eq!(plain.status(), 401);
    assert!(no_cors_allow(&plain));

    // Allowed: on an `answer` route the app's answer gets the allow headers.
    let reader = s.token(&["reader"]);
    let allowed = client.h1(fetch(APP, Some(&reader))).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn forward_auth_judges_the_original_method() {
    let s = setup().await;
    let client = s.client();
    // The test client (127.0.0.1) is a trusted proxy here, so X-Forwarded-* describe the
    // request the proxy in front is about to pass.
    let ask = |method: &str, uri: &str, origin: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![
            ("x-forwarded-method", method),
            ("x-forwarded-uri", uri),
            ("origin", origin),
            ("access-control-request-method", "PUT"),
        ];
        headers.extend_from_slice(extra);
        request("GET", "/oauth2/auth", &headers)
    };
    let r = client.h1(ask("OPTIONS", "/api/orders", APP, &[])).await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    assert_eq!(header(&r, "x-auth-request-user"), None);
    let r = client
        .h1(ask("OPTIONS", "/api/orders", "https://evil.example", &[]))
        .await;
    assert_eq!(r.status(), 403);
    assert!(no_cors_allow(&r));
    // No `cors` on the route: refused, never 401 (a login cannot help a preflight).
    let r = client.h1(ask("OPTIONS", "/pages/x", APP, &[])).await;
    assert_eq!(r.status(), 403);
    // Even with a valid token a preflight carries no identity.
    let token = s.token(&["reader"]);
    let r = client
        .h1(ask(
            "OPTIONS",
            "/passed/x",
            APP,
            &[("authorization", &token)],
        ))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "x-auth-request-user"), None);
    assert_eq!(header(&r, "x-user-id"), None);
    // The original method is GET: no preflight, a credential is needed, and the 401 is
    // readable by the allowed origin.
    let r = client.h1(ask("GET", "/api/orders", APP, &[])).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    // An OPTIONS auth request that is no preflight is judged as one too.
    let plain = request(
        "GET",
        "/oauth2/auth",
        &[
            ("x-forwarded-method", "OPTIONS"),
            ("x-forwarded-uri", "/api/orders"),
        ],
    );
    assert_eq!(client.h1(plain).await.status(), 401);
}

/// Policy errors in the `cors` block are refused with their file, line and field.
#[test]
fn cors_config_errors_name_file_line_and_field() {
    let text = "\
version: 1
routes:
  - name: a
    path: /a
    cors:
      preflight: sometimes
      allowed_origins: [https://a.example]
  - name: b
    path: /b
    cors:
      allowed_origins: [\"*\"]
      allow_credentials: true
  - name: c
    path: /c
    cors:
      allowed_origins:
        - https://ok.example
        - https://bad.example/path
        - example.com
  - name: d
    path: /d
    cors:
      preflight: answer
  - name: e
    path: /e
    cors:
      allowed_origins: [https://ok.example]
      allowed_methods: [\"P T\"]
      allowed_headers: [\"*\"]
  - name: f
    path: /f
    cors:
      allowed_origins: [\"*\", https://a.example]
";
    let file = PathBuf::from("policies/cors.yaml");
    let errors = gatehouse::policy::parse(&[(file.clone(), text.to_owned())]).unwrap_err();
    let found: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
    let expected = [
        (6, "routes[0].cors.preflight"),
        (11, "routes[1].cors.allowed_origins"),
        (18, "routes[2].cors.allowed_origins[1]"),
        (19, "routes[2].cors.allowed_origins[2]"),
        (23, "routes[3].cors.allowed_origins"),
        (28, "routes[4].cors.allowed_methods[0]"),
        (29, "routes[4].cors.allowed_headers[0]"),
        (33, "routes[5].cors.allowed_origins"),
    ];
    assert_eq!(found, expected, "{errors:#?}");
    assert!(errors.iter().all(|e| e.file == file));
    // `pass` needs no origins; a valid block parses.
    let ok = "version: 1\nroutes:\n  - name: p\n    path: /p\n    cors: { preflight: pass }\n";
    gatehouse::policy::parse(&[(file, ok.to_owned())]).unwrap();
}
