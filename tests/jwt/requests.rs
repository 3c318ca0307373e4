//! Requests that try to get around the checks: spoofed identity headers, paths spelled to dodge
//! the admin route, and a policy changed (or broken) while serving.

use super::*;

/// Every client spelling of the identity headers we inject, or that apps commonly trust.
const SPOOFED: [(&str, &str); 9] = [
    ("X-User-Id", "mallory"),
    ("x-user-id", "mallory2"),
    ("X_User_Id", "mallory3"),
    ("X-USER-ROLES", "admin"),
    ("x_user_roles", "admin"),
    ("X-Forwarded-User", "mallory"),
    ("x_forwarded_user", "mallory"),
    ("X-User-Email", "mallory@example.com"),
    ("X-Auth-Request-User", "mallory"),
];

/// Names whose normalised form (lower case, `_` as `-`) is an identity header.
fn identity_headers(seen: &Seen) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str().replace('_', "-");
            name.starts_with("x-user-")
                || name.starts_with("x-forwarded-user")
                || name.starts_with("x-auth-request-")
        })
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect()
}

fn spoofing(path: &str, token: Option<&str>) -> Request<BoxBody> {
    let mut builder = request("GET", path);
    for (name, value) in SPOOFED {
        builder = builder.header(name, value);
    }
    // Duplicates of the same name.
    builder = builder
        .header("x-user-id", "mallory4")
        .header("x-user-roles", "root");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(empty()).unwrap()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let fx = Fixture::start(&[], "").await;
    let token = fx.token("alice", &["dev"]);

    // Public route, with and without a token: no identity at all.
    for token in [None, Some(token.as_str())] {
        let seen = fx.passes(spoofing("/public/page", token)).await;
        assert_eq!(identity_headers(&seen), [], "public, token {token:?}");
    }
    // Authenticated route: exactly ours.
    let seen = fx.passes(spoofing("/api/me", Some(&token))).await;
    let mut expected = vec![
        ("x-user-id".to_owned(), "alice".to_owned()),
        ("x-user-roles".to_owned(), "dev".to_owned()),
    ];
    let mut got = identity_headers(&seen);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(seen.headers.get_all("x-user-id").iter().count(), 1);

    // `Connection` naming our header must not remove the one we inject.
    for connection in ["X-User-Id", "x-user-id, X-User-Roles", "close, X_User_Id"] {
        let request = request("GET", "/api/me")
            .header("connection", connection)
            .header("X-User-Id", "mallory")
            .header("authorization", format!("Bearer {token}"))
            .body(empty())
            .unwrap();
        let seen = fx.passes(request).await;
        let mut got = identity_headers(&seen);
        got.sort();
        assert_eq!(got, expected, "Connection: {connection}");
    }
    // Without a token the spoofed headers do not authenticate anyone.
    fx.refused(spoofing("/api/me", None), 401).await;
    fx.refused(spoofing("/admin/x", None), 401).await;
    // Over HTTP/2 as well.
    let mut builder = Request::get("https://localhost/public/h2");
    for (name, value) in SPOOFED {
        builder = builder.header(name, value);
    }
    let response = fx.client.h2(builder.body(empty()).unwrap()).await;
    assert_eq!(response.status(), 200);
    let seen = fx.app.seen().last().unwrap().clone();
    assert_eq!(seen.uri, "/public/h2");
    assert_eq!(identity_headers(&seen), []);
}

#[tokio::test]
async fn path_tricks_do_not_reach_the_admin_route() {
    let fx = Fixture::start(&[], "").await;
    let user = fx.token("alice", &["dev"]);
    let admin = fx.token("root", &["admin"]);
    // What each spelling reaches with an admin token: the canonical path, or 400.
    let tricks: [(&str, Option<&str>); 10] = [
        ("//admin/x", Some("/admin/x")),
        ("/./admin/x", Some("/admin/x")),
        ("/public/../admin/x", Some("/admin/x")),
        ("/public/%2e%2e/admin/x", Some("/admin/x")),
        ("/public/%2E%2E/admin/x", Some("/admin/x")),
        ("/public/..%2fadmin/x", None),
        ("/%61dmin/x", Some("/admin/x")),
        ("/admin;x/y", Some("/admin/y")),
        ("/admin%00", None),
        ("https://localhost/admin/x", Some("/admin/x")),
    ];
    for (path, canonical) in tricks {
        let no_token = request("GET", path).body(empty()).unwrap();
        fx.refused(no_token, if canonical.is_some() { 401 } else { 400 })
            .await;
        fx.refused(
            with_token("GET", path, &user),
            if canonical.is_some() { 403 } else { 400 },
        )
        .await;
        match canonical {
            Some(canonical) => {
                let seen = fx.passes(with_token("GET", path, &admin)).await;
                assert_eq!(seen.uri, canonical, "{path}");
                assert_eq!(seen.header("x-user-id"), Some("root"));
            }
            None => {
                fx.refused(with_token("GET", path, &admin), 400).await;
            }
        }
    }
    // Absolute form with another authority is still the admin route.
    let request = Request::get("https://evil.example/admin/x")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {user}"))
        .body(empty())
        .unwrap();
    fx.refused(request, 403).await;
    assert!(
        fx.app
            .seen()
            .iter()
            .all(|s| s.header("x-user-id") == Some("root") || !s.uri.starts_with("/admin")),
        "a non-admin request reached /admin"
    );
}

#[tokio::test]
async fn policy_changes_apply_and_a_broken_policy_keeps_the_last_good_one() {
    const ERRORS: &str = "gatehouse_reloads_total{kind=\"policies\",result=\"error\"}";
    const RELOAD: Duration = Duration::from_secs(15);
    let fx = Fixture::start(&[], "").await;
    let file = fx.pki.policies().join("open.yaml");
    let token = fx.token("alice", &["dev"]);
    fx.passes(request("GET", "/public/x").body(empty()).unwrap())
        .await;

    // /public/** now needs a token.
    let stricter = POLICY.replace(
        "path: /public/**\n    auth: none",
        "path: /public/**\n    auth: bearer",
    );
    assert_ne!(stricter, POLICY);
    replace_file(&file, stricter.as_bytes());
    eventually("the public route needs a token", RELOAD, || async {
        let before = fx.app.seen().len();
        let status = fx
            .send(request("GET", "/public/x").body(empty()).unwrap())
            .await
            .status();
        status == 401 && fx.app.seen().len() == before
    })
    .await;
    let seen = fx.passes(with_token("GET", "/public/x", &token)).await;
    assert_eq!(seen.header("x-user-id"), Some("alice"));

    // A bad glob: the reload fails and the stricter policy stays.
    let errors = metric(fx.gh.admin_addr, ERRORS).await;
    let broken = stricter.replace("path: /public/**", "path: /public/[ab]/**");
    replace_file(&file, broken.as_bytes());
    eventually("the broken policy is rejected", RELOAD, || async {
        metric(fx.gh.admin_addr, ERRORS).await > errors
    })
    .await;
    fx.refused(request("GET", "/public/x").body(empty()).unwrap(), 401)
        .await;
    fx.refused(with_token("GET", "/admin/x", &token), 403).await;
    fx.passes(with_token("GET", "/public/x", &token)).await;
}
